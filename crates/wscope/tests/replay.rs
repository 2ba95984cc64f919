//! `wscope replay` and `wscope diff` between real peers.
//!
//! The recordings are made the way a user makes them: a Node.js `ws`
//! client (tests/peers/replay_client.mjs: wait for the hello, ask three
//! questions carrying the session id it was given, each after the answer
//! to the one before, close 1000) talks to a Python `websockets` server
//! (tests/peers/replay_server.py) through `wscope proxy --record`, or
//! through nothing while tcpdump captures loopback. The server's path
//! picks how it behaves when the recording is played back: `/normal`
//! answers as recorded, `/changed` answers one field differently,
//! `/fresh-session` hands out a new session id per connection and refuses
//! the old one, `/heartbeat` adds messages, `/slow` and `/hold` log when
//! each request arrived and each answer left, `/close-early` closes after
//! the hello, `/auth` wants an Authorization header.
//!
//! What each test proves is in its name and its comments. Nothing waits
//! on a clock for synchronisation: records are read until their `closed`
//! events are in, the server's log until its `closed` line, tcpdump until
//! it says it listens and until a marker datagram is in its file.
//!
//! Needs Node.js with `ws` (node_modules), the test virtualenv with
//! `websockets` (.venv), and for the capture test root and tcpdump.

mod common;

use common::TimedOutput;

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{
    Running, address_in, node, parse_report, peer_script, record_until, spawn_named, start_proxy,
    system_tool, temp_dir, venv_bin, ws_url_in, wscope,
};
use serde_json::{Value, json};

/// How long any one wscope command may run before the test gives up on
/// it (a hang fails the test instead of stalling the run).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// tests/peers/replay_server.py, with the JSON lines it logs after its
/// first one (the `/slow` and `/hold` paths log) coming through a channel.
struct Server {
    url: String,
    log: Receiver<Value>,
    _running: Running,
}

impl Server {
    fn start() -> Server {
        let mut command = Command::new(venv_bin("python"));
        command.arg(peer_script("replay_server.py"));
        let (mut running, line) = spawn_named(command, "replay_server.py");
        let url = ws_url_in(&line);
        let stdout = running.stdout.take().expect("stdout is read");
        let (send, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("replay_server.py logged {line:?}: {e}"));
                if send.send(value).is_err() {
                    break;
                }
            }
        });
        Server {
            url,
            log,
            _running: running,
        }
    }

    /// The server's log of its next logged connection, up to and
    /// including its `closed` line.
    fn next_logged_connection(&self) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            let line = self
                .log
                .recv_timeout(COMMAND_LIMIT)
                .unwrap_or_else(|_| panic!("the server logged no end of connection: {lines:?}"));
            let closed = line["event"] == "closed";
            lines.push(line);
            if closed {
                return lines;
            }
        }
    }
}

/// Runs the Node.js client's conversation at `url`; checks it went as
/// scripted and returns what it received.
fn converse(url: &str, requests: u32) -> Value {
    let out = node()
        .arg(peer_script("replay_client.mjs"))
        .arg(url)
        .args(["--requests", &requests.to_string()])
        .timed_output()
        .expect("node runs replay_client.mjs");
    let report = parse_report("replay_client.mjs", &out);
    assert_eq!(report["close"]["code"], 1000, "{report}");
    assert_eq!(
        report["received"].as_array().map(Vec::len),
        Some(requests as usize + 1),
        "{report}"
    );
    report
}

/// Records the Node.js client's conversations through `wscope proxy
/// --record` in front of `server`: one connection per (path, requests),
/// one after the other. Returns the record file once every connection's
/// `closed` is in it.
fn record(server: &Server, dir: &Path, name: &str, runs: &[(&str, u32)]) -> PathBuf {
    let file = dir.join(format!("{name}.jsonl"));
    let (proxy, line) = start_proxy(
        &[
            "--upstream",
            &server.url,
            "--record",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let url = address_in(&line, "ws://");
    for (path, requests) in runs {
        converse(&format!("{url}{path}"), *requests);
    }
    let events = record_until(&file, |events| closed(events) >= runs.len());
    assert_eq!(closed(&events), runs.len(), "{events:#?}");
    drop(proxy);
    file
}

fn closed(events: &[Value]) -> usize {
    events.iter().filter(|e| e["event"] == "closed").count()
}

/// What a finished wscope command left.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout as JSON Lines (`--json`).
    fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}\n{}", self.stderr))
            })
            .collect()
    }

    fn diffs(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == "diff")
            .collect()
    }

    fn expect(&self, status: i32) -> &Run {
        assert_eq!(
            self.status, status,
            "exit status {} instead of {status}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `wscope ARGS`, waiting for it to end (at most COMMAND_LIMIT).
fn run(args: &[&str]) -> Run {
    let mut child = wscope()
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wscope starts");
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for wscope") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wscope {args:?} did not end within {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status: status
            .code()
            .expect("wscope ended by itself, not by a signal"),
        stdout: stdout.recv().expect("stdout read"),
        stderr: stderr.recv().expect("stderr read"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = send.send(text);
    });
    receive
}

/// A `--report-json` file: created readable by its owner only.
fn report(path: &Path) -> Value {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the report is JSON")
}

fn text(payload: &Value) -> Value {
    serde_json::from_str(payload["text"].as_str().expect("a text payload")).expect("a JSON payload")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn replayed_against_the_same_server_nothing_differs() {
    let server = Server::start();
    let dir = temp_dir("replay-same");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    let report_path = dir.join("report.json");
    let run = run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--json",
        "--report-json",
        s(&report_path),
    ]);
    run.expect(0);
    assert_eq!(run.diffs(), Vec::<Value>::new());
    // The recorded path was played (the URL has none of its own), and the
    // three questions went out.
    let events = run.events();
    let open = events.iter().find(|e| e["event"] == "open").unwrap();
    assert!(open["url"].as_str().unwrap().ends_with("/normal"), "{open}");
    let sent = events
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "c2s")
        .count();
    assert_eq!(sent, 3, "{}", run.stdout);

    let report = report(&report_path);
    assert_eq!(report["command"], "replay", "{report:#}");
    assert_eq!(report["result"], "same", "{report:#}");
    assert_eq!(report["status"], 0, "{report:#}");
    assert_eq!(
        report["totals"],
        json!({"connections": 1, "same": 1, "different": 0, "failed": 0,
               "messages": {"same": 4, "differs": 0, "missing": 0, "extra": 0}}),
        "{report:#}"
    );
    let conn = &report["connections"][0];
    assert_eq!(conn["id"], "c1", "{report:#}");
    assert_eq!(conn["result"], "same", "{report:#}");
    assert_eq!(conn["sent"], 3, "{report:#}");
    assert_eq!(conn["expected"], 4, "{report:#}");
    assert_eq!(conn["compared"], 4, "{report:#}");
    assert_eq!(conn.get("differences"), None, "{report:#}");
}

#[test]
fn a_server_answering_one_field_differently_is_named_by_that_path() {
    let server = Server::start();
    let dir = temp_dir("replay-changed");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    let report_path = dir.join("report.json");
    let run = run(&[
        "replay",
        s(&recording),
        "--to",
        &format!("{}/changed", server.url),
        "--json",
        "--report-json",
        s(&report_path),
    ]);
    run.expect(1);
    // Exactly one difference: the answer to question 2 (the server's third
    // message), at json.value, 20 then and 21 now.
    let diffs = run.diffs();
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    let diff = &diffs[0];
    assert_eq!(diff["conn"], "c1", "{diff}");
    assert_eq!(diff["change"], "differs", "{diff}");
    assert_eq!((&diff["expected"], &diff["actual"]), (&json!(3), &json!(3)));
    assert_eq!(
        diff["paths"],
        json!([{"path": "json.value", "old": 20, "new": 21}]),
        "{diff}"
    );
    assert_eq!(text(&diff["old"])["value"], 20, "{diff}");
    assert_eq!(text(&diff["new"])["value"], 21, "{diff}");

    // The report says the same, per connection.
    let report = report(&report_path);
    assert_eq!(report["result"], "different", "{report:#}");
    assert_eq!(report["status"], 1, "{report:#}");
    assert_eq!(report["totals"]["different"], 1, "{report:#}");
    assert_eq!(
        report["totals"]["messages"],
        json!({"same": 3, "differs": 1, "missing": 0, "extra": 0}),
        "{report:#}"
    );
    let conn = &report["connections"][0];
    assert_eq!(conn["result"], "different", "{report:#}");
    let mut reported = conn["differences"][0].clone();
    let mut printed = diff.clone();
    for event_only in ["ts", "conn", "dir", "event"] {
        printed.as_object_mut().unwrap().remove(event_only);
    }
    reported.as_object_mut().unwrap().remove("note");
    printed.as_object_mut().unwrap().remove("note");
    assert_eq!(conn["differences"].as_array().map(Vec::len), Some(1));
    assert_eq!(reported, printed, "{report:#}");
}

#[test]
fn a_fresh_session_id_per_connection_passes_only_with_extract() {
    let server = Server::start();
    let dir = temp_dir("replay-fresh");
    let recording = record(&server, &dir, "fresh", &[("/fresh-session", 3)]);

    // Without --extract the recorded session id goes back to a server
    // that never gave it out: every question is refused.
    let run_plain = run(&["replay", s(&recording), "--to", &server.url, "--json"]);
    run_plain.expect(1);
    let refused = run_plain
        .diffs()
        .iter()
        .filter(|d| {
            d["paths"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == &json!({"path": "json.type", "old": "result", "new": "error"}))
        })
        .count();
    assert_eq!(refused, 3, "{}", run_plain.stdout);

    // With it, the live id stands in for the recorded one in every
    // question, and the id itself is not compared.
    let report_path = dir.join("report.json");
    let run_extract = run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--extract",
        "session=json.session",
        "--json",
        "--report-json",
        s(&report_path),
    ]);
    run_extract.expect(0);
    let events = run_extract.events();
    let hello = events
        .iter()
        .find(|e| e["event"] == "message" && e["dir"] == "s2c")
        .expect("the hello");
    let live = text(&hello["payload"])["session"].clone();
    let asked: Vec<Value> = events
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "c2s")
        .map(|e| text(&e["payload"])["session"].clone())
        .collect();
    assert_eq!(asked, vec![live.clone(); 3], "{}", run_extract.stdout);
    let report = report(&report_path);
    let extracted = &report["connections"][0]["extracted"][0];
    assert_eq!(extracted["name"], "session", "{report:#}");
    assert_eq!(extracted["live"], live, "{report:#}");
    assert_ne!(extracted["recorded"], live, "{report:#}");
}

#[test]
fn heartbeats_differ_unless_the_filter_leaves_them_out() {
    let server = Server::start();
    let dir = temp_dir("replay-heartbeat");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    let heartbeat = format!("{}/heartbeat", server.url);

    let unfiltered = run(&["replay", s(&recording), "--to", &heartbeat, "--json"]);
    unfiltered.expect(1);
    // (How many answers the server still sends after the early close
    // varies; that heartbeats show up as extra messages does not.)
    let extra_heartbeats = unfiltered
        .diffs()
        .iter()
        .filter(|d| d["change"] == "extra" && text(&d["new"]) == json!({"type": "heartbeat"}))
        .count();
    assert!(extra_heartbeats >= 1, "{}", unfiltered.stdout);

    let filtered = run(&[
        "replay",
        s(&recording),
        "--to",
        &heartbeat,
        "--filter",
        r#"json.type != "heartbeat""#,
        "--json",
    ]);
    filtered.expect(0);
    assert_eq!(filtered.diffs(), Vec::<Value>::new());
    // The heartbeats did arrive; they were left out of the comparison.
    let heartbeats = filtered
        .events()
        .iter()
        .filter(|e| {
            e["event"] == "message"
                && e["dir"] == "s2c"
                && text(&e["payload"])["type"] == "heartbeat"
        })
        .count();
    assert!(heartbeats >= 1, "{}", filtered.stdout);
}

/// The server's log of one connection as (event, id) pairs.
fn steps(log: &[Value]) -> Vec<(String, u64)> {
    log.iter()
        .filter(|l| l["event"] != "closed")
        .map(|l| {
            (
                l["event"].as_str().unwrap().to_owned(),
                l["id"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn pace_replies_sends_each_question_only_after_the_answer_before_it() {
    let server = Server::start();
    let dir = temp_dir("replay-slow");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    // /slow answers 0.3 s after a question arrives, and logs each arrival
    // as it happens: a client that did not wait would have its next
    // question logged before the answer to the one before.
    run(&[
        "replay",
        s(&recording),
        "--to",
        &format!("{}/slow", server.url),
        "--pace",
        "replies",
        "-q",
    ])
    .expect(0);
    let log = server.next_logged_connection();
    let pairs = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
        list.iter().map(|(e, n)| (e.to_string(), *n)).collect()
    };
    assert_eq!(
        steps(&log),
        pairs(&[
            ("received", 1),
            ("sending", 1),
            ("received", 2),
            ("sending", 2),
            ("received", 3),
            ("sending", 3),
        ]),
        "the server's log: {log:#?}"
    );
}

#[test]
fn pace_none_sends_without_waiting_for_answers() {
    let server = Server::start();
    let dir = temp_dir("replay-hold");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    // /hold answers nothing until all three questions are in. Only a
    // client that sends without waiting gets its answers at once; one
    // that waits for each answer would wait out --timeout before each
    // question and say so in a note. (Against /slow, whether question 2
    // beats answer 1 would be a race against the server's delay; /hold
    // makes the order the server's own.)
    let report_path = dir.join("report.json");
    run(&[
        "replay",
        s(&recording),
        "--to",
        &format!("{}/hold?requests=3", server.url),
        "--pace",
        "none",
        "--timeout",
        "3s",
        "-q",
        "--report-json",
        s(&report_path),
    ])
    .expect(0);
    let log = server.next_logged_connection();
    let order: Vec<String> = steps(&log)
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    assert_eq!(
        order,
        [
            "received 1",
            "received 2",
            "received 3",
            "sending 1",
            "sending 2",
            "sending 3"
        ],
        "{log:#?}"
    );
    let report = report(&report_path);
    assert_eq!(
        report["connections"][0].get("notes"),
        None,
        "no waiting: {report:#}"
    );
}

/// tcpdump writing a pcap of one port on `lo`, started and listening.
struct Tcpdump {
    child: Child,
    file: PathBuf,
    port: u16,
    stderr: Receiver<String>,
}

/// The datagram that ends a capture: once it is in the file, so is every
/// packet before it.
const MARKER: &[u8] = b"wscope-replay-marker";

impl Tcpdump {
    fn start(file: &Path, port: u16) -> Tcpdump {
        let tcpdump = system_tool("tcpdump", "tcpdump");
        let mut child = Command::new(tcpdump)
            .args([
                "-i",
                "lo",
                "-U",
                "--immediate-mode",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
            ])
            .arg(file)
            .arg(format!("port {port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut said = String::new();
        loop {
            let what = format!("tcpdump (root needed; it said {said:?})");
            let line;
            (stderr, line) = common::first_line(stderr, &mut child, &what, common::START_LIMIT);
            said.push_str(&line);
            if line.contains("listening on") {
                break;
            }
        }
        Tcpdump {
            child,
            file: file.to_owned(),
            port,
            stderr: drain(stderr),
        }
    }

    /// Sends the marker until it is in the file, then stops tcpdump
    /// (SIGINT, so it prints its counts) and checks it lost nothing.
    fn stop(mut self) {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            udp.send_to(MARKER, ("127.0.0.1", self.port)).unwrap();
            let written = std::fs::read(&self.file).unwrap_or_default();
            if written.windows(MARKER.len()).any(|w| w == MARKER) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the marker never reached the capture"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let stopped = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(stopped.success());
        self.child.wait().expect("tcpdump ends");
        let said = self.stderr.recv().expect("tcpdump's stderr");
        assert!(
            said.lines()
                .any(|l| l.trim() == "0 packets dropped by kernel"),
            "{said}"
        );
    }
}

#[test]
fn a_capture_made_here_replays_against_the_server_it_captured() {
    let server = Server::start();
    let dir = temp_dir("replay-capture");
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let pcap = dir.join("normal.pcap");
    let tcpdump = Tcpdump::start(&pcap, port);
    converse(&format!("{}/normal", server.url), 3);
    tcpdump.stop();

    let report_path = dir.join("report.json");
    let run = run(&[
        "replay",
        s(&pcap),
        "--to",
        &server.url,
        "--json",
        "--report-json",
        s(&report_path),
    ]);
    run.expect(0);
    let report = report(&report_path);
    assert_eq!(report["result"], "same", "{report:#}");
    let conn = &report["connections"][0];
    assert!(
        conn["url"].as_str().unwrap().ends_with("/normal"),
        "{report:#}"
    );
    assert_eq!((&conn["sent"], &conn["expected"]), (&json!(3), &json!(4)));
    assert_eq!(conn["same"], 4, "{report:#}");
}

#[test]
fn diff_names_the_changed_path_and_finds_a_file_equal_to_itself() {
    let server = Server::start();
    let dir = temp_dir("replay-diff");
    let before = record(&server, &dir, "before", &[("/normal", 3)]);
    let after = record(&server, &dir, "after", &[("/changed", 3)]);

    let report_path = dir.join("report.json");
    let run_diff = run(&[
        "diff",
        s(&before),
        s(&after),
        "--json",
        "--report-json",
        s(&report_path),
    ]);
    run_diff.expect(1);
    let diffs = run_diff.diffs();
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert_eq!(diffs[0]["change"], "differs", "{diffs:#?}");
    assert_eq!(diffs[0]["dir"], "s2c", "{diffs:#?}");
    assert_eq!(
        diffs[0]["paths"],
        json!([{"path": "json.value", "old": 20, "new": 21}]),
        "{diffs:#?}"
    );
    let report = report(&report_path);
    assert_eq!(report["command"], "diff", "{report:#}");
    assert_eq!(report["result"], "different", "{report:#}");
    assert_eq!(report["status"], 1, "{report:#}");

    run(&["diff", s(&before), s(&before)]).expect(0);
    // Key order and spacing are no difference: the two recordings' hellos
    // and other answers compared equal above; the same conversation
    // recorded twice is the same.
    let again = record(&server, &dir, "again", &[("/normal", 3)]);
    run(&["diff", s(&before), s(&again)]).expect(0);
}

#[test]
fn repeat_and_connections_play_every_copy() {
    let server = Server::start();
    let dir = temp_dir("replay-load");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    let report_path = dir.join("report.json");
    run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--repeat",
        "2",
        "--connections",
        "3",
        "-q",
        "--report-json",
        s(&report_path),
    ])
    .expect(0);
    let report = report(&report_path);
    let ids: Vec<&str> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["c1.1", "c1.2", "c1.3", "c1.4", "c1.5", "c1.6"],
        "{report:#}"
    );
    for conn in report["connections"].as_array().unwrap() {
        assert_eq!(conn["recorded"], "c1", "{conn}");
        assert_eq!(conn["result"], "same", "{conn}");
        assert_eq!(conn["same"], 4, "{conn}");
    }
    assert_eq!(report["totals"]["connections"], 6, "{report:#}");
    assert_eq!(report["totals"]["same"], 6, "{report:#}");
    assert_eq!(report["totals"]["messages"]["same"], 24, "{report:#}");
}

// Bad input: each refused with a message that says what and where.

#[test]
fn a_recording_without_connections_is_refused() {
    let dir = temp_dir("replay-empty");
    let empty = dir.join("empty.jsonl");
    std::fs::write(
        &empty,
        "{\"format\":\"wscope-record\",\"version\":1,\"writer\":\"test\",\"redacted\":true}\n",
    )
    .unwrap();
    // Nothing listens here; the recording is refused before any dialing.
    let run = run(&["replay", s(&empty), "--to", "ws://127.0.0.1:9"]);
    run.expect(1);
    assert!(run.stderr.contains("empty.jsonl"), "{}", run.stderr);
    assert!(
        run.stderr.contains("no WebSocket connection"),
        "{}",
        run.stderr
    );
    let run = self::run(&["diff", s(&empty), s(&empty)]);
    run.expect(1);
    assert!(
        run.stderr.contains("no WebSocket connection"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_connection_is_refused_with_the_ids_there_are() {
    let server = Server::start();
    let dir = temp_dir("replay-conn");
    let recording = record(&server, &dir, "two", &[("/normal", 1), ("/normal", 2)]);
    let run_c9 = run(&["replay", s(&recording), "--to", &server.url, "--conn", "c9"]);
    run_c9.expect(1);
    assert!(
        run_c9.stderr.contains("no connection c9; it has c1, c2"),
        "{}",
        run_c9.stderr
    );
    // The one that exists is played alone.
    let report_path = dir.join("report.json");
    run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--conn",
        "c2",
        "-q",
        "--report-json",
        s(&report_path),
    ])
    .expect(0);
    let report = report(&report_path);
    assert_eq!(report["totals"]["connections"], 1, "{report:#}");
    assert_eq!(report["connections"][0]["id"], "c2", "{report:#}");
    assert_eq!(report["connections"][0]["sent"], 2, "{report:#}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[
            "replay",
            "x.jsonl",
            "--to",
            "ws://127.0.0.1:9",
            "--pace",
            "sideways",
        ][..],
        &[
            "replay",
            "x.jsonl",
            "--to",
            "ws://127.0.0.1:9",
            "--repeat",
            "0",
        ],
        &[
            "replay",
            "x.jsonl",
            "--to",
            "ws://127.0.0.1:9",
            "--extract",
            "session",
        ],
        &["replay", "x.jsonl"],
        &["diff", "only-one.jsonl"],
    ] {
        let run = run(args);
        run.expect(2);
        assert!(run.stderr.starts_with("error:"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_message_cut_when_recorded_is_not_sent() {
    let server = Server::start();
    let dir = temp_dir("replay-cut");
    let recording = dir.join("cut.jsonl");
    let question =
        r#"{"type":"get","id":1,"session":"s-7f3a21","padding":"more than eight bytes"}"#;
    run(&[
        "connect",
        &format!("{}/normal", server.url),
        "--send",
        question,
        "--expect",
        "2",
        "--max-payload",
        "8",
        "--record",
        s(&recording),
        "-q",
    ])
    .expect(0);
    let report_path = dir.join("report.json");
    let run = run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--report-json",
        s(&report_path),
    ]);
    run.expect(1);
    let said = &run.stderr;
    assert!(
        said.contains(&format!(
            "c1 client message 1 (8 of {} bytes recorded)",
            question.len()
        )),
        "{said}"
    );
    assert!(said.contains("--max-payload"), "{said}");
    // Refused before anything was sent: no connection was made.
    assert!(!said.contains(" open "), "{said}");
}

#[test]
fn a_redacted_header_is_reported_missing_and_can_be_given_with_h() {
    let server = Server::start();
    let dir = temp_dir("replay-redacted");
    let recording = dir.join("auth.jsonl");
    run(&[
        "connect",
        &format!("{}/auth", server.url),
        "-H",
        "Authorization: Bearer x",
        "--send",
        r#"{"type":"get","id":1,"session":"s-7f3a21"}"#,
        "--expect",
        "2",
        "--record",
        s(&recording),
        "-q",
    ])
    .expect(0);
    let recorded = std::fs::read_to_string(&recording).unwrap();
    assert!(
        recorded.contains(r#"["Authorization","<redacted:"#),
        "{recorded}"
    );
    assert!(!recorded.contains("Bearer x"), "{recorded}");

    // Without it the server refuses the upgrade: connect's status 4, and
    // the report says which header was missing and how to give it.
    let report_path = dir.join("report.json");
    let run_missing = run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--report-json",
        s(&report_path),
    ]);
    run_missing.expect(4);
    let said = &run_missing.stderr;
    assert!(
        said.contains("header Authorization was redacted or stripped in the recording"),
        "{said}"
    );
    assert!(said.contains("-H 'Authorization: VALUE'"), "{said}");
    assert!(said.contains("401"), "{said}");
    let report = report(&report_path);
    assert_eq!(report["result"], "failed", "{report:#}");
    assert_eq!(report["status"], 4, "{report:#}");
    assert_eq!(
        report["connections"][0]["missing_headers"],
        json!(["Authorization"]),
        "{report:#}"
    );

    run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "-H",
        "Authorization: Bearer x",
        "-q",
    ])
    .expect(0);
}

#[test]
fn an_extract_path_that_never_matches_is_a_note_naming_it() {
    let server = Server::start();
    let dir = temp_dir("replay-extract-miss");
    let recording = record(&server, &dir, "normal", &[("/normal", 1)]);
    let report_path = dir.join("report.json");
    let run = run(&[
        "replay",
        s(&recording),
        "--to",
        &server.url,
        "--extract",
        "token=json.auth.token",
        "--report-json",
        s(&report_path),
    ]);
    // The conversation itself went as recorded.
    run.expect(0);
    let note = "--extract token=json.auth.token: no server message had this path (nor had any in the recording)";
    assert!(run.stderr.contains(&format!("c1 {note}")), "{}", run.stderr);
    let report = report(&report_path);
    assert_eq!(
        report["connections"][0]["notes"],
        json!([note]),
        "{report:#}"
    );
}

#[test]
fn a_connection_without_client_messages_is_replayed_with_a_note() {
    let server = Server::start();
    let dir = temp_dir("replay-no-client");
    let recording = record(&server, &dir, "hello-only", &[("/normal", 0)]);
    let run = run(&["replay", s(&recording), "--to", &server.url]);
    run.expect(0);
    assert!(
        run.stderr
            .contains("c1 no client messages in the recording: only the opening"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_server_closing_early_is_a_close_difference_and_the_report_is_written() {
    let server = Server::start();
    let dir = temp_dir("replay-early");
    let recording = record(&server, &dir, "normal", &[("/normal", 3)]);
    let report_path = dir.join("report.json");
    let run = run(&[
        "replay",
        s(&recording),
        "--to",
        &format!("{}/close-early", server.url),
        "--timeout",
        "2s",
        "--json",
        "--report-json",
        s(&report_path),
    ]);
    run.expect(1);
    let diffs = run.diffs();
    let close: Vec<&Value> = diffs.iter().filter(|d| d["change"] == "close").collect();
    assert_eq!(close.len(), 1, "{diffs:#?}");
    assert_eq!(
        (&close[0]["old_code"], &close[0]["new_code"]),
        (&json!(1000), &json!(4001))
    );
    // The three answers never came.
    let missing: Vec<u64> = diffs
        .iter()
        .filter(|d| d["change"] == "missing")
        .map(|d| d["expected"].as_u64().unwrap())
        .collect();
    assert_eq!(missing, [2, 3, 4], "{diffs:#?}");

    let report = report(&report_path);
    assert_eq!(report["result"], "different", "{report:#}");
    let conn = &report["connections"][0];
    assert_eq!(
        conn["close"],
        json!({"recorded": {"by": "client", "code": 1000}, "live": {"by": "server", "code": 4001}}),
        "{report:#}"
    );
    assert_eq!(
        conn["differences"].as_array().map(Vec::len),
        Some(4),
        "{report:#}"
    );
    // Which client message the close overtook depends on whether it
    // arrived with the hello; the note names it either way.
    assert!(
        conn["notes"].as_array().into_iter().flatten().any(|n| {
            let n = n.as_str().unwrap();
            n.starts_with("the server closed with 4001 before client message ")
                && n.contains(" of 3 could be sent")
        }),
        "{report:#}"
    );
}

#[test]
fn a_server_that_sends_more_than_max_compared_ends_the_replay_as_failed() {
    let (_server, url) = common::start_server(&[]);
    let dir = temp_dir("replay-max-compared");
    let recording = dir.join("twenty.jsonl");
    let stream = format!("{url}/stream?every=1ms&size=1000&count=20");
    let connect = wscope()
        .args([
            "connect",
            "--expect",
            "20",
            "--record",
            s(&recording),
            &stream,
        ])
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert!(connect.status.success(), "{connect:?}");
    let report_path = dir.join("report.json");
    // Twenty 1000-byte messages, at most 10000 bytes kept: the eleventh
    // ends the connection's replay.
    let run = run(&[
        "replay",
        s(&recording),
        "--to",
        &url,
        "--max-compared",
        "10000",
        "--report-json",
        s(&report_path),
    ]);
    run.expect(1);
    let report = report(&report_path);
    let conn = &report["connections"][0];
    assert_eq!(conn["result"], "failed", "{report:#}");
    assert_eq!(conn["compared"], 11, "{report:#}");
    assert!(
        conn["error"].as_str().unwrap().contains("(--max-compared)"),
        "{report:#}"
    );
}

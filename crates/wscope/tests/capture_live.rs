//! `wscope capture -i lo FILTER` while real peers talk on loopback: Python
//! `websockets` and Node.js `ws`, both with permessage-deflate, run by
//! tests/peers/capture_peers.py with `--external-capture` (the script
//! names its port, waits until it is told to go, then runs the scenario
//! and writes what each library itself sent and received).
//!
//! Nothing waits for time: a test waits for wscope's readiness line
//! before the peers talk, for the `closed` event before stopping it, and
//! for a marker datagram in both files before comparing with tcpdump.
//! What is checked:
//! - the `--json` events against the peers' logs: every frame, every
//!   message (decompressed, text and binary), the close frames and how
//!   the connection ended;
//! - `--record` holds the same events, complete after SIGTERM;
//! - `--write` (pcapng, 0600) read back by `wscope read` gives the same
//!   events, and tshark finds as many WebSocket frames in it as wscope;
//! - the packets are the ones tcpdump captured beside it, each once
//!   (loopback shows every packet twice to a packet socket), stamped in
//!   nanoseconds within a millisecond of tcpdump's stamps;
//! - a Decryption Secrets Block from `PcapngWriter::write_secrets` is
//!   what editcap writes, and tshark reads the file with it;
//! - wss:// (Python `websockets`, TLS 1.3 and 1.2) decrypted live with
//!   `--keylog` naming a file the client only writes its secrets to as
//!   it connects:
//!   the same checks, and the `--write` file decrypted by tshark with the
//!   secrets it carries, no key log option;
//! - `--count`, and the errors: no such interface, no CAP_NET_RAW, a
//!   filter that does not compile, no libpcap; `--write` never over an
//!   input, never from record files.
//!
//! Needs root (packet sockets, tcpdump, unshare), tcpdump, tshark (with
//! editcap and capinfos), setpriv and unshare (util-linux), the test
//! peers (scripts/test.sh installs them all).

mod common;

use common::TimedOutput;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::peer_log::{
    DIRS, KEPT, check_closes, check_messages, check_peer_logs, frame_differences, peer_frames,
    truncate, wscope_frames,
};
use common::{Running, peer_script, read_json, system_tool, temp_dir, venv_bin, wscope};

/// How long any one wait may take before the test fails (it never
/// passes by waiting: this only turns a hang into a failure).
const PATIENCE: Duration = Duration::from_secs(90);

const MARKER: &[u8] = b"wscope-live-marker";

// --- wscope capture ----------------------------------------------------------

/// A running `wscope capture`, past its readiness line.
struct Live {
    process: Running,
    ready: String,
    /// Its stdout, line by line.
    events: mpsc::Receiver<String>,
    seen: Vec<Value>,
    stderr: std::thread::JoinHandle<String>,
}

impl Live {
    /// Starts `wscope capture ARGS` and waits for its readiness line.
    fn start(args: &[&str]) -> Live {
        let mut child = wscope()
            .arg("capture")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wscope capture starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut process = Running {
            child,
            stdout: None,
        };
        let mut before = String::new();
        let ready = loop {
            let what = format!("wscope capture {args:?} (after {before:?})");
            let (rest, line) =
                common::first_line(stderr, &mut process.child, &what, common::START_LIMIT);
            stderr = rest;
            if line.starts_with("capturing on ") {
                break line.trim_end().to_owned();
            }
            before.push_str(&line);
        };
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
            rest
        });
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Live {
            process,
            ready,
            events,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits for an event that `done` accepts.
    fn wait_for(&mut self, what: &str, done: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        if self.seen.iter().any(&done) {
            return;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(line) => {
                    let event = json(&line);
                    let found = done(&event);
                    self.seen.push(event);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no {what} from wscope capture; it printed {} events:\n{}",
                    self.seen.len(),
                    self.seen
                        .iter()
                        .map(|e| truncate(&e.to_string()))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// Sends `signal` and waits for the end: the exit status, every event
    /// printed, and what came on stderr after the readiness line.
    fn stop(self, signal: &str) -> (ExitStatus, Vec<Value>, String) {
        send_signal(signal, self.process.child.id());
        self.end()
    }

    /// Waits for wscope to end by itself.
    fn end(mut self) -> (ExitStatus, Vec<Value>, String) {
        let pid = self.process.child.id();
        let watchdog = watchdog(pid);
        let status = self.process.child.wait().unwrap();
        drop(watchdog);
        while let Ok(line) = self.events.recv() {
            self.seen.push(json(&line));
        }
        let stderr = self.stderr.join().unwrap();
        (status, self.seen, stderr)
    }
}

/// A line of `--json` output.
fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("wscope capture printed {line:?}: {e}"))
}

fn send_signal(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Kills `pid` if it is still running after [`PATIENCE`] (dropping the
/// returned sender calls it off), so a process that never ends fails
/// the test instead of hanging it.
fn watchdog(pid: u32) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(PATIENCE) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    tx
}

/// The `capture: N packets, ...` line.
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("capture: "))
        .unwrap_or_else(|| panic!("no summary line on stderr:\n{stderr}"))
}

fn summary_packets(stderr: &str) -> usize {
    let line = summary(stderr);
    line["capture: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a packet count in {line:?}"))
}

// --- the peers -----------------------------------------------------------------

/// capture_peers.py with `--external-capture`: waiting to be told to go.
/// It runs in a process group of its own, ended whole when dropped (a Node
/// scenario's peers are its children).
struct Peers {
    process: Running,
    stdin: ChildStdin,
    port: u16,
    log: PathBuf,
    scenario: String,
}

impl Peers {
    fn start(scenario: &str, dir: &Path) -> Peers {
        Peers::start_with(scenario, dir, &[])
    }

    /// With more arguments for capture_peers.py (`--keylog FILE`).
    fn start_with(scenario: &str, dir: &Path, extra: &[&str]) -> Peers {
        if scenario.starts_with("node-") {
            common::node();
        }
        let log = dir.join(format!("{scenario}.json"));
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(venv_bin("python"))
            .process_group(0)
            .arg(peer_script("capture_peers.py"))
            .arg(scenario)
            .arg("--external-capture")
            .arg("--log")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("capture_peers.py starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (stdout, line) =
            common::first_line(stdout, &mut child, "capture_peers.py", common::START_LIMIT);
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("capture_peers.py named no port: {line:?}"));
        Peers {
            process: Running {
                child,
                stdout: Some(stdout),
            },
            stdin,
            port,
            log,
            scenario: scenario.to_owned(),
        }
    }

    /// Lets the peers talk; returns their log once they are done.
    fn run(mut self) -> Value {
        self.stdin.write_all(b"go\n").unwrap();
        self.stdin.flush().unwrap();
        let watchdog = watchdog(self.process.child.id());
        let status = self.process.child.wait().unwrap();
        drop(watchdog);
        assert!(
            status.success(),
            "capture_peers.py {} failed ({status})",
            self.scenario
        );
        serde_json::from_str(&std::fs::read_to_string(&self.log).unwrap()).unwrap()
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
    }
}

// --- tshark and tcpdump --------------------------------------------------------

/// `tshark -r FILE ARGS...`: its stdout lines; fails on any error.
fn tshark(file: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(system_tool("tshark", "tshark"))
        .arg("-r")
        .arg(file)
        .args(args)
        .timed_output()
        .expect("tshark runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark -r {} {args:?} failed: {stderr}",
        file.display()
    );
    // tshark warns about running as root; anything else is a complaint.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user"))
        .collect();
    assert!(
        complaints.is_empty(),
        "tshark -r {} complained: {complaints:?}",
        file.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The WebSocket frames tshark dissects in `file` (HTTP decoded on `port`,
/// inside TLS when `tls`, decrypted with no key log but what the file
/// holds; several frames in a packet are comma-separated).
fn tshark_websocket_frames(file: &Path, port: u16, tls: bool) -> usize {
    let decode_as = if tls {
        vec![
            "-d".to_owned(),
            format!("tcp.port=={port},tls"),
            "-d".to_owned(),
            format!("tls.port=={port},http"),
        ]
    } else {
        vec!["-d".to_owned(), format!("tcp.port=={port},http")]
    };
    let decode_as: Vec<&str> = decode_as.iter().map(String::as_str).collect();
    tshark(
        file,
        &[
            &decode_as[..],
            &[
                "-o",
                "websocket.decompress:FALSE",
                "-o",
                "gui.max_tree_depth:100000",
                "-Y",
                "websocket",
                "-T",
                "fields",
                "-e",
                "websocket.opcode",
            ][..],
        ]
        .concat(),
    )
    .iter()
    .filter(|l| !l.is_empty())
    .map(|l| l.split(',').count())
    .sum()
}

/// tcpdump on `lo` with `filter`, nanosecond stamps, into `out`: running
/// once it says it listens.
fn tcpdump(filter: &str, out: &Path) -> Running {
    let mut child = Command::new(system_tool("tcpdump", "tcpdump"))
        .args([
            "-i",
            "lo",
            "-U",
            "--immediate-mode",
            "-B",
            "65536",
            "-s",
            "0",
        ])
        .args(["--time-stamp-precision", "nano", "-Z", "root", "-w"])
        .arg(out)
        .arg(filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        (stderr, line) = common::first_line(stderr, &mut child, "tcpdump", common::START_LIMIT);
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Running {
        child,
        stdout: None,
    }
}

/// Sends the marker datagram to `port` until every file holds it: every
/// packet before it is in them too.
fn mark_end(port: u16, files: &[&Path]) {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        udp.send_to(MARKER, ("127.0.0.1", port)).unwrap();
        let all = files.iter().all(|file| {
            std::fs::read(file)
                .unwrap_or_default()
                .windows(MARKER.len())
                .any(|w| w == MARKER)
        });
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the marker never reached {files:?}"
        );
        // Between datagrams only: the wait is for the files, not for time.
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- the checks ------------------------------------------------------------

/// What a live capture of `peers` must show, by every route out of it.
struct Run<'a> {
    dir: &'a Path,
    port: u16,
    log: &'a Value,
    events: &'a [Value],
    stderr: &'a str,
    record: &'a Path,
    written: &'a Path,
    /// wss://: tshark must decrypt `written` with the secrets inside it.
    tls: bool,
}

fn check_run(run: &Run<'_>, failures: &mut Vec<String>) {
    // The events against what the libraries themselves did.
    check_peer_logs(run.log, failures);
    for dir in DIRS {
        let truth = peer_frames(run.log, dir);
        for line in frame_differences(&truth, &wscope_frames(run.events, dir), KEPT) {
            failures.push(format!("{dir}: wscope capture shows {line}"));
        }
    }
    check_messages(run.log, run.events, failures);
    check_closes(run.log, run.events, failures);
    let opens = run.events.iter().filter(|e| e["event"] == "open").count();
    if opens != 1 {
        failures.push(format!("{opens} open events, want one"));
    }

    // --record: complete, the same events.
    let text = std::fs::read_to_string(run.record).unwrap();
    // After its header line.
    let recorded: Vec<Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    if recorded != run.events {
        failures.push(format!(
            "--record holds {} events, --json printed {}",
            recorded.len(),
            run.events.len()
        ));
    }

    // --write: 0600, read back as the same events, and tshark agrees on
    // the frames.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(run.written).unwrap().permissions().mode() & 0o777;
    if mode != 0o600 {
        failures.push(format!("--write made a file of mode {mode:o}"));
    }
    let read_back = read_json(&[run.written.as_os_str()], None);
    if read_back != run.events {
        let first = read_back
            .iter()
            .zip(run.events)
            .position(|(a, b)| a != b)
            .unwrap_or(read_back.len().min(run.events.len()));
        failures.push(format!(
            "wscope read of --write gives {} events, the live capture {}; first difference at {first}: {} vs {}",
            read_back.len(),
            run.events.len(),
            read_back.get(first).map_or("nothing".into(), |e| truncate(&e.to_string())),
            run.events.get(first).map_or("nothing".into(), |e| truncate(&e.to_string())),
        ));
    }
    let frames = run.events.iter().filter(|e| e["event"] == "frame").count();
    let tshark_frames = tshark_websocket_frames(run.written, run.port, run.tls);
    if tshark_frames != frames {
        failures.push(format!(
            "tshark finds {tshark_frames} WebSocket frames in --write, wscope showed {frames}"
        ));
    }
    // Every packet counted is in the file.
    let packets = tshark(run.written, &["-T", "fields", "-e", "frame.number"]).len();
    if summary_packets(run.stderr) != packets {
        failures.push(format!(
            "{} but --write holds {packets} packets",
            summary(run.stderr)
        ));
    }
    let _ = run.dir;
}

fn assert_no_failures(what: &str, failures: &[String], dir: &Path) {
    assert!(
        failures.is_empty(),
        "{what} (files in {}):\n  {}",
        dir.display(),
        failures.join("\n  ")
    );
}

/// A scenario captured live: the peers run once wscope is ready; wscope
/// is stopped with `signal` after the connection's `closed`.
fn live_scenario(scenario: &str, signal: &str) {
    live_run(scenario, signal, false);
}

/// wss:// captured live and decrypted as it passes, with a key log that
/// holds no secrets when the capture starts: the client writes them as it
/// connects, and wscope follows the file. Besides what every live run
/// must show: the connection is said to be decrypted, its URL is wss://,
/// and the `--write` file carries the secrets its connection uses (so
/// tshark decrypts it with no key log option, and `wscope read` of it
/// without `--keylog` gives the same events).
fn live_tls_scenario(scenario: &str) {
    live_run(scenario, "TERM", true);
}

fn live_run(scenario: &str, signal: &str, tls: bool) {
    let dir = temp_dir(&format!("live-{scenario}"));
    let keylog = dir.join("keys.log");
    let keylog_arg = keylog.to_str().unwrap();
    let keylog_args: &[&str] = if tls { &["--keylog", keylog_arg] } else { &[] };
    let peers = Peers::start_with(scenario, &dir, keylog_args);
    if tls {
        // Python creates the file with a comment line; the secrets come
        // as the client connects.
        let secrets = std::fs::read_to_string(&keylog).unwrap_or_default();
        assert!(
            secrets.lines().all(|l| l.starts_with('#')),
            "no secrets before the client connects: {secrets}"
        );
    }
    let port = peers.port;
    let record = dir.join("live.jsonl");
    let written = dir.join("live.pcapng");
    let filter = format!("tcp port {port}");
    let outputs = [
        "-i",
        "lo",
        "--json",
        "--record",
        record.to_str().unwrap(),
        "--write",
        written.to_str().unwrap(),
        &filter,
    ];
    let mut live = Live::start(&[keylog_args, &outputs[..]].concat());
    assert_eq!(
        live.ready,
        format!("capturing on lo ({filter}), Ctrl-C to stop")
    );
    let log = peers.run();
    live.wait_for("closed event", |e| e["event"] == "closed");
    let (status, events, stderr) = live.stop(signal);
    assert!(status.success(), "wscope capture ended {status}: {stderr}");
    let mut failures = Vec::new();
    if tls {
        check_decrypted(scenario, port, &events, &stderr, &mut failures);
    }
    check_run(
        &Run {
            dir: &dir,
            port,
            log: &log,
            events: &events,
            stderr: &stderr,
            record: &record,
            written: &written,
            tls,
        },
        &mut failures,
    );
    assert_no_failures(scenario, &failures, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One note says the connection was decrypted; it opened as wss://; the
/// key log line counts its session.
fn check_decrypted(
    scenario: &str,
    port: u16,
    events: &[Value],
    stderr: &str,
    failures: &mut Vec<String>,
) {
    let decrypted: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "note"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("decrypted with the key log"))
        })
        .collect();
    if decrypted.len() != 1 {
        failures.push(format!("want one note of decryption, got {decrypted:?}"));
    }
    let url = format!("wss://127.0.0.1:{port}/{scenario}");
    if !events
        .iter()
        .any(|e| e["event"] == "open" && e["url"] == url.as_str())
    {
        failures.push(format!("no open of {url}"));
    }
    if !stderr.contains("key log: secrets for 1 TLS sessions\n") {
        failures.push(format!("the key log line is not on stderr: {stderr}"));
    }
}

// --- the tests -------------------------------------------------------------------

#[test]
fn tls13_python_websockets_decrypted_live_from_a_growing_key_log() {
    live_tls_scenario("tls");
}

#[test]
fn tls12_python_websockets_decrypted_live_from_a_growing_key_log() {
    live_tls_scenario("tls12");
}

/// Python `websockets` both sides, permessage-deflate with context
/// takeover (text, UTF-8, binary, an empty and a 100 KB message,
/// ping/pong, the client closes 1000), with tcpdump capturing beside
/// wscope: the same packets, once each, at the same times; and
/// `wscope read --write` of tcpdump's file keeps its packets too.
#[test]
fn python_peers_with_deflate_captured_beside_tcpdump() {
    let dir = temp_dir("live-python-tcpdump");
    let peers = Peers::start("deflate", &dir);
    let port = peers.port;
    // TCP and the UDP marker.
    let filter = format!("port {port}");
    let by_tcpdump = dir.join("tcpdump.pcap");
    let tcpdump = tcpdump(&filter, &by_tcpdump);
    let record = dir.join("live.jsonl");
    let written = dir.join("live.pcapng");
    let mut live = Live::start(&[
        "-i",
        "lo",
        "--json",
        "--record",
        record.to_str().unwrap(),
        "--write",
        written.to_str().unwrap(),
        &filter,
    ]);
    let log = peers.run();
    live.wait_for("closed event", |e| e["event"] == "closed");
    mark_end(port, &[&by_tcpdump, &written]);
    send_signal("INT", tcpdump.child.id());
    let (status, events, stderr) = live.stop("TERM");
    assert!(status.success(), "wscope capture ended {status}: {stderr}");
    drop(tcpdump);

    let mut failures = Vec::new();
    check_run(
        &Run {
            dir: &dir,
            port,
            log: &log,
            events: &events,
            stderr: &stderr,
            record: &record,
            written: &written,
            tls: false,
        },
        &mut failures,
    );

    // The TCP packets, as tcpdump and as wscope captured them: length on
    // the wire, bytes kept, ports, sequence number, payload length, flags.
    let fields = [
        "-Y",
        "tcp",
        "-T",
        "fields",
        "-e",
        "frame.len",
        "-e",
        "frame.cap_len",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.seq_raw",
        "-e",
        "tcp.len",
        "-e",
        "tcp.flags",
    ];
    let theirs = tshark(&by_tcpdump, &fields);
    let ours = tshark(&written, &fields);
    if ours != theirs {
        let first = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        failures.push(format!(
            "wscope captured {} TCP packets, tcpdump {}; first difference at {first:?}: {:?} vs {:?}",
            ours.len(),
            theirs.len(),
            first.and_then(|i| ours.get(i)),
            first.and_then(|i| theirs.get(i)),
        ));
    }
    // Their times: in nanoseconds, and each within a millisecond of
    // tcpdump's (two sockets are not stamped at the same instant: a
    // packet socket's buffer gets the time it was queued, tcpdump's ring
    // the time it was copied in, a few microseconds apart here).
    let times = |file: &Path| -> Vec<u64> {
        tshark(
            file,
            &["-Y", "tcp", "-T", "fields", "-e", "frame.time_epoch"],
        )
        .iter()
        .map(|t| {
            let (secs, nanos) = t.split_once('.').expect("seconds.nanoseconds");
            secs.parse::<u64>().unwrap() * 1_000_000_000
                + format!("{nanos:0<9}")[..9].parse::<u64>().unwrap()
        })
        .collect()
    };
    let (our_times, their_times) = (times(&written), times(&by_tcpdump));
    if let Some((ours, theirs)) = our_times
        .iter()
        .zip(&their_times)
        .find(|(a, b)| a.abs_diff(**b) > 1_000_000)
    {
        failures.push(format!(
            "a packet stamped {ours} ns, tcpdump stamped it {theirs} ns"
        ));
    }
    if our_times.iter().all(|t| t % 1000 == 0) {
        failures.push(format!(
            "every timestamp is a whole microsecond: {:?}",
            &our_times[..our_times.len().min(5)]
        ));
    }

    // `read --write` keeps a file's packets as they were.
    let rewritten = dir.join("rewritten.pcapng");
    let out = wscope()
        .arg("read")
        .arg(&by_tcpdump)
        .args(["-q", "--write"])
        .arg(&rewritten)
        .timed_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let every = [
        "-T",
        "fields",
        "-e",
        "frame.time_epoch",
        "-e",
        "frame.len",
        "-e",
        "frame.cap_len",
        "-e",
        "frame.protocols",
    ];
    if tshark(&rewritten, &every) != tshark(&by_tcpdump, &every) {
        failures.push("read --write of tcpdump's capture changed its packets".into());
    }
    if read_json(&[rewritten.as_os_str()], None) != read_json(&[by_tcpdump.as_os_str()], None) {
        failures.push("read --write of tcpdump's capture reads differently".into());
    }
    assert_no_failures("deflate beside tcpdump", &failures, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Node.js `ws` both sides, permessage-deflate with context takeover and
/// a fragmented compressed message; stopped with Ctrl-C's SIGINT.
#[test]
fn node_peers_with_deflate() {
    live_scenario("node-deflate", "INT");
}

/// The server closes with 4000 "server done".
#[test]
fn server_closes_with_4000() {
    live_scenario("close-clean", "TERM");
}

/// `--count N` ends the capture by itself after N packets.
#[test]
fn count_stops_after_that_many_packets() {
    let (_server, url) = common::start_server(&[]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let filter = format!("tcp port {port}");
    let live = Live::start(&["-i", "lo", "--count", "3", &filter]);
    let sent = wscope()
        .args(["connect", "--send", "one", &format!("{url}/echo")])
        .timed_output()
        .unwrap();
    assert!(sent.status.success());
    let (status, _, stderr) = live.end();
    assert!(status.success(), "{stderr}");
    assert!(
        summary(&stderr).starts_with("capture: 3 packets, 1 TCP connections"),
        "{stderr}"
    );
}

/// Without a filter every packet on the interface is taken (here: the
/// first one, a datagram sent once wscope is ready).
#[test]
fn without_a_filter_every_packet_counts() {
    let live = Live::start(&["-i", "lo", "--count", "1"]);
    assert_eq!(live.ready, "capturing on lo (every packet), Ctrl-C to stop");
    let pid = live.process.child.id();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = udp.local_addr().unwrap();
    // Datagrams until wscope has seen one and ended.
    let sender = std::thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            let _ = udp.send_to(MARKER, target);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (status, _, stderr) = live.end();
    sender.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        summary(&stderr).starts_with("capture: 1 packets"),
        "{stderr}"
    );
}

/// A Decryption Secrets Block (what a TLS key log becomes with --write):
/// byte for byte what editcap --inject-secrets writes, and tshark reads
/// the file with it, every packet still there.
#[test]
fn a_secrets_block_is_read_by_tshark() {
    use wscope_capture::{PacketReader, PcapngWriter};
    let dir = temp_dir("live-secrets");
    // Packets to carry: a short live capture of a connection.
    let (_server, url) = common::start_server(&[]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let filter = format!("tcp port {port}");
    let plain = dir.join("plain.pcapng");
    let mut live = Live::start(&[
        "-i",
        "lo",
        "--json",
        "--write",
        plain.to_str().unwrap(),
        &filter,
    ]);
    let sent = wscope()
        .args(["connect", "--send", "secret", &format!("{url}/echo")])
        .timed_output()
        .unwrap();
    assert!(sent.status.success());
    live.wait_for("closed event", |e| e["event"] == "closed");
    let (status, _, stderr) = live.stop("TERM");
    assert!(status.success(), "{stderr}");

    // 190 bytes: the block pads them to 192.
    let keylog = format!(
        "# wscope test\nCLIENT_RANDOM {} {}\n",
        "ab".repeat(32),
        "cd".repeat(48)
    );
    assert_eq!(keylog.len() % 4, 2);
    let with_secrets = dir.join("secrets.pcapng");
    let mut writer = PcapngWriter::new(Vec::new(), "wscope test").unwrap();
    writer.write_secrets(keylog.as_bytes()).unwrap();
    let mut reader = PacketReader::new(Box::new(std::fs::File::open(&plain).unwrap())).unwrap();
    let mut number = 0;
    reader.for_each(
        &mut number,
        &mut |packet| writer.packet(0, packet).unwrap(),
        &mut |problem| panic!("{problem:?}"),
    );
    std::fs::write(&with_secrets, writer.into_inner().unwrap()).unwrap();

    let numbers = tshark(&with_secrets, &["-T", "fields", "-e", "frame.number"]);
    let expected: Vec<String> = (1..=number).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected, "tshark lists every packet");
    let capinfos = Command::new(system_tool("capinfos", "tshark"))
        .arg(&with_secrets)
        .timed_output()
        .unwrap();
    let info = String::from_utf8_lossy(&capinfos.stdout);
    assert!(
        info.contains("Number of decryption secrets in file: 1"),
        "capinfos does not see the secrets block:\n{info}"
    );

    // editcap's own block for the same key log.
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, &keylog).unwrap();
    let injected = dir.join("injected.pcapng");
    let status = Command::new(system_tool("editcap", "tshark"))
        .arg("--inject-secrets")
        .arg(format!("tls,{}", keys.display()))
        .arg(&plain)
        .arg(&injected)
        .status()
        .unwrap();
    assert!(status.success());
    let ours = secrets_block(&std::fs::read(&with_secrets).unwrap());
    let theirs = secrets_block(&std::fs::read(&injected).unwrap());
    assert_eq!(ours, theirs, "the block differs from editcap's");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first Decryption Secrets Block (type 0x0A) of a little-endian
/// pcapng file, whole.
fn secrets_block(file: &[u8]) -> Vec<u8> {
    let mut at = 0;
    while at + 12 <= file.len() {
        let kind = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 0x0A {
            return file[at..at + len].to_vec();
        }
        at += len;
    }
    panic!("no secrets block");
}

// --- errors -------------------------------------------------------------------------

/// `wscope capture ARGS` (under `wrapper`, a command and its arguments,
/// when given) that must fail: its stderr.
fn refused(wrapper: &[&str], args: &[&str]) -> String {
    let wscope_path = env!("CARGO_BIN_EXE_wscope");
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(wscope_path);
            command
        }
        None => Command::new(wscope_path),
    };
    let child = command
        .arg("capture")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Should it start capturing after all, it would never end.
    let watchdog = watchdog(child.id());
    let out = common::wait_output(child, common::COMMAND_LIMIT);
    drop(watchdog);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("capturing on"), "{stderr}");
    stderr
}

#[test]
fn an_interface_that_does_not_exist_is_named_with_those_that_do() {
    let stderr = refused(&[], &["-i", "nosuch0", "tcp port 80"]);
    assert!(
        stderr.starts_with(
            "wscope: there is no network interface named \"nosuch0\"; this machine has: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains("lo"), "{stderr}");
}

#[test]
fn without_cap_net_raw_says_how_to_get_it() {
    system_tool("setpriv", "util-linux");
    let stderr = refused(&["setpriv", "--bounding-set=-net_raw"], &["-i", "lo"]);
    assert!(
        stderr.contains("needs the CAP_NET_RAW capability, which this process does not have"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`sudo setcap cap_net_raw+ep $(command -v wscope)`"),
        "{stderr}"
    );
}

#[test]
fn a_filter_that_does_not_compile_shows_libpcaps_reason() {
    let stderr = refused(&[], &["-i", "lo", "tcp", "port"]);
    assert!(
        stderr.starts_with("wscope: the capture filter \"tcp port\" does not compile: "),
        "{stderr}"
    );
    assert!(stderr.contains("syntax error"), "{stderr}");
}

/// libpcap hidden (each of its files covered by /dev/null in a mount
/// namespace of this command's own): a filter cannot be compiled, and
/// wscope (which does not link libpcap) says what to install.
#[test]
fn without_libpcap_a_filter_says_what_to_install() {
    system_tool("unshare", "util-linux");
    let ldconfig = Command::new("/sbin/ldconfig")
        .arg("-p")
        .timed_output()
        .unwrap();
    let libraries: Vec<String> = String::from_utf8_lossy(&ldconfig.stdout)
        .lines()
        .filter(|l| l.contains("libpcap.so"))
        .filter_map(|l| l.split("=> ").nth(1))
        .map(|path| {
            std::fs::canonicalize(path.trim())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(!libraries.is_empty(), "libpcap is installed here");
    let mut script = String::new();
    for library in &libraries {
        script.push_str(&format!("mount --bind /dev/null {library} && "));
    }
    script.push_str("exec \"$0\" capture -i lo tcp port 80");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_wscope"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = watchdog(child.id());
    let out = common::wait_output(child, common::COMMAND_LIMIT);
    drop(watchdog);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a capture filter needs libpcap, which is not installed here"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install libpcap0.8"), "{stderr}");
}

#[test]
fn write_never_replaces_an_input_nor_the_record() {
    let dir = temp_dir("live-write-refusals");
    // An empty classic pcap (Ethernet): a capture with no packets.
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    pcap.extend([0; 8]);
    pcap.extend(65535u32.to_le_bytes());
    pcap.extend(1u32.to_le_bytes());
    let input = dir.join("in.pcap");
    std::fs::write(&input, &pcap).unwrap();
    let out = wscope()
        .arg("read")
        .arg(&input)
        .arg("--write")
        .arg(&input)
        .timed_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is also an input"), "{stderr}");
    assert_eq!(std::fs::read(&input).unwrap(), pcap, "the input is intact");

    // Record files hold no packets.
    let record = dir.join("in.jsonl");
    std::fs::write(&record, "{\"format\":\"wscope-record\",\"version\":1}\n").unwrap();
    let written = dir.join("out.pcapng");
    let out = wscope()
        .arg("read")
        .arg(&record)
        .arg("--write")
        .arg(&written)
        .timed_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not a pcap or pcapng capture"),
        "{stderr}"
    );
    assert!(!written.exists());

    let same = dir.join("same");
    let stderr = refused(
        &[],
        &[
            "-i",
            "lo",
            "--write",
            same.to_str().unwrap(),
            "--record",
            same.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("--write and --record both name"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

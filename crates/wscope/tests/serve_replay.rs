//! `wscope serve --replay`: a mock server made from a recording that the
//! test makes first. A Node.js `ws` client talks through `wscope proxy
//! --record` to a Python `websockets` server with a scripted conversation
//! (tests/peers/scripted_server.py: a greeting sent unprompted, replies to
//! three JSON messages, then close 4000). That record file is then served
//! by `wscope serve --replay` to real clients (tests/peers/mock_client.mjs
//! and mock_client.py, which print each event as a JSON line): they
//! must receive the recorded server messages in order, and an unexpected
//! message must get the reaction `--on-mismatch` asks for.

mod common;

use common::TimedOutput;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use common::{
    Running, address_in, node, peer_script, spawn_named, start_server, temp_dir, venv_bin,
    ws_url_in, wscope,
};
use serde_json::Value;

const LOGIN: &str = r#"{"op":"login","user":"ann","ts":1}"#;
const SUBSCRIBE: &str = r#"{"op":"subscribe","topic":"eur","ts":2}"#;
const BYE: &str = r#"{"op":"bye","ts":3}"#;

/// The record file made once for the whole file, and the server messages
/// it holds, in order.
struct Recording {
    path: PathBuf,
    server_messages: Vec<String>,
}

fn recording() -> &'static Recording {
    static RECORDING: OnceLock<Recording> = OnceLock::new();
    RECORDING.get_or_init(record_scripted_conversation)
}

/// Node `ws` → `wscope proxy --record` → the scripted Python server.
fn record_scripted_conversation() -> Recording {
    let dir = temp_dir("serve-replay-recording");
    let path = dir.join("rec.jsonl");
    let mut server = Command::new(venv_bin("python"));
    server.arg(peer_script("scripted_server.py"));
    let (_server, line) = spawn_named(server, "the scripted server");
    let upstream = ws_url_in(&line);
    let mut proxy = wscope();
    proxy
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream])
        .arg("--record")
        .arg(&path)
        .arg("--json");
    let (mut proxy, line) = spawn_named(proxy, "wscope proxy");
    let proxy_url = address_in(&line, "ws://");

    let lines = client(
        Client::Node,
        &format!("{proxy_url}/chat?room=1"),
        &["--first", "1"],
        &[(LOGIN, 1), (SUBSCRIBE, 2), (BYE, 1)],
    );
    let got = received(&lines);
    assert_eq!(got.len(), 5, "the scripted server answered: {lines:?}");
    assert_eq!(close_of(&lines)["code"], 4000, "{lines:?}");

    // The proxy has seen the end once it prints `closed`; SIGTERM then
    // makes it finish the record file and exit.
    let stdout = proxy.stdout.take().expect("the proxy's stdout is piped");
    events_until(stdout, |events| {
        events.iter().any(|e| e["event"] == "closed")
    });
    let pid = proxy.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(proxy.child.wait().unwrap().success());

    let server_messages: Vec<String> = record_events(&path)
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "s2c")
        .map(|e| e["payload"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        server_messages, got,
        "the record holds what the client received"
    );
    assert!(server_messages[0].contains("hello"), "{server_messages:?}");
    Recording {
        path,
        server_messages,
    }
}

fn record_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("the record file")
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("a record line is JSON"))
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Client {
    Node,
    Python,
}

/// Runs a replay client to its end: the JSON lines it printed.
fn client(which: Client, url: &str, extra: &[&str], steps: &[(&str, u32)]) -> Vec<Value> {
    let mut command = match which {
        Client::Node => {
            let mut command = node();
            command.arg(peer_script("mock_client.mjs"));
            command
        }
        Client::Python => {
            let mut command = Command::new(venv_bin("python"));
            command.arg(peer_script("mock_client.py"));
            command
        }
    };
    command.arg(url).args(extra);
    for (text, count) in steps {
        command.arg("--step").arg(text).arg(count.to_string());
    }
    let out = command.timed_output().expect("the client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{which:?} client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{which:?} printed {l:?}: {e}")))
        .collect()
}

/// The texts of the messages a client received, in order.
fn received(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| l["data"].as_str().unwrap().to_owned())
        .collect()
}

/// The client's `close` line.
fn close_of(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|l| l["event"] == "close")
        .unwrap_or_else(|| panic!("the client saw a close: {lines:?}"))
}

/// Reads JSON Lines events from a server's stdout until `done` holds for
/// what has been read (15 s at most, so a failure cannot hang the test).
fn events_until(
    stdout: BufReader<std::process::ChildStdout>,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    while !done(&events) {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => events.push(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("printed {line:?}: {e}")),
            ),
            Err(_) => panic!("the events never got there; read so far: {events:#?}"),
        }
    }
    events
}

/// `wscope serve --replay REC ARGS... --json` on a free port.
fn mock(args: &[&str]) -> (Running, String) {
    let rec = recording().path.to_str().unwrap().to_owned();
    let mut all = vec!["--replay", &rec, "--json"];
    all.extend_from_slice(args);
    start_server(&all)
}

/// What one connection's events say the mock sent: its messages' texts.
fn served(events: &[Value], conn: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["conn"] == conn && e["event"] == "message" && e["dir"] == "s2c")
        .map(|e| e["payload"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn closed(events: &[Value]) -> usize {
    events.iter().filter(|e| e["event"] == "closed").count()
}

#[test]
fn node_and_python_clients_receive_the_recorded_messages_in_order() {
    let expected = &recording().server_messages;
    let (mut server, url) = mock(&["--ignore", "json.ts"]);

    let lines = client(
        Client::Node,
        &format!("{url}/chat?room=1"),
        &["--first", "1"],
        &[(LOGIN, 1), (SUBSCRIBE, 2), (BYE, 1)],
    );
    assert_eq!(&received(&lines), expected, "{lines:?}");
    let close = close_of(&lines);
    assert_eq!(
        (close["code"].as_u64(), close["reason"].as_str()),
        (Some(4000), Some("done")),
        "the recorded server's close follows the last message: {lines:?}"
    );

    // Keys in another order and other timestamps (--ignore json.ts), on
    // a path the recording never saw: the same conversation.
    let lines = client(
        Client::Python,
        &format!("{url}/elsewhere"),
        &["--first", "1"],
        &[
            (r#"{"ts":41,"user":"ann","op":"login"}"#, 1),
            (r#"{"topic":"eur","ts":42,"op":"subscribe"}"#, 2),
            (r#"{"ts":43,"op":"bye"}"#, 1),
        ],
    );
    assert_eq!(&received(&lines), expected, "{lines:?}");
    assert_eq!(close_of(&lines)["rcvd"]["code"], 4000, "{lines:?}");

    let stdout = server.stdout.take().unwrap();
    let events = events_until(stdout, |events| closed(events) == 2);
    for conn in ["c1", "c2"] {
        assert_eq!(&served(&events, conn), expected, "{conn}: {events:#?}");
        assert!(
            events.iter().any(|e| e["conn"] == conn
                && e["event"] == "note"
                && e["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("answered from the recording: c1 (/chat?room=1)")),
            "{conn}: {events:#?}"
        );
    }
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "note"
                && e["text"].as_str().unwrap().contains("matches no recorded")),
        "{events:#?}"
    );
}

#[test]
fn an_unexpected_message_is_a_note_and_the_conversation_goes_on() {
    let expected = &recording().server_messages;
    let (mut server, url) = mock(&[]);
    for which in [Client::Node, Client::Python] {
        let lines = client(
            which,
            &format!("{url}/chat"),
            &["--first", "1"],
            &[
                (LOGIN, 1),
                (r#"{"op":"dance"}"#, 0),
                (SUBSCRIBE, 2),
                (BYE, 1),
            ],
        );
        assert_eq!(&received(&lines), expected, "{which:?}: {lines:?}");
        assert_eq!(close_of(&lines)["code"], 4000, "{which:?}: {lines:?}");
    }
    let stdout = server.stdout.take().unwrap();
    let events = events_until(stdout, |events| closed(events) == 2);
    for conn in ["c1", "c2"] {
        let notes: Vec<&str> = events
            .iter()
            .filter(|e| e["conn"] == conn && e["event"] == "note")
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            notes[1],
            r#"client message 2 matches no recorded one: {"op":"dance"}; expected c1 client message 2 (differs at json.op, json.topic, json.ts): {"op":"subscribe","topic":"eur","ts":2}"#,
            "{conn}: {notes:?}"
        );
        // Nothing was sent between the unexpected message and the next.
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["conn"] == conn && e["event"] == "message")
            .collect();
        let dance = mine
            .iter()
            .position(|e| e["payload"]["text"] == r#"{"op":"dance"}"#)
            .expect("the unexpected message is in the events");
        assert_eq!(mine[dance + 1]["dir"], "c2s", "{conn}: {mine:#?}");
    }
}

#[test]
fn an_unexpected_message_is_closed_with_1008_when_asked() {
    let (mut server, url) = mock(&["--on-mismatch", "close"]);
    let impostor = r#"{"op":"login","user":"mallory","ts":1}"#;
    let reason = "client message 1 matches no recorded one; expected c1 client message 1 (differs at json.user)";
    let lines = client(
        Client::Node,
        &url,
        &["--first", "1"],
        &[(impostor, 1), (SUBSCRIBE, 2)],
    );
    let close = close_of(&lines);
    assert_eq!(
        (close["code"].as_u64(), close["reason"].as_str()),
        (Some(1008), Some(reason)),
        "{lines:?}"
    );
    assert_eq!(received(&lines).len(), 1, "only the greeting: {lines:?}");

    let lines = client(
        Client::Python,
        &url,
        &["--first", "1"],
        &[(impostor, 1), (SUBSCRIBE, 2)],
    );
    let close = &close_of(&lines)["rcvd"];
    assert_eq!(
        (close["code"].as_u64(), close["reason"].as_str()),
        (Some(1008), Some(reason)),
        "{lines:?}"
    );
    assert_eq!(received(&lines).len(), 1, "only the greeting: {lines:?}");

    let stdout = server.stdout.take().unwrap();
    let events = events_until(stdout, |events| closed(events) == 2);
    for conn in ["c1", "c2"] {
        let end = events
            .iter()
            .find(|e| e["conn"] == conn && e["event"] == "closed")
            .unwrap();
        assert_eq!(end["by"], "server", "{conn}: {end}");
        assert_eq!(end["code"], 1008, "{conn}: {end}");
    }
}

#[test]
fn match_any_takes_the_exchanges_in_any_order_and_reuse_repeats_one() {
    let expected = &recording().server_messages;
    let (_server, url) = mock(&["--match", "any"]);
    let lines = client(
        Client::Python,
        &url,
        &["--first", "1"],
        &[(SUBSCRIBE, 2), (LOGIN, 1), (BYE, 1)],
    );
    let pick =
        |order: &[usize]| -> Vec<String> { order.iter().map(|&i| expected[i].clone()).collect() };
    let in_that_order = pick(&[0, 2, 3, 1, 4]);
    assert_eq!(received(&lines), in_that_order, "{lines:?}");
    assert_eq!(close_of(&lines)["rcvd"]["code"], 4000, "{lines:?}");

    let (_server, url) = mock(&["--reuse"]);
    let lines = client(
        Client::Node,
        &url,
        &["--first", "1"],
        &[(LOGIN, 1), (LOGIN, 1), (SUBSCRIBE, 2), (BYE, 1)],
    );
    let welcome_twice = pick(&[0, 1, 1, 2, 3, 4]);
    assert_eq!(received(&lines), welcome_twice, "{lines:?}");
    assert_eq!(close_of(&lines)["code"], 4000, "{lines:?}");
}

/// Runs `wscope serve ARGS`, which must refuse to start: its exit status
/// and stderr. A server that does start fails the test (it would print
/// its address first).
fn refused(args: &[&str]) -> (i32, String) {
    let mut child = wscope()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wscope serve runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    if !first.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve {args:?} started: {first}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn recordings_that_cannot_be_served_stop_serve_before_it_listens() {
    let dir = temp_dir("serve-replay-refused");
    let rec = &recording().path;

    let empty = dir.join("empty.jsonl");
    let header = std::fs::read_to_string(rec).unwrap();
    std::fs::write(&empty, format!("{}\n", header.lines().next().unwrap())).unwrap();
    let (code, stderr) = refused(&["--replay", empty.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} holds no WebSocket connection",
            empty.display()
        )),
        "{stderr}"
    );

    // The same conversation without its server's messages.
    let silent = dir.join("silent.jsonl");
    let kept: Vec<&str> = header
        .lines()
        .filter(|l| !(l.contains(r#""event":"message""#) && l.contains(r#""dir":"s2c""#)))
        .collect();
    std::fs::write(&silent, kept.join("\n") + "\n").unwrap();
    let (code, stderr) = refused(&["--replay", silent.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: recorded connection c1 has no server messages",
            silent.display()
        )),
        "{stderr}"
    );

    let (code, stderr) = refused(&["--replay", rec.to_str().unwrap(), "--conn", "c9"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("has no connection c9; it has c1"),
        "{stderr}"
    );

    let missing = dir.join("missing.jsonl");
    let (code, stderr) = refused(&["--replay", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing.jsonl"), "{stderr}");

    // The mock's own flags mean nothing without a recording.
    for flag in [
        &["--on-mismatch", "close"][..],
        &["--match", "any"],
        &["--reuse"],
        &["--ignore", "json.id"],
    ] {
        let (code, stderr) = refused(flag);
        assert_eq!(code, 2, "{flag:?}: {stderr}");
        assert!(stderr.contains("--replay <FILE>"), "{flag:?}: {stderr}");
    }
}

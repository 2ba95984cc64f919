//! `connect --reconnect` against real servers: the opening steps again on
//! every connection (tests/peers/reconnect_server.py, Python `websockets`,
//! counts what each connection got), header commands run afresh, and the
//! backoff, close-code, Retry-After and give-up rules against `wscope
//! serve` paths. Timing is asserted only as generous lower bounds.

mod common;

use common::TimedOutput;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{
    Running, peer_script, spawn_named, start_server, temp_dir, venv_bin, ws_url_in, wscope,
};
use serde_json::Value;

/// Every line `reader` yields, on a channel (so reads can time out).
fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects JSON lines until `enough` holds, the stream ends, or 30 s pass.
fn json_until(rx: &Receiver<String>, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    while !enough(&values) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Ok(value) = serde_json::from_str(&line) {
                    values.push(value);
                }
            }
            Err(_) => break,
        }
    }
    values
}

/// `wscope connect --json` with stdin held open (so the input never ends);
/// its events arrive on the returned channel.
fn connect(args: &[&str]) -> (Running, Receiver<String>) {
    let mut child = wscope()
        .arg("connect")
        .arg("--json")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wscope connect starts");
    let events = lines_of(child.stdout.take().expect("stdout is piped"));
    (
        Running {
            child,
            stdout: None,
        },
        events,
    )
}

/// Waits (at most 30 s) for a process to exit on its own; its status code.
fn exit_code(running: &mut Running) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = running.child.try_wait().expect("try_wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("wscope connect did not exit within 30 s");
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn count(events: &[Value], kind: &str) -> usize {
    of_kind(events, kind).len()
}

fn attempts(events: &[Value]) -> Vec<u64> {
    of_kind(events, "open")
        .iter()
        .map(|e| {
            e["attempt"]
                .as_u64()
                .expect("an open event names its attempt")
        })
        .collect()
}

fn notes(events: &[Value]) -> Vec<String> {
    of_kind(events, "note")
        .iter()
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn reconnect_server(args: &[&str]) -> (Running, String, Receiver<String>) {
    let mut command = Command::new(venv_bin("python"));
    command.arg(peer_script("reconnect_server.py")).args(args);
    let (mut running, line) = spawn_named(command, "reconnect_server.py");
    let reports = lines_of(running.stdout.take().expect("stdout is piped"));
    (running, ws_url_in(&line), reports)
}

const FAST: [&str; 3] = ["--reconnect", "--reconnect-max-delay", "100ms"];

#[test]
fn the_opening_script_runs_on_every_connection() {
    let (_server, url, reports) = reconnect_server(&["--mode", "session", "--ticks", "2"]);
    let dir = temp_dir("reconnect-script");
    let script = dir.join("open.txt");
    std::fs::write(
        &script,
        "# log in, wait for the answer, then subscribe\n\
         send {\"op\":\"auth\",\"token\":\"t0k\"}\n\
         expect json.ok == true\n\
         send-json {\"op\": \"subscribe\", \"channel\": \"ticks\"}\n",
    )
    .unwrap();
    let (_client, events) =
        connect(&[&FAST[..], &["--on-open", script.to_str().unwrap(), &url]].concat());
    let reported = json_until(&reports, |r| r.len() >= 3);
    assert_eq!(reported.len(), 3, "{reported:#?}");
    for report in &reported {
        assert_eq!(report["auth"], true, "{reported:#?}");
        assert_eq!(report["subscribed"], true, "{reported:#?}");
    }
    let seen = json_until(&events, |e| count(e, "open") >= 3);
    assert!(count(&seen, "open") >= 3, "{seen:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_messages_are_sent_again_after_a_reconnection() {
    let (_server, url, reports) = reconnect_server(&["--mode", "session", "--ticks", "1"]);
    let (_client, _events) = connect(
        &[
            &FAST[..],
            &[
                "--wait",
                "20s",
                "--send",
                r#"{"op":"auth","token":"t0k"}"#,
                "--send",
                r#"{"op":"subscribe"}"#,
                &url,
            ],
        ]
        .concat(),
    );
    let reported = json_until(&reports, |r| r.len() >= 3);
    assert_eq!(reported.len(), 3, "{reported:#?}");
    for report in &reported {
        assert_eq!(
            (&report["auth"], &report["subscribed"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "{reported:#?}"
        );
    }
}

#[test]
fn a_header_command_runs_before_every_attempt_and_its_value_is_redacted() {
    let dir = temp_dir("reconnect-token");
    let file = dir.join("token");
    let file_arg = file.to_str().unwrap();
    let (_server, url, reports) = reconnect_server(&["--mode", "token", "--token-file", file_arg]);
    let header = format!("X-Token: {{{{cmd:cat '{file_arg}'}}}}");
    let (_client, events) = connect(&[&FAST[..], &["-H", &header, &url]].concat());
    let reported = json_until(&reports, |r| r.len() >= 3);
    assert_eq!(reported.len(), 3, "{reported:#?}");
    assert!(
        reported.iter().all(|r| r["accepted"] == true),
        "a stale token was sent: {reported:#?}"
    );
    let seen = json_until(&events, |e| count(e, "open") >= 3);
    for open in of_kind(&seen, "open") {
        let headers = open["request"]["headers"].as_array().expect("headers");
        let token = headers
            .iter()
            .find(|h| {
                h[0].as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("x-token"))
            })
            .unwrap_or_else(|| panic!("X-Token sent: {open:#}"));
        assert_eq!(token[1], "<redacted>", "{open:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_header_command_fails_the_attempt_before_connecting() {
    let (_server, url) = start_server(&[]);
    let out = wscope()
        .args([
            "connect",
            "--json",
            "-H",
            "X-Token: {{cmd:echo no token >&2; exit 7}}",
        ])
        .arg(format!("{url}/echo"))
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("\"event\":\"open\""), "{stdout}");
    assert!(stdout.contains("exited with 7: no token"), "{stdout}");
    // With --reconnect, each failure is an attempt, and --max-attempts ends it.
    let out = wscope()
        .args([
            "connect",
            "--json",
            "--reconnect",
            "--reconnect-max-delay",
            "50ms",
        ])
        .args(["--max-attempts", "2", "-H", "X-Token: {{cmd:true}}"])
        .arg(format!("{url}/echo"))
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("printed nothing").count(), 2, "{stdout}");
}

#[test]
fn attempts_count_up_until_a_connection_is_stable() {
    let (_server, url) = start_server(&[]);
    let drop = format!("{url}/drop?after=1s");
    let (_client, events) = connect(&[&FAST[..], &["--stable-after", "10s", &drop]].concat());
    let seen = json_until(&events, |e| count(e, "open") >= 3);
    assert_eq!(attempts(&seen)[..3], [1, 2, 3], "{seen:#?}");

    let (_client, events) = connect(&[&FAST[..], &["--stable-after", "500ms", &drop]].concat());
    let seen = json_until(&events, |e| count(e, "open") >= 3);
    assert_eq!(attempts(&seen)[..3], [1, 1, 1], "{seen:#?}");
}

#[test]
fn reconnect_on_narrows_the_close_codes() {
    let (_server, url) = start_server(&[]);
    let close = format!("{url}/close/1012?after=200ms");
    let (_client, events) = connect(&[&FAST[..], &["--reconnect-on", "1012", &close]].concat());
    let seen = json_until(&events, |e| count(e, "open") >= 2);
    assert_eq!(count(&seen, "open"), 2, "{seen:#?}");

    let (mut client, events) =
        connect(&[&FAST[..], &["--reconnect-on", "1001,4000", &close]].concat());
    assert_eq!(exit_code(&mut client), Some(5));
    let seen = json_until(&events, |_| false);
    assert_eq!(count(&seen, "open"), 1, "{seen:#?}");
    let notes = notes(&seen).join("\n");
    assert!(
        notes.contains("1012 (Service Restart) is not in --reconnect-on"),
        "{notes}"
    );
    assert!(
        notes.contains("reconnect summary: attempts 1, opened 1,") && notes.contains("1012×1"),
        "{notes}"
    );
}

#[test]
fn a_ping_timeout_reconnects_whatever_the_codes() {
    let (_server, url) = start_server(&[]);
    let (_client, events) = connect(
        &[
            &FAST[..],
            &[
                "--reconnect-on",
                "4000",
                "--ping-interval",
                "200ms",
                "--ping-timeout",
                "300ms",
                &format!("{url}/no-pong"),
            ],
        ]
        .concat(),
    );
    let seen = json_until(&events, |e| count(e, "open") >= 2);
    assert_eq!(count(&seen, "open"), 2, "{seen:#?}");
}

#[test]
fn retry_after_is_waited_out_and_max_attempts_gives_up() {
    let (_server, url) = start_server(&[]);
    let (mut client, events) = connect(
        &[
            &FAST[..],
            &[
                "--max-attempts",
                "2",
                &format!("{url}/reject/503?retry-after=2"),
            ],
        ]
        .concat(),
    );
    assert_eq!(exit_code(&mut client), Some(4));
    let seen = json_until(&events, |_| false);
    let refusals = of_kind(&seen, "handshake_failed");
    assert_eq!(refusals.len(), 2, "{seen:#?}");
    let gap_us = refusals[1]["ts"].as_u64().unwrap() - refusals[0]["ts"].as_u64().unwrap();
    assert!(gap_us >= 2_000_000, "only {gap_us} µs between attempts");
    let notes = notes(&seen).join("\n");
    assert!(notes.contains("Retry-After"), "{notes}");
    assert!(notes.contains("giving up after 2 attempts"), "{notes}");
    assert!(
        notes.contains("reconnect summary: attempts 2, opened 0,"),
        "{notes}"
    );
}

#[test]
fn max_attempts_counts_connections_that_never_open() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut client, events) = connect(
        &[
            &FAST[..],
            &["--max-attempts", "3", &format!("ws://127.0.0.1:{port}/")],
        ]
        .concat(),
    );
    assert_eq!(exit_code(&mut client), Some(3));
    let seen = json_until(&events, |_| false);
    assert_eq!(count(&seen, "error"), 3, "{seen:#?}");
}

#[test]
fn a_missed_expect_fails_the_attempt() {
    let (_server, url) = start_server(&[]);
    let dir = temp_dir("reconnect-expect");
    let script = dir.join("open.txt");
    std::fs::write(&script, "send hello\n\nexpect \"never said\"\n").unwrap();
    let out = wscope()
        .args([
            "connect",
            "--json",
            "--expect-timeout",
            "300ms",
            "--on-open",
        ])
        .arg(&script)
        .arg(format!("{url}/echo"))
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("--on-open line 3: no message matched"),
        "{stdout}"
    );
    // A failed opening is a failed attempt, whatever --reconnect-on lists.
    let out = wscope()
        .args([
            "connect",
            "--json",
            "--expect-timeout",
            "300ms",
            "--on-open",
        ])
        .arg(&script)
        .args(
            [
                &FAST[..],
                &["--reconnect-on", "4000", "--max-attempts", "2"],
            ]
            .concat(),
        )
        .arg(format!("{url}/echo"))
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("\"event\":\"open\"").count(), 2, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_before_connecting() {
    let dir = temp_dir("reconnect-bad");
    let script = dir.join("open.txt");
    // Nothing listens on port 9: a check that waited for the connection
    // would say something else.
    let url = "ws://127.0.0.1:9/";
    let cases: Vec<(Vec<String>, Option<&str>, &str)> = vec![
        (
            vec!["--reconnect".into(), "--max-attempts".into(), "0".into()],
            None,
            "--max-attempts",
        ),
        (
            vec![],
            Some("send a\nsubscribe b\n"),
            "line 2: unknown step \"subscribe\"",
        ),
        (
            vec![],
            Some("expect json.ok ==\n"),
            "line 1: expect: the expression does not parse",
        ),
        (
            vec!["-H".into(), "X-T: {{cmd:date".into()],
            None,
            "is not closed",
        ),
        (
            vec!["--max-attempts".into(), "2".into()],
            None,
            "--reconnect",
        ),
    ];
    for (args, script_text, said) in cases {
        let mut command = wscope();
        command.arg("connect").args(&args);
        if let Some(text) = script_text {
            std::fs::write(&script, text).unwrap();
            command.arg("--on-open").arg(&script);
        }
        let out = command
            .arg(url)
            .stdin(Stdio::null())
            .timed_output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {out:?}"
        );
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert!(!stderr.contains("cannot connect"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

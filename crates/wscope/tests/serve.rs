//! `wscope serve` as a test bench: every behaviour, checked with clients
//! nobody here wrote (Python `websockets`, Node.js `ws`). Each assertion is
//! on what the client library itself reported: its close code, the status
//! it saw, the exception it raised, the frames its debug log shows.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::metrics::{metrics_url, scrape_until};
use common::{
    Running, node_ws, parse_report, peer_script, python, start_server, temp_dir, texts, venv_bin,
    wscope,
};
use serde_json::Value;

/// The close code the Python client reported, and whether it was sent by
/// the client (`sent`) or received from the server (`rcvd`).
fn py_close(report: &Value, which: &str) -> Option<u64> {
    report["closed"][which]["code"].as_u64()
}

#[test]
fn echo_on_root_and_echo_for_both_libraries() {
    let (_server, url) = start_server(&[]);
    for path in ["", "/", "/echo"] {
        let report = python(&[
            "session",
            &format!("{url}{path}"),
            "--send",
            "hello",
            "--send",
            "κόσμε",
            "--expect",
            "2",
            "--close",
        ]);
        assert_eq!(texts(&report), ["hello", "κόσμε"], "{report}");
        assert_eq!(report["closed"]["code"], 1000, "{report}");
    }
    let report = node_ws(&[&format!("{url}/echo"), "--send", "hi", "--expect", "1"]);
    assert_eq!(texts(&report), ["hi"], "{report}");
    assert_eq!(report["extensions"], "permessage-deflate", "{report}");
    assert_eq!(report["close"]["code"], 1000, "{report}");
}

#[test]
fn broadcast_reaches_every_client_on_the_path() {
    let (_server, url) = start_server(&[]);
    let report = python(&["broadcast", &format!("{url}/broadcast"), "--clients", "3"]);
    assert_eq!(
        report["received"],
        serde_json::json!(["to everyone", "to everyone", "to everyone"]),
        "{report}"
    );
}

#[test]
fn stream_sends_on_its_own_then_closes_normally() {
    let (_server, url) = start_server(&[]);
    let report = python(&[
        "session",
        &format!("{url}/stream?every=20ms&size=10&count=3"),
    ]);
    assert_eq!(
        texts(&report),
        ["1 abcdefgh", "2 abcdefgh", "3 abcdefgh"],
        "{report}"
    );
    assert_eq!(py_close(&report, "rcvd"), Some(1000), "{report}");
    assert_eq!(report["closed"]["rcvd"]["reason"], "stream complete");

    let report = python(&[
        "session",
        &format!("{url}/stream?every=20ms&size=16&count=2&binary"),
    ]);
    let received = report["received"].as_array().unwrap();
    assert_eq!(received.len(), 2, "{report}");
    assert_eq!(received[0]["type"], "binary");
    assert_eq!(received[1]["len"], 16);
    assert!(
        received[1]["data"]
            .as_str()
            .unwrap()
            .starts_with("0000000000000002")
    );
}

#[test]
fn close_with_a_code_after_the_first_message_or_a_delay() {
    let (_server, url) = start_server(&[]);
    let report = python(&[
        "session",
        &format!("{url}/close/4000?reason=bye%20now"),
        "--send",
        "trigger",
    ]);
    assert_eq!(py_close(&report, "rcvd"), Some(4000), "{report}");
    assert_eq!(report["closed"]["rcvd"]["reason"], "bye now");
    assert!(
        texts(&report).is_empty(),
        "the trigger is not echoed: {report}"
    );

    let report = python(&["session", &format!("{url}/close/1001?after=300ms")]);
    assert_eq!(py_close(&report, "rcvd"), Some(1001), "{report}");
    assert!(report["elapsed_s"].as_f64().unwrap() >= 0.3, "{report}");

    let report = node_ws(&[&format!("{url}/close/4001?reason=node"), "--send", "x"]);
    assert_eq!(report["close"]["code"], 4001, "{report}");
    assert_eq!(report["close"]["reason"], "node", "{report}");
}

#[test]
fn drop_is_1006_for_both_libraries() {
    let (_server, url) = start_server(&[]);
    for path in ["/drop", "/drop?reset", "/drop?after=200ms"] {
        let report = python(&["session", &format!("{url}{path}"), "--send", "x"]);
        assert_eq!(report["error"], "ConnectionClosedError", "{path}: {report}");
        assert_eq!(report["closed"]["rcvd"], Value::Null, "{path}: {report}");
        assert_eq!(report["closed"]["code"], 1006, "{path}: {report}");
    }
    let report = node_ws(&[&format!("{url}/drop"), "--send", "x"]);
    assert_eq!(report["close"]["code"], 1006, "{report}");
}

#[test]
fn hang_never_answers() {
    let (_server, url) = start_server(&[]);
    let report = python(&[
        "session",
        &format!("{url}/hang"),
        "--send",
        "anyone there?",
        "--wait",
        "0.5",
        "--close",
        "--close-timeout",
        "0.5",
    ]);
    assert_eq!(report["opened"], true, "{report}");
    assert_eq!(report["timed_out"], true, "{report}");
    assert!(texts(&report).is_empty(), "{report}");
    // The client's close got no answer either.
    assert_eq!(report["closed"]["rcvd"], Value::Null, "{report}");
    assert_eq!(report["closed"]["code"], 1006, "{report}");
}

#[test]
fn no_pong_trips_the_clients_keepalive_timeout() {
    let (_server, url) = start_server(&[]);
    let keepalive = [
        "--ping-interval",
        "0.2",
        "--ping-timeout",
        "0.3",
        "--wait",
        "3",
    ];
    let mut args = vec!["session".to_owned(), format!("{url}/no-pong")];
    args.extend(keepalive.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = python(&args);
    assert_eq!(report["error"], "ConnectionClosedError", "{report}");
    assert_eq!(py_close(&report, "sent"), Some(1011), "{report}");
    assert_eq!(report["closed"]["sent"]["reason"], "keepalive ping timeout");

    // The same client on /echo: pongs come back and nothing times out.
    let mut args = vec!["session".to_owned(), format!("{url}/echo")];
    args.extend(keepalive.iter().map(|s| s.to_string()));
    let last = args.len() - 1;
    args[last] = "1".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = python(&args);
    assert_eq!(report["error"], Value::Null, "{report}");
    assert_eq!(report["timed_out"], true, "{report}");
}

#[test]
fn idle_timeout_closes_quiet_connections_only() {
    let (_server, url) = start_server(&[]);
    let report = python(&["session", &format!("{url}/idle-timeout/300ms")]);
    assert_eq!(py_close(&report, "rcvd"), Some(1001), "{report}");
    assert_eq!(report["closed"]["rcvd"]["reason"], "idle timeout");
    assert!(report["elapsed_s"].as_f64().unwrap() >= 0.3, "{report}");

    // Like most load balancers: no close frame, just the TCP close.
    let report = python(&["session", &format!("{url}/idle-timeout/300ms?drop")]);
    assert_eq!(report["closed"]["code"], 1006, "{report}");

    // Keepalive pings are frames: they keep the connection open.
    let report = python(&[
        "session",
        &format!("{url}/idle-timeout/600ms"),
        "--ping-interval",
        "0.1",
        "--ping-timeout",
        "5",
        "--wait",
        "1.5",
    ]);
    assert_eq!(report["error"], Value::Null, "{report}");
    assert_eq!(report["timed_out"], true, "{report}");
}

#[test]
fn max_size_closes_with_1009() {
    let (_server, url) = start_server(&[]);
    let report = python(&[
        "session",
        &format!("{url}/max-size/1000"),
        "--send-size",
        "1000",
        "--expect",
        "1",
        "--close",
    ]);
    assert_eq!(report["received"][0]["len"], 1000, "at the limit: {report}");

    let report = python(&[
        "session",
        &format!("{url}/max-size/1000"),
        "--send-size",
        "1001",
    ]);
    assert_eq!(py_close(&report, "rcvd"), Some(1009), "{report}");

    let report = node_ws(&[&format!("{url}/max-size/1000"), "--send-size", "5000"]);
    assert_eq!(report["close"]["code"], 1009, "{report}");
}

#[test]
fn delay_holds_each_echo_and_keeps_the_order() {
    let (_server, url) = start_server(&[]);
    let report = python(&[
        "session",
        &format!("{url}/delay/300ms?jitter=100ms"),
        "--send",
        "one",
        "--send",
        "two",
        "--send",
        "three",
        "--expect",
        "3",
        "--close",
    ]);
    assert_eq!(texts(&report), ["one", "two", "three"], "{report}");
    for (i, message) in report["received"].as_array().unwrap().iter().enumerate() {
        let sent = report["sent_at"][i].as_f64().unwrap();
        let waited = message["at"].as_f64().unwrap() - sent;
        assert!(
            waited >= 0.3,
            "message {i} came back after {waited}s: {report}"
        );
    }
}

#[test]
fn fragment_splits_each_echo_into_n_frames() {
    let (_server, url) = start_server(&[]);
    for compress in [true, false] {
        let mut args = vec![
            "session".to_owned(),
            format!("{url}/fragment/3"),
            "--send".into(),
            "abcdefghijklmnopqrstuvwxyz".into(),
            "--expect".into(),
            "1".into(),
            "--close".into(),
        ];
        if !compress {
            args.push("--no-compress".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report = python(&args);
        assert_eq!(texts(&report), ["abcdefghijklmnopqrstuvwxyz"], "{report}");
        let frames: Vec<&str> = report["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(frames[..3], ["TEXT", "CONT", "CONT"], "{report}");
    }
}

#[test]
fn ping_every_sends_pings() {
    let (_server, url) = start_server(&[]);
    let report = python(&[
        "session",
        &format!("{url}/ping-every/100ms"),
        "--wait",
        "1",
        "--close",
    ]);
    let pings = report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| *f == "PING")
        .count();
    assert!(pings >= 2, "{pings} pings in a second: {report}");
}

#[test]
fn reject_answers_with_the_status_asked_for() {
    let (_server, url) = start_server(&[]);
    for status in [400, 401, 403, 426, 429, 500, 503] {
        let report = python(&["session", &format!("{url}/reject/{status}")]);
        assert_eq!(report["error"], "InvalidStatus", "{report}");
        assert_eq!(report["status"], status, "{report}");
        assert!(
            report["body"].as_str().unwrap().contains("/reject"),
            "{report}"
        );
        if status == 401 {
            assert!(
                report["headers"]["www-authenticate"].is_string(),
                "{report}"
            );
        }
    }
    let report = python(&["session", &format!("{url}/reject/403?body=go%20away")]);
    assert_eq!(report["body"], "go away\n", "{report}");
    let report = node_ws(&[&format!("{url}/reject/403")]);
    assert_eq!(report["status"], 403, "{report}");
}

#[test]
fn origin_is_checked() {
    let (_server, url) = start_server(&[]);
    let path = format!("{url}/origin?allow=http://localhost:3000");
    let report = python(&[
        "session",
        &path,
        "--origin",
        "http://localhost:3000",
        "--close",
        "--wait",
        "0.1",
    ]);
    assert_eq!(report["opened"], true, "{report}");
    let report = python(&["session", &path, "--origin", "http://evil.test"]);
    assert_eq!(report["status"], 403, "{report}");
    assert!(
        report["body"].as_str().unwrap().contains("evil.test"),
        "{report}"
    );
    let report = python(&["session", &path]);
    assert_eq!(report["status"], 403, "no Origin at all: {report}");

    // Without ?allow, the origin of the Host header is allowed.
    let same = format!("http://{}", common::host_port(&url));
    let report = python(&[
        "session",
        &format!("{url}/origin"),
        "--origin",
        &same,
        "--close",
        "--wait",
        "0.1",
    ]);
    assert_eq!(report["opened"], true, "{report}");
}

#[test]
fn subprotocol_is_required_and_selected() {
    let (_server, url) = start_server(&[]);
    let path = format!("{url}/subprotocol/chat.v2");
    let report = python(&[
        "session",
        &path,
        "--subprotocol",
        "other",
        "--subprotocol",
        "chat.v2",
        "--close",
        "--wait",
        "0.1",
    ]);
    assert_eq!(report["subprotocol"], "chat.v2", "{report}");
    let report = python(&["session", &path]);
    assert_eq!(report["status"], 400, "{report}");
    // Forced on a client that did not offer it: the client must refuse.
    let report = python(&["session", &format!("{path}?force")]);
    assert_eq!(report["opened"], false, "{report}");
    assert_eq!(report["error"], "NegotiationError", "{report}");
}

#[test]
fn require_header_refuses_without_it() {
    let (_server, url) = start_server(&[]);
    let path = format!("{url}/require-header/X-Api-Key?value=s3cret&status=401");
    let report = python(&["session", &path]);
    assert_eq!(report["status"], 401, "{report}");
    let report = python(&["session", &path, "--header", "X-Api-Key: wrong"]);
    assert_eq!(report["status"], 401, "{report}");
    assert!(
        !report["body"].as_str().unwrap().contains("s3cret"),
        "{report}"
    );
    let report = python(&[
        "session",
        &path,
        "--header",
        "X-Api-Key: s3cret",
        "--close",
        "--wait",
        "0.1",
    ]);
    assert_eq!(report["opened"], true, "{report}");
    let report = python(&["session", &format!("{url}/require-header/Authorization")]);
    assert_eq!(report["status"], 400, "{report}");
}

#[test]
fn slow_handshake_takes_its_time() {
    let (_server, url) = start_server(&[]);
    let path = format!("{url}/slow-handshake/600ms");
    let report = python(&["session", &path, "--open-timeout", "0.2"]);
    assert_eq!(report["error"], "TimeoutError", "{report}");
    let report = python(&[
        "session",
        &path,
        "--open-timeout",
        "5",
        "--close",
        "--wait",
        "0.1",
    ]);
    assert_eq!(report["opened"], true, "{report}");
    assert!(report["handshake_s"].as_f64().unwrap() >= 0.6, "{report}");
}

#[test]
fn invalid_frames_make_clients_fail_the_connection() {
    let (_server, url) = start_server(&[]);
    let cases = [
        ("utf8", 1007),
        ("control-too-big", 1002),
        ("reserved-opcode", 1002),
        ("rsv", 1002),
        ("close-code", 1002),
        ("close-reason-utf8", 1007),
        ("masked", 1002),
        ("fragmented-control", 1002),
        ("continuation", 1002),
    ];
    for (kind, code) in cases {
        let report = python(&["session", &format!("{url}/invalid/{kind}"), "--wait", "3"]);
        assert_eq!(report["error"], "ConnectionClosedError", "{kind}: {report}");
        assert_eq!(py_close(&report, "sent"), Some(code), "{kind}: {report}");
    }
    let report = node_ws(&[&format!("{url}/invalid/utf8")]);
    assert_eq!(
        report["errors"][0]["code"], "WS_ERR_INVALID_UTF8",
        "{report}"
    );
    let report = node_ws(&[&format!("{url}/invalid/reserved-opcode")]);
    assert_eq!(
        report["errors"][0]["code"], "WS_ERR_INVALID_OPCODE",
        "{report}"
    );
}

#[test]
fn unknown_paths_and_parameters_are_refused_with_help() {
    let (_server, url) = start_server(&[]);
    let report = python(&["session", &format!("{url}/no-such-thing")]);
    assert_eq!(report["status"], 404, "{report}");
    assert!(
        report["body"].as_str().unwrap().contains("/max-size"),
        "{report}"
    );
    let report = python(&["session", &format!("{url}/close/1006")]);
    assert_eq!(report["status"], 400, "{report}");
    assert!(
        report["body"].as_str().unwrap().contains("/drop"),
        "{report}"
    );
    // Unknown query parameters are ignored (client libraries add their own).
    let report = python(&[
        "session",
        &format!("{url}/echo?EIO=4&transport=websocket"),
        "--send",
        "still echoed",
        "--expect",
        "1",
        "--close",
    ]);
    assert_eq!(texts(&report), ["still echoed"], "{report}");

    // A plain GET (a browser, curl) gets 426 and the list of behaviours.
    let mut tcp = std::net::TcpStream::connect(common::host_port(&url)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(answer.contains("/idle-timeout"), "{answer}");
}

#[test]
fn several_listeners_and_tls_with_a_self_signed_certificate() {
    let data = temp_dir("serve-tls");
    let mut child = wscope()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--tls-self-signed", "--log-format", "off"])
        .env("XDG_DATA_HOME", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (stdout, line) =
        common::first_line(stdout, &mut child, "wscope serve", common::START_LIMIT);
    let _server = Running {
        child,
        stdout: Some(stdout),
    };
    let urls: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.starts_with("wss://"))
        .collect();
    assert_eq!(urls.len(), 2, "two wss:// addresses in {line:?}");
    let cert = data.join("wscope/self-signed/localhost.pem");
    let key = data.join("wscope/self-signed/localhost-key.pem");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");
    for url in &urls {
        let report = python(&[
            "session",
            &format!("{url}/echo"),
            "--cafile",
            cert.to_str().unwrap(),
            "--send",
            "over tls",
            "--expect",
            "1",
            "--close",
        ]);
        assert_eq!(texts(&report), ["over tls"], "{url}: {report}");
    }
    // The same files given explicitly.
    let (_server2, url) = start_server(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(url.starts_with("wss://"), "{url}");
    let report = python(&[
        "session",
        &format!("{url}/echo"),
        "--cafile",
        cert.to_str().unwrap(),
        "--send",
        "again",
        "--expect",
        "1",
        "--close",
    ]);
    assert_eq!(texts(&report), ["again"], "{report}");
}

/// Starts a server whose stderr (the lifecycle log) is read line by line.
fn start_logged(extra: &[&str]) -> (Running, String, std::sync::mpsc::Receiver<String>) {
    let mut child = wscope()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (stdout, line) =
        common::first_line(stdout, &mut child, "wscope serve", common::START_LIMIT);
    (
        Running {
            child,
            stdout: Some(stdout),
        },
        line,
        rx,
    )
}

/// Reads log lines until one matches, or fails after a while.
fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<Value>,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(found) = seen.iter().find(|v| what(v)) {
        return found.clone();
    }
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("a log line that is not JSON: {line:?}: {err}"));
        seen.push(value.clone());
        if what(&value) {
            return value;
        }
    }
    panic!("no such log line; saw {seen:#?}");
}

#[test]
fn json_lifecycle_logs_and_the_record_file() {
    let dir = temp_dir("serve-record");
    let record = dir.join("serve.jsonl");
    let (_server, line, rx) =
        start_logged(&["--log-format", "json", "--record", record.to_str().unwrap()]);
    let url = common::ws_url_in(&line);
    let report = python(&[
        "session",
        &format!("{url}/echo"),
        "--origin",
        "http://app.test",
        "--header",
        "Authorization: Bearer hunter2",
        "--send",
        "logged",
        "--expect",
        "1",
        "--close",
    ]);
    assert_eq!(texts(&report), ["logged"], "{report}");
    let report = python(&["session", &format!("{url}/reject/403")]);
    assert_eq!(report["status"], 403);

    let mut seen = Vec::new();
    let open = wait_for_line(&rx, &mut seen, |v| v["event"] == "open");
    assert_eq!(open["path"], "/echo");
    assert_eq!(open["origin"], "http://app.test");
    assert!(
        open["user_agent"].as_str().unwrap().contains("websockets"),
        "{open}"
    );
    assert!(
        open["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{open}"
    );
    let conn = open["conn"].clone();
    let message = wait_for_line(&rx, &mut seen, |v| {
        v["event"] == "message" && v["dir"] == "c2s"
    });
    assert_eq!(message["size"], 6);
    assert_eq!(message["conn"], conn);
    assert!(
        message.get("payload").is_none(),
        "no payload in logs: {message}"
    );
    let closed = wait_for_line(&rx, &mut seen, |v| v["event"] == "closed");
    assert_eq!(closed["code"], 1000);
    assert_eq!(closed["reason"], "client done");
    assert_eq!(closed["by"], "client");
    let rejected = wait_for_line(&rx, &mut seen, |v| v["event"] == "rejected");
    assert_eq!(rejected["status"], 403);
    assert!(rejected["client"].is_string(), "{rejected}");

    // The record file has the same story, secrets redacted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events: Vec<Value> = loop {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.iter().any(|e| e["event"] == "handshake_failed") || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for kind in ["open", "message", "close", "closed", "handshake_failed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(
        !text.contains("hunter2"),
        "the Authorization header is redacted"
    );
    let echoed = events
        .iter()
        .find(|e| e["event"] == "message" && e["dir"] == "s2c")
        .unwrap();
    assert_eq!(echoed["payload"]["text"], "logged");
}

#[test]
fn metrics_are_scraped_and_parsed_by_the_prometheus_client() {
    let (_server, line, _logs) = start_logged(&["--log-format", "off", "--metrics", "127.0.0.1:0"]);
    let url = common::ws_url_in(&line);
    let metrics = metrics_url(&line);
    python(&[
        "session",
        &format!("{url}/echo"),
        "--send",
        "12345",
        "--expect",
        "1",
        "--close",
    ]);
    python(&["session", &format!("{url}/close/4000"), "--send", "x"]);
    python(&["session", &format!("{url}/reject/403")]);
    python(&["session", &format!("{url}/drop"), "--send", "x"]);

    let scraped = scrape_until(&metrics, |s| s["wscope_closes_total{code=1006}"] == 1.0);
    assert_eq!(
        scraped["content_type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let s = &scraped["samples"];
    assert_eq!(s["wscope_connections_total{}"], 3.0, "{s:#}");
    assert_eq!(s["wscope_connections_active{}"], 0.0, "{s:#}");
    assert_eq!(
        s["wscope_handshake_rejections_total{status=403}"], 1.0,
        "{s:#}"
    );
    assert_eq!(s["wscope_closes_total{code=1000}"], 1.0, "{s:#}");
    assert_eq!(s["wscope_closes_total{code=4000}"], 1.0, "{s:#}");
    assert_eq!(s["wscope_closes_total{code=1006}"], 1.0, "{s:#}");
    assert_eq!(
        s["wscope_messages_total{direction=c2s,opcode=text}"], 3.0,
        "{s:#}"
    );
    assert_eq!(
        s["wscope_messages_total{direction=s2c,opcode=text}"], 1.0,
        "{s:#}"
    );
    assert_eq!(
        s["wscope_payload_bytes_total{direction=s2c,opcode=text}"], 5.0,
        "{s:#}"
    );
    assert_eq!(
        s["wscope_connection_duration_seconds_count{}"], 3.0,
        "{s:#}"
    );
}

#[test]
fn a_thousand_concurrent_connections_echo_and_the_gauge_returns_to_zero() {
    let (_server, line, _logs) = start_logged(&["--log-format", "off", "--metrics", "127.0.0.1:0"]);
    let url = common::ws_url_in(&line);
    let metrics = metrics_url(&line);
    let hold = temp_dir("serve-many").join("holding");
    let mut client = Command::new(venv_bin("python"))
        .arg(peer_script("serve_client.py"))
        .args(["many", &format!("{url}/echo"), "--count", "1000"])
        .args(["--hold-file", hold.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // All 1000 open at once: the gauge says so.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !hold.exists() {
        assert!(
            Instant::now() < deadline,
            "the client never held 1000 connections"
        );
        assert!(
            client.try_wait().unwrap().is_none(),
            "the client ended early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = scrape_until(&metrics, |s| s["wscope_connections_active{}"] == 1000.0);
    assert_eq!(
        held["samples"]["wscope_connections_active{}"], 1000.0,
        "{held}"
    );
    std::fs::remove_file(&hold).unwrap();

    let mut out = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(client.wait().unwrap().success());
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["opened"], 1000, "{report}");
    assert_eq!(report["echoed"], 1000, "{report}");
    assert_eq!(report["closed_1000"], 1000, "{report}");

    let after = scrape_until(&metrics, |s| s["wscope_connections_active{}"] == 0.0);
    let s = &after["samples"];
    assert_eq!(s["wscope_connections_active{}"], 0.0, "{s:#}");
    assert_eq!(s["wscope_connections_total{}"], 1000.0, "{s:#}");
    assert_eq!(s["wscope_closes_total{code=1000}"], 1000.0, "{s:#}");
}

#[test]
fn sigterm_closes_open_connections_with_1001_and_finishes_the_record() {
    let dir = temp_dir("serve-sigterm");
    let record = dir.join("serve.jsonl");
    let (mut server, url) = start_server(&["--record", record.to_str().unwrap()]);
    let client = Command::new(venv_bin("python"))
        .arg(peer_script("serve_client.py"))
        .args([
            "session",
            &format!("{url}/echo"),
            "--send",
            "hi",
            "--wait",
            "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the connection is open (its open event is in the record).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&record)
        .unwrap_or_default()
        .contains("\"event\":\"open\"")
    {
        assert!(Instant::now() < deadline, "the client never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    let out = client.wait_with_output().unwrap();
    let report = parse_report("python", &out);
    assert_eq!(py_close(&report, "rcvd"), Some(1001), "{report}");
    assert_eq!(report["closed"]["rcvd"]["reason"], "server shutting down");
    let text = std::fs::read_to_string(&record).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["event"], "closed",
        "the record ends with the close: {text}"
    );
    assert_eq!(last["code"], 1001);
}

/// Opens a WebSocket by hand on `addr` (host:port) and returns the socket
/// once the server answered 101, so the connection stays open.
fn open_raw(addr: &str) -> std::net::TcpStream {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte)
            .expect("the server answers within 20 s");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

#[test]
fn max_connections_refuses_the_one_over_the_limit() {
    let (_server, url) = start_server(&["--max-connections", "2"]);
    let addr = common::host_port(&url).to_owned();
    let first = open_raw(&addr);
    let _second = open_raw(&addr);
    let refused = python(&["session", &format!("{url}/echo"), "--wait", "2"]);
    assert_eq!(refused["status"], 503, "{refused}");
    // A place frees up when one closes.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let report = python(&[
            "session",
            &format!("{url}/echo"),
            "--send",
            "in",
            "--expect",
            "1",
        ]);
        if texts(&report) == ["in"] {
            break;
        }
        assert_eq!(report["status"], 503, "{report}");
        assert!(
            Instant::now() < deadline,
            "the closed connection's place is freed: {report}"
        );
    }
}

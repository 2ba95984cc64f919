//! Redaction end to end: credentials in the query string, a JWT offered
//! as a subprotocol, an `X-Api-Key` header and a password in a JSON
//! message, sent by real clients to real servers, must appear nowhere
//! wscope writes or shows (record file, `--json`, the terminal, the
//! lifecycle log, a HAR export), and must all be there with `--no-redact`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Running, address_in, python, python_server, start_server, temp_dir, texts, wscope};
use serde_json::Value;

const TOKEN: &str = "T0KEN-q5x";
const API_KEY: &str = "K3Y-h7w";
const PASSWORD: &str = "PASSW0RD-j2m";
/// A JWT (header `{"alg":"HS256"}`), as browsers' clients send one in
/// `Sec-WebSocket-Protocol`.
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3c2NvcGUifQ.c2lnbmVkLWJ5LXRlc3Q";
const SECRETS: [&str; 4] = [TOKEN, API_KEY, PASSWORD, JWT];

fn login() -> String {
    format!(r#"{{"op":"login","user":"ann","password":"{PASSWORD}"}}"#)
}

/// `wscope connect` with every kind of secret to the Python server's echo,
/// sending the login message and waiting for its echo.
fn connect_with_secrets(url: &str, extra: &[&str]) -> Output {
    let login = login();
    let mut command = wscope();
    command
        .arg("connect")
        .arg(format!("{url}/echo?room=1&token={TOKEN}"))
        .args([
            "--subprotocol",
            "graphql-transport-ws",
            "--subprotocol",
            JWT,
        ])
        .args(["-H", &format!("X-Api-Key: {API_KEY}")])
        .args(["--send", &login, "--expect", "1"])
        .args(extra)
        .stdin(Stdio::null());
    let out = output_within(command, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "connect: {out:?}");
    out
}

/// Runs `command` to its end, killed (and the test failed) after `limit`.
fn output_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    match done_rx.recv_timeout(limit) {
        Ok(out) => out.expect("the command's output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{command:?} did not end within {limit:?}");
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
    }
}

fn assert_every_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(text.contains(secret), "{secret} not in {what}:\n{text}");
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn messages(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| e["payload"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The marker the login message's password became.
fn password_marker(message: &str) -> String {
    let json: Value = serde_json::from_str(message).unwrap_or_else(|e| panic!("{e}: {message}"));
    assert_eq!(json["user"], "ann", "the rest stays: {message}");
    json["password"].as_str().unwrap().to_owned()
}

#[test]
fn connect_keeps_secrets_out_of_the_record_json_and_har_unless_no_redact() {
    let (_server, url) = python_server(&[]);
    let dir = temp_dir("redact-connect");
    let record = dir.join("session.jsonl");
    let out = connect_with_secrets(&url, &["--json", "--record", record.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = std::fs::read_to_string(&record).unwrap();
    assert_no_secret("--json", &stdout);
    assert_no_secret("stderr", &stderr);
    assert_no_secret("the record file", &file);

    // What stays readable, and what the markers look like.
    let recorded = lines(&file);
    let header = &recorded[0];
    assert_eq!(header["redacted"], true);
    let rules = &header["redaction"];
    assert_eq!(rules["marker"], "<redacted:HASH>");
    for (list, name) in [
        ("headers", "x-api-key"),
        ("query", "token"),
        ("json_fields", "password"),
    ] {
        assert!(
            rules[list].as_array().unwrap().contains(&name.into()),
            "{list} lists {name}: {header}"
        );
    }
    let open = recorded.iter().find(|e| e["event"] == "open").unwrap();
    let url_recorded = open["url"].as_str().unwrap();
    assert!(
        url_recorded.contains("/echo?room=1&token=<redacted:"),
        "{open}"
    );
    let offered = open["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h[0].as_str()
                .unwrap()
                .eq_ignore_ascii_case("sec-websocket-protocol")
        })
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        offered.starts_with("graphql-transport-ws, <redacted:"),
        "an ordinary subprotocol stays readable: {offered}"
    );

    // The login went out and came back: the same password, the same marker,
    // in the record and in --json (one run, one key).
    let sent_and_echoed = messages(&recorded);
    assert_eq!(sent_and_echoed.len(), 2, "{file}");
    let marker = password_marker(&sent_and_echoed[0]);
    assert!(marker.starts_with("<redacted:"), "{marker}");
    assert_eq!(password_marker(&sent_and_echoed[1]), marker);
    assert_eq!(messages(&lines(&stdout)), sent_and_echoed);

    // The same session recorded raw, then opened in the UI: its HAR export
    // is redacted (the UI redacts what it reads), and `read` redacts too.
    let raw = dir.join("raw.jsonl");
    let out = connect_with_secrets(
        &url,
        &["--no-redact", "--json", "--record", raw.to_str().unwrap()],
    );
    let raw_file = std::fs::read_to_string(&raw).unwrap();
    assert_every_secret("the --no-redact record file", &raw_file);
    assert_every_secret("--no-redact --json", &String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines(&raw_file)[0]["redacted"], false);
    assert!(lines(&raw_file)[0].get("redaction").is_none());

    let har = ui_export(&raw, &[], "/export.har");
    assert!(har.contains("_webSocketMessages"), "{har}");
    assert_no_secret("the HAR export", &har);
    let har_raw = ui_export(&raw, &["--no-redact"], "/export.har");
    assert_every_secret("the --no-redact HAR export", &har_raw);

    let mut read = wscope();
    read.args(["read", "--json"]).arg(&raw);
    let out = output_within(read, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    assert_no_secret("read --json", &String::from_utf8_lossy(&out.stdout));
    let mut stats = wscope();
    stats.args(["read", "--stats"]).arg(&raw);
    let out = output_within(stats, Duration::from_secs(30));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("/echo?room=1&token=<redacted:"),
        "{printed}"
    );
    assert_no_secret("read --stats", &printed);
}

#[test]
fn the_proxy_redacts_its_live_view_logs_and_record() {
    let (_server, upstream) = start_server(&[]);
    let dir = temp_dir("redact-proxy");
    let record = dir.join("proxy.jsonl");
    // Not common::start_proxy: this one keeps its terminal view and its
    // log on stderr, to be read.
    let mut child = wscope()
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream])
        .arg("--record")
        .arg(&record)
        .args(["--log-format", "text"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wscope proxy starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let mut proxy = Running {
        child,
        stdout: None,
    };
    let (stdout, line) = common::first_line(
        stdout,
        &mut proxy.child,
        "wscope proxy",
        common::START_LIMIT,
    );
    let url = address_in(&line, "ws://");
    let login = login();
    let report = python(&[
        "session",
        &format!("{url}/echo?token={TOKEN}"),
        "--subprotocol",
        JWT,
        "--header",
        &format!("X-Api-Key: {API_KEY}"),
        "--send",
        &login,
        "--expect",
        "1",
        "--close",
    ]);
    assert_eq!(
        texts(&report),
        [login.as_str()],
        "the echo is untouched: {report}"
    );
    let events = common::record_until(&record, |events| {
        events.iter().any(|e| e["event"] == "closed")
    });
    assert!(events.iter().any(|e| e["event"] == "closed"), "{events:?}");
    let file = std::fs::read_to_string(&record).unwrap();
    assert_no_secret("the proxy's record file", &file);
    assert_eq!(messages(&events).len(), 2, "{file}");

    // The live view and the lifecycle log: stop the proxy and read what it
    // printed.
    let _ = Command::new("kill")
        .args(["-INT", &proxy.child.id().to_string()])
        .status();
    let mut printed = String::new();
    read_to_end_within(stdout, &mut printed, Duration::from_secs(15));
    let mut logged = String::new();
    read_to_end_within(stderr, &mut logged, Duration::from_secs(15));
    let _ = proxy.child.wait();
    assert!(
        printed.contains("login"),
        "the live view shows the messages: {printed}"
    );
    assert_no_secret("the proxy's live view", &printed);
    assert!(
        logged.contains("/echo"),
        "the log names the connection: {logged}"
    );
    assert_no_secret("the proxy's lifecycle log", &logged);
}

/// Reads `from` to its end on a thread; fails the test after `limit`.
fn read_to_end_within(from: impl Read + Send + 'static, into: &mut String, limit: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut from = from;
        let _ = from.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    *into = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no end of output within {limit:?}"));
}

#[test]
fn added_rules_take_out_more() {
    let (_server, url) = python_server(&[]);
    let dir = temp_dir("redact-added");
    let message = r#"{"user":{"pin":"P1N-84","name":"ann"},"pin":"public"}"#;
    let run = |record: &Path, extra: &[&str]| {
        let mut command = wscope();
        command
            .arg("connect")
            .arg(format!("{url}/echo?ticket=T1CKET-3"))
            .args(["-H", "X-Session: S3SSION-9"])
            .args(["--send", message, "--expect", "1", "--record"])
            .arg(record)
            .args(extra)
            .stdin(Stdio::null());
        let out = output_within(command, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        std::fs::read_to_string(record).unwrap()
    };
    let custom = ["T1CKET-3", "S3SSION-9", "P1N-84"];
    let plain = run(&dir.join("plain.jsonl"), &[]);
    for secret in custom {
        assert!(plain.contains(secret), "not a default rule: {secret}");
    }
    let more = run(
        &dir.join("more.jsonl"),
        &[
            "--redact-query",
            "ticket",
            "--redact-header",
            "x-session",
            "--redact-json",
            "json.user.pin",
        ],
    );
    for secret in custom {
        assert!(!more.contains(secret), "{secret} in {more}");
    }
    assert!(
        more.contains(r#"\"pin\":\"public\""#),
        "only the path: {more}"
    );
    let header = &lines(&more)[0]["redaction"];
    assert!(
        header["query"]
            .as_array()
            .unwrap()
            .contains(&"ticket".into())
    );
    assert!(
        header["headers"]
            .as_array()
            .unwrap()
            .contains(&"x-session".into())
    );
    assert_eq!(header["json_paths"], serde_json::json!(["json.user.pin"]));
}

#[test]
fn bad_rules_are_refused_before_connecting() {
    for (args, said) in [
        (
            &["--redact-json", "user.pin"][..],
            "\"user.pin\" is not a JSON path; write it as json.field",
        ),
        (
            &["--no-redact", "--redact-query", "x"][..],
            "cannot be used with",
        ),
    ] {
        let mut command = wscope();
        command
            .args(["connect", "ws://127.0.0.1:9/"])
            .args(args)
            .stdin(Stdio::null());
        let out = output_within(command, Duration::from_secs(15));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}

/// `wscope ui FILE` (with `extra`), then GET `path` with its token: the body.
fn ui_export(file: &Path, extra: &[&str], path: &str) -> String {
    let mut child = wscope()
        .args(["ui", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let _ui = Running {
        child,
        stdout: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
        // Keep the pipe open while the UI runs.
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the UI names its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the UI's URL in {line:?}"));
    let rest = url.trim_start_matches("http://127.0.0.1:");
    let (port, rest) = rest.split_once('/').unwrap();
    let token = rest.trim_start_matches("?token=");
    let port: u16 = port.parse().unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        tcp,
        "GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

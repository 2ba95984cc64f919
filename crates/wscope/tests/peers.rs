//! `wscope serve` and `wscope connect` against Python's `websockets`, and
//! against deliberately bad input over raw TCP.

mod common;

use common::TimedOutput;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Running, host_port, peer_script, start_http_proxy, start_server, temp_dir, venv_bin, wscope,
};

fn start_python_server() -> (Running, String) {
    start_python_server_with(&[])
}

fn start_python_server_with(args: &[&str]) -> (Running, String) {
    common::python_server(args)
}

#[test]
fn python_websockets_client_gets_its_echoes() {
    let (_server, url) = start_server(&[]);
    let out = Command::new(venv_bin("python"))
        .arg(peer_script("ws_client.py"))
        .arg(format!("{url}/echo"))
        .timed_output()
        .expect("python client runs");
    assert!(
        out.status.success(),
        "python client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

fn connect_to(url: &str, stdin: &str, extra: &[&str]) -> std::process::Output {
    let mut child = wscope()
        .arg("connect")
        .args(extra)
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wscope connect starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    common::wait_output(child, common::COMMAND_LIMIT)
}

#[test]
fn connect_sends_stdin_and_prints_replies() {
    let (_server, url) = start_python_server();
    for extra in [&[][..], &["--compress"][..]] {
        let out = connect_to(&format!("{url}/echo"), "first\nsecond ✓\n", extra);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "first\nsecond ✓\n",
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "normal closure exits 0");
    }
}

#[test]
fn connect_exit_status_tells_how_it_ended() {
    let (_server, url) = start_python_server();

    let out = connect_to(&format!("{url}/close4000"), "", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "welcome\n");
    assert_eq!(out.status.code(), Some(5), "closed with 4000: {stderr}");
    assert!(
        stderr.contains("4000") && stderr.contains("bye"),
        "{stderr}"
    );

    let out = connect_to(&format!("{url}/drop"), "", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "dropped: {stderr}");
    assert!(stderr.contains("1006"), "{stderr}");

    let out = connect_to(&format!("{url}/pingme"), "", &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pong received after True\n"
    );
    assert_eq!(out.status.code(), Some(0));

    // Nothing listens on a port we just closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = connect_to(&format!("ws://127.0.0.1:{port}/"), "", &[]);
    assert_eq!(out.status.code(), Some(3), "connection refused exits 3");
}

fn raw_connect(url: &str) -> TcpStream {
    let stream = TcpStream::connect(host_port(url)).expect("tcp connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn upgraded(url: &str) -> TcpStream {
    let mut stream = raw_connect(url);
    stream.write_all(UPGRADE.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("handshake response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[test]
fn garbage_instead_of_http_gets_400_with_a_reason() {
    let (_server, url) = start_server(&[]);
    let mut stream = raw_connect(&url);
    stream
        .write_all(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8_lossy(&read_to_end(&mut stream)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("not a WebSocket upgrade request"), "{reply}");

    let mut stream = raw_connect(&url);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8_lossy(&read_to_end(&mut stream)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 426"), "{reply}");
    assert!(reply.contains("no Upgrade header"), "{reply}");
}

#[test]
fn oversized_length_closes_with_1009() {
    let (_server, url) = start_server(&["--max-message", "1048576"]);
    let mut stream = upgraded(&url);
    // A masked binary frame that claims 2^40 bytes.
    let mut frame = vec![0x82, 0xFF];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&frame).unwrap();
    let reply = read_to_end(&mut stream);
    assert!(reply.len() >= 4, "a close frame comes back: {reply:?}");
    assert_eq!(reply[0], 0x88, "close opcode");
    assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), 1009);
}

#[test]
fn truncated_frame_then_eof_does_not_hurt_the_server() {
    let (_server, url) = start_server(&[]);
    let mut stream = upgraded(&url);
    // Half a frame, then the connection goes away.
    stream.write_all(&[0x81, 0x85, 1, 2]).unwrap();
    drop(stream);
    // The server still serves.
    let mut stream = upgraded(&url);
    let mut frame = Vec::new();
    wscope_frame(&mut frame, b"still here");
    stream.write_all(&frame).unwrap();
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..2], &[0x81, 10]);
    assert_eq!(&reply[2..], b"still here");
}

/// A masked text frame with a zero key, built by hand so this test does not
/// depend on the encoder it is testing.
fn wscope_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

fn events_of(jsonl: &str) -> Vec<serde_json::Value> {
    jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn record_file_holds_the_session_with_secrets_redacted() {
    let (_server, url) = start_python_server();
    let dir = std::env::temp_dir().join(format!("wscope-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("session.jsonl");
    let out = connect_to(
        &format!("{url}/echo"),
        "one\ntwo\n",
        &[
            "--compress",
            "-H",
            "Authorization: Bearer s3cret",
            "--record",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("s3cret"), "the token is redacted:\n{text}");
    let lines = events_of(&text);
    assert_eq!(lines[0]["format"], "wscope-record");
    assert_eq!(lines[0]["redacted"], true);
    let kinds: Vec<&str> = lines[1..]
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"open"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"closed"), "{kinds:?}");
    let open = &lines[1];
    assert!(open["response"]["line"].as_str().unwrap().contains("101"));
    assert_eq!(
        open["extensions"][0].as_str().unwrap().split(';').next(),
        Some("permessage-deflate")
    );
    let messages: Vec<(&str, &str)> = lines
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["dir"].as_str().unwrap(),
                e["payload"]["text"].as_str().unwrap(),
            )
        })
        .collect();
    // Sends and echoes may interleave; each direction keeps its order.
    let sent: Vec<&str> = messages
        .iter()
        .filter(|m| m.0 == "c2s")
        .map(|m| m.1)
        .collect();
    let received: Vec<&str> = messages
        .iter()
        .filter(|m| m.0 == "s2c")
        .map(|m| m.1)
        .collect();
    assert_eq!(sent, ["one", "two"]);
    assert_eq!(received, ["one", "two"]);
    assert_eq!(messages.len(), 4, "{messages:?}");
    let closed = lines.last().unwrap();
    assert_eq!(closed["code"], 1000);
    assert_eq!(closed["clean"], true);
    assert_eq!(closed["by"], "client");
    assert_eq!(closed["messages_c2s"], 2);
    assert_eq!(closed["messages_s2c"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_output_reports_a_refused_handshake() {
    let (_server, url) = start_python_server();
    let out = connect_to(&format!("{url}/forbidden"), "", &["--json"]);
    assert_eq!(out.status.code(), Some(4), "handshake refused exits 4");
    let events = events_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(events.len(), 1, "{events:?}");
    let failed = &events[0];
    assert_eq!(failed["event"], "handshake_failed");
    assert_eq!(failed["status"], 403);
    assert!(
        failed["body"]
            .as_str()
            .unwrap()
            .contains("origin not allowed")
    );
    assert!(
        failed["diagnosis"].as_str().unwrap().contains("Origin"),
        "{failed}"
    );
}

#[test]
fn wss_with_a_private_ca_insecure_and_keylog() {
    let dir = temp_dir("tls");
    let (_server, url) = start_python_server_with(&["--tls", dir.to_str().unwrap()]);
    let port = url.rsplit(':').next().unwrap().to_owned();
    let ca = dir.join("ca.pem");
    let localhost = format!("wss://localhost:{port}/echo");

    // Not trusted by default: a plain message and its own exit status.
    let out = connect_to(&localhost, "", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("not signed by a CA this machine trusts"),
        "{stderr}"
    );

    // Trusted with --ca; the key log gets the session's secrets.
    let keylog = dir.join("keys.log");
    let mut child = wscope()
        .args(["connect", "--ca", ca.to_str().unwrap(), &localhost])
        .env("SSLKEYLOGFILE", &keylog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"over tls\n")
        .unwrap();
    let out = common::wait_output(child, common::COMMAND_LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "over tls\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let keys = std::fs::read_to_string(&keylog).expect("SSLKEYLOGFILE written");
    assert!(
        keys.contains("CLIENT_TRAFFIC_SECRET_0") || keys.contains("CLIENT_RANDOM"),
        "{keys}"
    );

    // The certificate names localhost only, not 127.0.0.1.
    let out = connect_to(
        &format!("wss://127.0.0.1:{port}/echo"),
        "",
        &["--ca", ca.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("not valid for the name"), "{stderr}");

    // --insecure accepts the untrusted certificate.
    let out = connect_to(&localhost, "hi\n", &["--insecure"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wss_client_certificate() {
    let dir = temp_dir("mtls");
    let (_server, url) =
        start_python_server_with(&["--tls", dir.to_str().unwrap(), "--require-client-cert"]);
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let port = url.rsplit(':').next().unwrap();
    let url = format!("wss://localhost:{port}/echo");
    let out = connect_to(&url, "no cert\n", &["--ca", ca]);
    // TLS 1.3: our side of the TLS handshake ends before the server checks
    // our (empty) certificate, so its alert answers the upgrade request:
    // status 4, handshake refused. A panic (101) must not pass.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a server that requires a client certificate refuses us: {stderr}"
    );
    let cert = dir.join("client-cert.pem");
    let key = dir.join("client-key.pem");
    let out = connect_to(
        &url,
        "with cert\n",
        &[
            "--ca",
            ca,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "with cert\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scripted_send_and_expect() {
    let (_server, url) = start_python_server();
    let out = wscope()
        .args([
            "connect",
            "--send",
            "one",
            "--send",
            "{\"n\":2}",
            "--expect",
            "2",
            &format!("{url}/echo"),
        ])
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one\n{\"n\":2}\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    // --pretty spreads JSON over lines; --binary sends binary (echoed as binary).
    let out = wscope()
        .args([
            "connect",
            "--send",
            "{\"n\":2}",
            "--expect",
            "1",
            "--pretty",
            &format!("{url}/echo"),
        ])
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\n  \"n\": 2\n}\n");
    let out = wscope()
        .args([
            "connect",
            "--binary",
            "--send",
            "AB",
            "--expect",
            "1",
            &format!("{url}/echo"),
        ])
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "binary 2 B 41 42\n");
}

#[test]
fn control_frames_are_shown_on_request() {
    let (_server, url) = start_python_server();
    // The server pings us once, then closes.
    let out = connect_to(&format!("{url}/pingme"), "", &["--show-control"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("< ping x\n"), "{stdout}");
    assert!(stdout.contains("< close 1000 (Normal Closure)"), "{stdout}");
    // Our own pings get pongs with round-trip times.
    let out = wscope()
        .args([
            "connect",
            "--ping-interval",
            "50ms",
            "--send",
            "hi",
            "--wait",
            "400ms",
            &format!("{url}/echo"),
        ])
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pong: round trip"), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn ping_timeout_ends_a_silent_connection() {
    // A server that completes the upgrade and then never answers anything.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            request.push(byte[0]);
        }
        let request = String::from_utf8_lossy(&request).into_owned();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_owned();
        let accept = wscope_proto::handshake::accept_key(&key);
        write!(stream, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").unwrap();
        // Read and ignore until the client goes away.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    let out = wscope()
        .args([
            "connect",
            "--ping-interval",
            "100ms",
            "--ping-timeout",
            "300ms",
            "--wait",
            "30s",
            &format!("ws://127.0.0.1:{port}/"),
        ])
        .stdin(Stdio::piped())
        .timed_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no pong within"), "{stderr}");
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    silent.join().unwrap();
}

fn probe(url: &str, extra: &[&str]) -> (i32, String) {
    let out = wscope()
        .arg("probe")
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .timed_output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn probe_shows_the_handshake_and_explains_refusals() {
    let (_server, url) = start_python_server();

    let (code, out) = probe(
        &format!("{url}/origin"),
        &["--origin", "http://allowed.test", "--compress"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("> GET /origin HTTP/1.1"), "{out}");
    assert!(out.contains("> Origin: http://allowed.test"), "{out}");
    assert!(out.contains("< HTTP/1.1 101"), "{out}");
    assert!(
        out.contains("extensions            permessage-deflate"),
        "{out}"
    );
    assert!(out.contains("timings"), "{out}");
    assert!(out.contains("closed cleanly"), "{out}");

    let (code, out) = probe(&format!("{url}/origin"), &["--origin", "http://evil.test"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("< HTTP/1.1 403"), "{out}");
    assert!(out.contains("Origin sent: http://evil.test"), "{out}");

    let (code, out) = probe(&format!("{url}/subprotocol"), &["--subprotocol", "chat.v1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("subprotocol           chat.v1"), "{out}");
    let (code, out) = probe(&format!("{url}/subprotocol"), &[]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("400"), "{out}");

    let (code, out) = probe(&format!("{url}/header"), &["-H", "X-Api-Key: secret"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = probe(&format!("{url}/header"), &[]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("authentication required"), "{out}");

    // --json: one open event with the heads and timings, then the note.
    let (code, out) = probe(
        &format!("{url}/echo"),
        &["--json", "-H", "Authorization: Bearer t0ken"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("t0ken"), "redacted: {out}");
    let open = events_of(&out)
        .into_iter()
        .find(|e| e["event"] == "open")
        .expect("an open event");
    assert!(open["timings"]["tcp_us"].as_u64().is_some(), "{open}");
    assert!(open["timings"]["upgrade_us"].as_u64().is_some(), "{open}");
}

#[test]
fn connect_through_an_http_connect_proxy() {
    let (_server, url) = start_python_server();
    let (_proxy, port) = start_http_proxy(&[]);
    let out = connect_to(
        &format!("{url}/echo"),
        "via proxy\n",
        &["--proxy", &format!("http://127.0.0.1:{port}")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via proxy\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));

    let (_auth_proxy, port) = start_http_proxy(&["--basic-auth", "user:pa:ss"]);
    let out = connect_to(
        &format!("{url}/echo"),
        "x\n",
        &["--proxy", &format!("http://127.0.0.1:{port}")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("407"), "{stderr}");
    let out = connect_to(
        &format!("{url}/echo"),
        "with credentials\n",
        &["--proxy", &format!("http://user:pa%3Ass@127.0.0.1:{port}")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "with credentials\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs connect with stdin held open, collecting stderr lines until `enough`
/// says so (or 15 s pass), then kills it.
fn stderr_until(url: &str, extra: &[&str], enough: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut child = wscope()
        .arg("connect")
        .args(extra)
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
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
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !enough(&lines) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn reconnect_backs_off_and_resets_after_success() {
    let (_server, url) = start_python_server();
    // Each connection opens, then drops; with --stable-after 0s every
    // connection counts as stable, so the counter resets every time.
    let lines = stderr_until(
        &format!("{url}/drop"),
        &[
            "--reconnect",
            "--reconnect-max-delay",
            "100ms",
            "--stable-after",
            "0s",
        ],
        |l| l.iter().filter(|l| l.contains("reconnecting")).count() >= 3,
    );
    let attempts: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("reconnecting"))
        .collect();
    assert!(attempts.len() >= 3, "{lines:#?}");
    for line in &attempts {
        assert!(
            line.contains("(attempt 1)") && line.contains("1006"),
            "{line}"
        );
    }
    // Nothing listens: the attempts count up (the first connection is
    // attempt 1, so the first reconnection is attempt 2).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lines = stderr_until(
        &format!("ws://127.0.0.1:{port}/"),
        &["--reconnect", "--reconnect-max-delay", "100ms"],
        |l| l.iter().any(|l| l.contains("(attempt 3)")),
    );
    let text = lines.join("\n");
    for n in 2..=3 {
        assert!(text.contains(&format!("(attempt {n})")), "{text}");
    }
    assert!(text.contains("c1, attempt 1,"), "{text}");
    assert!(text.contains("could not be opened"), "{text}");
}

#[test]
fn interactive_mode_through_a_pseudo_terminal() {
    let (_server, url) = start_python_server();
    let home = temp_dir("pty");
    let out = Command::new(venv_bin("python"))
        .arg(peer_script("interactive.py"))
        .arg(env!("CARGO_BIN_EXE_wscope"))
        .arg(format!("{url}/echo"))
        .arg(&home)
        .timed_output()
        .expect("the pexpect driver runs");
    let screen = std::fs::read_to_string(home.join("screen.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n--- screen ---\n{screen}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn frames_flag_reports_each_frame_before_its_message() {
    let (_server, url) = start_python_server();
    let out = connect_to(&format!("{url}/fragments"), "", &["--json", "--frames"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events_of(&String::from_utf8_lossy(&out.stdout));
    let data: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "frame" || e["event"] == "message")
        .collect();
    // websockets sends each fragment, then an empty final continuation.
    let (message, frames) = data.split_last().expect("events");
    assert_eq!(message["event"], "message", "{data:#?}");
    assert_eq!(message["payload"]["text"], "fragment");
    assert_eq!(
        message["frames"].as_u64(),
        Some(frames.len() as u64),
        "{data:#?}"
    );
    assert!(frames.iter().all(|f| f["event"] == "frame"), "{data:#?}");
    assert_eq!(
        (frames[0]["opcode"].as_str(), frames[0]["fin"].as_bool()),
        (Some("text"), Some(false))
    );
    assert_eq!(frames[0]["payload"]["text"], "frag");
    assert_eq!(frames[1]["opcode"], "cont");
    assert_eq!(frames[1]["payload"]["text"], "ment");
    let last = frames.last().expect("frames");
    assert_eq!(
        (last["opcode"].as_str(), last["fin"].as_bool()),
        (Some("cont"), Some(true))
    );
}

#[test]
fn expired_certificate_is_named_as_such() {
    let dir = temp_dir("expired");
    let (_server, url) = start_python_server_with(&["--tls", dir.to_str().unwrap(), "--expired"]);
    let port = url.rsplit(':').next().unwrap();
    let ca = dir.join("ca.pem");
    let (code, out) = probe(
        &format!("wss://localhost:{port}/echo"),
        &["--ca", ca.to_str().unwrap()],
    );
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("has expired"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn basic_auth_credentials() {
    let (_server, url) = start_python_server();
    let (code, out) = probe(&format!("{url}/basic"), &["--auth", "user:pa:ss"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("> Authorization: <redacted:"), "{out}");
    assert!(!out.contains("dXNlcjpwYTpzcw"), "{out}");
    let (code, out) = probe(&format!("{url}/basic"), &["--auth", "user:wrong"]);
    assert_eq!(code, 4, "{out}");
}

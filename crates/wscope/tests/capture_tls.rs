//! `wscope read CAPTURE` on connections it can name but not decode: TLS
//! without its keys, and HTTP/2 in the clear, captured between real peers
//! (tests/peers/capture_peers.py: tcpdump on `lo`, a port the kernel
//! picked).
//!
//! - `tls`: Python `websockets` over TLS (a trustme certificate for
//!   `ws.test`; the client connects to 127.0.0.1 with server_hostname
//!   `ws.test` and offers ALPN `http/1.1`). wscope must name the connection
//!   by the SNI and ALPN the client's own ssl object reports, client →
//!   server the right way round, show nothing of its WebSocket, and count
//!   it in the summary line.
//! - the same capture cut around its ClientHello by editcap: joined after
//!   it (the SYN gone too) is still named as TLS, client → server, with no
//!   SNI to give; joined at it (only the SYN gone) is named by its SNI;
//!   with the hello alone lost it is still TLS.
//! - `h2-websocket`: Node.js `http2` (nghttp2), cleartext with prior
//!   knowledge, an RFC 8441 extended CONNECT with `:protocol websocket`:
//!   the HTTP/2 note and the extended-CONNECT note.
//! - `h2c`: the same peers, a plain GET: the HTTP/2 note only.
//!
//! Every check is a function from what wscope printed and what it should
//! have said to a list of failures; each test also runs it once with a
//! wrong expectation and requires it to fail, so no check passes by
//! looking at nothing.
//!
//! Needs root (tcpdump on `lo`), tcpdump, tshark and editcap, Node.js.

mod common;

use common::TimedOutput;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::{capture_peers, system_tool, temp_dir, wscope};

/// What `wscope read` printed: the events of `--json`, and the summary
/// line on stderr (the same with and without `--json`).
struct Read {
    events: Vec<Value>,
    summary: String,
}

fn read(pcap: &Path) -> Read {
    let run = |json: bool| {
        let mut command = wscope();
        command.arg("read").arg(pcap);
        if json {
            command.arg("--json");
        }
        let out = command.timed_output().expect("wscope read runs");
        assert!(
            out.status.success(),
            "wscope read {} failed ({}):\n{}",
            pcap.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let summary = stderr
            .lines()
            .find(|line| line.starts_with("wscope: capture: "))
            .unwrap_or_else(|| panic!("no summary line on stderr: {stderr:?}"))
            .to_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (stdout, stderr, summary)
    };
    let (stdout, _, summary) = run(true);
    let events = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("wscope read printed {line:?}: {e}"))
        })
        .collect();
    let (text_out, text_err, text_summary) = run(false);
    assert_eq!(
        summary, text_summary,
        "the summary line differs with --json"
    );
    let read = Read { events, summary };
    // The terminal view shows the same notes (on stderr, as `wscope: c1 ...`).
    for note in notes(&read.events) {
        let line = format!(
            "{} {}",
            note["conn"].as_str().unwrap(),
            note["text"].as_str().unwrap()
        );
        assert!(
            text_out.contains(&line) || text_err.contains(&line),
            "the terminal view lacks the note {line:?}:\n{text_out}\n{text_err}"
        );
    }
    read
}

fn notes(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "note").collect()
}

/// Events that would mean wscope decoded (or believed it decoded) a
/// WebSocket where it cannot.
fn decoded(events: &[Value], failures: &mut Vec<String>) {
    for event in events {
        let kind = event["event"].as_str().unwrap_or_default();
        if [
            "open",
            "frame",
            "message",
            "close",
            "closed",
            "handshake_failed",
        ]
        .contains(&kind)
        {
            failures.push(format!("wscope decoded something: {event}"));
        }
    }
}

fn has(summary: &str, part: &str, failures: &mut Vec<String>) {
    if !summary.contains(part) {
        failures.push(format!("the summary {summary:?} lacks {part:?}"));
    }
}

fn lacks(summary: &str, part: &str, failures: &mut Vec<String>) {
    if summary.contains(part) {
        failures.push(format!("the summary {summary:?} has {part:?}"));
    }
}

/// The one note wscope gave, which must be `want`.
fn one_note(read: &Read, want: &str, failures: &mut Vec<String>) {
    let notes = notes(&read.events);
    let texts: Vec<&str> = notes.iter().filter_map(|n| n["text"].as_str()).collect();
    if texts != [want] {
        failures.push(format!("want the one note {want:?}, got {texts:?}"));
    }
}

fn finish(what: &str, pcap: &Path, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{what} ({}):\n  {}",
        pcap.display(),
        failures.join("\n  ")
    );
}

fn must_fail(what: &str, failures: Vec<String>) {
    assert!(
        !failures.is_empty(),
        "the check passed with a wrong expectation ({what}): it proves nothing"
    );
}

// --- TLS --------------------------------------------------------------------

/// What a TLS connection must read as.
#[derive(Clone, Copy)]
struct TlsExpect<'a> {
    client: &'a str,
    server: &'a str,
    named: Named<'a>,
}

/// How wscope can name a TLS connection.
#[derive(Clone, Copy)]
enum Named<'a> {
    /// By its ClientHello.
    Hello { sni: &'a str, alpn: &'a str },
    /// The capture has no ClientHello: it joined after it...
    Joined,
    /// ...or lost the segment that carried it.
    HelloLost,
}

const ENCRYPTED: &str = "encrypted: its WebSocket traffic cannot be shown without the session keys; to see inside, log the session keys while capturing and pass the file with --keylog: SSLKEYLOGFILE=FILE for Chromium, Firefox, curl and wscope connect; node --tls-keylog=FILE; keylog_filename on Python's ssl.SSLContext";

fn check_tls(read: &Read, want: &TlsExpect<'_>) -> Vec<String> {
    let mut failures = Vec::new();
    let TlsExpect {
        client,
        server,
        named,
    } = want;
    let why = match named {
        Named::Hello { sni, alpn } => format!("SNI {sni}, ALPN {alpn}"),
        Named::Joined => "joined after its ClientHello: no SNI".to_owned(),
        Named::HelloLost => "its ClientHello is not in the capture: no SNI".to_owned(),
    };
    one_note(
        read,
        &format!("TLS connection {client} → {server} ({why}): {ENCRYPTED}"),
        &mut failures,
    );
    if let Some(note) = notes(&read.events).first()
        && !(note["conn"] == "c1" && note.get("dir").is_none_or(Value::is_null))
    {
        failures.push(format!(
            "the note is not about connection c1 as a whole: {note}"
        ));
    }
    decoded(&read.events, &mut failures);
    has(
        &read.summary,
        "1 TCP connections, 0 WebSocket",
        &mut failures,
    );
    match named {
        Named::Hello { sni, .. } => has(
            &read.summary,
            &format!(", 1 TLS not decrypted ({sni})"),
            &mut failures,
        ),
        Named::Joined | Named::HelloLost => {
            has(&read.summary, ", 1 TLS not decrypted", &mut failures);
            lacks(&read.summary, "TLS not decrypted (", &mut failures);
        }
    }
    lacks(&read.summary, "HTTP/2", &mut failures);
    failures
}

/// Every way the TLS checks must fail on a capture that reads as `want`.
fn wrong_tls_expectations(read: &Read, want: TlsExpect<'_>) {
    let swapped = TlsExpect {
        client: want.server,
        server: want.client,
        ..want
    };
    must_fail("client and server swapped", check_tls(read, &swapped));
    let others: [(&str, Named<'_>); 4] = [
        (
            "another SNI",
            Named::Hello {
                sni: "other.test",
                alpn: "http/1.1",
            },
        ),
        (
            "another ALPN",
            Named::Hello {
                sni: "ws.test",
                alpn: "h2",
            },
        ),
        ("joined after the ClientHello", Named::Joined),
        ("the ClientHello lost", Named::HelloLost),
    ];
    for (what, named) in others {
        let same = match (named, want.named) {
            (Named::Hello { sni, alpn }, Named::Hello { sni: s, alpn: a }) => sni == s && alpn == a,
            (Named::Joined, Named::Joined) | (Named::HelloLost, Named::HelloLost) => true,
            _ => false,
        };
        if !same {
            must_fail(what, check_tls(read, &TlsExpect { named, ..want }));
        }
    }
    let mut decoded = read.events.clone();
    decoded.push(serde_json::json!({"event": "message", "conn": "c1"}));
    let read = Read {
        events: decoded,
        summary: read.summary.clone(),
    };
    must_fail("a message shown", check_tls(&read, &want));
}

/// Packet numbers (from 1) of the client's ClientHello, as tshark finds it.
fn client_hello_packets(pcap: &Path, port: u16) -> Vec<u64> {
    let out = Command::new(system_tool("tshark", "tshark"))
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("tcp.port=={port},tls")])
        .args(["-Y", "tls.handshake.type==1", "-T", "fields"])
        .args(["-e", "frame.number"])
        .timed_output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.trim().parse().expect("a frame number"))
        .collect()
}

fn packet_count(pcap: &Path) -> u64 {
    let out = Command::new(system_tool("tshark", "tshark"))
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "frame.number"])
        .timed_output()
        .expect("tshark runs");
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}

/// The `tls` scenario, captured, with the peers' word that it did what it
/// says: the capture, the client's address and the server's.
fn tls_capture(dir: &Path) -> (common::PeerCapture, String, String) {
    let cap = capture_peers("tls", dir, &[]);
    let tls = &cap.log["tls"];
    assert_eq!(tls["sni"], "ws.test", "the client's SNI: {tls}");
    assert_eq!(
        tls["alpn_offered"][0], "http/1.1",
        "the client's ALPN: {tls}"
    );
    assert_eq!(tls["alpn_selected"], "http/1.1", "the ALPN agreed: {tls}");
    assert_eq!(
        cap.log["server"]["received_messages"], cap.log["client"]["sent_messages"],
        "the messages went through"
    );
    assert_eq!(cap.log["client"]["close_code"], 1000, "a clean close");
    let client = tls["client"]
        .as_str()
        .expect("the client's address")
        .to_owned();
    let server = format!("127.0.0.1:{}", cap.port);
    (cap, client, server)
}

#[test]
fn tls_named_by_sni_and_alpn() {
    let dir = temp_dir("capture-tls");
    let (cap, client, server) = tls_capture(&dir);
    let tls = &cap.log["tls"];
    let read = read(&cap.pcap);
    let want = TlsExpect {
        client: &client,
        server: &server,
        named: Named::Hello {
            sni: tls["sni"].as_str().unwrap(),
            alpn: tls["alpn_offered"][0].as_str().unwrap(),
        },
    };
    finish("tls", &cap.pcap, check_tls(&read, &want));
    wrong_tls_expectations(&read, want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The TLS capture cut by editcap around its ClientHello (tshark finds
/// it): after it (the SYN and the hello gone: joined), from it on (the SYN
/// gone: the hello still names it), and without it alone (the handshake
/// there, the hello lost).
#[test]
fn tls_without_its_handshake_packets() {
    let dir = temp_dir("capture-tls-cut");
    let (cap, client, server) = tls_capture(&dir);
    let hellos = client_hello_packets(&cap.pcap, cap.port);
    let [hello] = hellos.as_slice() else {
        panic!("want one ClientHello in the capture, tshark found {hellos:?}");
    };
    let last = packet_count(&cap.pcap);
    let cut = |name: &str, ranges: &[String]| {
        let out = dir.join(format!("{name}.pcap"));
        let status = Command::new(system_tool("editcap", "tshark"))
            .arg("-r")
            .arg(&cap.pcap)
            .arg(&out)
            .args(ranges)
            .status()
            .expect("editcap runs");
        assert!(status.success(), "editcap -r {ranges:?} failed");
        out
    };
    let sni_alpn = Named::Hello {
        sni: "ws.test",
        alpn: "http/1.1",
    };
    let cuts = [
        (
            "joined",
            vec![format!("{}-{last}", hello + 1)],
            Named::Joined,
        ),
        ("no-syn", vec![format!("{hello}-{last}")], sni_alpn),
        (
            "hello-lost",
            vec![format!("1-{}", hello - 1), format!("{}-{last}", hello + 1)],
            Named::HelloLost,
        ),
    ];
    for (name, ranges, named) in cuts {
        let pcap = cut(name, &ranges);
        let hello_kept = !client_hello_packets(&pcap, cap.port).is_empty();
        assert_eq!(
            hello_kept,
            matches!(named, Named::Hello { .. }),
            "{name}: the ClientHello kept or not"
        );
        let read = read(&pcap);
        let want = TlsExpect {
            client: &client,
            server: &server,
            named,
        };
        finish(&format!("tls, {name}"), &pcap, check_tls(&read, &want));
        wrong_tls_expectations(&read, want);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// --- HTTP/2 -------------------------------------------------------------------

const EXTENDED_CONNECT: &str = "opens a WebSocket over HTTP/2 (RFC 8441 extended CONNECT with :protocol websocket): detected, not decoded";

fn check_http2(read: &Read, client: &str, server: &str, extended_connect: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let mut want = vec![format!(
        "HTTP/2 connection {client} → {server} (cleartext, prior knowledge): its streams are not decoded"
    )];
    if extended_connect {
        want.push(format!(
            "HTTP/2 connection {client} → {server} {EXTENDED_CONNECT}"
        ));
    }
    let notes = notes(&read.events);
    let texts: Vec<&str> = notes.iter().filter_map(|n| n["text"].as_str()).collect();
    if texts != want {
        failures.push(format!("want the notes {want:?}, got {texts:?}"));
    }
    for (i, note) in notes.iter().enumerate() {
        // The first names the connection; the second is the client's.
        let dir = if i == 0 { Value::Null } else { "c2s".into() };
        if note["conn"] != "c1" || note.get("dir").cloned().unwrap_or(Value::Null) != dir {
            failures.push(format!("note {i} should be on c1, dir {dir}: {note}"));
        }
    }
    decoded(&read.events, &mut failures);
    has(
        &read.summary,
        "1 TCP connections, 0 WebSocket",
        &mut failures,
    );
    if extended_connect {
        has(
            &read.summary,
            ", 1 HTTP/2 (1 opening WebSocket over HTTP/2, not decoded)",
            &mut failures,
        );
    } else {
        has(&read.summary, ", 1 HTTP/2", &mut failures);
        lacks(&read.summary, "opening WebSocket", &mut failures);
    }
    lacks(&read.summary, "TLS", &mut failures);
    failures
}

/// Runs an HTTP/2 scenario and checks the peers did what it says; returns
/// what wscope read, the client's and the server's addresses.
fn http2_scenario(scenario: &str, dir: &Path) -> (Read, String, String, std::path::PathBuf) {
    common::node();
    let cap = capture_peers(scenario, dir, &[]);
    let (c, s) = (&cap.log["client"], &cap.log["server"]);
    for side in [c, s] {
        assert!(side["error"].is_null(), "a peer failed: {side}");
    }
    assert_eq!(
        c["request_headers"], s["request_headers"],
        "the request arrived"
    );
    assert_eq!(c["response_headers"][":status"], "200", "the answer: {c}");
    assert_eq!(c["sent"], s["received"], "client → server bytes");
    assert_eq!(s["sent"], c["received"], "server → client bytes");
    let client = c["address"]
        .as_str()
        .expect("the client's address")
        .to_owned();
    let server = format!("127.0.0.1:{}", cap.port);
    (read(&cap.pcap), client, server, cap.pcap)
}

#[test]
fn http2_extended_connect_to_websocket() {
    let dir = temp_dir("capture-h2-websocket");
    let (read, client, server, pcap) = http2_scenario("h2-websocket", &dir);
    finish(
        "h2-websocket",
        &pcap,
        check_http2(&read, &client, &server, true),
    );
    must_fail(
        "no extended CONNECT",
        check_http2(&read, &client, &server, false),
    );
    must_fail(
        "client and server swapped",
        check_http2(&read, &server, &client, true),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn http2_plain_get_is_no_websocket() {
    let dir = temp_dir("capture-h2c");
    let (read, client, server, pcap) = http2_scenario("h2c", &dir);
    finish("h2c", &pcap, check_http2(&read, &client, &server, false));
    must_fail(
        "an extended CONNECT",
        check_http2(&read, &client, &server, true),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

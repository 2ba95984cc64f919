//! HAR as an input (docs/FORMAT.md, "HAR"): a HAR that real Chromium's
//! traffic became through the DevTools protocol (the npm
//! `chrome-har-capturer` package, tests/peers/har_chromium.mjs) against a
//! Node `ws` server, read by `wscope read` and `wscope ui`; and wscope's
//! own HAR export (the UI's /export.har) of a record that `wscope connect
//! --record` made against `wscope serve`, read back as the same events.
//!
//! Needs Debian's chromium and the Node packages of package.json
//! (`scripts/test.sh` installs both); a missing one fails the test.

mod common;

use common::TimedOutput;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{
    Running, host_port, node, node_server, parse_report, peer_script, read_json, repo_root,
    start_server, temp_dir, wscope,
};
use serde_json::{Value, json};

/// tests/peers/har_chromium.mjs against a Node `ws` echo server that
/// selects the subprotocol `chat.v1`: the HAR it wrote, what the page
/// saw, and the server (still running) and its URL.
fn chromium_har(dir: &Path) -> (PathBuf, Value, Running, String) {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: scripts/test.sh installs Debian's chromium package (as root)"
    );
    let capturer = repo_root().join("node_modules/chrome-har-capturer");
    assert!(
        capturer.exists(),
        "{} is missing: run scripts/test.sh (npm ci installs the Node.js test peers of package.json)",
        capturer.display()
    );
    let (server, url) = node_server(&["--subprotocol", "chat.v1"]);
    let har = dir.join("chromium.har");
    let out = node()
        .arg(peer_script("har_chromium.mjs"))
        .args(["--ws", &url, "--out"])
        .arg(&har)
        .arg("--profile")
        .arg(dir.join("chromium-profile"))
        .stdin(Stdio::null())
        .timed_output()
        .expect("node runs har_chromium.mjs");
    let seen = parse_report("chromium with chrome-har-capturer", &out);
    (har, seen, server, url)
}

/// Events of one kind.
fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// A message event as the page logs it: `{"opcode", "text"|"base64"}`.
fn as_logged(message: &Value) -> Value {
    let payload = &message["payload"];
    match message["opcode"].as_str() {
        Some("text") => json!({"opcode": "text", "text": payload["text"]}),
        _ => json!({"opcode": "binary", "base64": payload["base64"]}),
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn chromium_har_reads_as_the_open_and_the_messages_the_page_sent_and_received() {
    let dir = temp_dir("har-chromium");
    let started = now_micros();
    let (har, seen, _server, url) = chromium_har(&dir);
    let ended = now_micros();
    // What chrome-har-capturer wrote is what wscope must cope with: its
    // message times are the DevTools protocol's monotonic clock.
    let raw: Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = raw["log"]["entries"].as_array().unwrap();
    let socket = entries
        .iter()
        .find(|e| e["_resourceType"] == "websocket")
        .unwrap_or_else(|| panic!("a websocket entry in {raw:#}"));
    assert!(
        socket["_webSocketMessages"].as_array().unwrap().len() >= 8,
        "chrome-har-capturer wrote the frames: {socket:#}"
    );
    assert!(
        entries.len() > 1,
        "the page's own request is in the HAR too"
    );

    let events = read_json(&[har.as_os_str()], None);
    // One connection: its open, then its messages; nothing HAR lacks.
    assert!(
        events.iter().all(|e| e["conn"] == "c1"),
        "only the WebSocket entry becomes events: {events:#?}"
    );
    assert_eq!(events[0]["event"], "open", "{events:#?}");
    assert!(
        events[1..].iter().all(|e| e["event"] == "message"),
        "{events:#?}"
    );
    let open = &events[0];
    let target = "/chat?room=7&who=har";
    assert_eq!(open["url"], format!("{url}{target}"));
    assert_eq!(open["request"]["line"], format!("GET {target} HTTP/1.1"));
    let request_headers = open["request"]["headers"].as_array().unwrap();
    assert!(
        request_headers.contains(&json!(["Host", host_port(&url)])),
        "{open:#}"
    );
    assert!(
        request_headers.contains(&json!(["Sec-WebSocket-Protocol", "chat.v1, chat.v0"])),
        "{open:#}"
    );
    assert_eq!(open["response"]["line"], "HTTP/1.1 101 Switching Protocols");
    assert!(
        open["response"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("sec-websocket-accept")),
        "{open:#}"
    );
    // The page's own WebSocket is the judge of what was negotiated.
    assert_eq!(open["subprotocol"], seen["protocol"], "{seen}");
    assert_eq!(open["extensions"], json!([seen["extensions"]]), "{seen}");
    assert_eq!(open["client"], "", "a HAR has no client address");

    // The messages, in order, each way: the page sent one, got its echo,
    // sent the next.
    let sent = seen["sent"].as_array().unwrap();
    let received = seen["received"].as_array().unwrap();
    assert_eq!(sent.len(), 4, "{seen}");
    assert_eq!(received.len(), 4, "{seen}");
    let expected: Vec<(String, Value)> = sent
        .iter()
        .zip(received)
        .flat_map(|(s, r)| [("c2s".to_owned(), s.clone()), ("s2c".to_owned(), r.clone())])
        .collect();
    let got: Vec<(String, Value)> = of_kind(&events, "message")
        .iter()
        .map(|m| (m["dir"].as_str().unwrap().to_owned(), as_logged(m)))
        .collect();
    assert_eq!(got, expected);

    // Times on the wall clock, in order, within the test's run.
    let times: Vec<u64> = events.iter().map(|e| e["ts"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        times[0] >= started - 1_000_000 && times[times.len() - 1] <= ended + 1_000_000,
        "{times:?} within {started}..{ended}"
    );

    // The filters and the summary work on a HAR as on a record file.
    let s2c = read_json(
        &[
            har.as_os_str(),
            "--filter".as_ref(),
            r#"dir == "s2c""#.as_ref(),
        ],
        None,
    );
    assert_eq!(s2c.len(), 4, "{s2c:#?}");
    assert!(s2c.iter().all(|e| e["dir"] == "s2c"));
    assert!(read_json(&[har.as_os_str(), "--conn".as_ref(), "c2".as_ref()], None).is_empty());
    let stats = wscope()
        .args(["read", "--stats"])
        .arg(&har)
        .timed_output()
        .unwrap();
    assert!(stats.status.success(), "{stats:?}");
    let stats = String::from_utf8_lossy(&stats.stdout);
    let c2s_bytes: usize = sent.iter().map(logged_len).sum();
    let line = stats
        .lines()
        .find(|l| l.starts_with("c1 "))
        .unwrap_or_else(|| panic!("a line for c1 in {stats}"));
    assert!(
        line.contains(&format!("4 / {c2s_bytes}")) && line.contains(&format!("{url}{target}")),
        "{stats}"
    );

    // `wscope ui` shows the same events, and its HAR export of them reads
    // back as them again.
    let (_ui, port, token) = start_ui(&har);
    let (status, jsonl) = get(port, &format!("/export.jsonl?token={token}"));
    assert_eq!(status, 200, "{jsonl}");
    let shown: Vec<Value> = jsonl
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(shown, events);
    let (status, exported) = get(port, &format!("/export.har?token={token}"));
    assert_eq!(status, 200, "{exported}");
    let again = dir.join("again.har");
    std::fs::write(&again, exported).unwrap();
    assert_eq!(read_json(&[again.as_os_str()], None), events);

    // The browser's session replayed against the server it talked to:
    // the recorded path, subprotocols and messages, the same answers.
    let report_path = dir.join("replay.json");
    let replayed = dir.join("replayed.jsonl");
    let replay = wscope()
        .args(["replay", "--to", &url, "--timeout", "10s", "--record"])
        .arg(&replayed)
        .arg("--report-json")
        .arg(&report_path)
        .arg(&har)
        .timed_output()
        .unwrap();
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(replay.status.code(), Some(0), "{report:#}\n{replay:?}");
    let conn = &report["connections"][0];
    assert_eq!(conn["url"], format!("{url}{target}"), "{report:#}");
    assert_eq!(
        (&conn["sent"], &conn["same"]),
        (&json!(4), &json!(4)),
        "{report:#}"
    );
    // Exported again (the replay's own record, through the UI's HAR
    // export), it is the same conversation.
    let (_ui, port, token) = start_ui(&replayed);
    let (status, exported) = get(port, &format!("/export.har?token={token}"));
    assert_eq!(status, 200, "{exported}");
    let third = dir.join("replayed.har");
    std::fs::write(&third, exported).unwrap();
    let conversation = |events: &[Value]| -> Vec<(String, Value)> {
        of_kind(events, "message")
            .iter()
            .map(|m| (m["dir"].as_str().unwrap().to_owned(), as_logged(m)))
            .collect()
    };
    let replayed_events = read_json(&[third.as_os_str()], None);
    assert_eq!(conversation(&replayed_events), conversation(&events));
    assert_eq!(replayed_events[0]["subprotocol"], open["subprotocol"]);
}

fn logged_len(message: &Value) -> usize {
    match message["text"].as_str() {
        Some(text) => text.len(),
        None => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(message["base64"].as_str().unwrap())
                .unwrap()
                .len()
        }
    }
}

#[test]
fn wscope_har_export_reads_back_as_the_same_open_and_messages() {
    let dir = temp_dir("har-export");
    let (_server, url) = start_server(&[]);
    let runs: [(&str, &[&str]); 2] = [
        (
            "text",
            &[
                "/subprotocol/chat.v1",
                "--subprotocol",
                "chat.v1",
                "--compress",
                "--send",
                "hello",
                "--send",
                r#"{"type":"order","id":42,"note":"Grüße 🌍"}"#,
            ],
        ),
        (
            "binary",
            &[
                "/echo?x=1",
                "--binary",
                "--send",
                "binary one",
                "--send",
                "",
                "-H",
                "Authorization: Bearer s3cret",
            ],
        ),
    ];
    for (name, args) in runs {
        let record = dir.join(format!("{name}.jsonl"));
        let out = wscope()
            .arg("connect")
            .arg(format!("{url}{}", args[0]))
            .args(&args[1..])
            .args(["--expect", "2", "--record"])
            .arg(&record)
            .stdin(Stdio::null())
            .timed_output()
            .unwrap();
        assert!(out.status.success(), "connect {name}: {out:?}");
        let recorded = read_json(&[record.as_os_str()], None);

        let (_ui, port, token) = start_ui(&record);
        let (status, body) = get(port, &format!("/export.har?token={token}"));
        assert_eq!(status, 200, "{body}");
        let har = dir.join(format!("{name}.har"));
        std::fs::write(&har, body).unwrap();
        let read = read_json(&[har.as_os_str()], None);

        // The open: what HAR holds of it, the same; the client's address
        // and the timings are not in a HAR.
        let opens = (of_kind(&recorded, "open"), of_kind(&read, "open"));
        assert_eq!((opens.0.len(), opens.1.len()), (1, 1), "{read:#?}");
        let (before, after) = (opens.0[0], opens.1[0]);
        for field in [
            "ts",
            "conn",
            "url",
            "server",
            "request",
            "response",
            "subprotocol",
            "extensions",
        ] {
            assert_eq!(after[field], before[field], "{name}: open {field}");
        }
        assert_eq!(after["client"], "");
        if name == "text" {
            assert_eq!(after["subprotocol"], "chat.v1");
            assert!(!before["extensions"].as_array().unwrap().is_empty());
        } else {
            assert!(
                after["request"]["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h[0] == "Authorization"
                        && h[1].as_str().unwrap().starts_with("<redacted:")),
                "redacted in the record, redacted in the HAR: {after:#}"
            );
        }
        // The messages: direction, opcode, payload, time to the
        // microsecond. (`compressed` and `frames` are not in a HAR.)
        let messages = |events: &[Value]| -> Vec<Value> {
            of_kind(events, "message")
                .iter()
                .map(|m| json!([m["ts"], m["conn"], m["dir"], m["opcode"], m["payload"]]))
                .collect()
        };
        assert_eq!(messages(&read), messages(&recorded), "{name}");
        assert_eq!(messages(&read).len(), 4, "{name}: {recorded:#?}");
        assert_eq!(read.len(), 5, "only the open and the messages: {read:#?}");
    }
}

/// `wscope ui FILE` on a free port: it, its port and its token.
fn start_ui(file: &Path) -> (Running, u16, String) {
    let child = wscope()
        .args(["ui", "--listen", "127.0.0.1:0"])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (running, line) = common::named_address(child, "wscope ui");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the UI's URL in {line:?}"));
    let rest = url.trim_start_matches("http://127.0.0.1:");
    let (port, rest) = rest.split_once('/').unwrap();
    let token = rest.trim_start_matches("?token=").to_owned();
    (running, port.parse().unwrap(), token)
}

/// A plain HTTP GET on the UI's port; the status and body.
fn get(port: u16, target: &str) -> (u16, String) {
    common::http_get(port, target, &format!("127.0.0.1:{port}"))
}

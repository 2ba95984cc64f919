//! `wscope proxy` rules and fault flags between real peers: Python
//! `websockets` and Node.js `ws`, each as client against the other as
//! server, both with permessage-deflate negotiated unless a test says
//! otherwise. Every assertion is on what a peer library reported (what
//! arrived, when, the close code it saw) or on the proxy's record file.
//!
//! Times are asserted only where the rule is about time, and then as "no
//! earlier than" bounds a slow machine cannot break; the bandwidth test is
//! the one two-sided bound (within 20% of the limit), as the issue asks.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    Running, address_in, node_server, node_ws, python, python_server, record_until, start_proxy,
    start_server, temp_dir, texts,
};
use serde_json::Value;

/// Which real server is upstream.
#[derive(Clone, Copy, Debug)]
enum Upstream {
    /// Node.js `ws` echo server (any path echoes).
    Node,
    /// Python `websockets` server; `/echo` echoes.
    Python,
}

/// A proxy with `args` in front of a fresh `upstream`, recording.
struct Setup {
    _server: Running,
    proxy: Running,
    /// The echo URL through the proxy.
    url: String,
    record: PathBuf,
}

fn setup(name: &str, upstream: Upstream, args: &[&str]) -> Setup {
    let (server, server_url) = match upstream {
        Upstream::Node => node_server(&[]),
        Upstream::Python => python_server(&[]),
    };
    let dir = temp_dir(&format!("rules-{name}-{upstream:?}"));
    let record = dir.join("record.jsonl");
    let mut all = vec![
        "--upstream",
        &server_url,
        "--record",
        record.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let (proxy, line) = start_proxy(&all, &[]);
    let url = format!("{}/echo", address_in(&line, "ws://"));
    Setup {
        _server: server,
        proxy,
        url,
        record,
    }
}

/// Writes a rules file into a fresh directory.
fn rules_file(name: &str, text: &str) -> PathBuf {
    let path = temp_dir(&format!("rules-file-{name}")).join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The notes in a record file (waiting for the connection to be closed).
fn notes(record: &Path) -> Vec<String> {
    record_until(record, |events| {
        events.iter().any(|e| e["event"] == "closed")
    })
    .iter()
    .filter(|e| e["event"] == "note")
    .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
    .collect()
}

fn closed_event(record: &Path) -> Value {
    record_until(record, |events| {
        events.iter().any(|e| e["event"] == "closed")
    })
    .into_iter()
    .find(|e| e["event"] == "closed")
    .expect("a closed event")
}

fn at(message: &Value) -> f64 {
    message["at"].as_f64().expect("arrival time")
}

fn python_close_code(report: &Value) -> i64 {
    report["closed"]["code"].as_i64().unwrap_or(-1)
}

fn node_close_code(report: &Value) -> i64 {
    report["close"]["code"].as_i64().unwrap_or(-1)
}

#[test]
fn latency_delays_each_direction_and_keeps_order() {
    // 300 ms each way: an echo cannot come back in less than 600 ms.
    let flags = ["--latency", "300ms", "--jitter", "50ms"];

    let s = setup("latency", Upstream::Node, &flags);
    let report = python(&[
        "session", &s.url, "--send", "one", "--send", "two", "--send", "three", "--expect", "3",
    ]);
    assert_eq!(texts(&report), ["one", "two", "three"], "{report}");
    let sent = report["sent_at"][0].as_f64().unwrap();
    for message in report["received"].as_array().unwrap() {
        assert!(
            at(message) - sent >= 0.5,
            "echo after {}: {report}",
            at(message) - sent
        );
    }
    assert!(
        notes(&s.record)
            .iter()
            .any(|n| n.starts_with("--latency: held this text message"))
    );

    let s = setup("latency", Upstream::Python, &flags);
    let report = node_ws(&[&s.url, "--send", "one", "--send", "two", "--expect", "2"]);
    assert_eq!(texts(&report), ["one", "two"], "{report}");
    let sent = report["sent_at"][0].as_f64().unwrap();
    for message in report["received"].as_array().unwrap() {
        assert!(
            at(message) - sent >= 0.5,
            "echo after {}: {report}",
            at(message) - sent
        );
    }
}

#[test]
fn drop_rule_removes_only_matching_messages() {
    // Compressed both ways: the relay must keep both deflate streams valid
    // although the receiver never sees the dropped message.
    let rules = rules_file(
        "drop",
        "[[rule]]\nmatch = 'dir == c2s && text contains \"secret\"'\naction = \"drop\"\n",
    );
    let rules = rules.to_str().unwrap();
    for upstream in [Upstream::Node, Upstream::Python] {
        let s = setup("drop", upstream, &["--rules", rules]);
        let sends = ["one", "a secret two", "three", "four"];
        let report = match upstream {
            Upstream::Node => python(&[
                "session", &s.url, "--send", sends[0], "--send", sends[1], "--send", sends[2],
                "--send", sends[3], "--expect", "3",
            ]),
            Upstream::Python => node_ws(&[
                &s.url, "--send", sends[0], "--send", sends[1], "--send", sends[2], "--send",
                sends[3], "--expect", "3",
            ]),
        };
        assert_eq!(
            texts(&report),
            ["one", "three", "four"],
            "{upstream:?}: {report}"
        );
        let notes = notes(&s.record);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("dropped this text message")),
            "{notes:?}"
        );
    }
}

#[test]
fn replace_rewrites_text_and_json_paths() {
    let rules = rules_file(
        "replace",
        r#"
[[rule]]
match = 'dir == s2c && json.user exists'
action = "replace"
path = "user.name"
value = "mallory"

[[rule]]
match = 'dir == c2s'
action = "replace"
regex = 'cat(s?)'
with = "dog$1"
"#,
    );
    let rules = rules.to_str().unwrap();
    let json_in = r#"{"user":{"name":"alice","id":7},"n":1}"#;
    let json_out = r#"{"user":{"name":"mallory","id":7},"n":1}"#;
    for upstream in [Upstream::Node, Upstream::Python] {
        let s = setup("replace", upstream, &["--rules", rules]);
        let report = match upstream {
            Upstream::Node => python(&[
                "session", &s.url, "--send", json_in, "--send", "two cats", "--expect", "2",
            ]),
            Upstream::Python => node_ws(&[
                &s.url, "--send", json_in, "--send", "two cats", "--expect", "2",
            ]),
        };
        let got = texts(&report);
        assert_eq!(got[1], "two dogs", "{upstream:?}: {report}");
        let got: Value = serde_json::from_str(&got[0]).unwrap();
        let want: Value = serde_json::from_str(json_out).unwrap();
        assert_eq!(got, want, "{upstream:?}");
        let notes = notes(&s.record);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("rewrote this text message")),
            "{notes:?}"
        );
    }
}

#[test]
fn inject_sends_messages_to_either_side() {
    // To the client directly; to the server, which echoes it back: so the
    // server accepted it (masked, as a client's frame must be).
    let rules = rules_file(
        "inject",
        r#"
[[rule]]
match = 'dir == c2s && text == "hello"'
action = "inject"
to = "client"
text = "from the proxy"

[[rule]]
match = 'dir == c2s && text == "hello"'
action = "inject"
to = "server"
json = { injected = true }
"#,
    );
    let rules = rules.to_str().unwrap();
    for upstream in [Upstream::Node, Upstream::Python] {
        let s = setup("inject", upstream, &["--rules", rules]);
        let report = match upstream {
            Upstream::Node => python(&["session", &s.url, "--send", "hello", "--expect", "3"]),
            Upstream::Python => node_ws(&[&s.url, "--send", "hello", "--expect", "3"]),
        };
        let mut got = texts(&report);
        // Injected toward the server after the message that triggered it,
        // so its echo comes after that message's.
        let at = |text: &str| got.iter().position(|t| t == text);
        assert!(
            at("hello") < at(r#"{"injected":true}"#),
            "{upstream:?}: {report}"
        );
        got.sort();
        assert_eq!(
            got,
            ["from the proxy", "hello", r#"{"injected":true}"#],
            "{upstream:?}: {report}"
        );
    }
}

#[test]
fn close_rule_gives_both_peers_the_code() {
    let rules = rules_file(
        "close",
        "[[rule]]\nmatch = 'text == \"bye\"'\naction = \"close\"\nto = \"both\"\ncode = 4001\nreason = \"rule says bye\"\n",
    );
    let rules = rules.to_str().unwrap();

    let s = setup("close", Upstream::Node, &["--rules", rules]);
    let report = python(&[
        "session", &s.url, "--send", "hi", "--send", "bye", "--wait", "5",
    ]);
    assert_eq!(report["closed"]["rcvd"]["code"], 4001, "{report}");
    assert_eq!(
        report["closed"]["rcvd"]["reason"], "rule says bye",
        "{report}"
    );
    let closed = closed_event(&s.record);
    assert_eq!(closed["by"], "proxy", "{closed}");
    assert_eq!(closed["code"], 4001, "{closed}");

    let s = setup("close", Upstream::Python, &["--rules", rules]);
    let report = node_ws(&[&s.url, "--send", "hi", "--send", "bye", "--wait", "5000"]);
    assert_eq!(node_close_code(&report), 4001, "{report}");
    assert_eq!(report["close"]["reason"], "rule says bye", "{report}");
}

#[test]
fn close_after_and_reset_after_flags() {
    let s = setup(
        "close-after",
        Upstream::Node,
        &["--close-after", "300ms", "--close-code", "1001"],
    );
    let report = python(&["session", &s.url, "--wait", "5"]);
    assert_eq!(report["closed"]["rcvd"]["code"], 1001, "{report}");
    assert!(report["elapsed_s"].as_f64().unwrap() >= 0.3, "{report}");

    // A reset: no close frame, so both libraries report 1006.
    let s = setup("reset", Upstream::Node, &["--reset-after", "300ms"]);
    let report = python(&["session", &s.url, "--send", "x", "--wait", "5"]);
    assert_eq!(python_close_code(&report), 1006, "{report}");
    assert_eq!(texts(&report), ["x"], "{report}");
    let closed = closed_event(&s.record);
    assert_eq!(closed["by"], "proxy", "{closed}");
    assert_eq!(closed["code"], 1006, "{closed}");

    let s = setup("reset", Upstream::Python, &["--reset-after", "300ms"]);
    let report = node_ws(&[&s.url, "--send", "x", "--wait", "5000"]);
    assert_eq!(node_close_code(&report), 1006, "{report}");
    // Measured from before the client connected, so the proxy's clock
    // (started at the upgrade) is inside it: a slow machine only makes it
    // longer. (From the client's "open", the slack would point the other
    // way: that comes after the proxy's clock started.)
    assert!(
        report["closed_after_start"].as_f64().unwrap() >= 0.3,
        "{report}"
    );
}

#[test]
fn reset_rule_on_a_message_gives_1006() {
    let rules = rules_file(
        "reset",
        "[[rule]]\nmatch = 'text == \"boom\"'\naction = \"reset\"\n",
    );
    let s = setup(
        "reset-rule",
        Upstream::Python,
        &["--rules", rules.to_str().unwrap()],
    );
    let report = node_ws(&[&s.url, "--send", "ok", "--send", "boom", "--wait", "5000"]);
    assert_eq!(node_close_code(&report), 1006, "{report}");
    let notes = notes(&s.record);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("reset both TCP connections")),
        "{notes:?}"
    );
}

#[test]
fn idle_timeout_closes_quiet_connections_like_a_load_balancer() {
    let s = setup("idle", Upstream::Python, &["--idle-timeout", "700ms"]);
    // Traffic at the start, then silence: the proxy hangs up on both.
    let report = python(&[
        "session", &s.url, "--send", "x", "--expect", "2", "--wait", "10",
    ]);
    assert_eq!(texts(&report), ["x"], "{report}");
    assert_eq!(python_close_code(&report), 1006, "{report}");
    assert!(report["elapsed_s"].as_f64().unwrap() >= 0.7, "{report}");
    let closed = closed_event(&s.record);
    assert_eq!(closed["by"], "proxy", "{closed}");

    // The proxy's clock starts when it passes the upgrade on, before the
    // client's own "open": measured from before the client connected, a
    // slow machine can only add to it.
    let s = setup("idle", Upstream::Node, &["--idle-timeout", "700ms"]);
    let report = node_ws(&[&s.url, "--wait", "10000"]);
    assert_eq!(node_close_code(&report), 1006, "{report}");
    assert!(
        report["closed_after_start"].as_f64().unwrap() >= 0.7,
        "{report}"
    );
}

#[test]
fn pause_stalls_one_direction() {
    let rules = rules_file(
        "pause",
        "[[rule]]\nmatch = 'dir == c2s && text == \"stall\"'\naction = \"pause\"\nduration = \"1s\"\ndirection = \"s2c\"\n",
    );
    let rules = rules.to_str().unwrap();
    let s = setup("pause", Upstream::Node, &["--rules", rules]);
    let report = python(&[
        "session", &s.url, "--send", "stall", "--send", "after", "--expect", "2",
    ]);
    assert_eq!(texts(&report), ["stall", "after"], "{report}");
    let sent = report["sent_at"][0].as_f64().unwrap();
    for message in report["received"].as_array().unwrap() {
        assert!(at(message) - sent >= 0.9, "{report}");
    }

    let s = setup("pause", Upstream::Python, &["--rules", rules]);
    let report = node_ws(&[&s.url, "--send", "stall", "--expect", "1"]);
    assert_eq!(texts(&report), ["stall"], "{report}");
    let sent = report["sent_at"][0].as_f64().unwrap();
    assert!(at(&report["received"][0]) - sent >= 0.9, "{report}");
}

/// The rate at which `bytes` arrived, from the client's own timings.
fn rate(report: &Value, bytes: f64) -> f64 {
    let sent = report["sent_at"][0].as_f64().unwrap();
    let arrived = at(&report["received"][0]);
    bytes / (arrived - sent)
}

#[test]
fn bandwidth_limit_is_kept_within_20_percent() {
    // Only the echo is paced: 128 KiB at 64 KiB/s is about 2 s.
    let rules = rules_file(
        "throttle",
        "[[rule]]\nmatch = 'dir == s2c'\naction = \"throttle\"\nrate = \"64KiB/s\"\n",
    );
    let rules = rules.to_str().unwrap();
    let size = 128 * 1024;
    let limit = 64.0 * 1024.0;

    let s = setup("throttle", Upstream::Node, &["--rules", rules]);
    let report = python(&[
        "session",
        &s.url,
        "--send-size",
        &size.to_string(),
        "--expect",
        "1",
        "--no-compress",
        "--wait",
        "20",
    ]);
    assert_eq!(report["received"][0]["len"], size, "{report}");
    let got = rate(&report, size as f64);
    eprintln!("python client through a 64 KiB/s throttle: {got:.0} B/s");
    assert!(
        (got - limit).abs() / limit < 0.2,
        "python: {got:.0} B/s for a limit of {limit}"
    );

    let s = setup("throttle", Upstream::Python, &["--rules", rules]);
    let report = node_ws(&[
        &s.url,
        "--send-size",
        &size.to_string(),
        "--expect",
        "1",
        "--no-compress",
        "--wait",
        "20000",
    ]);
    assert_eq!(report["received"][0]["len"], size, "{report}");
    let got = rate(&report, size as f64);
    eprintln!("node client through a 64 KiB/s throttle: {got:.0} B/s");
    assert!(
        (got - limit).abs() / limit < 0.2,
        "node: {got:.0} B/s for a limit of {limit}"
    );
}

#[test]
fn drop_rate_flag_drops_about_that_fraction() {
    // 200 messages at 50%: fewer than 60 or more than 140 arriving would be
    // a one-in-a-billion run of a fair coin.
    let s = setup("drop-rate", Upstream::Python, &["--drop-rate", "0.5"]);
    let mut args = vec!["session".to_owned(), s.url.clone()];
    for i in 0..200 {
        args.push("--send".to_owned());
        args.push(format!("m{i}"));
    }
    args.extend(["--wait".to_owned(), "3".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = python(&args);
    // Dropped both ways: each echo survives with probability 1/4.
    let got = texts(&report).len();
    assert!((20..=90).contains(&got), "{got} of 200 echoes arrived");
}

#[test]
fn rules_reload_on_open_connections_and_a_bad_file_keeps_the_old_rules() {
    // wscope serve's /stream sends a message every 100 ms; the client stays
    // connected while the rules file changes under the proxy.
    let (_server, upstream) = start_server(&[]);
    let path = rules_file("reload", "# no rules yet\n");
    let dir = temp_dir("rules-reload");
    let record = dir.join("record.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--rules",
            path.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    // Each step waits for the event that says the one before it happened,
    // not for time; the stream (100 messages, 10 s) only has to outlast
    // two reloads, each polled twice a second.
    let url = format!(
        "{}/stream?every=100ms&count=100",
        address_in(&line, "ws://")
    );
    let client =
        std::thread::spawn(move || python(&["session", &url, "--expect", "100", "--wait", "30"]));

    wait_record(&record, "a first message from the server", |e| {
        e["event"] == "message" && e["dir"] == "s2c"
    });
    std::fs::write(
        &path,
        "[[rule]]\naction = \"replace\"\nregex = '.+'\nwith = \"REWRITTEN\"\n",
    )
    .unwrap();
    wait_record(&record, "the note of the reload", |e| {
        note_says(e, "rules reloaded") && note_says(e, "1 rule in force")
    });
    // A broken file: reported with its line, the replace rule stays.
    std::fs::write(
        &path,
        "[[rule]]\naction = \"replace\"\nregex = '('\nwith = \"x\"\n",
    )
    .unwrap();
    let refused = wait_record(&record, "the note of the refused edit", |e| {
        note_says(e, "line 3") && note_says(e, "previous rules stay in force")
    });
    let report = client.join().unwrap();

    let got = texts(&report);
    assert_eq!(got.len(), 100, "{report}");
    assert_ne!(got[0], "REWRITTEN", "{report}");
    assert_eq!(
        got[99], "REWRITTEN",
        "the last messages come after the reload: {report}"
    );
    assert!(
        report.get("error").is_none(),
        "the connection survived: {report}"
    );
    // The replace rule was still in force after the broken edit: the
    // last message the proxy passed on came after that edit's note.
    let last = record_until(&record, |events| {
        events.iter().any(|e| e["event"] == "closed")
    })
    .into_iter()
    .rfind(|e| e["event"] == "message" && e["dir"] == "s2c")
    .expect("messages in the record");
    assert!(
        last["ts"].as_u64() > refused["ts"].as_u64(),
        "the last message ({last}) after the refused edit ({refused})"
    );
}

/// Whether an event is a note whose text contains `part`.
fn note_says(event: &Value, part: &str) -> bool {
    event["event"] == "note" && event["text"].as_str().is_some_and(|t| t.contains(part))
}

/// Waits until a record file holds an event `pick` accepts (failing the
/// test after `record_until`'s 15 s) and returns the first such event.
fn wait_record(record: &Path, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let events = record_until(record, |events| events.iter().any(&pick));
    events
        .into_iter()
        .find(|e| pick(e))
        .unwrap_or_else(|| panic!("{what}: not in {} in time", record.display()))
}

#[test]
fn a_bad_rules_file_stops_the_proxy_before_it_listens() {
    let path = rules_file(
        "bad",
        "[[rule]]\naction = \"drop\"\n\n[[rule]]\naction = \"delay\"\n",
    );
    let out = common::output_within(
        common::wscope()
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "ws://127.0.0.1:9",
            ])
            .args(["--rules", path.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    // 1 is an error wscope reported; a panic would be 101.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 5") && stderr.contains("needs `delay`"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "it never listened"
    );
}

#[test]
fn sigterm_closes_shaped_connections_with_1001_and_exits() {
    let rules = rules_file(
        "sigterm",
        "[[rule]]\nmatch = 'text == \"never\"'\naction = \"drop\"\n",
    );
    let mut s = setup(
        "sigterm",
        Upstream::Python,
        &["--rules", rules.to_str().unwrap()],
    );
    let url = s.url.clone();
    let client = std::thread::spawn(move || python(&["session", &url, "--wait", "20"]));
    record_until(&s.record, |events| {
        events.iter().any(|e| e["event"] == "open")
    });
    let pid = s.proxy.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // The proxy must exit on its own (a task holding the event stream once
    // kept it waiting forever).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = s.proxy.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let report = client.join().unwrap();
    assert_eq!(report["closed"]["rcvd"]["code"], 1001, "{report}");
    assert_eq!(
        report["closed"]["rcvd"]["reason"], "proxy shutting down",
        "{report}"
    );
    let closed = closed_event(&s.record);
    assert_eq!(closed["by"], "proxy", "{closed}");
    assert_eq!(closed["code"], 1001, "{closed}");
}

#[test]
fn a_message_in_the_same_segment_as_the_101_is_judged_too() {
    // A server that writes its switching response and a first message in
    // one write: the shaping relay must cut frames from the first byte
    // after the response, not from its first read of its own.
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("ws://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            request.push(byte[0]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .or_else(|| {
                request
                    .lines()
                    .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            })
            .expect("a key")
            .trim()
            .to_owned();
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            wscope_proto::handshake::accept_key(&key)
        )
        .into_bytes();
        for text in ["welcome", "secret plans"] {
            out.push(0x81);
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        }
        tcp.write_all(&out).unwrap();
        // Hold the connection until the client goes.
        let _ = tcp.read(&mut [0u8; 64]);
    });
    let rules = rules_file(
        "early",
        "[[rule]]\nmatch = 'text contains \"secret\"'\naction = \"replace\"\nregex = 'secret'\nwith = \"public\"\n",
    );
    let dir = temp_dir("rules-early");
    let record = dir.join("record.jsonl");
    let (_proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--rules",
            rules.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
        &[],
    );
    let url = format!("{}/", address_in(&line, "ws://"));
    let report = python(&[
        "session",
        &url,
        "--expect",
        "2",
        "--no-compress",
        "--close-timeout",
        "1",
    ]);
    assert_eq!(texts(&report), ["welcome", "public plans"], "{report}");
    drop(server);
}

#[test]
fn a_message_over_the_hold_budget_is_refused_with_1013() {
    let rules = rules_file(
        "budget",
        "[[rule]]\nmatch = 'text == \"never\"'\naction = \"drop\"\n",
    );
    let s = setup(
        "hold-budget",
        Upstream::Python,
        &["--rules", rules.to_str().unwrap(), "--hold-budget", "64K"],
    );
    // A small message passes; one bigger than what all connections may
    // hold cannot be held for the rules: the client hears 1013. The big
    // one goes once the small one's echo is back (the refusal closes both
    // ways at once, and would race an echo still on its way).
    let report = node_ws(&[
        &s.url,
        "--no-compress",
        "--in-turn",
        "--send",
        "small",
        "--send-size",
        "100000",
        "--wait",
        "5000",
    ]);
    assert_eq!(texts(&report)[0], "small", "{report}");
    assert_eq!(node_close_code(&report), 1013, "{report}");
    let notes = notes(&s.record);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("memory for held messages (64.0 KiB")),
        "{notes:?}"
    );
}

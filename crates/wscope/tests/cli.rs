//! The binary's plain commands, run as a user would.

mod common;

use common::wscope;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = wscope().args(args).output().expect("wscope runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_close_codes_and_statuses() {
    let (code, out, _) = run(&["explain", "1006"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Abnormal Closure") && out.contains("never sent"),
        "{out}"
    );
    let (code, out, _) = run(&["explain", "403"]);
    assert_eq!(code, 0);
    assert!(out.contains("Forbidden") && out.contains("Origin"), "{out}");
    let (code, out, _) = run(&["explain", "1004"]);
    assert_eq!(code, 0);
    assert!(out.contains("not allowed in a close frame"), "{out}");
    let (_, out, _) = run(&["explain", "4001", "--json"]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(json["code"], 4001);
    assert_eq!(json["on_the_wire"], "may be sent in a close frame");
    let (code, _, err) = run(&["explain", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a number"), "{err}");
    let (code, _, err) = run(&["explain", "42"]);
    assert_eq!(code, 2);
    assert!(err.contains("neither"), "{err}");
}

#[test]
fn demo_runs_end_to_end() {
    let (code, out, err) = run(&["demo"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("< hello, wscope"), "{out}");
    assert!(err.contains("1000 (Normal Closure)"), "{err}");
}

#[test]
fn read_filters_a_record_and_sums_it_up() {
    let (_server, url) = common::start_server(&[]);
    let dir = common::temp_dir("read");
    let record = dir.join("session.jsonl");
    let record = record.to_str().unwrap();
    let (code, _, err) = run(&[
        "connect",
        "--quiet",
        "--record",
        record,
        "--send",
        r#"{"type":"subscribe","channel":"a"}"#,
        "--send",
        r#"{"type":"ping"}"#,
        "--send",
        r#"{"type":"subscribe","channel":"b"}"#,
        "--expect",
        "3",
        &format!("{url}/echo"),
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = run(&["read", record]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().filter(|l| l.contains(" > ")).count(),
        3,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" < {")).count(),
        3,
        "{out}"
    );

    let (code, out, _) = run(&[
        "read",
        record,
        "--filter",
        r#"dir == s2c && json.type == "subscribe""#,
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].ends_with(r#"< {"type":"subscribe","channel":"a"}"#),
        "{out}"
    );
    assert!(
        lines[1].ends_with(r#"< {"type":"subscribe","channel":"b"}"#),
        "{out}"
    );

    let (code, out, _) = run(&["read", record, "--json", "--filter", "event == closed"]);
    assert_eq!(code, 0);
    let closed: serde_json::Value = serde_json::from_str(out.trim()).expect("one event");
    assert_eq!(closed["code"], 1000);

    let (code, out, _) = run(&["read", record, "--stats"]);
    assert_eq!(code, 0);
    assert!(out.contains("subscribe×4, ping×2"), "{out}");
    let bytes = r#"{"type":"subscribe","channel":"a"}"#.len() * 2 + r#"{"type":"ping"}"#.len();
    assert!(out.contains(&format!("3 / {bytes}")), "{out}");

    let (code, _, err) = run(&["read", record, "--filter", "opcode == txt"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("opcode == txt\n          ^ txt is not an opcode"),
        "{err}"
    );
    let (code, _, err) = run(&["read", record, "--filter", "colour == red"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field \"colour\""), "{err}");
}

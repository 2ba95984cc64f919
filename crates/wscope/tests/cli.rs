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

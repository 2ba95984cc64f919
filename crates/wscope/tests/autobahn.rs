//! The Autobahn WebSocket conformance cases, run by `kosoku` (PyPI), in both
//! directions: kosoku drives `wscope serve`, and `wscope connect --echo` is
//! driven by kosoku's fuzzing server. Every case runs; a case that ends
//! FAILED, WRONG CODE, UNCLEAN, or anything else but OK / NON-STRICT /
//! INFORMATIONAL fails the test. Reports stay in `reports/autobahn/`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Running, repo_root, start_server, venv_bin, wscope};

/// Cases the runner itself cannot run, with its own error message as the
/// reason. Empty: every case runs, and every case must pass.
const RUNNER_CANNOT_RUN: &[(&str, &str)] = &[];

fn report_dir(side: &str) -> PathBuf {
    let dir = repo_root().join("reports").join("autobahn").join(side);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("report directory can be created");
    dir
}

/// Reads kosoku's index.json and returns the cases that did not pass.
fn failures(dir: &Path) -> (usize, Vec<String>) {
    let index = std::fs::read_to_string(dir.join("index.json"))
        .unwrap_or_else(|err| panic!("kosoku wrote no index.json in {}: {err}", dir.display()));
    let index: serde_json::Value = serde_json::from_str(&index).expect("index.json is JSON");
    let agents = index.as_object().expect("index.json maps agents to cases");
    assert_eq!(
        agents.len(),
        1,
        "one agent in the report: {:?}",
        agents.keys()
    );
    let cases: BTreeMap<&String, &serde_json::Value> = agents
        .values()
        .next()
        .and_then(|v| v.as_object())
        .expect("cases")
        .iter()
        .collect();
    let mut bad = Vec::new();
    for (case, result) in &cases {
        if RUNNER_CANNOT_RUN.iter().any(|(id, _)| id == case) {
            continue;
        }
        let behavior = result["behavior"].as_str().unwrap_or("?");
        let close = result["behaviorClose"].as_str().unwrap_or("?");
        let behavior_ok = matches!(behavior, "OK" | "NON-STRICT" | "INFORMATIONAL");
        let close_ok = matches!(close, "OK" | "INFORMATIONAL");
        if !behavior_ok || !close_ok {
            bad.push(format!("{case}: behavior {behavior}, close {close}"));
        }
    }
    (cases.len(), bad)
}

#[test]
fn server_passes_the_autobahn_suite() {
    let (_server, url) = start_server(&[]);
    let dir = report_dir("server");
    let status = Command::new(venv_bin("kosoku"))
        .args([
            "-m",
            "fuzzingclient",
            common::host_port(&url),
            "-p",
            "2",
            "-o",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("kosoku runs");
    let (total, bad) = failures(&dir);
    assert!(total >= 517, "the whole suite ran: {total} cases");
    assert!(
        bad.is_empty(),
        "{} of {total} cases did not pass:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(status.success(), "kosoku exited with {status}");
}

#[test]
fn client_passes_the_autobahn_suite() {
    let dir = report_dir("client");
    let mut kosoku = Command::new(venv_bin("kosoku"))
        .args(["-m", "fuzzingserver", "127.0.0.1:0", "-o"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kosoku starts");
    let mut stderr = BufReader::new(kosoku.stderr.take().expect("stderr is piped"));
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("kosoku names its address");
    let base = common::ws_url_in(&line);
    // Keep draining kosoku's stderr so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        while stderr.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
        rest
    });
    let kosoku = Running {
        child: kosoku,
        stdout: None,
    };

    let count = wscope()
        .args(["connect", &format!("{base}/getCaseCount")])
        .stdin(Stdio::null())
        .output()
        .expect("wscope connect runs");
    let count: usize = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("case count from getCaseCount: {count:?}"));
    assert!(count >= 517, "the whole suite is offered: {count} cases");

    // Cases are independent connections; two workers halve the wall time
    // spent in the cases' own timeouts.
    let next_case = std::sync::atomic::AtomicUsize::new(1);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let case = next_case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if case > count {
                        break;
                    }
                    let url = format!("{base}/runCase?case={case}&agent=wscope");
                    let out = wscope()
                        .args(["connect", "--echo", "--quiet", "--compress", &url])
                        .stdin(Stdio::null())
                        .stderr(Stdio::piped())
                        .output()
                        .expect("wscope connect runs");
                    // The exit status depends on the case (many end in a
                    // deliberate protocol error); the report judges it.
                    // Panics never pass.
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        !stderr.contains("panicked"),
                        "case {case}: wscope panicked:\n{stderr}"
                    );
                }
            });
        }
    });
    let update = wscope()
        .args(["connect", &format!("{base}/updateReports?agent=wscope")])
        .stdin(Stdio::null())
        .output()
        .expect("wscope connect runs");
    assert!(
        update.status.code().is_some(),
        "updateReports connection ran"
    );

    let mut kosoku = kosoku;
    let status = kosoku
        .child
        .wait()
        .expect("kosoku exits after updateReports");
    let log = drain.join().unwrap_or_default();
    let (total, bad) = failures(&dir);
    assert_eq!(total, count, "a report for every case");
    assert!(
        bad.is_empty(),
        "{} of {total} cases did not pass:\n{}\n{log}",
        bad.len(),
        bad.join("\n")
    );
    assert!(status.success(), "kosoku exited with {status}:\n{log}");
}

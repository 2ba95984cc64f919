//! A recording `wscope proxy` killed with SIGKILL while traffic flows
//! through it (a Python `websockets` client, `wscope serve` streaming
//! upstream): `wscope read` gives back every event whose line was written
//! whole, says when the last line was cut, and exits 0 (docs/FORMAT.md:
//! a crash loses at most the batch in flight, never what was written).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Running, address_in, output_within, peer_script, record_until, start_proxy, start_server,
    temp_dir, venv_bin,
};
use serde_json::Value;

/// `wscope read FILE --json`: exit status, events, stderr.
fn read(file: &Path) -> (Option<i32>, Vec<Value>, String) {
    let out = output_within(
        common::wscope().arg("read").arg(file).arg("--json"),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("read printed {l:?}: {e}")))
        .collect();
    (out.status.code(), events, stderr)
}

/// The events of every whole line of a record file (after its header).
fn whole_lines(bytes: &[u8]) -> Vec<Value> {
    let whole = &bytes[..bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)];
    whole
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("a whole line is an event"))
        .collect()
}

#[test]
fn a_proxy_killed_mid_stream_leaves_a_record_read_up_to_its_last_whole_event() {
    let (_server, upstream) = start_server(&[]);
    let dir = temp_dir("record-crash");
    let record = dir.join("session.jsonl");
    let (mut proxy, line) = start_proxy(
        &[
            "--upstream",
            &upstream,
            "--record",
            record.to_str().unwrap(),
            "--max-payload",
            "65536",
        ],
        &[],
    );
    // 60 KB messages (kept whole: --max-payload 65536) every millisecond,
    // for far longer than the test runs. A batch usually reaches the file
    // in one write, so the kill mostly falls between lines; where it falls
    // inside one, that is checked too, and the cut below makes sure of it.
    let url = format!(
        "{}/stream?every=1ms&size=60000&count=1000000",
        address_in(&line, "ws://")
    );
    let client = Command::new(venv_bin("python"))
        .arg(peer_script("serve_client.py"))
        .args(["session", &url, "--expect", "1000000", "--wait", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the python client starts");
    let _client = Running {
        child: client,
        stdout: None,
    };
    let flowing = record_until(&record, |events| {
        events.iter().filter(|e| e["event"] == "message").count() >= 300
    });
    assert!(
        flowing.iter().filter(|e| e["event"] == "message").count() >= 300,
        "traffic flows through the proxy: {} events recorded",
        flowing.len()
    );
    // Child::kill is SIGKILL: no flush, no close, no handler runs.
    proxy.child.kill().expect("SIGKILL the proxy");
    let status = proxy.child.wait().expect("the proxy is gone");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );

    let bytes = std::fs::read(&record).expect("the record file");
    let written = whole_lines(&bytes);
    assert!(written.len() >= 300, "{} whole events", written.len());
    let (code, events, stderr) = read(&record);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        events.len(),
        written.len(),
        "every whole line read back: {stderr}"
    );
    assert!(events == written, "the events read are the lines written");
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let cut_note = format!("line {} of {} is cut off", lines + 1, record.display());
    eprintln!(
        "killed after {} whole events; the file ends {}",
        written.len(),
        if bytes.ends_with(b"\n") {
            "with a whole line"
        } else {
            "inside a line"
        }
    );
    if bytes.ends_with(b"\n") {
        assert!(!stderr.contains("cut off"), "{stderr}");
    } else {
        assert!(stderr.contains(&cut_note), "{cut_note:?} in {stderr:?}");
    }

    // Where the kill fell between two batches, the cut is made here: the
    // same file ending in the middle of its last whole line.
    let whole_end = bytes.iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let last_start = bytes[..whole_end - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("several lines")
        + 1;
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, &bytes[..(last_start + whole_end) / 2]).unwrap();
    let kept = whole_lines(&bytes[..last_start]);
    let (code, events, stderr) = read(&cut);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(events == kept, "{} of {} events", events.len(), kept.len());
    let line_no = bytes[..last_start].iter().filter(|&&b| b == b'\n').count() + 1;
    let cut_note = format!("line {line_no} of {} is cut off", cut.display());
    assert!(stderr.contains(&cut_note), "{cut_note:?} in {stderr:?}");
}

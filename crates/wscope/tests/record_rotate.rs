//! `--record-max-size` and `--record-keep`: `wscope serve` records a real
//! Python `websockets` client's session into a rotated set of files, and
//! `wscope read` puts the set back together.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const LIMIT: u64 = 4096;

/// The texts the client sends, long enough that the session fills
/// several 4 KiB files.
fn sent() -> Vec<String> {
    (0..60)
        .map(|i| format!("m{i:03} {}", "y".repeat(60)))
        .collect()
}

/// Runs `serve --record DIR/serve.jsonl` with `extra`, one client sending
/// [`sent`] and closing, and waits until the set holds its `closed`.
/// Returns the files of the set, by name as a shell glob lists them.
fn record_session(dir: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let base = dir.join("serve.jsonl");
    let mut args = vec!["--record", base.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (_server, url) = start_server(&args);
    let mut client = vec!["session".to_owned(), format!("{url}/echo")];
    for text in sent() {
        client.extend(["--send".to_owned(), text]);
    }
    client.extend(["--expect", "60", "--close"].map(String::from));
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    let report = python(&client);
    assert_eq!(texts(&report).len(), 60, "{report}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let files = glob(dir);
        let closed = files.iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains(r#""event":"closed""#)
        });
        if closed {
            return files;
        }
        assert!(
            Instant::now() < deadline,
            "no closed event in {files:?} after 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `serve*.jsonl` gives in a shell: names in byte order.
fn glob(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// The header and events of one file.
fn lines(path: &Path) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(|l| {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{path:?}: {l:?}: {e}"))
    });
    let header = lines.next().expect("a header line");
    (header, lines.collect())
}

fn part_of(path: &Path) -> u64 {
    lines(path).0["rotation"]["part"].as_u64().unwrap()
}

fn client_texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "c2s")
        .map(|e| e["payload"]["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_session_rotates_into_files_that_stand_alone_and_read_puts_back_in_order() {
    let dir = temp_dir("record-rotate");
    let files = record_session(&dir, &["--record-max-size", "4K"]);
    assert!(files.len() >= 4, "{files:?}");

    let mut by_part: Vec<(u64, PathBuf)> = files.iter().map(|f| (part_of(f), f.clone())).collect();
    by_part.sort();
    let parts: Vec<u64> = by_part.iter().map(|(p, _)| *p).collect();
    assert_eq!(parts, (0..files.len() as u64).collect::<Vec<_>>());
    assert_eq!(by_part[0].1, dir.join("serve.jsonl"));
    assert_eq!(by_part[2].1, dir.join("serve.2.jsonl"));

    let (_, first) = lines(&by_part[0].1);
    let open = first
        .iter()
        .find(|e| e["event"] == "open")
        .expect("an open in the first file")
        .clone();
    let set = lines(&by_part[0].1).0["rotation"]["set"].clone();
    for (part, file) in &by_part {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= LIMIT, "{file:?}: {size} bytes");
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file:?}");
        let (header, events) = lines(file);
        assert_eq!(header["format"], "wscope-record", "{file:?}");
        assert_eq!(header["rotation"]["set"], set, "{file:?}");
        if *part > 0 && events.iter().any(|e| e["event"] != "closed") {
            // The connection was running: this file starts with its open.
            assert_eq!(header["rotation"]["repeated"], 1, "{file:?}");
            assert_eq!(events[0], open, "{file:?}");
        }
    }

    // Given in the shell's order (serve.1, serve.10, ..., serve.jsonl
    // last), read gives every event once, in the order recorded.
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let events = read_json(&args, None);
    assert_eq!(client_texts(&events), sent());
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!((count("open"), count("closed")), (1, 1));
    let messages = events.iter().filter(|e| e["event"] == "message").count();
    assert_eq!(messages, 120);
    let times: Vec<u64> = events.iter().map(|e| e["ts"].as_u64().unwrap()).collect();
    assert!(times.is_sorted(), "out of order");

    // One file alone still says which connection its messages belong to.
    let alone = read_json(&[by_part[1].1.as_os_str()], None);
    assert_eq!(alone[0]["event"], "open");
}

#[test]
fn keep_deletes_the_oldest_files() {
    let dir = temp_dir("record-keep");
    let files = record_session(&dir, &["--record-max-size", "4K", "--record-keep", "2"]);
    assert_eq!(files.len(), 2, "{files:?}");
    let mut parts: Vec<u64> = files.iter().map(|f| part_of(f)).collect();
    parts.sort();
    assert!(parts[0] >= 2, "{parts:?}: the oldest were not deleted");
    assert_eq!(parts[0] + 1, parts[1]);
    assert!(!dir.join("serve.jsonl").exists());
    // What is left reads as one: the newest messages, each once.
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let events = read_json(&args, None);
    let texts = client_texts(&events);
    assert!(!texts.is_empty());
    assert!(sent().ends_with(&texts), "{texts:?}");
    assert_eq!(events.iter().filter(|e| e["event"] == "open").count(), 1);
}

#[test]
fn bad_rotation_flags_are_refused_before_anything_starts() {
    for (args, says) in [
        (
            &["--record", "x.jsonl", "--record-max-size", "4Q"][..],
            "unknown unit",
        ),
        (
            &["--record", "x.jsonl", "--record-keep", "2"][..],
            "--record-max-size",
        ),
        (&["--record-max-size", "4K"][..], "--record"),
        (
            &[
                "--record",
                "x.jsonl",
                "--record-max-size",
                "4K",
                "--record-keep",
                "0",
            ][..],
            "0",
        ),
    ] {
        let out = output_within(
            wscope()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(args),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn read_refuses_to_rotate_over_its_own_inputs() {
    let dir = temp_dir("record-rotate-self");
    let header = r#"{"format":"wscope-record","version":1}"#;
    let part = dir.join("out.1.jsonl");
    std::fs::write(&part, format!("{header}\n")).unwrap();
    let out = output_within(
        wscope()
            .arg("read")
            .arg(&part)
            .arg("--record")
            .arg(dir.join("out.jsonl"))
            .args(["--record-max-size", "4K"]),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 1, an error said before anything is read (a panic would be 101).
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is also an input"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&part).unwrap(),
        format!("{header}\n")
    );
}

//! `wscope read CAPTURE --keylog FILE` when the key log does not fit:
//! captured between real peers that log their own secrets
//! (tests/peers/capture_peers.py, Python `websockets` over TLS).
//!
//! - a key log with lines that do not parse: each named by its line
//!   number, the rest still used (the connection is decrypted);
//! - a key log whose secrets are wrong for the connection: said once, and
//!   nothing decrypted shown;
//! - a key log of another session: the connection is said to have no
//!   line, and the summary counts the session that matched nothing;
//! - a CBC suite: named as not decryptable with the reason, even with its
//!   key log, and without advice to get a key log;
//! - RSA key exchange: without its key log named as such; with it
//!   decrypted (a master secret does not care how it was agreed).
//!
//! The decrypted cases with good key logs, against the peers and tshark,
//! are in capture.rs.
//!
//! - TLS 1.3 key updates, asked for by `openssl s_client` (its `K`
//!   command) between messages: every message still decrypted, frame by
//!   frame as tshark has them;
//! - a segment lost in the middle of a decrypted stream: its records are
//!   lost, decryption resumes at the next record (the sequence numbers
//!   skipped found by trying), and every other frame is still there;
//! - Chromium with --ssl-key-log-file on a wss:// page (Node `ws` server):
//!   every message decrypted and inflated as the page and the server saw
//!   it, frame by frame as tshark decrypts it with the same key log.
//!
//! Needs root (tcpdump on `lo`), tcpdump, tshark, Python `websockets` and
//! trustme, Node.js with `ws` and playwright-core, Debian's chromium.

mod common;

use common::TimedOutput;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{PeerCapture, capture_peers, temp_dir, wscope};

/// A capture of `scenario` and the key log its client wrote.
fn captured(scenario: &str, dir: &Path) -> (PeerCapture, PathBuf) {
    let keylog = dir.join(format!("{scenario}.keys"));
    let cap = capture_peers(
        scenario,
        dir,
        &["--keylog", keylog.to_str().expect("a UTF-8 temp path")],
    );
    (cap, keylog)
}

/// What `wscope read PCAP --keylog KEYLOG --json` printed: events, stderr.
fn read(pcap: &Path, keylog: &Path) -> (Vec<Value>, String) {
    let out = wscope()
        .arg("read")
        .arg(pcap)
        .arg("--keylog")
        .arg(keylog)
        .arg("--json")
        .timed_output()
        .expect("wscope read runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "wscope read failed: {stderr}");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON Lines"))
        .collect();
    (events, stderr)
}

fn notes(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The client's messages, as the peers' log and as wscope decrypted them.
fn client_messages(cap: &PeerCapture, events: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let sent: Vec<Value> = cap.log["client"]["sent_messages"]
        .as_array()
        .expect("the peer log")
        .iter()
        .map(|m| {
            m.get("text")
                .cloned()
                .unwrap_or_else(|| m["base64"].clone())
        })
        .collect();
    let shown: Vec<Value> = events
        .iter()
        .filter(|e| e["event"] == "message" && e["dir"] == "c2s")
        .map(|e| {
            e["payload"]
                .get("text")
                .cloned()
                .unwrap_or_else(|| e["payload"]["base64"].clone())
        })
        .collect();
    (sent, shown)
}

#[test]
fn bad_lines_are_named_and_the_rest_still_decrypts() {
    let dir = temp_dir("keylog-bad-lines");
    let (cap, keylog) = captured("tls", &dir);
    let good = std::fs::read_to_string(&keylog).expect("the client logged its keys");
    let mut lines: Vec<&str> = good.lines().collect();
    assert!(lines.len() >= 4, "TLS 1.3 logs five secrets: {good}");
    lines.insert(1, "CLIENT_RANDOM not-hex 00");
    lines.insert(3, "a line of nothing");
    let damaged = dir.join("damaged.keys");
    std::fs::write(&damaged, lines.join("\n")).unwrap();
    let (events, stderr) = read(&cap.pcap, &damaged);
    for line in [2, 4] {
        let want = format!("key log {}, line {line}: ", damaged.display());
        assert!(stderr.contains(&want), "want {want:?} on stderr: {stderr}");
    }
    assert!(!stderr.contains(", line 1:") && !stderr.contains(", line 3:"));
    let (sent, shown) = client_messages(&cap, &events);
    assert!(!sent.is_empty());
    assert_eq!(sent, shown, "decrypted with the good lines");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_secrets_are_said_once_and_nothing_is_made_up() {
    let dir = temp_dir("keylog-wrong");
    let (cap, keylog) = captured("tls", &dir);
    let good = std::fs::read_to_string(&keylog).unwrap();
    // The same lines with every secret's first digit changed.
    let wrong: String = good
        .lines()
        .map(|line| {
            let mut fields: Vec<String> = line.split(' ').map(str::to_owned).collect();
            if let Some(secret) = fields.get_mut(2) {
                let first = if secret.starts_with('0') { "1" } else { "0" };
                secret.replace_range(..1, first);
            }
            fields.join(" ") + "\n"
        })
        .collect();
    let wrong_path = dir.join("wrong.keys");
    std::fs::write(&wrong_path, wrong).unwrap();
    let (events, _) = read(&cap.pcap, &wrong_path);
    let notes = notes(&events);
    let said: Vec<&String> = notes
        .iter()
        .filter(|n| n.contains("do not decrypt it"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {notes:?}");
    assert!(
        !events
            .iter()
            .any(|e| ["open", "frame", "message"].contains(&e["event"].as_str().unwrap_or(""))),
        "nothing decrypted with wrong secrets: {events:?}"
    );
    // The good key log decrypts the same capture: the check can tell.
    let (events, _) = read(&cap.pcap, &keylog);
    let (sent, shown) = client_messages(&cap, &events);
    assert_eq!(sent, shown);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_key_log_of_another_session_matches_nothing() {
    let dir = temp_dir("keylog-other");
    let (cap, _) = captured("tls", &dir);
    let other_dir = dir.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (_, other_keys) = captured("tls12", &other_dir);
    let (events, stderr) = read(&cap.pcap, &other_keys);
    let notes = notes(&events);
    assert!(
        matches!(notes.as_slice(), [one] if one.contains("no key log line has the secrets for client random") && one.contains("SSLKEYLOGFILE")),
        "{notes:?}"
    );
    assert!(
        stderr.contains(
            "key log: secrets for 1 TLS sessions, 1 of them for no connection in this capture"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("1 TLS not decrypted (ws.test)"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cbc_suite_is_named_as_not_decryptable_even_with_its_key_log() {
    let dir = temp_dir("keylog-cbc");
    let (cap, keylog) = captured("tls12-cbc", &dir);
    let (events, stderr) = read(&cap.pcap, &keylog);
    let notes = notes(&events);
    assert!(
        matches!(notes.as_slice(), [one] if one.contains("TLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: a CBC suite") && !one.contains("SSLKEYLOGFILE")),
        "{notes:?}"
    );
    // Its key log was for this connection, even if it could not be used.
    assert!(
        stderr.contains("key log: secrets for 1 TLS sessions")
            && !stderr.contains("for no connection"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rsa_key_exchange_needs_the_key_log_and_decrypts_with_it() {
    let dir = temp_dir("keylog-rsa");
    let (cap, keylog) = captured("tls12-rsa", &dir);
    // Another session's key log: decryption is tried, and fails for RSA.
    let other = dir.join("other.keys");
    std::fs::write(
        &other,
        format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48)),
    )
    .unwrap();
    let (events, _) = read(&cap.pcap, &other);
    let without = notes(&events);
    assert!(
        matches!(without.as_slice(), [one] if one.contains("RSA key exchange (TLS_RSA_WITH_AES_128_GCM_SHA256) and no key log line")),
        "{without:?}"
    );
    let (events, _) = read(&cap.pcap, &keylog);
    assert!(
        notes(&events)
            .iter()
            .any(|n| n
                .ends_with("TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256, decrypted with the key log")),
        "{:?}",
        notes(&events)
    );
    let (sent, shown) = client_messages(&cap, &events);
    assert!(!sent.is_empty());
    assert_eq!(sent, shown);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each direction's WebSocket frames as (opcode, fin, payload length), by
/// tshark with the key log.
fn tshark_frames(cap: &PeerCapture, keylog: &Path) -> Vec<(String, u64, bool, u64)> {
    let out = std::process::Command::new(common::system_tool("tshark", "tshark"))
        .arg("-r")
        .arg(&cap.pcap)
        .args(["-d", &format!("tcp.port=={},tls", cap.port)])
        .args(["-d", &format!("tls.port=={},http", cap.port)])
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(["-o", "gui.max_tree_depth:100000"])
        .args(["-Y", "websocket", "-T", "json", "--no-duplicate-keys"])
        .args(["-J", "tcp websocket"])
        .timed_output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets: Value = serde_json::from_slice(&out.stdout).expect("tshark's JSON");
    let mut frames = Vec::new();
    for packet in packets.as_array().expect("packets") {
        let layers = &packet["_source"]["layers"];
        let dst: u16 = layers["tcp"]["tcp.dstport"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let dir = if dst == cap.port { "c2s" } else { "s2c" };
        let list = match &layers["websocket"] {
            Value::Array(list) => list.clone(),
            one => vec![one.clone()],
        };
        for ws in list {
            let field = |name: &str| ws.get(name).and_then(Value::as_str);
            let len = field("websocket.payload_length_ext_64")
                .or(field("websocket.payload_length_ext_16"))
                .or(field("websocket.payload_length"))
                .expect("a payload length")
                .parse()
                .unwrap();
            frames.push((
                dir.to_owned(),
                field("websocket.opcode").unwrap().parse().unwrap(),
                field("websocket.fin") == Some("1"),
                len,
            ));
        }
    }
    frames
}

#[test]
fn chromium_wss_decrypted_with_its_ssl_key_log_file() {
    let dir = temp_dir("keylog-chromium");
    let (cap, keylog) = captured("chromium", &dir);
    let (events, stderr) = read(&cap.pcap, &keylog);
    // The page's own connection and the WebSocket's, both decrypted.
    assert!(
        stderr.contains("2 TLS (ws.test), 2 of them decrypted"),
        "{stderr}"
    );
    let opens: Vec<&Value> = events.iter().filter(|e| e["event"] == "open").collect();
    let [open] = opens.as_slice() else {
        panic!("one WebSocket: {opens:?}")
    };
    let url = format!("wss://ws.test:{}/ws", cap.port);
    assert_eq!(open["url"], url.as_str());
    let conn = open["conn"].clone();
    same_messages(&cap, &events, &conn);
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "message")
            .any(|e| e["compressed"] == true),
        "Chromium and ws agreed on permessage-deflate: some message is compressed"
    );
    let closes: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| e["event"] == "close")
        .map(|e| (e["dir"].as_str().unwrap(), e["code"].as_u64().unwrap()))
        .collect();
    assert_eq!(closes, [("c2s", 1000), ("s2c", 1000)]);
    assert_eq!(cap.log["client"]["close_code"], 1000);
    // Frame by frame as tshark decrypts them with the same key log.
    let mine = frames(&events);
    let theirs = tshark_frames(&cap, &keylog);
    assert!(!theirs.is_empty(), "tshark decrypted no WebSocket frame");
    assert_eq!(mine, theirs, "wscope's frames against tshark's");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each direction's messages in `conn`, as wscope decrypted them, equal
/// what the sender sent and the receiver received.
fn same_messages(cap: &PeerCapture, events: &[Value], conn: &Value) {
    for (dir, sender) in [("c2s", "client"), ("s2c", "server")] {
        let sent: Vec<Value> = cap.log[sender]["sent_messages"].as_array().unwrap().clone();
        let shown: Vec<Value> = events
            .iter()
            .filter(|e| e["event"] == "message" && e["dir"] == dir && e["conn"] == *conn)
            .map(|e| {
                let mut m = serde_json::json!({ "opcode": e["opcode"] });
                let payload = &e["payload"];
                match payload.get("text") {
                    Some(text) => m["text"] = text.clone(),
                    None => m["base64"] = payload["base64"].clone(),
                }
                m
            })
            .collect();
        assert!(sent.len() >= 3, "{sender} sent {sent:?}");
        assert_eq!(shown, sent, "{dir}: wscope against what the {sender} sent");
        let receiver = if sender == "client" {
            "server"
        } else {
            "client"
        };
        assert_eq!(
            cap.log[receiver]["received_messages"].as_array().unwrap(),
            &sent
        );
    }
}

/// wscope's frames as (direction, opcode, fin, payload length).
fn frames(events: &[Value]) -> Vec<(String, u64, bool, u64)> {
    events
        .iter()
        .filter(|e| e["event"] == "frame")
        .map(|e| {
            (
                e["dir"].as_str().unwrap().to_owned(),
                e["opcode_bits"].as_u64().unwrap(),
                e["fin"].as_bool().unwrap(),
                e["payload"]["len"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn tls13_key_updates_from_openssl_s_client() {
    let dir = temp_dir("keylog-key-update");
    let (cap, keylog) = captured("openssl-key-update", &dir);
    let keys = std::fs::read_to_string(&keylog).unwrap();
    // OpenSSL logs each updated secret: proof the updates happened.
    let updates = keys
        .lines()
        .filter(|l| l.contains("TRAFFIC_SECRET_N"))
        .count();
    assert!(updates >= 4, "two updates each way: {keys}");
    let (events, stderr) = read(&cap.pcap, &keylog);
    assert!(
        !stderr.contains(", line "),
        "every key log line is taken: {stderr}"
    );
    same_messages(&cap, &events, &Value::from("c1"));
    let theirs = tshark_frames(&cap, &keylog);
    assert_eq!(theirs.len(), 6, "tshark follows the key updates too");
    assert_eq!(frames(&events), theirs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lost_tls_segment_costs_its_records_and_no_more() {
    let dir = temp_dir("keylog-hole");
    let (cap, keylog) = captured("node-tls13-aes128", &dir);
    let (events, _) = read(&cap.pcap, &keylog);
    // The packets carrying the client's WebSocket frames, by tshark.
    let out = std::process::Command::new(common::system_tool("tshark", "tshark"))
        .arg("-r")
        .arg(&cap.pcap)
        .args(["-d", &format!("tcp.port=={},tls", cap.port)])
        .args(["-d", &format!("tls.port=={},http", cap.port)])
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(["-Y", &format!("websocket && tcp.dstport == {}", cap.port)])
        .args([
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
        ])
        .timed_output()
        .expect("tshark runs");
    let rows: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (number, time) = line.split_once('\t').expect("two fields");
            let (secs, frac) = time.split_once('.').expect("a fraction");
            let micros =
                secs.parse::<u64>().unwrap() * 1_000_000 + frac[..6].parse::<u64>().unwrap();
            (number.to_owned(), micros)
        })
        .collect();
    assert!(rows.len() >= 6, "the client's frames in packets: {rows:?}");
    // One in the middle goes missing.
    let (number, lost_ts) = rows[rows.len() / 2].clone();
    let damaged = dir.join("hole.pcap");
    let status = std::process::Command::new(common::system_tool("editcap", "tshark"))
        .arg(&cap.pcap)
        .arg(&damaged)
        .arg(&number)
        .status()
        .expect("editcap runs");
    assert!(status.success());
    let (after, _) = read(&damaged, &keylog);
    let notes = notes(&after);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("c2s") && n.contains("bytes of the TLS stream are missing")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("decryption resumes at TLS record")),
        "{notes:?}"
    );
    // Every frame but those of the lost packet, in both directions.
    let want: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "frame" && !(e["dir"] == "c2s" && e["ts"] == lost_ts))
        .map(|e| {
            (
                e["dir"].clone(),
                e["opcode_bits"].clone(),
                e["payload"]["len"].clone(),
            )
        })
        .collect();
    let got: Vec<_> = after
        .iter()
        .filter(|e| e["event"] == "frame")
        .map(|e| {
            (
                e["dir"].clone(),
                e["opcode_bits"].clone(),
                e["payload"]["len"].clone(),
            )
        })
        .collect();
    assert!(
        want.len() < frames(&events).len(),
        "the lost packet carried a frame"
    );
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_write_puts_the_secrets_in_use_in_the_pcapng() {
    let dir = temp_dir("keylog-write");
    let (cap, keylog) = captured("tls12", &dir);
    // The peers' key log and a session that is not in the capture.
    let stranger = format!("CLIENT_RANDOM {} {}\n", "5a".repeat(32), "cd".repeat(48));
    let keys = dir.join("with-stranger.keys");
    std::fs::write(&keys, std::fs::read_to_string(&keylog).unwrap() + &stranger).unwrap();
    let written = dir.join("decryptable.pcapng");
    let out = wscope()
        .arg("read")
        .arg(&cap.pcap)
        .arg("--keylog")
        .arg(&keys)
        .arg("--write")
        .arg(&written)
        .arg("--json")
        .timed_output()
        .expect("wscope read runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["event"] == "message"));
    let bytes = std::fs::read(&written).unwrap();
    let has = |text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    let own = std::fs::read_to_string(&keylog).unwrap();
    let own_random = own
        .lines()
        .find(|l| !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("a client random");
    assert!(
        has(own_random),
        "the capture's session's secrets are in the file"
    );
    assert!(
        !has(&"5a".repeat(32)),
        "a session not in the capture stays out"
    );
    // tshark decrypts it with no key log option; wscope reads it as it
    // read the capture with --keylog.
    let no_keylog = dir.join("empty.keys");
    std::fs::write(&no_keylog, "").unwrap();
    let theirs = tshark_frames(
        &PeerCapture {
            pcap: written.clone(),
            log: Value::Null,
            port: cap.port,
        },
        &no_keylog,
    );
    assert_eq!(
        frames(&events),
        theirs,
        "tshark with the secrets inside only"
    );
    let (again, _) = read(&written, &no_keylog);
    assert_eq!(again, events);
    let _ = std::fs::remove_dir_all(&dir);
}

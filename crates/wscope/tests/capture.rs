//! `wscope read CAPTURE` against real captures of real peers, checked three
//! ways: what wscope reads, what tshark reads, and what the peer libraries
//! themselves say they sent and received (tests/peers/capture_peers.py:
//! tcpdump on `lo`, Python `websockets` 17 and Node.js `ws` 8, a port the
//! kernel picked so nothing is found by its port number).
//!
//! The peers' log is the truth. wscope must agree with it exactly: frame by
//! frame (opcode, FIN, RSV1, masking key, length, unmasked payload still
//! compressed, cut to 64 KiB), message by message (decompressed), close
//! frames, and how the connection ended. tshark is the second opinion: where
//! it disagrees with the peers the test prints the disagreement, naming the
//! peers as right, and goes on; it fails only when tshark saw no WebSocket
//! frames at all (then the comparison would prove nothing).
//!
//! What each scenario proves:
//! - `deflate`: permessage-deflate with context takeover (websockets'
//!   default, 12-bit windows): a repeated message compresses to a few bytes
//!   only because the window carries over, so inflating it right proves
//!   wscope keeps the context per direction; UTF-8, empty and binary
//!   messages; a 100 KB incompressible frame (split over TCP segments, its
//!   payload cut to 64 KiB with the true `len`); ping/pong; a clean close.
//! - `no-context-takeover`: the same messages with both
//!   `*_no_context_takeover` negotiated: wscope must reset the window per
//!   message (the repeats are not tiny here).
//! - `fragmented`: fragmented messages both ways (websockets sends an
//!   iterable as fragments; the server answers in 4-character fragments, so
//!   170 frames), compressed fragments with RSV1 only on the first, a ping
//!   between two fragments: `frames` counts and reassembly.
//! - `pipelined`: 3000 messages in flight, many frames per TCP segment and
//!   frames split across segments.
//! - `node-deflate`: Node.js `ws` on both sides (another deflate
//!   implementation, its own fragmentation with `fin: false`).
//! - `close-clean`: the server closes first with 4000: `by`, `code`.
//! - `close-drop`: the server drops TCP without a close frame: `ended:
//!   fin`, 1006.
//! - `close-reset`: the server resets TCP (SO_LINGER 0): `ended: rst`,
//!   1006.
//! - `refused`: a 403 to the upgrade: `handshake_failed`, no frames.
//!
//! Every scenario is also read as gzip, as zstd, from stdin (`-`), split in
//! two files by editcap, as pcapng and as nanosecond pcap: each must give
//! exactly the same events.
//!
//! tshark runs with `websocket.decompress:FALSE` (so its payload is the
//! bytes on the wire) and `gui.max_tree_depth:100000`: with its default of
//! 500, tshark 4.0 stops dissecting after about 494 WebSocket frames in one
//! TCP segment and silently loses the rest (the `pipelined` capture has
//! segments of 1000+ frames; the peers prove them there).
//!
//! Needs root (tcpdump on `lo`), tcpdump, tshark and editcap (Debian's
//! tcpdump and tshark: scripts/test.sh installs them), gzip and zstd.

mod common;

use common::TimedOutput;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::peer_log::{
    DIRS, KEPT, WireFrame, check_closes, check_messages, check_peer_logs, frame_differences,
    peer_frames, truncate, wscope_frames,
};
use common::{PeerCapture, capture_peers, read_json, system_tool, temp_dir};

// --- what tshark sees ----------------------------------------------------

/// What tshark dissects: frames per direction, the client's port, and every
/// packet's timestamp in microseconds.
struct TsharkView {
    frames: BTreeMap<&'static str, Vec<WireFrame>>,
    client_port: Option<u16>,
    packet_ts: BTreeSet<u64>,
}

fn tshark(cap: &PeerCapture, keylog: Option<&Path>) -> TsharkView {
    let tshark = system_tool("tshark", "tshark");
    let mut command = Command::new(&tshark);
    command.arg("-r").arg(&cap.pcap);
    match keylog {
        // TLS on a port of the kernel's choosing, HTTP inside it (the Node
        // peers offer no ALPN to say so), decrypted with the peers' keys.
        Some(keys) => command
            .args(["-d", &format!("tcp.port=={},tls", cap.port)])
            .args(["-d", &format!("tls.port=={},http", cap.port)])
            .arg("-o")
            .arg(format!("tls.keylog_file:{}", keys.display())),
        None => command.args(["-d", &format!("tcp.port=={},http", cap.port)]),
    };
    let out = command
        .args(["-o", "websocket.decompress:FALSE"])
        .args(["-o", "gui.max_tree_depth:100000"])
        .args(["-Y", "websocket", "-T", "json", "-x", "--no-duplicate-keys"])
        .args(["-J", "tcp websocket"])
        .timed_output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets: Value = serde_json::from_slice(&out.stdout).expect("tshark prints JSON");
    let mut frames = BTreeMap::from([("c2s", Vec::new()), ("s2c", Vec::new())]);
    let mut client_port = None;
    for packet in packets.as_array().expect("a list of packets") {
        let layers = &packet["_source"]["layers"];
        let src: u16 = field(&layers["tcp"], "tcp.srcport").parse().unwrap();
        let dst: u16 = field(&layers["tcp"], "tcp.dstport").parse().unwrap();
        let dir = if dst == cap.port { "c2s" } else { "s2c" };
        client_port = Some(if dir == "c2s" { src } else { dst });
        let websocket = &layers["websocket"];
        let list = match websocket {
            Value::Array(list) => list.clone(),
            one => vec![one.clone()],
        };
        for ws in list {
            let len = [
                "websocket.payload_length_ext_64",
                "websocket.payload_length_ext_16",
            ]
            .iter()
            .find_map(|name| ws.get(*name))
            .or(ws.get("websocket.payload_length"))
            .and_then(Value::as_str)
            .expect("a payload length")
            .parse()
            .unwrap();
            frames.get_mut(dir).unwrap().push(WireFrame {
                opcode_bits: field(&ws, "websocket.opcode").parse().unwrap(),
                fin: field(&ws, "websocket.fin") == "1",
                rsv1: u8::from_str_radix(field(&ws, "websocket.rsv").trim_start_matches("0x"), 16)
                    .unwrap()
                    & 4
                    != 0,
                mask: ws
                    .get("websocket.masking_key")
                    .and_then(Value::as_str)
                    .map(|key| key.replace(':', "")),
                len,
                // `payload_raw` is the unmasked payload (tshark dissects the
                // unmasked copy); absent when the payload is empty.
                payload: ws
                    .get("websocket.payload_raw")
                    .map(|raw| hex(raw[0].as_str().expect("raw hex")))
                    .unwrap_or_default(),
            });
        }
    }
    TsharkView {
        frames,
        client_port,
        packet_ts: packet_timestamps(&cap.pcap),
    }
}

fn field<'a>(layer: &'a Value, name: &str) -> &'a str {
    layer[name]
        .as_str()
        .unwrap_or_else(|| panic!("tshark gave {name} in {layer}"))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Every packet's capture time, in microseconds since the epoch.
fn packet_timestamps(pcap: &Path) -> BTreeSet<u64> {
    let out = Command::new(system_tool("tshark", "tshark"))
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "frame.time_epoch"])
        .timed_output()
        .expect("tshark runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (secs, frac) = line.trim().split_once('.').expect("seconds.fraction");
            let micros: u64 = format!("{frac:0<6}")[..6].parse().unwrap();
            secs.parse::<u64>().unwrap() * 1_000_000 + micros
        })
        .collect()
}

// --- comparing --------------------------------------------------------------

fn check_open(
    cap: &PeerCapture,
    scenario: &str,
    scheme: &str,
    view: &TsharkView,
    events: &[Value],
    failures: &mut Vec<String>,
) {
    let opens: Vec<&Value> = events.iter().filter(|e| e["event"] == "open").collect();
    let [open] = opens.as_slice() else {
        failures.push(format!("{} open events, want one", opens.len()));
        return;
    };
    let server = format!("127.0.0.1:{}", cap.port);
    let client = format!(
        "127.0.0.1:{}",
        view.client_port.expect("tshark saw the client")
    );
    let url = format!("{scheme}://127.0.0.1:{}/{scenario}", cap.port);
    let request_line = format!("GET /{scenario} HTTP/1.1");
    let checks = [
        ("conn", open["conn"] == "c1"),
        ("server", open["server"] == server.as_str()),
        ("client", open["client"] == client.as_str()),
        ("url", open["url"] == url.as_str()),
        (
            "request.line",
            open["request"]["line"] == request_line.as_str(),
        ),
        (
            "response.line",
            open["response"]["line"] == "HTTP/1.1 101 Switching Protocols",
        ),
        (
            "extensions",
            open["extensions"].as_array().is_some_and(|list| {
                list.iter().any(|x| {
                    x.as_str()
                        .is_some_and(|x| x.starts_with("permessage-deflate"))
                })
            }),
        ),
        ("handshake", open.get("handshake").is_none()),
    ];
    for (name, ok) in checks {
        if !ok {
            failures.push(format!(
                "open.{name} is wrong (server {server}, client {client}, url {url}): {open}"
            ));
        }
    }
}

/// Events come in capture order, each stamped with the time of a packet
/// in the capture.
fn check_timestamps(view: &TsharkView, events: &[Value], failures: &mut Vec<String>) {
    let mut last = 0;
    for event in events {
        let ts = event["ts"].as_u64().expect("ts");
        if ts < last {
            failures.push(format!("ts goes back from {last} at {event}"));
            return;
        }
        last = ts;
        if !view.packet_ts.contains(&ts) {
            failures.push(format!(
                "ts {ts} is no packet's time: {}",
                truncate(&event.to_string())
            ));
            return;
        }
    }
}

// --- the same capture in other shapes ------------------------------------------

/// The capture as every other input `wscope read` takes; each must read as
/// `baseline` does.
/// `keys` are the arguments that give the key log, for TLS scenarios.
fn check_variants(
    cap: &PeerCapture,
    dir: &Path,
    keys: &[&OsStr],
    baseline: &[Value],
    failures: &mut Vec<String>,
) {
    let pcap = cap.pcap.as_os_str();
    let mut variants: Vec<(String, Vec<Value>)> = Vec::new();
    let read_json =
        |files: &[&OsStr], stdin: Option<&Path>| read_json(&[files, keys].concat(), stdin);

    let gz = dir.join("capture.pcap.gz");
    run_to_file(
        Command::new(system_tool("gzip", "gzip"))
            .args(["-c"])
            .arg(pcap),
        &gz,
    );
    variants.push(("gzip".into(), read_json(&[gz.as_os_str()], None)));

    let zst = dir.join("capture.pcap.zst");
    run_to_file(
        Command::new(system_tool("zstd", "zstd"))
            .args(["-q", "-c"])
            .arg(pcap),
        &zst,
    );
    variants.push(("zstd".into(), read_json(&[zst.as_os_str()], None)));

    variants.push((
        "stdin".into(),
        read_json(&[OsStr::new("-")], Some(&cap.pcap)),
    ));

    let ng = dir.join("capture.pcapng");
    editcap(&["-F", "pcapng"], &cap.pcap, &ng);
    variants.push(("pcapng".into(), read_json(&[ng.as_os_str()], None)));

    let nsec = dir.join("capture.nsec.pcap");
    editcap(&["-F", "nsecpcap"], &cap.pcap, &nsec);
    variants.push(("nsecpcap".into(), read_json(&[nsec.as_os_str()], None)));

    // Split in two halves at the middle packet: connections cross the cut.
    let packets = packet_timestamps(&cap.pcap).len().max(2);
    let split_dir = dir.join("split");
    std::fs::create_dir_all(&split_dir).unwrap();
    let half = (packets / 2).to_string();
    editcap(&["-c", &half], &cap.pcap, &split_dir.join("part.pcap"));
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&split_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    parts.sort();
    assert!(parts.len() >= 2, "editcap -c {half} made {parts:?}");
    let args: Vec<&OsStr> = parts.iter().map(|p| p.as_os_str()).collect();
    variants.push((format!("split in {}", parts.len()), read_json(&args, None)));

    if let [_, keylog] = keys {
        // The secrets inside the capture, as Wireshark's editcap puts them
        // there (a Decryption Secrets Block): no --keylog needed.
        let inside = dir.join("with-secrets.pcapng");
        let secrets = format!("tls,{}", Path::new(keylog).display());
        editcap(&["--inject-secrets", &secrets], &cap.pcap, &inside);
        variants.push((
            "pcapng with its secrets inside".into(),
            common::read_json(&[inside.as_os_str()], None),
        ));
    }

    for (name, events) in variants {
        if events != baseline {
            let first = events
                .iter()
                .zip(baseline)
                .position(|(a, b)| a != b)
                .unwrap_or(events.len().min(baseline.len()));
            failures.push(format!(
                "read as {name}: {} events, the pcap gave {}; first difference at {first}: {} vs {}",
                events.len(),
                baseline.len(),
                events.get(first).map_or("nothing".into(), |e| truncate(&e.to_string())),
                baseline.get(first).map_or("nothing".into(), |e| truncate(&e.to_string())),
            ));
        }
    }
}

fn run_to_file(command: &mut Command, path: &Path) {
    let out = command.timed_output().expect("the compressor runs");
    assert!(out.status.success(), "{command:?} failed");
    std::fs::write(path, out.stdout).unwrap();
}

fn editcap(args: &[&str], input: &Path, output: &Path) {
    let status = Command::new(system_tool("editcap", "tshark"))
        .args(args)
        .arg(input)
        .arg(output)
        .status()
        .expect("editcap runs");
    assert!(status.success(), "editcap {args:?} failed");
}

// --- the scenarios --------------------------------------------------------------

/// The cipher suite each TLS scenario's peers are limited to (the
/// certificate trustme makes has an ECDSA key).
fn tls_suite(scenario: &str) -> Option<(&'static str, &'static str)> {
    Some(match scenario {
        "tls" => ("TLS 1.3", "TLS_AES_256_GCM_SHA384"),
        "tls12" => ("TLS 1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        "node-tls13-aes128" => ("TLS 1.3", "TLS_AES_128_GCM_SHA256"),
        "node-tls13-chacha" => ("TLS 1.3", "TLS_CHACHA20_POLY1305_SHA256"),
        "node-tls12-aes256" => ("TLS 1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        "node-tls12-chacha" => ("TLS 1.2", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
        _ => return None,
    })
}

fn check_scenario(scenario: &str, extra: &[&str]) {
    let dir = temp_dir(&format!("capture-{scenario}"));
    let suite = tls_suite(scenario);
    let keylog = dir.join("keys.log");
    let mut extra = extra.to_vec();
    let keylog_arg = keylog.to_str().expect("a UTF-8 temp path");
    if suite.is_some() {
        extra.extend(["--keylog", keylog_arg]);
    }
    let cap = capture_peers(scenario, &dir, &extra);
    let keys: Vec<&OsStr> = if suite.is_some() {
        vec![OsStr::new("--keylog"), keylog.as_os_str()]
    } else {
        Vec::new()
    };
    let view = tshark(&cap, suite.is_some().then_some(keylog.as_path()));
    let events = read_json(&[&[cap.pcap.as_os_str()][..], &keys].concat(), None);
    let mut failures = Vec::new();
    if let Some((version, suite)) = suite {
        check_decrypted(&events, version, suite, &mut failures);
    }

    check_peer_logs(&cap.log, &mut failures);

    if cap.log["expect"]["handshake"] == "refused" {
        check_refused(&events, &mut failures);
    } else {
        assert!(
            DIRS.iter().all(|dir| !view.frames[dir].is_empty()),
            "tshark saw no WebSocket frames in one direction: the dissection is set up wrong"
        );
        for dir in DIRS {
            let truth = peer_frames(&cap.log, dir);
            for line in frame_differences(&truth, &view.frames[dir], usize::MAX) {
                eprintln!(
                    "{scenario}: tshark disagrees with the peers ({dir}), the peers are right: {line}"
                );
            }
            for line in frame_differences(&truth, &wscope_frames(&events, dir), KEPT) {
                failures.push(format!("{dir}: wscope shows {line}"));
            }
        }
        let scheme = if suite.is_some() { "wss" } else { "ws" };
        check_open(&cap, scenario, scheme, &view, &events, &mut failures);
        check_messages(&cap.log, &events, &mut failures);
        check_closes(&cap.log, &events, &mut failures);
    }
    for note in events.iter().filter(|e| e["event"] == "note") {
        if note["text"].as_str().is_some_and(|t| t.contains("missing")) {
            failures.push(format!("a clean capture has a gap: {note}"));
        }
    }
    check_timestamps(&view, &events, &mut failures);
    check_variants(&cap, &dir, &keys, &events, &mut failures);

    assert!(
        failures.is_empty(),
        "{scenario} ({}): wscope disagrees with the peers:\n  {}",
        cap.pcap.display(),
        failures.join("\n  ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The one note about TLS says it was decrypted, with this version and
/// suite; no other note is about TLS.
fn check_decrypted(events: &[Value], version: &str, suite: &str, failures: &mut Vec<String>) {
    let tls: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "note")
        .filter_map(|e| e["text"].as_str())
        .filter(|t| t.contains("TLS"))
        .collect();
    let want = format!(": {version}, {suite}, decrypted with the key log");
    if !matches!(tls.as_slice(), [one] if one.ends_with(&want) && one.contains("SNI ws.test")) {
        failures.push(format!("want one TLS note ending {want:?}, got {tls:?}"));
    }
}

fn check_refused(events: &[Value], failures: &mut Vec<String>) {
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "handshake_failed")
        .collect();
    match failed.as_slice() {
        [one] if one["status"] == 403 && one["response"]["line"] == "HTTP/1.1 403 Forbidden" => {}
        _ => failures.push(format!(
            "want one handshake_failed with 403, got {failed:?}"
        )),
    }
    if let Some(e) = events
        .iter()
        .find(|e| ["open", "frame", "message"].contains(&e["event"].as_str().unwrap_or("")))
    {
        failures.push(format!("a refused upgrade has {e}"));
    }
}

#[test]
fn deflate_with_context_takeover() {
    check_scenario("deflate", &[]);
}

#[test]
fn deflate_without_context_takeover() {
    check_scenario("no-context-takeover", &[]);
}

#[test]
fn fragmented_messages() {
    check_scenario("fragmented", &[]);
}

#[test]
fn pipelined_messages() {
    check_scenario("pipelined", &[]);
}

#[test]
fn node_ws_deflate_both_ways() {
    check_scenario("node-deflate", &[]);
}

#[test]
fn server_closes_with_4000() {
    check_scenario("close-clean", &[]);
}

#[test]
fn server_drops_tcp_without_close_frame() {
    check_scenario("close-drop", &[]);
}

#[test]
fn server_resets_tcp() {
    check_scenario("close-reset", &[]);
}

#[test]
fn tls13_python_websockets_decrypted_with_its_key_log() {
    check_scenario("tls", &[]);
}

#[test]
fn tls12_python_websockets_decrypted_with_its_key_log() {
    check_scenario("tls12", &[]);
}

#[test]
fn tls13_node_ws_aes128_decrypted() {
    check_scenario("node-tls13-aes128", &[]);
}

#[test]
fn tls13_node_ws_chacha20_decrypted() {
    check_scenario("node-tls13-chacha", &[]);
}

#[test]
fn tls12_node_ws_aes256_decrypted() {
    check_scenario("node-tls12-aes256", &[]);
}

#[test]
fn tls12_node_ws_chacha20_decrypted() {
    check_scenario("node-tls12-chacha", &[]);
}

#[test]
fn refused_upgrade() {
    check_scenario("refused", &[]);
}

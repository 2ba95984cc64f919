//! Damaged captures: a truncated file, a corrupt pcapng block, an unknown
//! link type, a packet shorter than its headers, garbage in the middle of
//! a WebSocket stream. Each is reported on stderr with the packet number,
//! decoding goes on with the rest, nothing read before it is lost, and
//! wscope exits 0 (a damaged record file ends with 1; a capture is read
//! past its damage).

mod common;

use common::TimedOutput;

use std::path::Path;
use std::process::Command;

use common::{capture_peers, system_tool, temp_dir, wscope};
use serde_json::Value;

/// A classic pcap as the test rewrites it: the header, then each record
/// (its 16-byte header and data).
struct Pcap {
    header: Vec<u8>,
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Pcap {
    fn parse(bytes: &[u8]) -> Pcap {
        assert_eq!(
            &bytes[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "tcpdump writes little-endian microsecond pcap"
        );
        let mut records = Vec::new();
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            records.push((
                bytes[at..at + 16].to_vec(),
                bytes[at + 16..at + 16 + caplen].to_vec(),
            ));
            at += 16 + caplen;
        }
        Pcap {
            header: bytes[..24].to_vec(),
            records,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        for (head, data) in &self.records {
            out.extend_from_slice(head);
            out.extend_from_slice(data);
        }
        out
    }
}

/// `wscope read FILE --json`: status, events, stderr.
fn read(path: &Path) -> (i32, Vec<Value>, String) {
    let out = wscope()
        .arg("read")
        .arg(path)
        .arg("--json")
        .timed_output()
        .expect("wscope read runs");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn messages(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["dir"].as_str().unwrap().to_owned(),
                e["payload"].to_string(),
            )
        })
        .collect()
}

/// The packet whose timestamp is `ts` (µs), 1-based.
fn packet_at(pcap: &Pcap, ts: u64) -> usize {
    pcap.records
        .iter()
        .position(|(head, _)| {
            let secs = u32::from_le_bytes(head[0..4].try_into().unwrap()) as u64;
            let us = u32::from_le_bytes(head[4..8].try_into().unwrap()) as u64;
            secs * 1_000_000 + us == ts
        })
        .map(|i| i + 1)
        .expect("every event's time is a packet's")
}

struct Base {
    dir: std::path::PathBuf,
    pcap: Pcap,
    events: Vec<Value>,
}

fn base(name: &str) -> Base {
    let path = temp_dir(&format!("damage-{name}"));
    let captured = capture_peers("no-context-takeover", &path, &[]);
    let (status, events, stderr) = read(&captured.pcap);
    assert_eq!(status, 0, "{stderr}");
    assert!(!messages(&events).is_empty());
    let pcap = Pcap::parse(&std::fs::read(&captured.pcap).unwrap());
    Base {
        dir: path,
        pcap,
        events,
    }
}

#[test]
fn a_truncated_file_keeps_everything_before_the_cut() {
    let base = base("truncated");
    let whole = base.pcap.bytes();
    // Cut inside the last packet that completes a message.
    let last = base
        .events
        .iter()
        .rev()
        .find(|e| e["event"] == "message")
        .unwrap();
    let n = packet_at(&base.pcap, last["ts"].as_u64().unwrap());
    let mut cut = Pcap {
        header: base.pcap.header.clone(),
        records: base.pcap.records[..n].to_vec(),
    }
    .bytes();
    cut.truncate(cut.len() - 10);
    assert!(cut.len() < whole.len());
    let path = base.dir.join("truncated.pcap");
    std::fs::write(&path, &cut).unwrap();
    let (status, events, stderr) = read(&path);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "packet {n}: the file ends in the middle of packet {n}"
        )),
        "{stderr}"
    );
    // Every message completed by an earlier packet is there, in order.
    let before: Vec<_> = base
        .events
        .iter()
        .filter(|e| e["event"] == "message" && packet_at(&base.pcap, e["ts"].as_u64().unwrap()) < n)
        .cloned()
        .collect();
    assert_eq!(messages(&events), messages(&before));
    // The connection is reported as still open when the capture ended.
    let closed = events
        .iter()
        .find(|e| e["event"] == "closed")
        .expect("closed");
    assert_eq!(closed["ended"], "capture_end");
}

#[test]
fn an_unknown_link_type_is_named_once() {
    let base = base("link");
    let mut pcap = Pcap {
        header: base.pcap.header.clone(),
        records: base.pcap.records.clone(),
    };
    pcap.header[20..24].copy_from_slice(&147u32.to_le_bytes());
    let path = base.dir.join("link147.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();
    let (status, events, stderr) = read(&path);
    assert_eq!(status, 0, "{stderr}");
    assert!(events.is_empty(), "{events:?}");
    assert!(
        stderr.contains("packet 1: link type 147 is not supported"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("link type 147").count(), 1, "{stderr}");
}

#[test]
fn a_packet_shorter_than_its_headers_is_skipped() {
    let base = base("short");
    let mut pcap = Pcap {
        header: base.pcap.header.clone(),
        records: base.pcap.records.clone(),
    };
    let (mut head, _) = pcap.records[2].clone();
    head[8..16].copy_from_slice(&[6, 0, 0, 0, 6, 0, 0, 0]);
    pcap.records.insert(3, (head, vec![0xaa; 6]));
    // And one that is Ethernet and IPv4 but cut inside the TCP header.
    let (head, data) = pcap.records[5].clone();
    let mut short_head = head.clone();
    short_head[8..12].copy_from_slice(&40u32.to_le_bytes());
    pcap.records.insert(6, (short_head, data[..40].to_vec()));
    let path = base.dir.join("short.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();
    let (status, events, stderr) = read(&path);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("packet 4: 6 bytes, shorter than its 14-byte link header"),
        "{stderr}"
    );
    assert!(
        stderr.contains("packet 7: TCP header cut short"),
        "{stderr}"
    );
    assert_eq!(messages(&events), messages(&base.events));
}

#[test]
fn a_corrupt_pcapng_block_is_stepped_over() {
    let base = base("pcapng");
    let editcap = system_tool("editcap", "tshark");
    let classic = base.dir.join("classic.pcap");
    std::fs::write(&classic, base.pcap.bytes()).unwrap();
    let ng = base.dir.join("capture.pcapng");
    let status = Command::new(editcap)
        .args(["-F", "pcapng"])
        .arg(&classic)
        .arg(&ng)
        .status()
        .unwrap();
    assert!(status.success());
    let mut bytes = std::fs::read(&ng).unwrap();
    // Walk the blocks; spoil the trailing length of the last packet block
    // (an enhanced packet, type 6) that carries no message.
    let mut at = 0;
    let mut packet = 0;
    let mut blocks = Vec::new();
    while at + 12 <= bytes.len() {
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 6 {
            packet += 1;
            blocks.push((packet, at, len));
        }
        at += len;
    }
    let (n, at, len) = blocks[blocks.len() / 2];
    bytes[at + len - 4..at + len].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    let damaged = base.dir.join("damaged.pcapng");
    std::fs::write(&damaged, &bytes).unwrap();
    let (status, events, stderr) = read(&damaged);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "packet {n}: a corrupt block after packet {}",
            n - 1
        )),
        "{stderr}"
    );
    // Reading went on after it: the connection's end is there.
    let closed = events
        .iter()
        .find(|e| e["event"] == "closed")
        .expect("closed");
    assert_eq!(closed["ended"], "close_handshake", "{closed}");
    assert!(!messages(&events).is_empty());
}

#[test]
fn garbage_in_the_stream_is_reported_and_decoding_goes_on() {
    let base = base("garbage");
    // Overwrite the first bytes of the payload of a data packet in the
    // middle (a frame header) with 0xff: reserved opcode, all RSV bits.
    let target = base
        .events
        .iter()
        .filter(|e| e["event"] == "frame" && e["dir"] == "c2s")
        .nth(3)
        .expect("client frames");
    let n = packet_at(&base.pcap, target["ts"].as_u64().unwrap());
    let mut pcap = Pcap {
        header: base.pcap.header.clone(),
        records: base.pcap.records.clone(),
    };
    let data = &mut pcap.records[n - 1].1;
    // Ethernet 14 + IPv4 20 + TCP data offset.
    let tcp = 14 + usize::from(data[14] & 0x0f) * 4;
    let payload = tcp + usize::from(data[tcp + 12] >> 4) * 4;
    for byte in &mut data[payload..payload + 2] {
        *byte = 0xff;
    }
    let path = base.dir.join("garbage.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();
    let (status, events, stderr) = read(&path);
    assert_eq!(status, 0, "{stderr}");
    // The damaged frame is reported with its violations.
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "frame"
                && e["violations"].as_array().is_some_and(|v| !v.is_empty())),
        "no violation reported"
    );
    // Everything the server sent is untouched.
    let s2c = |events: &[Value]| {
        messages(events)
            .into_iter()
            .filter(|(dir, _)| dir == "s2c")
            .collect::<Vec<_>>()
    };
    assert_eq!(s2c(&events), s2c(&base.events));
    // Client messages before the damage are all there.
    let before = |events: &[Value]| {
        events
            .iter()
            .filter(|e| {
                e["event"] == "message"
                    && e["dir"] == "c2s"
                    && e["ts"].as_u64() < target["ts"].as_u64()
            })
            .map(|e| e["payload"].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(before(&events), before(&base.events));
    // And decoding went on after it: the note says where, and the
    // client's last message is there (no context takeover here, so it
    // inflates on its own).
    assert!(
        events.iter().any(|e| e["event"] == "note"
            && e["text"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot be real")),
        "no note about the garbage"
    );
    let last = |events: &[Value]| messages(events).into_iter().rfind(|(dir, _)| dir == "c2s");
    assert_eq!(last(&events), last(&base.events));
}

/// Not damage, but the same capture: `read CAPTURE --record OUT` makes a
/// record file (0600: it holds every payload) that reads back as the same
/// events, and `ui` would show.
#[test]
fn a_capture_converts_to_a_record_file() {
    use std::os::unix::fs::PermissionsExt;
    let base = base("record");
    let pcap = base.dir.join("whole.pcap");
    std::fs::write(&pcap, base.pcap.bytes()).unwrap();
    let record = base.dir.join("whole.jsonl");
    let out = wscope()
        .arg("read")
        .arg(&pcap)
        .arg("--record")
        .arg(&record)
        .arg("-q")
        .timed_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&record).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (status, events, stderr) = read(&record);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(events, base.events);
}

/// `tcpdump -U -w - | wscope read -`: a live capture on a pipe is decoded
/// as it arrives — the connection's end is printed while tcpdump is still
/// running, not when its output ends.
#[test]
fn a_live_pipe_is_decoded_as_it_arrives() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let tcpdump = system_tool("tcpdump", "tcpdump");
    let (_server, url) = common::start_server(&[]);
    let port = common::host_port(&url)
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let mut capture = Command::new(tcpdump)
        .args(["-i", "lo", "-U", "-w", "-"])
        .arg(format!("tcp port {port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump starts");
    let mut tcpdump_err = BufReader::new(capture.stderr.take().unwrap());
    loop {
        let (rest, line) =
            common::first_line(tcpdump_err, &mut capture, "tcpdump", common::START_LIMIT);
        tcpdump_err = rest;
        if line.contains("listening on") {
            break;
        }
    }
    let mut read = wscope()
        .args(["read", "-", "--json"])
        .stdin(capture.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wscope read starts");
    // Should reading wait for the end of its input, this test would wait
    // forever: a watchdog ends tcpdump (and so the input) after two
    // minutes, so that it fails instead.
    let tcpdump_pid = capture.id();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(120));
        let _ = Command::new("kill").arg(tcpdump_pid.to_string()).status();
    });
    let sent = wscope()
        .args(["connect", "--send", "live and well", &format!("{url}/echo")])
        .timed_output()
        .unwrap();
    assert!(sent.status.success());
    let mut events = BufReader::new(read.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = events.next().expect("an event before the end").unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        let closed = event["event"] == "closed";
        seen.push(event);
        if closed {
            break;
        }
    }
    assert!(
        capture.try_wait().unwrap().is_none(),
        "tcpdump must still be running"
    );
    assert!(
        seen.iter()
            .any(|e| e["event"] == "message" && e["payload"]["text"] == "live and well"),
        "{seen:?}"
    );
    let _ = capture.kill();
    let _ = capture.wait();
    let _ = read.wait();
}

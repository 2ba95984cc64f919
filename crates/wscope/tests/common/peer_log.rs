//! What real peers logged (tests/peers/capture_peers.py: each library's
//! own record of the frames and messages it sent and received) against
//! wscope's events: shared by the tests that read captures of them
//! (`capture.rs`) and that capture them live (`capture_live.rs`). The
//! peers' log is the truth; each check adds a line per difference to
//! `failures`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

/// What wscope keeps of a payload.
pub const KEPT: usize = 64 * 1024;

pub const DIRS: [&str; 2] = ["c2s", "s2c"];

/// One frame, from whichever source.
#[derive(Debug, Clone, PartialEq)]
pub struct WireFrame {
    pub opcode_bits: u64,
    pub fin: bool,
    pub rsv1: bool,
    pub mask: Option<String>,
    pub len: u64,
    /// The unmasked payload as kept (wscope: at most 64 KiB).
    pub payload: Vec<u8>,
}

/// The frames a peer library says it sent, one direction.
pub fn peer_frames(log: &Value, dir: &str) -> Vec<WireFrame> {
    let sender = if dir == "c2s" { "client" } else { "server" };
    frames_in(&log[sender]["sent_frames"])
}

pub fn frames_in(list: &Value) -> Vec<WireFrame> {
    list.as_array()
        .expect("a list of frames")
        .iter()
        .map(|f| WireFrame {
            opcode_bits: f["opcode_bits"].as_u64().unwrap(),
            fin: f["fin"].as_bool().unwrap(),
            rsv1: f["rsv1"].as_bool().unwrap(),
            mask: f["mask"].as_str().map(str::to_owned),
            len: f["len"].as_u64().unwrap(),
            payload: BASE64.decode(f["base64"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

/// The bytes of a `payload` object of wscope's events.
pub fn payload_bytes(payload: &Value) -> Vec<u8> {
    if let Some(text) = payload["text"].as_str() {
        text.as_bytes().to_vec()
    } else {
        BASE64
            .decode(
                payload["base64"]
                    .as_str()
                    .expect("payload has text or base64"),
            )
            .expect("payload base64")
    }
}

pub fn wscope_frames(events: &[Value], dir: &str) -> Vec<WireFrame> {
    events
        .iter()
        .filter(|e| e["event"] == "frame" && e["dir"] == dir)
        .map(|e| WireFrame {
            opcode_bits: e["opcode_bits"].as_u64().expect("opcode_bits"),
            fin: e["fin"].as_bool().expect("fin"),
            rsv1: e["rsv1"].as_bool().unwrap_or(false),
            mask: e["mask"].as_str().map(str::to_owned),
            len: e["payload"]["len"].as_u64().expect("payload.len"),
            payload: payload_bytes(&e["payload"]),
        })
        .collect()
}

/// How `other` differs from the peers' frames (`truth`), one line each;
/// `kept` is how much of a payload `other` keeps.
pub fn frame_differences(truth: &[WireFrame], other: &[WireFrame], kept: usize) -> Vec<String> {
    let mut out = Vec::new();
    if truth.len() != other.len() {
        out.push(format!(
            "{} frames, the peers sent {}",
            other.len(),
            truth.len()
        ));
    }
    for (i, (want, got)) in truth.iter().zip(other).enumerate() {
        let mut want = want.clone();
        want.payload.truncate(kept);
        if want != *got {
            out.push(format!(
                "frame {i}: {}, the peers sent {}",
                describe(got),
                describe(&want)
            ));
        }
        if out.len() >= 5 {
            out.push("(and maybe more)".into());
            break;
        }
    }
    out
}

pub fn describe(frame: &WireFrame) -> String {
    let shown: Vec<u8> = frame.payload.iter().take(24).copied().collect();
    format!(
        "opcode {} fin {} rsv1 {} mask {:?} len {} payload {} bytes {:02x?}",
        frame.opcode_bits,
        frame.fin,
        frame.rsv1,
        frame.mask,
        frame.len,
        frame.payload.len(),
        shown
    )
}

/// One whole message the peers exchanged, with how it went on the wire.
#[derive(Debug, PartialEq)]
pub struct WireMessage {
    pub opcode: String,
    pub bytes: Vec<u8>,
    pub compressed: bool,
    pub frames: u64,
}

/// The messages of one direction: the sender's messages, checked against
/// what the receiver got, with `compressed` and `frames` from the sender's
/// frames.
pub fn peer_messages(log: &Value, dir: &str, failures: &mut Vec<String>) -> Vec<WireMessage> {
    let (sender, receiver) = if dir == "c2s" {
        ("client", "server")
    } else {
        ("server", "client")
    };
    let sent = &log[sender]["sent_messages"];
    let received = &log[receiver]["received_messages"];
    if sent != received {
        failures.push(format!(
            "{dir}: the peers disagree: {sender} sent {} messages, {receiver} received {}",
            sent.as_array().map_or(0, Vec::len),
            received.as_array().map_or(0, Vec::len)
        ));
    }
    // Data frames grouped into messages: a text/binary frame starts one, the
    // frame with FIN ends it; control frames in between belong to none.
    let mut shapes = Vec::new();
    let mut current: Option<(bool, u64)> = None;
    for frame in peer_frames(log, dir) {
        match frame.opcode_bits {
            1 | 2 => current = Some((frame.rsv1, 1)),
            0 => current.as_mut().expect("a continuation inside a message").1 += 1,
            _ => continue,
        }
        if frame.fin {
            shapes.push(current.take().unwrap());
        }
    }
    let messages = sent.as_array().expect("a list of messages");
    assert_eq!(
        messages.len(),
        shapes.len(),
        "{dir}: the {sender}'s log has as many messages as its frames make"
    );
    messages
        .iter()
        .zip(shapes)
        .map(|(m, (compressed, frames))| WireMessage {
            opcode: m["opcode"].as_str().unwrap().to_owned(),
            bytes: match m["text"].as_str() {
                Some(text) => text.as_bytes().to_vec(),
                None => BASE64.decode(m["base64"].as_str().unwrap()).unwrap(),
            },
            compressed,
            frames,
        })
        .collect()
}

pub fn check_messages(log: &Value, events: &[Value], failures: &mut Vec<String>) {
    for dir in DIRS {
        let want = peer_messages(log, dir, failures);
        let got: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "message" && e["dir"] == dir)
            .collect();
        if want.len() != got.len() {
            failures.push(format!(
                "{dir}: wscope shows {} messages, the peers exchanged {}",
                got.len(),
                want.len()
            ));
        }
        for (i, (want, got)) in want.iter().zip(&got).enumerate() {
            let kept = payload_bytes(&got["payload"]);
            let expected_kept = &want.bytes[..want.bytes.len().min(KEPT)];
            let same = got["opcode"] == want.opcode.as_str()
                && got["payload"]["len"].as_u64() == Some(want.bytes.len() as u64)
                && kept == expected_kept
                && got["compressed"].as_bool().unwrap_or(false) == want.compressed
                && got["frames"].as_u64() == Some(want.frames);
            if !same {
                failures.push(format!(
                    "{dir} message {i}: wscope shows {} {}; the peers exchanged {} of {} bytes \
                     (compressed {}, {} frames) starting {:?}",
                    got["opcode"],
                    truncate(&got.to_string()),
                    want.opcode,
                    want.bytes.len(),
                    want.compressed,
                    want.frames,
                    String::from_utf8_lossy(&want.bytes[..want.bytes.len().min(40)])
                ));
            }
        }
    }
}

pub fn truncate(text: &str) -> String {
    text.chars().take(300).collect()
}

/// `close` events against the close frames the peers sent; `closed`
/// against how the scenario ended.
pub fn check_closes(log: &Value, events: &[Value], failures: &mut Vec<String>) {
    for dir in DIRS {
        let want: Vec<(Option<u64>, String)> = peer_frames(log, dir)
            .iter()
            .filter(|f| f.opcode_bits == 8)
            .map(|f| match f.payload.as_slice() {
                [] => (None, String::new()),
                [a, b, reason @ ..] => (
                    Some(u64::from(*a) << 8 | u64::from(*b)),
                    String::from_utf8_lossy(reason).into_owned(),
                ),
                _ => panic!("a 1-byte close payload from a peer"),
            })
            .collect();
        let got: Vec<(Option<u64>, String)> = events
            .iter()
            .filter(|e| e["event"] == "close" && e["dir"] == dir)
            .map(|e| {
                (
                    e["code"].as_u64(),
                    e["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if want != got {
            failures.push(format!(
                "{dir}: wscope's close events {got:?}, the peers sent close frames {want:?}"
            ));
        }
    }
    let expect = &log["expect"];
    let closed: Vec<&Value> = events.iter().filter(|e| e["event"] == "closed").collect();
    let [closed] = closed.as_slice() else {
        failures.push(format!("{} closed events, want one", closed.len()));
        return;
    };
    let clean = expect["ended"] == "close_handshake";
    for (name, want) in [
        ("ended", expect["ended"].clone()),
        ("by", expect["by"].clone()),
        ("code", expect["code"].clone()),
        ("clean", Value::Bool(clean)),
    ] {
        if closed[name] != want {
            failures.push(format!(
                "closed.{name} is {}, want {want}: {closed}",
                closed[name]
            ));
        }
    }
}

/// The peers' logs agree with each other: what one sent (but the masking
/// key, which a receiver does not keep) is what the other received. Node
/// peers log sent frames only.
pub fn check_peer_logs(log: &Value, failures: &mut Vec<String>) {
    for (sender, receiver) in [("client", "server"), ("server", "client")] {
        let received = frames_in(&log[receiver]["received_frames"]);
        if received.is_empty()
            && log["library"][receiver]
                .as_str()
                .is_some_and(|l| l.starts_with("ws "))
        {
            continue;
        }
        let sent: Vec<WireFrame> = frames_in(&log[sender]["sent_frames"])
            .into_iter()
            .map(|f| WireFrame { mask: None, ..f })
            .collect();
        for line in frame_differences(&sent, &received, usize::MAX) {
            failures.push(format!(
                "the peer logs disagree ({sender} → {receiver}): {line}"
            ));
        }
    }
}

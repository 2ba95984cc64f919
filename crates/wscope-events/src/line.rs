//! One event as one line of JSON, the way record files and `--json` write
//! it, fast for big binary payloads.
//!
//! serde_json checks every byte of a string for characters to escape, one
//! at a time: for a message event carrying 16 KiB of payload as base64
//! (about 22 KB) that was most of the record writer's time. A binary
//! payload is held as bytes (`Payload::binary`), and base64 never needs
//! escaping, so it is encoded straight into the line (with SIMD: the
//! portable encoder was a fifth of the recording proxy's time): the event is
//! serialised with its payload empty, and the base64 goes in where the
//! empty string is. The bytes are exactly what `serde_json::to_writer`
//! writes (tests below compare them).

use crate::event::{Event, EventKind, Message, Payload};

/// Below this many bytes, serde_json's own writing is as fast.
const SPLICE_FROM: usize = 192;
/// What an emptied binary payload looks like in the line. It cannot occur
/// inside a JSON string (a quote there is written `\"`), and a message
/// event has one key named `base64`: the one in its payload.
const EMPTY: &[u8] = br#""base64":"""#;

/// Appends `event` as JSON (no newline) to `line`.
pub fn write_line(event: &Event, line: &mut Vec<u8>) -> serde_json::Result<()> {
    let EventKind::Message(message) = &event.kind else {
        return serde_json::to_writer(line, event);
    };
    let Some(binary) = message
        .payload
        .binary
        .as_deref()
        .filter(|binary| binary.len() >= SPLICE_FROM)
    else {
        return serde_json::to_writer(line, event);
    };
    // The same event, its payload empty (nothing big is copied).
    let light = Event {
        ts: event.ts,
        conn: event.conn.clone(),
        dir: event.dir,
        kind: EventKind::Message(Message {
            opcode: message.opcode.clone(),
            payload: Payload {
                len: message.payload.len,
                text: message.payload.text.clone(),
                binary: Some(Vec::new()),
                truncated: message.payload.truncated,
            },
            compressed: message.compressed,
            frames: message.frames,
        }),
    };
    let start = line.len();
    serde_json::to_writer(&mut *line, &light)?;
    let Some(at) = line[start..]
        .windows(EMPTY.len())
        .position(|w| w == EMPTY)
        .map(|i| start + i + EMPTY.len() - 1)
    else {
        // Cannot happen (see EMPTY); the slow way is still right.
        line.truncate(start);
        return serde_json::to_writer(line, event);
    };
    let tail = line.split_off(at);
    line.reserve(base64_simd::STANDARD.encoded_length(binary.len()) + tail.len());
    base64_simd::STANDARD.encode_append(binary, line);
    line.extend_from_slice(&tail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Direction;
    use wscope_proto::OpCode;

    fn same_as_serde(event: &Event) {
        let mut ours = b"before ".to_vec();
        write_line(event, &mut ours).unwrap();
        let mut theirs = b"before ".to_vec();
        serde_json::to_writer(&mut theirs, event).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }

    #[test]
    fn big_binary_payloads_are_written_as_serde_json_writes_them() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        for (conn, limit, dir) in [
            ("c1", 16 * 1024, Some(Direction::ClientToServer)),
            // A connection id that spells the marker, quotes and all.
            (r#"x"base64":""y"#, 300, None),
            ("c2", 70_000, Some(Direction::ServerToClient)),
        ] {
            let mut message = Message::new(OpCode::Binary, &data, limit);
            message.frames = 3;
            message.compressed = true;
            let event = Event {
                ts: 1_700_000_000_000_001,
                conn: conn.to_owned(),
                dir,
                kind: EventKind::Message(message),
            };
            same_as_serde(&event);
        }
    }

    /// A record line whose base64 does not decode is a damaged line, with
    /// a message that says which field.
    #[test]
    fn a_base64_field_that_is_not_base64_is_refused_on_reading() {
        let line = format!(
            r#"{{"ts":1,"conn":"c1","event":"message","opcode":"binary","payload":{{"len":3,"base64":"{}\"}}\n"}}}}"#,
            "A".repeat(300)
        );
        let err = serde_json::from_str::<Event>(&line).unwrap_err();
        assert!(
            err.to_string().contains("payload.base64 is not base64"),
            "{err}"
        );
    }

    #[test]
    fn binary_payloads_read_back_as_the_bytes_written() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
        for size in [0, 1, 2, 3, 191, 192, 193, 194, 5000] {
            let event = Event::now(
                "c1",
                None,
                EventKind::Message(Message::new(OpCode::Binary, &data[..size], 1 << 20)),
            );
            let mut line = Vec::new();
            write_line(&event, &mut line).unwrap();
            let back: Event = serde_json::from_slice(&line).unwrap();
            assert_eq!(back, event, "{size} bytes");
        }
    }

    #[test]
    fn other_events_are_written_as_serde_json_writes_them() {
        let text = Message::new(
            OpCode::Text,
            "\"base64\":\"\" é\n".repeat(50).as_bytes(),
            1 << 20,
        );
        let small = Message::new(OpCode::Binary, &[0, 1, 2], 100);
        for kind in [
            EventKind::Message(text),
            EventKind::Message(small),
            EventKind::Note {
                text: r#"a "base64":"" note"#.to_owned(),
            },
        ] {
            same_as_serde(&Event::now("c9", None, kind));
        }
    }
}

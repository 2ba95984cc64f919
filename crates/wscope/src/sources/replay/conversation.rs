//! A recording as conversations: per connection, its opening handshake,
//! its messages both ways in order with their offsets, and how it ended.
//! Built from events, so every input `read` understands (record files,
//! captures, HAR) can be replayed, served as a mock or diffed.

use std::collections::HashMap;

use anyhow::bail;
use wscope_events::{ClosedBy, Direction, Event, EventKind, Open, Payload};

/// How much payload a recording may bring into memory: replay keeps every
/// message of the conversations it plays.
const MAX_KEPT: u64 = 1 << 30;

/// One recorded connection.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The connection's id in the recording (`c3`).
    pub conn: String,
    /// When it opened (or, without an `open`, its first event), in
    /// microseconds since the epoch.
    pub started_us: u64,
    /// Its handshake, when the recording has it.
    pub open: Option<Open>,
    /// Data messages both ways, in the order they were recorded.
    pub messages: Vec<Recorded>,
    /// Who began closing, with which code and reason, when the recording
    /// saw the end: from the `closed` event where there is one (a client's
    /// own recording may hold only the server's answering close frame),
    /// else from the first close frame.
    pub close: Option<RecordedClose>,
    /// The close code of the connection's end (1006 when it dropped), when
    /// the recording saw the end.
    pub end_code: Option<u16>,
}

/// One recorded data message.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its number among the connection's messages in its direction
    /// (1-based), as replay reports name it.
    pub number: u64,
    /// Microseconds after the connection started.
    pub at_us: u64,
    pub dir: Direction,
    pub binary: bool,
    pub payload: Payload,
}

/// How a recorded connection's closing began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedClose {
    /// `c2s`: the client closed first. A proxy's close reached the client
    /// as the server's.
    pub dir: Direction,
    pub code: Option<u16>,
    pub reason: String,
}

impl Conversation {
    fn new(conn: &str, ts: u64) -> Conversation {
        Conversation {
            conn: conn.to_owned(),
            started_us: ts,
            open: None,
            messages: Vec::new(),
            close: None,
            end_code: None,
        }
    }

    /// The messages that went one way.
    pub fn sent_by(&self, dir: Direction) -> impl Iterator<Item = &Recorded> {
        self.messages.iter().filter(move |m| m.dir == dir)
    }

    /// The request header `name` of the recorded handshake.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.open.as_ref().and_then(|open| {
            open.request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }

    /// The target of the recorded request (`/chat?room=1`), from its
    /// request line or, failing that, its URL.
    pub fn target(&self) -> Option<String> {
        let open = self.open.as_ref()?;
        let mut words = open.request.line.split_whitespace();
        if let (Some(_method), Some(target)) = (words.next(), words.next())
            && target.starts_with('/')
        {
            return Some(target.to_owned());
        }
        let url = url::Url::parse(&open.url).ok()?;
        Some(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
    }
}

/// The conversations of a recording, in the order they started.
#[derive(Debug, Default)]
pub struct Recording {
    pub conversations: Vec<Conversation>,
}

impl Recording {
    /// Collects the events of a recording into conversations. Frames,
    /// notes and errors are left out: a conversation is what its ends
    /// said to each other.
    pub fn from_events(
        events: impl IntoIterator<Item = anyhow::Result<Event>>,
    ) -> anyhow::Result<Recording> {
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut conversations: Vec<Conversation> = Vec::new();
        let mut counts: Vec<[u64; 2]> = Vec::new();
        let mut kept = 0u64;
        for event in events {
            let event = event?;
            let index = match by_id.get(&event.conn) {
                Some(&index) => index,
                None => {
                    // A connection is only worth a conversation once it has
                    // opened or carried a message.
                    if !matches!(event.kind, EventKind::Open(_) | EventKind::Message(_)) {
                        continue;
                    }
                    by_id.insert(event.conn.clone(), conversations.len());
                    conversations.push(Conversation::new(&event.conn, event.ts));
                    counts.push([0, 0]);
                    conversations.len() - 1
                }
            };
            let conv = &mut conversations[index];
            match event.kind {
                EventKind::Open(open) => {
                    conv.started_us = event.ts;
                    conv.open = Some(open);
                }
                EventKind::Message(message) => {
                    let Some(dir) = event.dir else { continue };
                    kept += message.payload.len;
                    if kept > MAX_KEPT {
                        bail!(
                            "the recording holds more than {} MiB of messages; pick a connection with --conn",
                            MAX_KEPT >> 20
                        );
                    }
                    let count = &mut counts[index][dir_index(dir)];
                    *count += 1;
                    conv.messages.push(Recorded {
                        number: *count,
                        at_us: event.ts.saturating_sub(conv.started_us),
                        dir,
                        binary: message.opcode == "binary",
                        payload: message.payload,
                    });
                }
                EventKind::Close(close) if conv.close.is_none() => {
                    if let Some(dir) = event.dir {
                        conv.close = Some(RecordedClose {
                            dir,
                            code: close.code,
                            reason: close.reason,
                        });
                    }
                }
                EventKind::Closed(closed) => {
                    conv.end_code = Some(closed.code);
                    let dir = match closed.by {
                        ClosedBy::Client => Some(Direction::ClientToServer),
                        ClosedBy::Server | ClosedBy::Proxy => Some(Direction::ServerToClient),
                        ClosedBy::Unknown => None,
                    };
                    if let Some(dir) = dir
                        && closed.code != 1006
                    {
                        let code = (closed.code != 1005).then_some(closed.code);
                        // The close frame's own reason, when it was seen.
                        let reason = match &conv.close {
                            Some(seen) if seen.code == code => seen.reason.clone(),
                            _ => closed.reason,
                        };
                        conv.close = Some(RecordedClose { dir, code, reason });
                    }
                }
                _ => {}
            }
        }
        conversations.sort_by_key(|c| c.started_us);
        Ok(Recording { conversations })
    }

    /// When the first conversation started.
    pub fn started_us(&self) -> u64 {
        self.conversations
            .iter()
            .map(|c| c.started_us)
            .min()
            .unwrap_or(0)
    }
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wscope_events::{Close, Message};

    fn event(
        ts: u64,
        conn: &str,
        dir: Option<Direction>,
        kind: EventKind,
    ) -> anyhow::Result<Event> {
        Ok(Event {
            ts,
            conn: conn.to_owned(),
            dir,
            kind,
        })
    }

    fn text(data: &str) -> EventKind {
        EventKind::Message(Message::new(
            wscope_proto::OpCode::Text,
            data.as_bytes(),
            usize::MAX,
        ))
    }

    #[test]
    fn messages_are_numbered_per_direction_and_timed_from_the_start() {
        let c2s = Some(Direction::ClientToServer);
        let s2c = Some(Direction::ServerToClient);
        let events = vec![
            event(100, "c2", c2s, text("late")),
            event(10, "c1", c2s, text("a")),
            event(20, "c1", s2c, text("b")),
            event(30, "c1", c2s, text("c")),
            event(
                40,
                "c1",
                c2s,
                EventKind::Close(Close::new(Some(wscope_proto::CloseCode(1000)), "bye")),
            ),
            event(
                41,
                "c1",
                s2c,
                EventKind::Close(Close::new(Some(wscope_proto::CloseCode(1000)), "")),
            ),
            event(
                50,
                "c3",
                None,
                EventKind::Note {
                    text: "ignored".into(),
                },
            ),
        ];
        let recording = Recording::from_events(events).unwrap();
        let ids: Vec<&str> = recording
            .conversations
            .iter()
            .map(|c| c.conn.as_str())
            .collect();
        assert_eq!(ids, ["c1", "c2"]);
        let c1 = &recording.conversations[0];
        let numbers: Vec<(u64, u64)> = c1.messages.iter().map(|m| (m.number, m.at_us)).collect();
        assert_eq!(numbers, [(1, 0), (1, 10), (2, 20)]);
        assert_eq!(c1.close.as_ref().unwrap().dir, Direction::ClientToServer);
        assert_eq!(c1.close.as_ref().unwrap().reason, "bye");
        assert_eq!(recording.started_us(), 10);
    }
}

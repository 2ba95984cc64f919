//! A recorded conversation's server side as a script for `serve --replay`.
//!
//! The recorded messages are cut into exchanges: each client message with
//! the server messages that came after it, up to the next client message.
//! Server messages from before the client's first message are unprompted
//! (a greeting, a first snapshot) and go out at their recorded offsets
//! from the open. When the recording shows the server closing first, its
//! close ends the script. Scripts are built and checked once, before the
//! server listens, and shared by every connection they answer
//! ([`super::mock`] plays one on one connection).

use std::sync::Arc;

use anyhow::bail;
use wscope_events::Direction;
use wscope_proto::CloseCode;

use super::compare::Compared;
use super::conversation::{Conversation, Recorded, Recording};

/// One recorded conversation, as a mock plays it.
#[derive(Debug, Clone)]
pub struct Script {
    /// The recorded connection's id (`c1`).
    pub conn: String,
    /// The recorded request target (`/chat?room=1`), when the recording
    /// has the handshake.
    pub target: Option<String>,
    /// The subprotocol the recorded server selected.
    pub subprotocol: Option<String>,
    /// Server messages sent before the client's first message.
    pub unprompted: Vec<Recorded>,
    /// One per recorded client message, in recorded order.
    pub exchanges: Vec<Exchange>,
    /// The server's own close, sent after the last scripted message, when
    /// the recording shows the server closing first.
    pub close: Option<ServerClose>,
}

/// A recorded client message and the server messages that followed it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The client message, as a live one is compared with it.
    pub client: Compared,
    /// When it was recorded, in microseconds after the open.
    pub at_us: u64,
    /// The server messages after it, before the next client message.
    pub replies: Vec<Recorded>,
}

/// How the recorded server closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerClose {
    pub code: Option<CloseCode>,
    pub reason: String,
}

impl Script {
    /// Cuts a conversation into its unprompted messages and exchanges.
    pub fn from_conversation(conv: &Conversation) -> Script {
        let mut unprompted = Vec::new();
        let mut exchanges: Vec<Exchange> = Vec::new();
        for message in &conv.messages {
            match (message.dir, exchanges.last_mut()) {
                (Direction::ClientToServer, _) => exchanges.push(Exchange {
                    client: Compared {
                        number: message.number,
                        binary: message.binary,
                        payload: message.payload.clone(),
                    },
                    at_us: message.at_us,
                    replies: Vec::new(),
                }),
                (Direction::ServerToClient, Some(exchange)) => {
                    exchange.replies.push(message.clone())
                }
                (Direction::ServerToClient, None) => unprompted.push(message.clone()),
            }
        }
        let close = conv
            .close
            .as_ref()
            .filter(|close| close.dir == Direction::ServerToClient)
            .map(|close| ServerClose {
                // A code no endpoint may send (a damaged recording) becomes
                // a close without one rather than a protocol error.
                code: close
                    .code
                    .map(CloseCode)
                    .filter(|code| code.is_valid_on_wire()),
                reason: close.reason.clone(),
            });
        Script {
            conn: conv.conn.clone(),
            target: conv.target(),
            subprotocol: conv.open.as_ref().and_then(|open| open.subprotocol.clone()),
            unprompted,
            exchanges,
            close,
        }
    }

    /// Every server message of the script, in recorded order.
    pub fn server_messages(&self) -> impl Iterator<Item = &Recorded> {
        self.unprompted
            .iter()
            .chain(self.exchanges.iter().flat_map(|e| e.replies.iter()))
    }

    /// One line for the start-up message and the note a connection gets:
    /// `c1 (/chat): 1 unprompted message, 3 exchanges, then close 4000`.
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = self.conn.clone();
        if let Some(target) = &self.target {
            line.push_str(&format!(" ({target})"));
        }
        line.push_str(&format!(
            ": {}, {}",
            plural(
                self.unprompted.len(),
                "unprompted message",
                "unprompted messages"
            ),
            plural(self.exchanges.len(), "exchange", "exchanges")
        ));
        match &self.close {
            Some(ServerClose {
                code: Some(code), ..
            }) => line.push_str(&format!(", then close {}", code.0)),
            Some(ServerClose { code: None, .. }) => line.push_str(", then close"),
            None => {}
        }
        line
    }
}

/// The scripts a mock server answers from, in recorded order (never
/// empty).
#[derive(Debug)]
pub struct Scripts {
    list: Vec<Arc<Script>>,
}

impl Scripts {
    /// The conversations of `recording` (only `conn`, when given) as
    /// scripts. A recording with nothing to serve is an error naming
    /// `name` (the file) and the connection: no connection at all, one
    /// without server messages, a server message that cannot be sent as
    /// recorded.
    pub fn new(recording: &Recording, conn: Option<&str>, name: &str) -> anyhow::Result<Scripts> {
        let picked = super::pick(recording, conn, name)?;
        let mut list = Vec::new();
        for conv in &picked {
            let script = Script::from_conversation(conv);
            if script.server_messages().next().is_none() {
                let others: Vec<&str> = recording
                    .conversations
                    .iter()
                    .filter(|c| c.sent_by(Direction::ServerToClient).next().is_some())
                    .map(|c| c.conn.as_str())
                    .collect();
                let hint = if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; pick one that has some with --conn ({})",
                        others.join(", ")
                    )
                };
                bail!(
                    "{name}: recorded connection {} has no server messages, so a mock of it would never say anything{hint}",
                    script.conn
                );
            }
            for message in script.server_messages() {
                let which = format!("{name}: {} server message {}", script.conn, message.number);
                if message.payload.truncated {
                    bail!(
                        "{which} was cut when it was recorded ({} of {} bytes kept); the mock does not send part of a message: record again with a larger --max-payload",
                        message.payload.kept_len(),
                        message.payload.len
                    );
                }
            }
            list.push(Arc::new(script));
        }
        Ok(Scripts { list })
    }

    /// The script that answers a request for `target`: the one recorded
    /// with the same path and query, else the first with the same path,
    /// else the first.
    pub fn for_target(&self, target: &str) -> &Arc<Script> {
        let path = |t: &str| t.split('?').next().unwrap_or_default().to_owned();
        let wanted = path(target);
        self.list
            .iter()
            .find(|s| s.target.as_deref() == Some(target))
            .or_else(|| {
                self.list
                    .iter()
                    .find(|s| s.target.as_deref().map(path).as_deref() == Some(wanted.as_str()))
            })
            .unwrap_or(&self.list[0])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Script>> {
        self.list.iter()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sources::replay::conversation::RecordedClose;
    use wscope_events::Payload;

    /// A conversation from `(direction, at_us, text)` steps: `>` from the
    /// client, `<` from the server.
    pub(crate) fn conversation(steps: &[(&str, u64, &str)]) -> Conversation {
        let mut counts = [0u64, 0];
        let messages = steps
            .iter()
            .map(|(dir, at_us, text)| {
                let (dir, count) = match *dir {
                    ">" => (Direction::ClientToServer, &mut counts[0]),
                    _ => (Direction::ServerToClient, &mut counts[1]),
                };
                *count += 1;
                Recorded {
                    number: *count,
                    at_us: *at_us,
                    dir,
                    binary: false,
                    payload: Payload::capture(text.as_bytes(), true, usize::MAX),
                }
            })
            .collect();
        Conversation {
            conn: "c1".into(),
            started_us: 0,
            open: None,
            messages,
            close: None,
            end_code: None,
        }
    }

    fn texts(list: &[Recorded]) -> Vec<&str> {
        list.iter()
            .map(|m| m.payload.text.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn messages_are_cut_into_unprompted_and_exchanges() {
        let conv = conversation(&[
            ("<", 5, "hello"),
            ("<", 6, "motd"),
            (">", 10, "login"),
            ("<", 12, "welcome"),
            (">", 20, "ping?"),
            (">", 30, "sub"),
            ("<", 31, "subscribed"),
            ("<", 40, "quote"),
        ]);
        let script = Script::from_conversation(&conv);
        assert_eq!(texts(&script.unprompted), ["hello", "motd"]);
        let exchanges: Vec<(&str, u64, Vec<&str>)> = script
            .exchanges
            .iter()
            .map(|e| {
                (
                    e.client.payload.text.as_deref().unwrap(),
                    e.at_us,
                    texts(&e.replies),
                )
            })
            .collect();
        assert_eq!(
            exchanges,
            [
                ("login", 10, vec!["welcome"]),
                ("ping?", 20, vec![]),
                ("sub", 30, vec!["subscribed", "quote"]),
            ]
        );
        assert_eq!(script.server_messages().count(), 5);
        assert_eq!(script.close, None);
    }

    #[test]
    fn only_a_server_that_closed_first_closes() {
        let mut conv = conversation(&[(">", 1, "a"), ("<", 2, "b")]);
        conv.close = Some(RecordedClose {
            dir: Direction::ClientToServer,
            code: Some(1000),
            reason: String::new(),
        });
        assert_eq!(Script::from_conversation(&conv).close, None);
        conv.close = Some(RecordedClose {
            dir: Direction::ServerToClient,
            code: Some(4000),
            reason: "done".into(),
        });
        let script = Script::from_conversation(&conv);
        assert_eq!(
            script.close,
            Some(ServerClose {
                code: Some(CloseCode(4000)),
                reason: "done".into()
            })
        );
        assert_eq!(
            script.summary(),
            "c1: 0 unprompted messages, 1 exchange, then close 4000"
        );
    }

    #[test]
    fn a_recording_with_nothing_to_serve_is_refused_by_name() {
        let empty = Recording::default();
        let err = Scripts::new(&empty, None, "rec.jsonl").unwrap_err();
        assert!(err.to_string().contains("rec.jsonl"), "{err}");

        let mut silent = conversation(&[(">", 1, "anyone?")]);
        silent.conn = "c2".into();
        let talking = conversation(&[(">", 1, "hi"), ("<", 2, "hello")]);
        let recording = Recording {
            conversations: vec![talking, silent],
        };
        let err = Scripts::new(&recording, Some("c2"), "rec.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rec.jsonl: recorded connection c2 has no server messages"),
            "{err}"
        );
        assert!(err.contains("--conn (c1)"), "{err}");
        assert!(Scripts::new(&recording, Some("c1"), "rec.jsonl").is_ok());

        let mut cut = conversation(&[("<", 1, "a long greeting")]);
        cut.messages[0].payload.truncate(4);
        let recording = Recording {
            conversations: vec![cut],
        };
        let err = Scripts::new(&recording, None, "rec.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c1 server message 1 was cut") && err.contains("--max-payload"),
            "{err}"
        );
    }

    #[test]
    fn a_request_is_answered_by_the_script_recorded_for_its_target() {
        let script = |conn: &str, target: &str| {
            Arc::new(Script {
                conn: conn.into(),
                target: Some(target.into()),
                subprotocol: None,
                unprompted: Vec::new(),
                exchanges: Vec::new(),
                close: None,
            })
        };
        let scripts = Scripts {
            list: vec![
                script("c1", "/a"),
                script("c2", "/b?x=1"),
                script("c3", "/b?x=2"),
            ],
        };
        assert_eq!(scripts.for_target("/b?x=2").conn, "c3");
        assert_eq!(scripts.for_target("/b?x=9").conn, "c2");
        assert_eq!(scripts.for_target("/b").conn, "c2");
        assert_eq!(scripts.for_target("/a?y").conn, "c1");
        assert_eq!(scripts.for_target("/elsewhere").conn, "c1");
    }
}

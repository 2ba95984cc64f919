//! One live connection playing a recorded conversation's client side:
//! open with the recorded handshake, send the client's messages paced as
//! asked, collect what the server sends, close as recorded, then compare.

use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;
use tokio::time::Instant;
use url::Url;
use wscope_events::filter::{Expr, PathStep, json_path_string};
use wscope_events::{Close, Closed, ClosedBy, Diff, Direction, Event, EventKind, Message, Payload};
use wscope_proto::{CloseCode, OpCode};

use super::compare::{self, Aligned, Compared, Rules, Tally};
use super::conversation::{Conversation, Recorded};
use crate::exit::connection as exit;
use crate::network::connection::{ConnError, Incoming};
use crate::sinks::emit::Events;
use crate::sources::dial::Dialed;
use crate::sources::dial::HandshakeArgs;
use crate::sources::replay::options::Pace;

/// What every connection of a replay shares.
pub struct Plan {
    pub to: Url,
    pub pace: Pace,
    pub timeout: Duration,
    pub filter: Option<Expr>,
    pub rules: Rules,
    pub extract: Vec<(String, Vec<PathStep>)>,
    pub send: Vec<String>,
    /// `-H`, parsed.
    pub headers: Vec<(String, String)>,
    pub ca: Option<std::path::PathBuf>,
    pub insecure: bool,
    pub connect_timeout: Duration,
    pub max_message: u64,
    /// Payload bytes of the server's compared messages one connection
    /// keeps: memory is bounded by bytes, whatever the server does.
    pub max_compared: u64,
}

/// How one replayed connection went, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ConnReport {
    /// The id of this replayed connection in events.
    pub id: String,
    /// The recorded connection it played.
    pub recorded: String,
    pub url: String,
    /// `same`, `different` or `failed`.
    pub result: &'static str,
    /// The exit status this connection alone would give.
    pub status: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub sent: u64,
    pub received: u64,
    /// Recorded server messages that were compared, and live ones.
    pub expected: u64,
    pub compared: u64,
    #[serde(flatten)]
    pub tally: Tally,
    pub close: CloseReport,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Diff>,
    /// Headers the recording had redacted or stripped, not given with -H.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_headers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extracted: Vec<Extracted>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ConnReport {
    /// A report with nothing counted yet.
    pub fn new(id: &str, recorded: &str, result: &'static str, status: i32) -> ConnReport {
        ConnReport {
            id: id.to_owned(),
            recorded: recorded.to_owned(),
            url: String::new(),
            result,
            status,
            error: None,
            sent: 0,
            received: 0,
            expected: 0,
            compared: 0,
            tally: Tally::default(),
            close: CloseReport::default(),
            differences: Vec::new(),
            missing_headers: Vec::new(),
            extracted: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// How the recorded and the live connection ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CloseReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Ending>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Ending>,
}

/// Who began the close, and with which code (1005 for a close frame
/// without one, 1006 for none at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ending {
    pub by: &'static str,
    pub code: u16,
}

/// A value taken with --extract: recorded, and what came instead.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    pub name: String,
    pub recorded: String,
    pub live: String,
}

/// Why a recorded client message cannot be sent as it is.
pub fn unsendable(conv: &Conversation, message: &Recorded) -> Option<String> {
    let which = format!(
        "{} client message {} ({} of {} bytes recorded)",
        conv.conn,
        message.number,
        message.payload.kept_len(),
        message.payload.len
    );
    if message.payload.truncated {
        return Some(format!(
            "{which} was cut when it was recorded; replay does not send part of a message: record again with a larger --max-payload"
        ));
    }
    None
}

/// Whether a text still holds a redaction marker after substitutions.
pub fn redacted(text: &str) -> bool {
    text.contains("<redacted")
}

/// The handshake of a replayed connection: the recorded one, with -H
/// over it. Returns the headers the recording lacks (redacted).
pub fn handshake(plan: &Plan, conv: &Conversation) -> (HandshakeArgs, Vec<String>) {
    const MANAGED: &[&str] = &[
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        "content-length",
        "transfer-encoding",
    ];
    let mut url = plan.to.clone();
    if matches!(url.path(), "" | "/")
        && url.query().is_none()
        && let Some(target) = conv.target()
    {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target, None),
        };
        url.set_path(&path);
        url.set_query(query.as_deref());
    }
    let given = |name: &str| {
        plan.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut headers = Vec::new();
    let mut missing = Vec::new();
    let mut origin = None;
    if let Some(open) = &conv.open {
        for (name, value) in &open.request.headers {
            let lower = name.to_ascii_lowercase();
            if name.starts_with(':') || MANAGED.contains(&lower.as_str()) || given(name) {
                continue;
            }
            if value.starts_with("<redacted") {
                missing.push(name.clone());
                continue;
            }
            if lower == "origin" {
                origin = Some(value.clone());
            } else {
                headers.push(format!("{name}: {value}"));
            }
        }
    }
    for (name, value) in &plan.headers {
        headers.push(format!("{name}: {value}"));
    }
    let subprotocols = conv
        .request_header("sec-websocket-protocol")
        .map(|list| {
            list.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let compress = conv
        .request_header("sec-websocket-extensions")
        .is_some_and(|e| e.contains("permessage-deflate"));
    let args = HandshakeArgs {
        url: url.to_string(),
        compress,
        headers,
        auth: None,
        origin,
        subprotocols,
        ca: plan.ca.clone(),
        insecure: plan.insecure,
        cert: None,
        key: None,
        proxy: None,
        resolve: Vec::new(),
        connect_to: Vec::new(),
        connect_timeout: plan.connect_timeout,
    };
    (args, missing)
}

/// `{{NAME}}` replaced by the value --extract took for NAME.
pub fn expand(text: &str, values: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

/// A JSON value as it stands in a message's text: a string without its
/// quotes, anything else as JSON.
fn as_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The live side of one replayed connection.
struct Live<'a> {
    plan: &'a Plan,
    id: &'a str,
    events: &'a Events,
    conn: Dialed,
    /// Server messages that count, as they arrived.
    compared: Vec<Compared>,
    received: u64,
    sent: u64,
    /// The first close frame either way, or a drop (1006).
    ending: Option<Ending>,
    /// The connection can carry nothing more.
    ended: bool,
    /// More server messages arrived than replay keeps for comparing
    /// (`--max-compared`): the replay of this connection stops.
    full: bool,
    /// Payload bytes of `compared`.
    kept: u64,
    /// Per --extract rule: how many live values have been seen.
    seen: Vec<usize>,
    /// Per --extract rule: the recorded values, in order.
    recorded_values: Vec<Vec<String>>,
    /// Recorded value → live value.
    substitutions: Vec<(String, String)>,
    /// NAME → the latest live value.
    values: Vec<(String, String)>,
    extracted: Vec<Extracted>,
    notes: Vec<String>,
    started: Instant,
}

impl Live<'_> {
    async fn emit(&mut self, dir: Option<Direction>, kind: EventKind) {
        self.events.emit(self.id, dir, kind).await;
    }

    async fn note(&mut self, text: String) {
        self.emit(None, EventKind::Note { text: text.clone() })
            .await;
        self.notes.push(text);
    }

    /// Takes one thing the server did.
    async fn take(&mut self, incoming: Result<Incoming, ConnError>) {
        match incoming {
            Ok(Incoming::Message(message)) => {
                self.received += 1;
                let event = Event::now(
                    self.id,
                    Some(Direction::ServerToClient),
                    EventKind::Message(Message::capture(&message, usize::MAX)),
                );
                let counts = self.plan.filter.as_ref().is_none_or(|f| f.matches(&event));
                self.events.emit_event(event.clone()).await;
                let EventKind::Message(recorded) = event.kind else {
                    unreachable!("built as a message just above")
                };
                self.extract(&recorded.payload);
                if counts {
                    self.kept += recorded.payload.len;
                    if self.kept > self.plan.max_compared && !self.full {
                        self.full = true;
                        self.note(format!(
                            "the server sent more than {} bytes of compared messages (--max-compared); replay keeps no more and ends this connection",
                            self.plan.max_compared
                        )).await;
                    }
                    self.compared.push(Compared {
                        number: self.compared.len() as u64 + 1,
                        binary: recorded.opcode == "binary",
                        payload: recorded.payload,
                    });
                }
            }
            Ok(Incoming::Close(close)) => {
                let code = close.code.map(|c| c.0);
                self.emit(
                    Some(Direction::ServerToClient),
                    EventKind::Close(Close::new(close.code, &close.reason)),
                )
                .await;
                if self.ending.is_none() {
                    self.ending = Some(Ending {
                        by: "server",
                        code: code.unwrap_or(1005),
                    });
                }
                self.ended = true;
            }
            Ok(Incoming::Eof) => {
                if self.ending.is_none() {
                    self.ending = Some(Ending {
                        by: "nobody",
                        code: 1006,
                    });
                }
                self.ended = true;
            }
            Ok(Incoming::Ping(_) | Incoming::Pong(_) | Incoming::DataFrame(..)) => {}
            Err(err) => {
                self.emit(
                    None,
                    EventKind::Error {
                        message: err.to_string(),
                    },
                )
                .await;
                if self.ending.is_none() {
                    self.ending = Some(Ending {
                        by: "nobody",
                        code: 1006,
                    });
                }
                self.ended = true;
            }
        }
    }

    /// --extract: pairs the n-th live value at a path with the n-th
    /// recorded one.
    fn extract(&mut self, payload: &Payload) {
        if self.plan.extract.is_empty() {
            return;
        }
        let Some(json) = payload
            .text
            .as_deref()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        else {
            return;
        };
        for (k, (name, path)) in self.plan.extract.iter().enumerate() {
            let Some(value) = compare::value_at(&json, path) else {
                continue;
            };
            let live = as_text(value);
            let n = self.seen[k];
            self.seen[k] += 1;
            match self.values.iter_mut().find(|(v, _)| v == name) {
                Some(slot) => slot.1 = live.clone(),
                None => self.values.push((name.clone(), live.clone())),
            }
            if let Some(recorded) = self.recorded_values[k].get(n).cloned() {
                if !recorded.is_empty() && recorded != live {
                    self.substitutions.push((recorded.clone(), live.clone()));
                }
                self.extracted.push(Extracted {
                    name: name.clone(),
                    recorded,
                    live,
                });
            }
        }
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (recorded, live) in &self.substitutions {
            out = out.replace(recorded.as_str(), live);
        }
        out
    }

    /// Handles what arrives until `done` holds, the connection ends, or
    /// `deadline` passes (`None`: no deadline). With `resets`, every
    /// compared message moves the deadline on by the timeout.
    async fn pump(
        &mut self,
        done: impl Fn(&Self) -> bool,
        deadline: Option<Instant>,
        resets: bool,
    ) -> bool {
        let mut deadline = deadline;
        loop {
            if done(self) {
                return true;
            }
            if self.ended || self.full {
                return false;
            }
            let before = self.compared.len();
            let incoming = match deadline {
                Some(at) => tokio::select! {
                    incoming = self.conn.next() => incoming,
                    _ = tokio::time::sleep_until(at) => return done(self),
                },
                None => self.conn.next().await,
            };
            self.take(incoming).await;
            if resets && self.compared.len() > before {
                deadline = Some(Instant::now() + self.plan.timeout);
            }
        }
    }

    async fn send(&mut self, binary: bool, data: Vec<u8>) -> bool {
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        match self.conn.send(opcode, &data).await {
            Ok(()) => {
                self.sent += 1;
                self.emit(
                    Some(Direction::ClientToServer),
                    EventKind::Message(Message::new(opcode, &data, usize::MAX)),
                )
                .await;
                true
            }
            Err(err) => {
                let message = format!("sending failed: {err}");
                self.emit(None, EventKind::Error { message }).await;
                self.ended = true;
                if self.ending.is_none() {
                    self.ending = Some(Ending {
                        by: "nobody",
                        code: 1006,
                    });
                }
                false
            }
        }
    }
}

/// Whether a recorded or live server message counts for pacing and
/// comparison.
pub fn counts(filter: Option<&Expr>, conn: &str, message: &Recorded) -> bool {
    filter.is_none_or(|f| {
        f.matches(&Event {
            ts: 0,
            conn: conn.to_owned(),
            dir: Some(message.dir),
            kind: EventKind::Message(Message {
                opcode: if message.binary { "binary" } else { "text" }.to_owned(),
                payload: message.payload.clone(),
                compressed: false,
                frames: 1,
            }),
        })
    })
}

/// Plays `conv` once as connection `id`.
pub async fn play(plan: &Plan, conv: &Conversation, id: &str, events: &Events) -> ConnReport {
    let mut report = ConnReport::new(id, &conv.conn, "failed", exit::CONNECT_FAILED);
    // The recorded server messages that count, and for each client
    // message how many of them came before it.
    let mut expected: Vec<Compared> = Vec::new();
    let mut steps: Vec<(&Recorded, u64)> = Vec::new();
    for message in &conv.messages {
        match message.dir {
            Direction::ServerToClient => {
                if counts(plan.filter.as_ref(), &conv.conn, message) {
                    expected.push(Compared {
                        number: expected.len() as u64 + 1,
                        binary: message.binary,
                        payload: message.payload.clone(),
                    });
                }
            }
            Direction::ClientToServer => steps.push((message, expected.len() as u64)),
        }
    }
    report.expected = expected.len() as u64;
    let recorded_values: Vec<Vec<String>> = plan
        .extract
        .iter()
        .map(|(_, path)| {
            conv.sent_by(Direction::ServerToClient)
                .filter_map(|m| {
                    let json: serde_json::Value =
                        serde_json::from_str(m.payload.text.as_deref()?).ok()?;
                    compare::value_at(&json, path).map(as_text)
                })
                .collect()
        })
        .collect();

    let (handshake, missing) = handshake(plan, conv);
    report.url = handshake.url.clone();
    for name in &missing {
        let text = format!(
            "header {name} was redacted or stripped in the recording and is not sent; give it with -H '{name}: VALUE'"
        );
        events
            .emit(id, None, EventKind::Note { text: text.clone() })
            .await;
        report.notes.push(text);
    }
    report.missing_headers = missing;
    let conn = match crate::sources::dial::dial(&handshake, plan.max_message, events, id).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(status)) => {
            report.status = status;
            report.error = Some("the connection could not be opened".to_owned());
            return report;
        }
        Err(err) => {
            report.status = exit::CONNECT_FAILED;
            report.error = Some(format!("{err:#}"));
            let message = format!("{err:#}");
            events.emit(id, None, EventKind::Error { message }).await;
            return report;
        }
    };
    let mut live = Live {
        plan,
        id,
        events,
        conn,
        compared: Vec::new(),
        received: 0,
        sent: 0,
        ending: None,
        ended: false,
        full: false,
        kept: 0,
        seen: vec![0; plan.extract.len()],
        recorded_values,
        substitutions: Vec::new(),
        values: Vec::new(),
        extracted: Vec::new(),
        notes: Vec::new(),
        started: Instant::now(),
    };
    if steps.is_empty() {
        live.note(
            "no client messages in the recording: only the opening and what the server sends on its own are replayed"
                .to_owned(),
        ).await;
    }

    let mut unsent = 0;
    for (k, (message, before)) in steps.iter().enumerate() {
        if live.ended || live.full {
            unsent = steps.len() - k;
            break;
        }
        match plan.pace {
            Pace::Replies => {
                let want = *before as usize;
                let deadline = Some(Instant::now() + plan.timeout);
                if !live
                    .pump(|l| l.compared.len() >= want, deadline, true)
                    .await
                    && !live.ended
                {
                    let text = format!(
                        "waited {:?} for server message {} of {} before client message {}; sending it anyway",
                        plan.timeout,
                        live.compared.len() + 1,
                        want,
                        message.number
                    );
                    live.note(text).await;
                }
            }
            Pace::Original(scale) => {
                let at = live.started + Duration::from_micros(message.at_us).mul_f64(scale);
                live.pump(|_| false, Some(at), false).await;
            }
            Pace::None => {}
        }
        if live.ended || live.full {
            unsent = steps.len() - k;
            break;
        }
        let data = match &message.payload.text {
            Some(text) if !message.binary => {
                let text = live.substitute(text);
                if redacted(&text) {
                    let why = format!(
                        "client message {} holds a value that was redacted when it was recorded; replay does not send it: take the live value with --extract NAME=json.path, or record with --no-redact",
                        message.number
                    );
                    live.emit(
                        None,
                        EventKind::Error {
                            message: why.clone(),
                        },
                    )
                    .await;
                    report.error = Some(why);
                    unsent = steps.len() - k;
                    break;
                }
                text.into_bytes()
            }
            _ => message.payload.bytes().to_vec(),
        };
        if !live.send(message.binary, data).await {
            unsent = steps.len() - k - 1;
            break;
        }
    }
    if report.error.is_none() {
        for text in &plan.send {
            if live.ended || live.full {
                break;
            }
            let text = expand(text, &live.values);
            live.send(false, text.into_bytes()).await;
        }
    }
    if unsent > 0 && report.error.is_none() && !live.full {
        let (first, _) = steps[steps.len() - unsent];
        let how = match live.ending {
            Some(Ending { by: "server", code }) => format!("the server closed with {code}"),
            _ => "the connection dropped".to_owned(),
        };
        let text = format!(
            "{how} before client message {} of {} could be sent ({unsent} not sent)",
            first.number,
            steps.len()
        );
        // A difference the close comparison and the missing answers show,
        // not a failure of the replay itself.
        live.note(text).await;
    }

    // What the server still owes.
    let want = expected.len();
    if !live.ended && live.compared.len() < want {
        live.pump(
            |l| l.compared.len() >= want,
            Some(Instant::now() + plan.timeout),
            true,
        )
        .await;
    }
    // The end, as recorded.
    let recorded_ending = recorded_ending(conv);
    if !live.ended {
        let server_closed_first = conv
            .close
            .as_ref()
            .is_some_and(|c| c.dir == Direction::ServerToClient);
        if server_closed_first && !live.full {
            live.pump(|_| false, Some(Instant::now() + plan.timeout), false)
                .await;
            if !live.ended {
                live.note(format!(
                    "the server did not close within {:?}, as it did in the recording",
                    plan.timeout
                ))
                .await;
            }
        }
    }
    if !live.ended {
        let (code, reason) = match &conv.close {
            Some(close) if close.dir == Direction::ClientToServer => {
                (close.code.map(CloseCode), close.reason.clone())
            }
            _ => (Some(CloseCode::NORMAL), String::new()),
        };
        if let Err(err) = live.conn.close(code, &reason).await {
            live.emit(
                None,
                EventKind::Error {
                    message: format!("closing: {err}"),
                },
            )
            .await;
        }
        live.emit(
            Some(Direction::ClientToServer),
            EventKind::Close(Close::new(code, &reason)),
        )
        .await;
        live.ending = Some(Ending {
            by: "client",
            code: code.map_or(1005, |c| c.0),
        });
        // The server's answering close.
        live.pump(|_| false, Some(Instant::now() + plan.timeout), false)
            .await;
    }
    live.conn.finish(Duration::from_millis(200)).await;
    let stats = live.conn.stats();
    let ending = live.ending.unwrap_or(Ending {
        by: "nobody",
        code: 1006,
    });
    live.emit(
        None,
        EventKind::Closed(Closed {
            by: match ending.by {
                "client" => ClosedBy::Client,
                "server" => ClosedBy::Server,
                _ => ClosedBy::Unknown,
            },
            clean: ending.code != 1006,
            code: ending.code,
            reason: String::new(),
            meaning: CloseCode(ending.code).meaning().to_owned(),
            duration_us: live.started.elapsed().as_micros() as u64,
            messages_c2s: stats.messages_out,
            messages_s2c: stats.messages_in,
            bytes_c2s: stats.bytes_out,
            bytes_s2c: stats.bytes_in,
            ended: None,
        }),
    )
    .await;

    // The comparison. Values taken with --extract stand where the
    // recorded ones stood, and their paths are not compared.
    let mut rules = plan.rules.clone();
    rules
        .ignore
        .extend(plan.extract.iter().map(|(_, path)| path.clone()));
    for message in &mut expected {
        if let Some(text) = &message.payload.text
            && !message.binary
        {
            let text = live.substitute(text);
            message.payload.len = text.len() as u64;
            message.payload.text = Some(text);
        }
    }
    let aligned = compare::align(&expected, &live.compared, &rules);
    let mut differences: Vec<Diff> = aligned.iter().filter_map(Aligned::diff).cloned().collect();
    if let Some(recorded) = recorded_ending
        && recorded != ending
    {
        differences.push(Diff::close(
            Some(recorded.code),
            Some(ending.code),
            format!(
                "recorded: {} closed with {}; now: {} closed with {}",
                recorded.by, recorded.code, ending.by, ending.code
            ),
        ));
    }
    for diff in &differences {
        live.emit(
            Some(Direction::ServerToClient),
            EventKind::Diff(diff.clone()),
        )
        .await;
    }
    for (k, (name, path)) in plan.extract.iter().enumerate() {
        if live.seen[k] == 0 {
            let text = format!(
                "--extract {name}={}: no server message had this path{}",
                json_path_string(path),
                if live.recorded_values[k].is_empty() {
                    " (nor had any in the recording)"
                } else {
                    ""
                }
            );
            live.note(text).await;
        }
    }
    if live.full {
        report.error = live
            .notes
            .iter()
            .find(|n| n.contains("(--max-compared)"))
            .cloned();
    }
    let tally = Tally::of(&aligned);
    let different = !differences.is_empty();
    report.result = if report.error.is_some() {
        "failed"
    } else if different {
        "different"
    } else {
        "same"
    };
    report.status = if report.error.is_some() || different {
        1
    } else {
        0
    };
    report.sent = live.sent;
    report.received = live.received;
    report.compared = live.compared.len() as u64;
    report.tally = tally;
    report.close = CloseReport {
        recorded: recorded_ending,
        live: Some(ending),
    };
    report.differences = differences;
    report.extracted = live.extracted;
    report.notes.append(&mut live.notes);
    let summary = format!(
        "{} (replaying {}): {} sent, {} server messages compared with {} recorded: {} same, {} differ, {} missing, {} extra; closed {} by {}",
        report.result,
        conv.conn,
        report.sent,
        report.compared,
        report.expected,
        tally.same,
        tally.differs,
        tally.missing,
        tally.extra,
        ending.code,
        ending.by
    );
    events
        .emit(id, None, EventKind::Note { text: summary })
        .await;
    report
}

/// How the recorded connection ended, when the recording saw it.
pub fn recorded_ending(conv: &Conversation) -> Option<Ending> {
    match (&conv.close, conv.end_code) {
        (Some(close), _) => Some(Ending {
            by: match close.dir {
                Direction::ClientToServer => "client",
                Direction::ServerToClient => "server",
            },
            code: close.code.unwrap_or(1005),
        }),
        (None, Some(1006)) => Some(Ending {
            by: "nobody",
            code: 1006,
        }),
        _ => None,
    }
}

/// Parses `-H 'Name: value'`.
pub fn parse_header(header: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| anyhow!("header {header:?} should look like 'Name: value'"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wscope_events::{Head, Open, Timings};

    fn plan(to: &str, headers: &[(&str, &str)]) -> Plan {
        Plan {
            to: Url::parse(to).unwrap(),
            pace: Pace::Replies,
            timeout: Duration::from_secs(1),
            filter: None,
            rules: Rules::default(),
            extract: Vec::new(),
            send: Vec::new(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            ca: None,
            insecure: false,
            connect_timeout: Duration::from_secs(1),
            max_message: 1 << 20,
            max_compared: 1 << 20,
        }
    }

    fn recorded(headers: &[(&str, &str)]) -> Conversation {
        Conversation {
            conn: "c1".into(),
            started_us: 0,
            open: Some(Open {
                url: "ws://example.test/feed?room=1".into(),
                client: String::new(),
                server: String::new(),
                request: Head {
                    line: "GET /feed?room=1 HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect(),
                },
                response: Head::default(),
                subprotocol: None,
                extensions: Vec::new(),
                timings: Timings::default(),
                handshake: None,
                attempt: None,
            }),
            messages: Vec::new(),
            close: None,
            end_code: None,
        }
    }

    #[test]
    fn the_recorded_handshake_with_h_over_it() {
        let conv = recorded(&[
            ("Host", "example.test"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "x"),
            ("Sec-WebSocket-Protocol", "graphql-ws, chat"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("Origin", "http://app.test"),
            ("Authorization", "<redacted>"),
            ("Cookie", "<redacted>"),
            ("X-Trace", "abc"),
        ]);
        let (args, missing) = handshake(&plan("ws://127.0.0.1:9/", &[("Cookie", "sid=1")]), &conv);
        assert_eq!(args.url, "ws://127.0.0.1:9/feed?room=1");
        assert_eq!(args.subprotocols, ["graphql-ws", "chat"]);
        assert!(args.compress);
        assert_eq!(args.origin.as_deref(), Some("http://app.test"));
        assert_eq!(args.headers, ["X-Trace: abc", "Cookie: sid=1"]);
        assert_eq!(missing, ["Authorization"]);
        // A path of its own in --to wins over the recorded one.
        let (args, _) = handshake(&plan("ws://127.0.0.1:9/other", &[]), &conv);
        assert_eq!(args.url, "ws://127.0.0.1:9/other");
    }

    #[test]
    fn templates_and_markers() {
        let values = vec![("sid".to_owned(), "s-9".to_owned())];
        assert_eq!(
            expand(r#"{"sid":"{{sid}}","x":"{{other}}"}"#, &values),
            r#"{"sid":"s-9","x":"{{other}}"}"#
        );
        assert!(redacted(r#"{"token":"<redacted:1a2b>"}"#));
        assert!(!redacted(r#"{"token":"abc"}"#));
        assert_eq!(as_text(&serde_json::json!("abc")), "abc");
        assert_eq!(as_text(&serde_json::json!(42)), "42");
    }
}

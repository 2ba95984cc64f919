//! The page's assets (embedded at build time) and its WebSocket: history
//! then live events out; filters and actions in (docs/UI.md).

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use wscope_events::filter::{self, Expr};
use wscope_events::{Direction, EventKind};
use wscope_proto::handshake::{Request, ServerResponse};
use wscope_proto::{CloseCode, OpCode, Role};

use super::hub::Stamped;
use super::{Mode, Ui};
use crate::network::connection::{Connection, Incoming};
use crate::sources::control::{Command, Reach};
use crate::sources::rules::Injected;

pub const INDEX: &str = include_str!("assets/index.html");
pub const APP_JS: &str = include_str!("assets/app.js");
pub const APP_CSS: &str = include_str!("assets/app.css");

/// The largest message the page may send (an action with a payload).
const MAX_FROM_PAGE: u64 = 16 * 1024 * 1024;
/// History events per message.
const BATCH: usize = 512;

fn event_message(stamped: &Stamped, matched: Option<bool>) -> String {
    match matched {
        None => format!(
            r#"{{"type":"event","seq":{},"event":{}}}"#,
            stamped.seq, stamped.json
        ),
        Some(m) => format!(
            r#"{{"type":"event","seq":{},"match":{m},"event":{}}}"#,
            stamped.seq, stamped.json
        ),
    }
}

pub async fn session(
    ui: &Ui,
    mut stream: TcpStream,
    request: &Request,
    early: &[u8],
    mut shutdown: watch::Receiver<bool>,
) {
    let upgrade = match request.validate_upgrade() {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let mut out = Vec::new();
            ServerResponse::reject(rejection.status, &rejection.reason, rejection.headers)
                .encode(&mut out);
            let _ = stream.write_all(&out).await;
            return;
        }
    };
    let mut out = Vec::new();
    ServerResponse::accept(&upgrade.key, None, None).encode(&mut out);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    let mut conn = Connection::new(stream, Role::Server, early, None, MAX_FROM_PAGE);
    let (mode, source) = match &ui.mode {
        Mode::Live { source, .. } => ("live", source),
        Mode::Offline { source } => ("offline", source),
    };
    let hello = json!({
        "type": "hello",
        "mode": mode,
        "source": source,
        "version": env!("CARGO_PKG_VERSION"),
        "actions": ui.actions(),
    });
    if send(&mut conn, hello.to_string()).await.is_err() {
        return;
    }
    let (history, mut live) = ui.hub.subscribe();
    // The history in batches: a browser spends about 100 µs on each
    // WebSocket message, which is what loading a long history costs.
    for chunk in history.chunks(BATCH) {
        let mut batch = String::from(r#"{"type":"batch","messages":["#);
        for (i, stamped) in chunk.iter().enumerate() {
            if i > 0 {
                batch.push(',');
            }
            batch.push_str(&event_message(stamped, None));
        }
        batch.push_str("]}");
        if send(&mut conn, batch).await.is_err() {
            return;
        }
    }
    let end = json!({"type": "history_end", "count": history.len()});
    if send(&mut conn, end.to_string()).await.is_err() {
        return;
    }
    let mut last_seq = history.last().map_or(0, |s| s.seq);
    drop(history);
    let mut filter: Option<Expr> = None;
    loop {
        tokio::select! {
            incoming = conn.next() => {
                let text = match incoming {
                    Ok(Incoming::Message(message)) if message.opcode == OpCode::Text => {
                        String::from_utf8_lossy(&message.data).into_owned()
                    }
                    Ok(Incoming::Close(_) | Incoming::Eof) | Err(_) => return,
                    Ok(_) => continue,
                };
                let answer = answer(ui, &text, &mut filter).await;
                if send(&mut conn, answer.to_string()).await.is_err() {
                    return;
                }
            }
            item = live.recv() => {
                let stamped = match item {
                    Ok(stamped) => stamped,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let note = json!({"type": "lagged", "missed": missed});
                        if send(&mut conn, note.to_string()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if stamped.seq <= last_seq {
                    continue;
                }
                last_seq = stamped.seq;
                let matched = filter.as_ref().map(|f| f.matches(&stamped.event));
                if send(&mut conn, event_message(&stamped, matched)).await.is_err() {
                    return;
                }
            }
            () = async { let _ = shutdown.wait_for(|down| *down).await; } => {
                let _ = conn.close(Some(CloseCode::GOING_AWAY), "wscope is stopping").await;
                return;
            }
        }
    }
}

async fn send(conn: &mut Connection<TcpStream>, text: String) -> Result<(), ()> {
    conn.send(OpCode::Text, text.as_bytes())
        .await
        .map_err(|_| ())
}

/// Answers one request from the page.
async fn answer(ui: &Ui, text: &str, filter: &mut Option<Expr>) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return json!({"type": "error", "error": "not JSON"});
    };
    let op = request["op"].as_str().unwrap_or_default();
    match op {
        "filter" => {
            let expr = request["expr"].as_str().unwrap_or_default();
            set_filter(ui, expr, filter)
        }
        "send" | "close" | "reset" => {
            let result = act(ui, op, &request).await;
            match result {
                Ok(()) => json!({"type": "action", "op": op, "ok": true}),
                Err(error) => json!({"type": "action", "op": op, "ok": false, "error": error}),
            }
        }
        _ => json!({"type": "error", "error": format!("unknown op {op:?}")}),
    }
}

fn set_filter(ui: &Ui, expr: &str, filter: &mut Option<Expr>) -> Value {
    let parsed = if expr.trim().is_empty() {
        None
    } else {
        match filter::parse(expr) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                return json!({
                    "type": "filter",
                    "ok": false,
                    "expr": expr,
                    "error": err.message,
                    "column": err.column + 1,
                });
            }
        }
    };
    let matches: Vec<u64> = ui
        .hub
        .snapshot()
        .iter()
        .filter(|s| parsed.as_ref().is_none_or(|f| f.matches(&s.event)))
        .map(|s| s.seq)
        .collect();
    *filter = parsed;
    json!({"type": "filter", "ok": true, "expr": expr, "matches": matches})
}

/// Carries out an action on a live connection and records it as a note.
async fn act(ui: &Ui, op: &str, request: &Value) -> Result<(), String> {
    let Mode::Live {
        controls: Some(controls),
        events,
        ..
    } = &ui.mode
    else {
        return Err(
            "actions need a live connection (wscope proxy --ui or wscope serve --ui)".to_owned(),
        );
    };
    let conn = request["conn"].as_str().unwrap_or_default();
    let handle = controls
        .get(conn)
        .ok_or_else(|| format!("{conn:?} is not an open connection"))?;
    let to = request["to"].as_str().unwrap_or(match handle.reach() {
        Reach::Both => "both",
        Reach::Client => "client",
    });
    let dirs = match (to, handle.reach()) {
        ("client", _) => vec![Direction::ServerToClient],
        ("server" | "both", Reach::Client) => {
            return Err(
                "this connection is served by wscope itself: only the client can be sent to"
                    .to_owned(),
            );
        }
        ("server", Reach::Both) => vec![Direction::ClientToServer],
        ("both", Reach::Both) => vec![Direction::ServerToClient, Direction::ClientToServer],
        (other, _) => return Err(format!("`to` is client, server or both, not {other:?}")),
    };
    let ended = || "the connection has ended".to_owned();
    let note = match op {
        "send" => {
            let message = match (request["text"].as_str(), request["hex"].as_str()) {
                (Some(text), None) => Injected::Text(text.to_owned()),
                (None, Some(hex)) => Injected::Binary(crate::values::decode_hex(hex)?),
                _ => return Err("send needs `text` or `hex`".to_owned()),
            };
            if dirs.len() != 1 {
                return Err("send goes to the client or the server".to_owned());
            }
            let note = format!("ui: sent {message} to the {to}");
            if !handle.send(Command::Inject(dirs[0], message)) {
                return Err(ended());
            }
            note
        }
        "close" => {
            let code = request["code"].as_u64().unwrap_or(1000);
            let code = u16::try_from(code)
                .ok()
                .filter(|c| CloseCode(*c).is_valid_on_wire())
                .ok_or_else(|| format!("{code} cannot be sent in a close frame"))?;
            let reason = request["reason"].as_str().unwrap_or_default();
            if reason.len() > 123 {
                return Err("a close reason is at most 123 bytes".to_owned());
            }
            for dir in dirs {
                if !handle.send(Command::Close(dir, code, reason.to_owned())) {
                    return Err(ended());
                }
            }
            format!("ui: sent close {code} to {to}")
        }
        _ => {
            if !handle.send(Command::Reset) {
                return Err(ended());
            }
            match handle.reach() {
                Reach::Both => "ui: reset both TCP connections".to_owned(),
                Reach::Client => "ui: reset the TCP connection".to_owned(),
            }
        }
    };
    events
        .emit(conn, None, EventKind::Note { text: note })
        .await;
    Ok(())
}

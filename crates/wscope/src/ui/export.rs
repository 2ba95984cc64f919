//! The UI's exports: the events on show as a record file, or as HAR.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use wscope_events::{Direction, EventKind, RecordWriter};

use super::hub::Stamped;

/// A record file (docs/FORMAT.md) of `events`, as the UI holds them
/// (`redacted` says whether secret headers were hidden on the way in).
pub fn record<'a>(events: impl Iterator<Item = &'a Arc<Stamped>>, redacted: bool) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail. Redacting again would change nothing.
    if let Ok(mut writer) = RecordWriter::new(&mut out, "wscope ui export", redacted) {
        for stamped in events {
            let _ = writer.write(&stamped.event);
        }
        let _ = writer.flush();
    }
    out
}

/// HAR 1.2: one entry per connection that opened, with its handshake and,
/// in Chrome's `_webSocketMessages`, its messages.
pub fn har<'a>(events: impl Iterator<Item = &'a Arc<Stamped>>) -> Vec<u8> {
    let mut entries: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    for stamped in events {
        let event = &stamped.event;
        match &event.kind {
            EventKind::Open(open) => {
                let headers = |list: &[(String, String)]| -> Vec<Value> {
                    list.iter()
                        .map(|(n, v)| json!({"name": n, "value": v}))
                        .collect()
                };
                let status: u16 = open
                    .response
                    .line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(101);
                let entry = json!({
                    "startedDateTime": rfc3339(event.ts),
                    "time": open.timings.upgrade_us.unwrap_or(0) as f64 / 1000.0,
                    "request": {
                        "method": "GET",
                        "url": open.url,
                        "httpVersion": "HTTP/1.1",
                        "headers": headers(&open.request.headers),
                        "queryString": [],
                        "cookies": [],
                        "headersSize": -1,
                        "bodySize": 0,
                    },
                    "response": {
                        "status": status,
                        "statusText": open.response.line.splitn(3, ' ').nth(2).unwrap_or(""),
                        "httpVersion": "HTTP/1.1",
                        "headers": headers(&open.response.headers),
                        "cookies": [],
                        "content": {"size": 0, "mimeType": "x-unknown"},
                        "redirectURL": "",
                        "headersSize": -1,
                        "bodySize": 0,
                    },
                    "cache": {},
                    "timings": {"send": 0, "wait": open.timings.upgrade_us.unwrap_or(0) as f64 / 1000.0, "receive": 0},
                    "_resourceType": "websocket",
                    "_webSocketMessages": [],
                });
                entries.insert(event.conn.clone(), (event.ts, entry));
            }
            EventKind::Message(message) => {
                let Some((_, entry)) = entries.get_mut(&event.conn) else {
                    continue;
                };
                let kind = match event.dir {
                    Some(Direction::ClientToServer) => "send",
                    _ => "receive",
                };
                let (opcode, data) = match (&message.payload.text, &message.payload.base64) {
                    (Some(text), _) => (1, text.clone()),
                    (None, Some(b64)) => (2, b64.clone()),
                    (None, None) => (if message.opcode == "text" { 1 } else { 2 }, String::new()),
                };
                if let Some(list) = entry["_webSocketMessages"].as_array_mut() {
                    list.push(json!({
                        "type": kind,
                        "time": event.ts as f64 / 1e6,
                        "opcode": opcode,
                        "data": data,
                    }));
                }
            }
            _ => {}
        }
    }
    let mut list: Vec<(u64, Value)> = entries.into_values().collect();
    list.sort_by_key(|(ts, _)| *ts);
    let har = json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "wscope", "version": env!("CARGO_PKG_VERSION")},
            "pages": [],
            "entries": list.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        }
    });
    serde_json::to_vec_pretty(&har).unwrap_or_default()
}

fn rfc3339(ts_us: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(ts_us);
    humantime::format_rfc3339_millis(at).to_string()
}

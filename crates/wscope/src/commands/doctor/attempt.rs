//! One handshake, made by `dial` exactly as `connect` and `probe` make it,
//! with its events caught by a sink instead of printed: the checks look at
//! what happened, the renderers decide what to show.

use std::sync::{Arc, Mutex};

use wscope_events::{Event, EventKind, HandshakeFailed, Open};

use crate::sinks::emit::Events;
use crate::sinks::sink::{Sink, Sinks};
use crate::sources::dial::HandshakeArgs;
use crate::sources::dial::{Dialed, dial};

/// How a handshake ended.
pub enum Attempt {
    /// Upgraded: the connection, and what `dial` reported about it.
    Open(Box<Dialed>, Box<Open>),
    /// A response came and was not a valid upgrade (a status other than
    /// 101, or a 101 with an answer that breaks the rules).
    Refused(Box<HandshakeFailed>),
    /// No response: DNS, TCP, TLS or the proxy failed, or the server
    /// hung up; `stage` says where.
    Failed { message: String, stage: Stage },
}

/// Where a handshake that got no response stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Name resolution, TCP, or the proxy's tunnel: nothing reached.
    Connect,
    Tls,
    /// Connected; the server hung up or said nothing valid.
    Upgrade,
}

/// Keeps the events of one dial.
struct Catch(Arc<Mutex<Vec<Event>>>);

impl Sink for Catch {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        if let Ok(mut events) = self.0.lock() {
            events.push(event.clone());
        }
        Ok(())
    }
}

/// Dials `h` once. `Err` is a usage error (a bad URL or flag).
pub async fn attempt(h: &HandshakeArgs) -> anyhow::Result<Attempt> {
    let caught = Arc::new(Mutex::new(Vec::new()));
    let mut sinks = Sinks::default();
    sinks.add("doctor", Box::new(Catch(caught.clone())));
    let events = Events::direct(sinks, 64 * 1024);
    let dialed = dial(h, 64 << 20, &events, "doctor").await?;
    drop(events);
    let events = std::mem::take(&mut *caught.lock().expect("no sink panics holding it"));
    let mut open = None;
    let mut failure = None;
    for event in events {
        match event.kind {
            EventKind::Open(o) => open = Some(o),
            EventKind::HandshakeFailed(f) => failure = Some(Attempt::Refused(Box::new(f))),
            EventKind::Error { message } => {
                failure = Some(Attempt::Failed {
                    message,
                    stage: Stage::Connect,
                })
            }
            _ => {}
        }
    }
    Ok(match (dialed, open, failure) {
        (Ok(conn), Some(open), _) => Attempt::Open(Box::new(conn), Box::new(open)),
        (Err(status), _, Some(Attempt::Failed { message, .. })) => Attempt::Failed {
            message,
            stage: if status == crate::commands::connect::exit::TLS_FAILED {
                Stage::Tls
            } else {
                Stage::Connect
            },
        },
        (Err(_), _, Some(Attempt::Refused(failed))) if failed.response.is_none() => {
            // The server took the connection and hung up or said nothing.
            Attempt::Failed {
                message: failed.diagnosis,
                stage: Stage::Upgrade,
            }
        }
        (_, _, Some(failure)) => failure,
        (_, _, None) => Attempt::Failed {
            message: "the connection failed without saying why".to_owned(),
            stage: Stage::Connect,
        },
    })
}

/// Closes an upgraded connection as a well-behaved client does (1000),
/// briefly waiting for the server's answer.
pub async fn close(conn: &mut Dialed) {
    let _ = conn
        .close(Some(wscope_proto::CloseCode::NORMAL), "wscope doctor")
        .await;
    conn.finish(std::time::Duration::from_millis(300)).await;
}

//! The one way every source hands over its events: an [`Events`] handle.
//!
//! Sources (a client connection, a probe, a server's or the proxy's
//! connections, a capture, a replay, doctor's attempts) stamp and emit
//! through it and never see a sink. Where the events go is the run's
//! choice, made once when it builds its outputs:
//! - a channel to the sink thread (`pipeline::start`), for the servers and
//!   the proxy, whose many connection tasks share one set of sinks with
//!   back-pressure and flushing per batch;
//! - straight into the sinks ([`Events::direct`]), for one connection at a
//!   time, where each event is printed and flushed before the source goes
//!   on (what an interactive client shows must keep pace with what it
//!   types);
//! - nowhere, when nothing listens: events are then not even built.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wscope_events::{Direction, Event, EventKind};

use crate::sinks::sink::Sinks;

/// Where a source sends its events. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    route: Route,
    /// How many payload bytes any sink keeps (0: only lengths matter).
    pub payload_limit: usize,
    /// Whether any sink looks at message and frame events.
    wants_payloads: bool,
}

#[derive(Clone)]
enum Route {
    Nowhere,
    Channel(mpsc::Sender<Event>),
    Direct(Arc<Mutex<Sinks>>),
}

impl Events {
    /// Events that go nowhere (a bench's connections, `capture --ui` with
    /// nothing to act on).
    pub fn nowhere() -> Events {
        Events {
            route: Route::Nowhere,
            payload_limit: 0,
            wants_payloads: false,
        }
    }

    /// Events sent to the sink thread; see `pipeline::start`.
    pub(crate) fn channel(
        tx: mpsc::Sender<Event>,
        payload_limit: usize,
        wants_payloads: bool,
    ) -> Events {
        Events {
            route: Route::Channel(tx),
            payload_limit,
            wants_payloads,
        }
    }

    /// Events handed to `sinks` as they come, each flushed at once;
    /// `payload_limit`: what the sinks keep of a payload.
    pub fn direct(sinks: Sinks, payload_limit: usize) -> Events {
        if sinks.is_empty() {
            return Events::nowhere();
        }
        Events {
            wants_payloads: sinks.wants_payloads(),
            route: Route::Direct(Arc::new(Mutex::new(sinks))),
            payload_limit,
        }
    }

    /// Whether any sink wants message and frame events: a source can skip
    /// building them otherwise.
    pub fn wants_payloads(&self) -> bool {
        self.wants_payloads
    }

    /// Whether anything listens at all.
    pub fn is_nowhere(&self) -> bool {
        matches!(self.route, Route::Nowhere)
    }

    /// Whether every output this run had has stopped (a closed pipe, a
    /// full disk): a source with nothing else to do can stop too.
    pub fn all_stopped(&self) -> bool {
        match &self.route {
            Route::Nowhere => true,
            Route::Channel(tx) => tx.is_closed(),
            Route::Direct(sinks) => lock(sinks).is_empty(),
        }
    }

    /// Stamps and hands over one event. Through the channel it waits while
    /// the sinks are behind.
    pub async fn emit(&self, conn: &str, dir: Option<Direction>, kind: EventKind) {
        match &self.route {
            Route::Nowhere => {}
            // Only fails once the sink thread is gone, at shutdown.
            Route::Channel(tx) => {
                let _ = tx.send(Event::now(conn, dir, kind)).await;
            }
            Route::Direct(sinks) => {
                let event = Event::now(conn, dir, kind);
                lock(sinks).emit(&event);
            }
        }
    }

    /// Hands over an event stamped by its source (a capture's packet time,
    /// a recording's own time).
    pub async fn emit_event(&self, event: Event) {
        match &self.route {
            Route::Nowhere => {}
            Route::Channel(tx) => {
                let _ = tx.send(event).await;
            }
            Route::Direct(sinks) => lock(sinks).emit(&event),
        }
    }
}

/// The sinks of a direct route. A sink that panicked has already lost its
/// event; the others go on.
fn lock(sinks: &Mutex<Sinks>) -> std::sync::MutexGuard<'_, Sinks> {
    sinks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::sinks::sink::Sink;

    /// Keeps what it is given, then fails after `fail_after` events.
    struct Kept {
        seen: Arc<Mutex<Vec<String>>>,
        fail_after: usize,
        payloads: bool,
    }

    impl Sink for Kept {
        fn event(&mut self, event: &Event) -> io::Result<()> {
            let mut seen = self.seen.lock().unwrap();
            if seen.len() == self.fail_after {
                return Err(io::Error::other("disk full"));
            }
            seen.push(event.conn.clone());
            Ok(())
        }

        fn wants_payloads(&self) -> bool {
            self.payloads
        }
    }

    fn note(text: &str) -> EventKind {
        EventKind::Note {
            text: text.to_owned(),
        }
    }

    #[tokio::test]
    async fn direct_events_reach_the_sinks_in_order_until_every_output_stops() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut sinks = Sinks::default();
        sinks.add(
            "kept",
            Box::new(Kept {
                seen: seen.clone(),
                fail_after: 2,
                payloads: true,
            }),
        );
        let events = Events::direct(sinks, 100);
        assert!(events.wants_payloads());
        assert!(!events.is_nowhere());
        events.emit("c1", None, note("a")).await;
        events.clone().emit("c2", None, note("b")).await;
        assert!(!events.all_stopped());
        // The third fails: the sink is dropped and nothing listens any more.
        events.emit("c3", None, note("c")).await;
        assert_eq!(*seen.lock().unwrap(), ["c1", "c2"]);
        assert!(events.all_stopped());
    }

    #[test]
    fn no_sinks_means_nowhere_and_sinks_without_payloads_are_told_so() {
        let events = Events::direct(Sinks::default(), 100);
        assert!(events.is_nowhere() && events.all_stopped() && !events.wants_payloads());
        let mut sinks = Sinks::default();
        sinks.add(
            "lengths",
            Box::new(Kept {
                seen: Arc::default(),
                fail_after: usize::MAX,
                payloads: false,
            }),
        );
        let events = Events::direct(sinks, 100);
        assert!(!events.is_nowhere() && !events.wants_payloads());
    }
}

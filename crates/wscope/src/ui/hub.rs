//! What the UI shows: every event so far (bounded), numbered, serialised
//! once, and a broadcast of new ones to every open page.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use wscope_events::Event;
use wscope_events::redact::Rules;

use crate::sink::Sink;

/// Events kept for pages that open later (the oldest go first).
pub const HISTORY: usize = 1_000_000;
/// New events a slow page may fall behind by before it misses some.
const LIVE_QUEUE: usize = 65_536;

/// One event as the UI has it.
pub struct Stamped {
    pub seq: u64,
    pub event: Event,
    /// The event's JSON (docs/FORMAT.md), made once for every page.
    pub json: String,
}

pub struct Hub {
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<Stamped>>,
    redaction: Option<Rules>,
}

struct Inner {
    history: VecDeque<Arc<Stamped>>,
    next_seq: u64,
}

impl Hub {
    /// `redaction`: the rules the events it will be given were redacted
    /// with (by the [`crate::sink::Sinks`] in front), for its exports.
    pub fn new(redaction: Option<Rules>) -> Arc<Hub> {
        let (live, _) = broadcast::channel(LIVE_QUEUE);
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                history: VecDeque::new(),
                next_seq: 1,
            }),
            live,
            redaction,
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, event: &Event) {
        let event = event.clone();
        let json = serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned());
        let mut inner = self.inner();
        let stamped = Arc::new(Stamped {
            seq: inner.next_seq,
            event,
            json,
        });
        inner.next_seq += 1;
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(Arc::clone(&stamped));
        // No page open is not an error.
        let _ = self.live.send(stamped);
    }

    /// Everything so far, and the events that come after it.
    pub fn subscribe(&self) -> (Vec<Arc<Stamped>>, broadcast::Receiver<Arc<Stamped>>) {
        // Under the lock, so no event falls between the two.
        let inner = self.inner();
        let live = self.live.subscribe();
        (inner.history.iter().cloned().collect(), live)
    }

    /// The redaction rules of what it holds (`None`: not redacted).
    pub fn redaction(&self) -> Option<&Rules> {
        self.redaction.as_ref()
    }

    /// Everything so far.
    pub fn snapshot(&self) -> Vec<Arc<Stamped>> {
        self.inner().history.iter().cloned().collect()
    }
}

/// The event stream into a [`Hub`].
pub struct UiSink(pub Arc<Hub>);

impl Sink for UiSink {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.0.push(event);
        Ok(())
    }
}

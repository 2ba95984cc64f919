//! What the UI shows: every event so far (bounded by bytes,
//! `--ui-history`), numbered, serialised once, and a broadcast of new ones
//! to every open page.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use wscope_events::Event;
use wscope_events::redact::Rules;

use crate::sinks::sink::Sink;

/// What one event costs the history beyond its JSON: the event itself
/// (about as large again: its payload and headers) and the bookkeeping.
const OVERHEAD: usize = 128;
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
    /// What `history` holds, counted as [`cost`] says.
    bytes: usize,
    budget: usize,
    /// Events pushed out for lack of room.
    dropped: u64,
}

/// The bytes an event is counted for: its JSON, the event it was made from
/// (about the same again) and a little bookkeeping.
fn cost(stamped: &Stamped) -> usize {
    2 * stamped.json.len() + OVERHEAD
}

/// What the history holds, and what it let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub events: usize,
    pub bytes: usize,
    pub dropped: u64,
    /// The `seq` of the oldest event kept.
    pub first_seq: Option<u64>,
}

impl Hub {
    /// `redaction`: the rules the events it will be given were redacted
    /// with (by the [`crate::sinks::sink::Sinks`] in front), for its exports;
    /// `budget`: the bytes the history may hold (`--ui-history`).
    pub fn new(redaction: Option<Rules>, budget: u64) -> Arc<Hub> {
        let (live, _) = broadcast::channel(LIVE_QUEUE);
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                history: VecDeque::new(),
                next_seq: 1,
                bytes: 0,
                budget: usize::try_from(budget).unwrap_or(usize::MAX),
                dropped: 0,
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
        inner.bytes += cost(&stamped);
        inner.history.push_back(Arc::clone(&stamped));
        // The newest event stays even when it alone is over the budget:
        // a page shows at least the last thing that happened.
        while inner.bytes > inner.budget && inner.history.len() > 1 {
            let Some(oldest) = inner.history.pop_front() else {
                break;
            };
            inner.bytes -= cost(&oldest);
            inner.dropped += 1;
        }
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

    /// What the history holds now.
    pub fn kept(&self) -> Kept {
        let inner = self.inner();
        Kept {
            events: inner.history.len(),
            bytes: inner.bytes,
            dropped: inner.dropped,
            first_seq: inner.history.front().map(|s| s.seq),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use wscope_events::EventKind;

    fn note(text: &str) -> Event {
        Event {
            ts: 0,
            conn: "c1".to_owned(),
            dir: None,
            kind: EventKind::Note {
                text: text.to_owned(),
            },
        }
    }

    #[test]
    fn the_history_is_bounded_by_bytes_and_keeps_the_newest() {
        let hub = Hub::new(None, 4096);
        for i in 0..1000 {
            hub.push(&note(&format!("note {i} {}", "x".repeat(100))));
        }
        let kept = hub.kept();
        assert!(kept.bytes <= 4096, "{kept:?}");
        assert!(kept.events > 5 && kept.events < 100, "{kept:?}");
        assert_eq!(kept.dropped as usize + kept.events, 1000);
        let last = hub.snapshot().last().unwrap().json.clone();
        assert!(last.contains("note 999 "), "{last}");
        // One event larger than the whole budget is still kept, alone.
        hub.push(&note(&"y".repeat(10_000)));
        assert_eq!(hub.kept().events, 1);
    }
}

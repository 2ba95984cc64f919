//! The event stream of a server: many connection tasks, one set of sinks.
//!
//! Connections hand their events to a bounded channel; one thread owns the
//! sinks, writes what has arrived in a batch and flushes once per batch, so
//! a record file costs one write per burst rather than per event; once
//! woken it lets a burst gather for a moment (`GATHER`). The bound gives
//! back-pressure: a sink that cannot keep up slows the connections
//! rather than growing memory without limit.

use std::thread::JoinHandle;

use tokio::sync::mpsc;
use wscope_events::Event;

use crate::sinks::emit::Events;
use crate::sinks::sink::Sinks;

/// How many events may wait for the sinks. Each may carry a payload of up
/// to the capture limit (`--max-payload`: 64 KiB by default for serve,
/// 16 KiB for the proxy), so this bounds the memory a slow sink can hold
/// up: 1024 × 64 KiB = 64 MiB at worst with the defaults.
const QUEUE: usize = 1024;
/// How many events one batch takes at most before flushing.
const BATCH: usize = 512;

/// How long the sink thread lets events gather after being woken. Busy
/// connections emit tens of thousands of events a second, one or two per
/// read; woken for each, the thread spent more on waking and on small
/// writes than on writing, and so did the connections waking it. Events
/// reach the sinks at most this much later; the relays do not wait.
const GATHER: std::time::Duration = std::time::Duration::from_micros(500);

/// Hands the sinks up to `max` events that are already waiting; how many.
fn take(rx: &mut mpsc::Receiver<Event>, sinks: &mut Sinks, max: usize) -> usize {
    let mut taken = 0;
    while taken < max {
        match rx.try_recv() {
            Ok(event) => sinks.push(&event),
            Err(_) => break,
        }
        taken += 1;
    }
    taken
}

/// The running sink thread. Dropping every [`Events`] ends it; [`Pipeline::finish`]
/// waits for the last batch to be written.
pub struct Pipeline {
    thread: JoinHandle<()>,
}

/// Starts the sink thread.
pub fn start(mut sinks: Sinks, payload_limit: usize) -> std::io::Result<(Events, Pipeline)> {
    let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
    let tx = (!sinks.is_empty()).then_some(tx);
    let wants_payloads = sinks.wants_payloads();
    let thread = std::thread::Builder::new()
        .name("wscope-sinks".into())
        .spawn(move || {
            while let Some(event) = rx.blocking_recv() {
                sinks.push(&event);
                let taken = 1 + take(&mut rx, &mut sinks, BATCH - 1);
                if taken < BATCH {
                    // Let a burst gather rather than be woken for each of
                    // its events (see GATHER).
                    std::thread::sleep(GATHER);
                    take(&mut rx, &mut sinks, BATCH - taken);
                }
                sinks.flush();
            }
        })?;
    let events = match tx {
        Some(tx) => Events::channel(tx, payload_limit, wants_payloads),
        None => Events::nowhere(),
    };
    Ok((events, Pipeline { thread }))
}

impl Pipeline {
    /// Waits (off the async runtime) until every queued event is written.
    pub async fn finish(self) {
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

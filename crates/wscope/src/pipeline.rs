//! The event stream of a server: many connection tasks, one set of sinks.
//!
//! Connections hand their events to a bounded channel; one thread owns the
//! sinks, writes what has arrived in a batch and flushes once per batch, so
//! a record file costs one write per burst rather than per event. The bound
//! gives back-pressure: a sink that cannot keep up slows the connections
//! rather than growing memory without limit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;

use tokio::sync::mpsc;
use wscope_events::filter::Expr;
use wscope_events::{Direction, Event, EventKind};

use crate::lifecycle::{LifecycleLog, LogFormat};
use crate::metrics::{Metrics, MetricsSink};
use crate::sink::{Record, Sinks, filtered};

/// How many events may wait for the sinks. Each may carry a payload of up
/// to the capture limit (64 KiB by default), so this bounds the memory a
/// slow sink can hold up: 1024 × 64 KiB = 64 MiB at worst.
const QUEUE: usize = 1024;
/// How many events one batch takes at most before flushing.
const BATCH: usize = 512;

/// Where a connection sends its events. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    /// `None` when there are no sinks: events are not even built.
    tx: Option<mpsc::Sender<Event>>,
    /// How many payload bytes any sink keeps (0: only lengths matter).
    pub payload_limit: usize,
}

impl Events {
    /// Stamps and sends one event. Waits while the sinks are behind.
    pub async fn emit(&self, conn: &str, dir: Option<Direction>, kind: EventKind) {
        if let Some(tx) = &self.tx {
            // Only fails once the sink thread is gone, at shutdown.
            let _ = tx.send(Event::now(conn, dir, kind)).await;
        }
    }
}

/// The running sink thread. Dropping every [`Events`] ends it; [`Pipeline::finish`]
/// waits for the last batch to be written.
pub struct Pipeline {
    thread: JoinHandle<()>,
}

/// What a listening command (serve, proxy) can write its events to.
pub struct ServerOutputs<'a> {
    pub log_format: LogFormat,
    pub record: Option<&'a Path>,
    pub redact: bool,
    pub max_payload: usize,
    pub metrics: Option<SocketAddr>,
    /// `--filter`: narrows the lifecycle log, not the record or the metrics.
    pub filter: Option<&'a Expr>,
}

/// Adds the lifecycle log (behind the filter), the record file and the
/// metrics sink that `outputs` asks for; the metrics endpoint starts
/// serving at once. Returns the metrics (for counters no event carries)
/// and their URL.
pub async fn add_server_sinks(
    sinks: &mut Sinks,
    outputs: ServerOutputs<'_>,
) -> anyhow::Result<Option<(Arc<Metrics>, String)>> {
    if outputs.log_format != LogFormat::Off {
        let log = Box::new(LifecycleLog::new(outputs.log_format));
        sinks.add("log", filtered(outputs.filter, log));
    }
    if let Some(path) = outputs.record {
        let record = Record::create(path, outputs.redact, outputs.max_payload)
            .with_context(|| format!("cannot create the record file {}", path.display()))?;
        sinks.add("record", Box::new(record));
    }
    let Some(addr) = outputs.metrics else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    let metrics = Metrics::new();
    sinks.add("metrics", Box::new(MetricsSink(metrics.clone())));
    tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    Ok(Some((metrics, url)))
}

/// Starts the sink thread.
pub fn start(mut sinks: Sinks, payload_limit: usize) -> std::io::Result<(Events, Pipeline)> {
    let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
    let tx = (!sinks.is_empty()).then_some(tx);
    let thread = std::thread::Builder::new()
        .name("wscope-sinks".into())
        .spawn(move || {
            while let Some(event) = rx.blocking_recv() {
                sinks.push(&event);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(event) => sinks.push(&event),
                        Err(_) => break,
                    }
                }
                sinks.flush();
            }
        })?;
    Ok((Events { tx, payload_limit }, Pipeline { thread }))
}

impl Pipeline {
    /// Waits (off the async runtime) until every queued event is written.
    pub async fn finish(self) {
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

//! Prometheus metrics, fed by the event stream: a sink like any other, and a
//! small HTTP endpoint that serves them at `/metrics`.
//!
//! The counting is done by `prometheus-client` (atomic counters, encoding in
//! the OpenMetrics text format); this module only decides what is counted.
//! Label values are static strings or integers, so counting a message does
//! not allocate.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wscope_events::{Event, EventKind};
use wscope_proto::handshake::{Parsed, Request};

use crate::sinks::sink::Sink;

/// The OpenMetrics text format, which Prometheus scrapes natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Traffic {
    direction: &'static str,
    opcode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    /// The HTTP status, or 0 when there was none (timeout, TLS failure).
    status: u16,
}

/// Every metric wscope keeps.
pub struct Metrics {
    registry: Registry,
    active: Gauge,
    connections: Counter,
    messages: Family<Traffic, Counter>,
    bytes: Family<Traffic, Counter>,
    closes: Family<CloseLabels, Counter>,
    rejections: Family<StatusLabels, Counter>,
    duration: Histogram,
    upstream_failures: Counter,
    handshake: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("wscope");
        let active = Gauge::default();
        let connections = Counter::default();
        let messages = Family::<Traffic, Counter>::default();
        let bytes = Family::<Traffic, Counter>::default();
        let closes = Family::<CloseLabels, Counter>::default();
        let rejections = Family::<StatusLabels, Counter>::default();
        // 10 ms to about 12 hours, in steps of 4x.
        let duration = Histogram::new(exponential_buckets(0.01, 4.0, 12));
        // 100 µs to about 1.6 s.
        let handshake = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        let upstream_failures = Counter::default();
        registry.register(
            "connections_active",
            "WebSocket connections open now",
            active.clone(),
        );
        registry.register(
            "connections",
            "WebSocket connections opened (handshake completed)",
            connections.clone(),
        );
        registry.register(
            "messages",
            "Messages and control frames, by direction (c2s: from the client) and opcode",
            messages.clone(),
        );
        registry.register(
            "payload_bytes",
            "Payload bytes of messages and control frames, by direction and opcode",
            bytes.clone(),
        );
        registry.register(
            "closes",
            "Connections ended, by close code (1006: dropped without a close frame)",
            closes.clone(),
        );
        registry.register(
            "handshake_rejections",
            "Upgrade requests refused, by HTTP status (0: no response was sent)",
            rejections.clone(),
        );
        registry.register(
            "connection_duration_seconds",
            "How long connections stayed open",
            duration.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Proxy: upstream connections that could not be opened",
            upstream_failures.clone(),
        );
        registry.register(
            "handshake_duration_seconds",
            "Time from sending the upgrade request to the 101 (the proxy's upstream, or a client's server)",
            handshake.clone(),
        );
        Arc::new(Metrics {
            registry,
            active,
            connections,
            messages,
            bytes,
            closes,
            rejections,
            duration,
            upstream_failures,
            handshake,
        })
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn count(&self, event: &Event, opcode: &'static str, len: u64) {
        let direction = event.dir.map(|d| d.as_str()).unwrap_or("none");
        let labels = Traffic { direction, opcode };
        self.messages.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(len);
    }
}

/// Feeds the metrics from the event stream.
pub struct MetricsSink(pub Arc<Metrics>);

impl Sink for MetricsSink {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let metrics = &self.0;
        match &event.kind {
            EventKind::Open(open) => {
                metrics.active.inc();
                metrics.connections.inc();
                // A server's own upgrade_us includes any wait it was asked
                // for; what it measures is the same: request to 101.
                if let Some(us) = open.timings.upgrade_us {
                    metrics
                        .handshake
                        .observe(Duration::from_micros(us).as_secs_f64());
                }
            }
            EventKind::HandshakeFailed(failed) => {
                if failed.upstream_unreachable {
                    metrics.upstream_failures.inc();
                }
                let status = failed.status.unwrap_or(0);
                metrics
                    .rejections
                    .get_or_create(&StatusLabels { status })
                    .inc();
            }
            EventKind::Message(message) => {
                let opcode = if message.opcode == "text" {
                    "text"
                } else {
                    "binary"
                };
                metrics.count(event, opcode, message.payload.len);
            }
            EventKind::Frame(frame) => {
                // Data frames are counted as messages; control frames here.
                let opcode = match frame.opcode.as_str() {
                    "ping" => "ping",
                    "pong" => "pong",
                    // Close frames arrive as close events.
                    _ => return Ok(()),
                };
                metrics.count(event, opcode, frame.payload.len);
            }
            EventKind::Close(close) => {
                let len = close.code.map_or(0, |_| 2 + close.reason.len() as u64);
                metrics.count(event, "close", len);
            }
            EventKind::Closed(closed) => {
                metrics.active.dec();
                metrics
                    .closes
                    .get_or_create(&CloseLabels { code: closed.code })
                    .inc();
                metrics
                    .duration
                    .observe(Duration::from_micros(closed.duration_us).as_secs_f64());
            }
            _ => {}
        }
        Ok(())
    }

    fn wants_payloads(&self) -> bool {
        false
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &metrics)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let request = loop {
        match Request::parse(&buf) {
            Ok(Parsed::Complete(request, _)) => break request,
            Ok(Parsed::Incomplete) => {}
            Err(_) => return respond(&mut stream, 400, "text/plain", "bad request\n").await,
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let path = request.target.split('?').next().unwrap_or_default();
    if request.method != "GET" && request.method != "HEAD" {
        respond(&mut stream, 405, "text/plain", "use GET\n").await
    } else if path == "/metrics" {
        respond(&mut stream, 200, CONTENT_TYPE, &metrics.encode()).await
    } else {
        let body = "not found: the metrics are at /metrics\n";
        respond(&mut stream, 404, "text/plain", body).await
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> io::Result<()> {
    let reason = wscope_proto::handshake::reason_phrase(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

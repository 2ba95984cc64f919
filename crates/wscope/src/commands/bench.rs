//! `wscope bench URL`: how fast an echo endpoint answers. Opens
//! `--connections` connections, keeps `--window` messages of `--size` bytes
//! in flight on each, and counts the echoes that come back for
//! `--duration` (after a short warm-up): round trips per second, payload
//! megabytes per second each way, and round-trip latency percentiles.
//!
//! Any echo server will do; `scripts/bench-proxy` uses it to compare a
//! server reached directly, through a raw TCP relay and through
//! `wscope proxy`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use wscope_proto::{CloseCode, OpCode};

use crate::cli::BenchArgs;
use crate::network::connection::Incoming;
use crate::sinks::emit::Events;
use crate::sources::dial::dial;

/// Counted before measuring, so connection set-up and cold caches do not
/// count.
const WARM_UP: Duration = Duration::from_millis(300);

#[derive(Default)]
struct Tally {
    round_trips: u64,
    latencies_us: Vec<u32>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<i32> {
    if args.window == 0 || args.connections == 0 {
        bail!("--window and --connections must be at least 1");
    }
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let conn_id = format!("b{i}");
        let conn = match dial(&args.handshake, u64::MAX, &Events::nowhere(), &conn_id).await? {
            Ok(conn) => conn,
            Err(status) => {
                return Err(anyhow!(
                    "cannot connect to {} (exit status {status}); try `wscope probe {}`",
                    args.handshake.url,
                    args.handshake.url
                ));
            }
        };
        let size = args.size;
        let window = args.window;
        let duration = args.duration;
        let binary = !args.text;
        tasks.push(tokio::spawn(async move {
            one_connection(conn, size, window, duration, binary).await
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await??;
        total.round_trips += tally.round_trips;
        total.latencies_us.extend(tally.latencies_us);
    }
    total.latencies_us.sort_unstable();
    let seconds = args.duration.as_secs_f64();
    let per_second = total.round_trips as f64 / seconds;
    let mb_per_second = per_second * args.size as f64 / 1e6;
    let percentile = |p: f64| -> u32 {
        if total.latencies_us.is_empty() {
            return 0;
        }
        let i = ((total.latencies_us.len() - 1) as f64 * p).round() as usize;
        total.latencies_us[i]
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "url": args.handshake.url,
                "size": args.size,
                "connections": args.connections,
                "window": args.window,
                "seconds": seconds,
                "round_trips": total.round_trips,
                "round_trips_per_s": per_second,
                "mb_per_s": mb_per_second,
                "p50_us": percentile(0.5),
                "p99_us": percentile(0.99),
            })
        );
    } else {
        println!(
            "{} B messages, {} connection(s), {} in flight each, {:.1?}: {:.0} round trips/s, {:.1} MB/s each way, round trip p50 {} µs, p99 {} µs",
            args.size,
            args.connections,
            args.window,
            args.duration,
            per_second,
            mb_per_second,
            percentile(0.5),
            percentile(0.99)
        );
    }
    Ok(0)
}

async fn one_connection(
    mut conn: crate::sources::dial::Dialed,
    size: usize,
    window: usize,
    duration: Duration,
    binary: bool,
) -> anyhow::Result<Tally> {
    let opcode = if binary { OpCode::Binary } else { OpCode::Text };
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(window);
    let started = Instant::now();
    let measure_from = started + WARM_UP;
    let end = measure_from + duration;
    let mut tally = Tally::default();
    loop {
        let now = Instant::now();
        if now < end {
            while in_flight.len() < window {
                conn.queue_message(opcode, &payload)?;
                in_flight.push_back(Instant::now());
            }
            conn.flush().await?;
        } else if in_flight.is_empty() {
            break;
        }
        match conn.next().await? {
            Incoming::Message(message) => {
                let sent = in_flight
                    .pop_front()
                    .ok_or_else(|| anyhow!("an echo nobody asked for"))?;
                if message.data.len() != size {
                    bail!(
                        "the echo is {} bytes, the message was {size}: not an echo server?",
                        message.data.len()
                    );
                }
                let now = Instant::now();
                if now >= measure_from && now < end {
                    tally.round_trips += 1;
                    tally
                        .latencies_us
                        .push(now.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
                }
            }
            Incoming::Close(close) => {
                bail!("the server closed the connection: {:?}", close.code);
            }
            Incoming::Eof => bail!("the server dropped the connection"),
            Incoming::Ping(_) | Incoming::Pong(_) | Incoming::DataFrame(..) => {}
        }
    }
    conn.close(Some(CloseCode::NORMAL), "bench done").await?;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(incoming) = conn.next().await {
            if matches!(incoming, Incoming::Close(_) | Incoming::Eof) {
                break;
            }
        }
    })
    .await;
    conn.finish(Duration::from_millis(200)).await;
    Ok(tally)
}

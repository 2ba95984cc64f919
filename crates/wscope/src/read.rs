//! `wscope read FILE`: a record file printed the way the live views print,
//! or as JSON Lines, narrowed by `--filter`, `--conn`, `--since`,
//! `--until`; or summed up per connection with `--stats`. The file is
//! streamed one event at a time, so its size does not matter; a large one
//! shows how far it has got on a progress bar (`progress.rs`).

use std::collections::{BTreeMap, HashMap};

use anyhow::anyhow;
use wscope_events::filter::Expr;
use wscope_events::{Direction, Event, EventKind};

use crate::cli::ReadArgs;
use crate::progress::{OnStderr, Output, Progress};
use crate::sink::{Human, JsonLines, Sinks};

/// The selection asked for on the command line.
struct Select {
    filter: Option<Expr>,
    conn: Option<String>,
    since: Option<u64>,
    until: Option<u64>,
}

impl Select {
    fn keeps(&self, event: &Event) -> bool {
        self.conn.as_ref().is_none_or(|c| *c == event.conn)
            && self.since.is_none_or(|t| event.ts >= t)
            && self.until.is_none_or(|t| event.ts <= t)
            && self.filter.as_ref().is_none_or(|f| f.matches(event))
    }
}

fn micros(date: &str, flag: &str) -> anyhow::Result<u64> {
    let time = humantime::parse_rfc3339_weak(date)
        .map_err(|e| anyhow!("{flag} {date:?}: {e} (write it as 2026-11-26T04:00:00Z)"))?;
    Ok(time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0))
}

pub fn run(args: ReadArgs) -> anyhow::Result<i32> {
    let select = Select {
        filter: crate::cli::parse_filter(args.filter.as_deref())?,
        conn: args.conn.clone(),
        since: args
            .since
            .as_deref()
            .map(|d| micros(d, "--since"))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|d| micros(d, "--until"))
            .transpose()?,
    };
    // Not regular files (a pipe, stdin): no length, no bar.
    let len = [&args.file]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let output = if args.stats {
        Output::AtTheEnd
    } else {
        Output::AsItGoes
    };
    let progress = Progress::for_file(&args.file.display().to_string(), len, output);
    let capture = wscope_capture::Options {
        max_payload: 64 * 1024,
        frames: !args.stats,
    };
    let mut reader = crate::source::open(std::slice::from_ref(&args.file), capture, &|raw| {
        Box::new(progress.wrap(raw))
    })?;

    let mut sinks = Sinks::default();
    if args.json {
        // The record is already redacted (or deliberately not): pass it on.
        let json = Box::new(JsonLines::new(usize::MAX, false));
        sinks.add("json", progress.around(json, OnStderr::Nothing));
    } else if !args.stats {
        sinks.add(
            "terminal",
            progress.around(
                Box::new(Human {
                    arrows: true,
                    quiet: false,
                    show_control: true,
                    timestamps: true,
                    pretty: args.pretty,
                    color: false,
                    printer: None,
                    show_conn: true,
                }),
                OnStderr::EventsWithoutAMessage,
            ),
        );
    }
    let mut stats = Stats::new(args.stats_field.clone());
    let mut shown = 0u64;
    let outcome = loop {
        match reader.next_event() {
            Ok(Some(event)) => {
                if !select.keeps(&event) {
                    continue;
                }
                shown += 1;
                if args.stats {
                    stats.add(&event);
                } else {
                    sinks.push(&event);
                    if shown.is_multiple_of(256) {
                        sinks.flush();
                    }
                    if sinks.is_empty() {
                        // The output failed (a closed pipe): nothing
                        // left to read for.
                        break Ok(());
                    }
                }
            }
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    progress.finish();
    sinks.flush();
    if args.stats {
        stats.print();
    }
    if let Some(line) = reader.summary() {
        eprintln!("wscope: {line}");
    }
    match outcome {
        Ok(()) => Ok(0),
        Err(damaged) => {
            eprintln!("wscope: {}: {}", damaged.file, damaged.error);
            Ok(1)
        }
    }
}

#[derive(Default)]
struct ConnStats {
    first: u64,
    last: u64,
    url: String,
    messages: [u64; 2],
    bytes: [u64; 2],
    close: Option<u16>,
    kinds: HashMap<String, u64>,
}

/// `--stats`: per connection, in order of first appearance.
struct Stats {
    field: String,
    conns: BTreeMap<(u64, String), ConnStats>,
    index: HashMap<String, (u64, String)>,
}

impl Stats {
    fn new(field: String) -> Self {
        Stats {
            field,
            conns: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    fn add(&mut self, event: &Event) {
        let key = self
            .index
            .entry(event.conn.clone())
            .or_insert_with(|| (event.ts, event.conn.clone()))
            .clone();
        let conn = self.conns.entry(key).or_insert_with(|| ConnStats {
            first: event.ts,
            ..ConnStats::default()
        });
        conn.last = conn.last.max(event.ts);
        match &event.kind {
            EventKind::Open(open) => conn.url = open.url.clone(),
            EventKind::Message(message) => {
                let i = usize::from(event.dir == Some(Direction::ServerToClient));
                conn.messages[i] += 1;
                conn.bytes[i] += message.payload.len;
                let kind = message
                    .payload
                    .text
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                    .and_then(|json| {
                        json.get(&self.field).map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                    });
                if let Some(kind) = kind {
                    *conn.kinds.entry(kind).or_default() += 1;
                }
            }
            EventKind::Closed(closed) => conn.close = Some(closed.code),
            _ => {}
        }
    }

    fn print(&self) {
        println!(
            "{:<6} {:>10} {:>18} {:>18} {:>6}  top types (by json.{})",
            "conn", "duration", "c2s msgs/bytes", "s2c msgs/bytes", "close", self.field
        );
        for ((_, id), conn) in &self.conns {
            let duration = std::time::Duration::from_micros(conn.last - conn.first);
            let mut kinds: Vec<_> = conn.kinds.iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = kinds
                .iter()
                .take(5)
                .map(|(k, n)| format!("{k}×{n}"))
                .collect();
            println!(
                "{:<6} {:>10} {:>18} {:>18} {:>6}  {}{}",
                id,
                format!("{duration:.1?}"),
                format!("{} / {}", conn.messages[0], conn.bytes[0]),
                format!("{} / {}", conn.messages[1], conn.bytes[1]),
                conn.close
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                top.join(", "),
                if conn.url.is_empty() {
                    String::new()
                } else {
                    format!("  {}", conn.url)
                }
            );
        }
    }
}

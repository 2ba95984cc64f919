//! `wscope read FILE...`: recordings printed the way the live views print,
//! or as JSON Lines, or written to a new record file, narrowed by
//! `--filter`, `--conn`, `--since`, `--until`; or summed up per connection
//! with `--stats`. Files are streamed one event at a time, so their size
//! does not matter; large ones show how far reading has got on a progress
//! bar (`progress.rs`).
//!
//! Where events come from is `inputs.rs`'s business alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::anyhow;
use wscope_events::filter::Expr;
use wscope_events::redact::Redactor;
use wscope_events::{Direction, Event, EventKind};

use crate::cli::ReadArgs;
use crate::sinks::outputs::{self, Extras};
use crate::sinks::progress::{Output, Progress};
use crate::sources::captures;
use crate::sources::inputs::open_inputs;

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
    // Flags and the filter first: a mistake reads nothing, creates nothing.
    outputs::check(&args.output, &outputs::READ)?;
    let mut select = Select {
        filter: None,
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
    let mut inputs = open_inputs(&args.files)?;
    inputs.keylogs(&args.keylog)?;
    if let Some(out) = &args.output.record {
        inputs.refuse_as_output("--record", out)?;
        if args.output.record_max_size.is_some() {
            // The parts of a set already there are written over as the
            // new set grows: none of them may be an input.
            let parts = (1..=u32::MAX).map(|n| crate::sinks::sink::part_path(out, n));
            for part in parts.take_while(|p| p.exists()) {
                inputs.refuse_as_output("--record", &part)?;
            }
        }
    }
    if let Some(out) = &args.packets.write {
        captures::refuse_same_output(Some(out), args.output.record.as_deref())?;
        inputs.refuse_as_output("--write", out)?;
        inputs.write_packets(out);
    }
    // Whether anything is written to stdout or stderr while reading (a bar
    // would tear it); with --stats, or only a --record, nothing is.
    let prints = args.output.json || !(args.stats || args.output.quiet);
    let output = if prints {
        Output::AsItGoes
    } else {
        Output::AtTheEnd
    };
    let progress = Progress::for_file(&inputs.name(), inputs.size(), output);
    inputs.show_progress(&progress);
    let wants_output =
        args.output.json || args.output.record.is_some() || !(args.stats || args.output.quiet);
    let outputs = outputs::build(
        &args.output,
        &outputs::READ,
        Extras {
            progress: Some(&progress),
            no_terminal: args.stats,
            ..Extras::default()
        },
    )?;
    // On read the filter narrows everything, --record included.
    select.filter = outputs.filter;
    // --stats alone counts messages and reads text: frames and binary
    // payloads would only cost time.
    inputs.capture_options(captures::decoder_options(&args.output, wants_output));
    let mut sinks = outputs.sinks;
    let writing = !sinks.is_empty();

    let live = inputs.size() == 0;
    let mut stats = Stats::new(args.stats_field.clone(), sinks.redactor());
    let mut shown = 0u64;
    let outcome = loop {
        match inputs.next() {
            Some(Ok(event)) => {
                if !select.keeps(&event) {
                    continue;
                }
                shown += 1;
                if args.stats {
                    stats.add(&event);
                }
                if writing {
                    sinks.push(&event);
                    // A pipe (`tcpdump -U -w - | wscope read -`) is shown
                    // as it arrives; a file in batches.
                    if live || shown.is_multiple_of(256) {
                        sinks.flush();
                    }
                    if sinks.is_empty() {
                        // The output failed (a closed pipe, a full disk):
                        // nothing left to read for.
                        break Ok(());
                    }
                }
            }
            None => break Ok(()),
            Some(Err(err)) => break Err(err),
        }
    };
    progress.finish();
    sinks.flush();
    if args.stats {
        stats.print();
    }
    for warning in inputs.warnings() {
        eprintln!("wscope: {warning}");
    }
    match outcome {
        Ok(()) => Ok(0),
        Err(err) => {
            eprintln!("wscope: {err:#}");
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
    /// The run's redactor, for the URLs printed (the counts hold nothing
    /// secret).
    redactor: Option<Arc<Redactor>>,
    conns: BTreeMap<(u64, String), ConnStats>,
    index: HashMap<String, (u64, String)>,
}

impl Stats {
    fn new(field: String, redactor: Option<Arc<Redactor>>) -> Self {
        Stats {
            field,
            redactor,
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
            EventKind::Open(open) => {
                conn.url = match &self.redactor {
                    Some(redactor) => match &redactor.redact(event).kind {
                        EventKind::Open(open) => open.url.clone(),
                        _ => String::new(),
                    },
                    None => open.url.clone(),
                }
            }
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

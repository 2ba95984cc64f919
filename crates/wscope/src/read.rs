//! `wscope read FILE...`: recordings printed the way the live views print,
//! or as JSON Lines, or written to a new record file, narrowed by
//! `--filter`, `--conn`, `--since`, `--until`; or summed up per connection
//! with `--stats`. Files are streamed one event at a time, so their size
//! does not matter; large ones show how far reading has got on a progress
//! bar (`progress.rs`).
//!
//! Where events come from is [`open_inputs`]'s business alone: it is the
//! one place that knows input formats (today the record file), so a new
//! format is a change there, and `wscope ui FILE...` reads through it too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use wscope_events::filter::Expr;
use wscope_events::{Direction, Event, EventKind, RecordReader};

use crate::cli::ReadArgs;
use crate::outputs::{self, Extras};
use crate::progress::{Output, Progress};

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
    if let Some(out) = &args.output.record {
        inputs.refuse_as_output(out)?;
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
    let mut sinks = outputs.sinks;
    let writing = !sinks.is_empty();

    let mut stats = Stats::new(args.stats_field.clone());
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
                    if shown.is_multiple_of(256) {
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

/// The events of several inputs, one after the other in the order given.
/// Every input is opened at once (a missing file fails before anything is
/// printed) and read when its turn comes.
pub struct Inputs {
    waiting: VecDeque<Opened>,
    current: Option<(String, RecordReader<Box<dyn BufRead>>)>,
    /// The total size of the inputs, when every one has a size.
    len: Option<u64>,
    progress: Option<Progress>,
    warnings: Vec<String>,
    /// Set after an error: nothing more is read.
    failed: bool,
}

/// An input, open and not yet read.
struct Opened {
    name: String,
    read: Box<dyn Read>,
    /// Device and inode of a regular file (to refuse writing over it).
    id: Option<(u64, u64)>,
}

/// Opens every input (`-` is standard input) for reading in order: the
/// one place that turns paths into events. Each input is a record file
/// today; another format (a packet capture) is recognised here, so that
/// `read` and `ui` read it without a change of their own.
pub fn open_inputs(paths: &[PathBuf]) -> anyhow::Result<Inputs> {
    use std::os::unix::fs::MetadataExt;
    let mut waiting = VecDeque::new();
    let mut len = Some(0u64);
    for path in paths {
        if path == Path::new("-") {
            len = None;
            waiting.push_back(Opened {
                name: "stdin".to_owned(),
                read: Box::new(std::io::stdin()),
                id: None,
            });
            continue;
        }
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        let meta = file.metadata().ok().filter(|m| m.is_file());
        // Not a regular file (a pipe, /dev/stdin): no size, no bar.
        len = len.zip(meta.as_ref().map(|m| m.len())).map(|(a, b)| a + b);
        waiting.push_back(Opened {
            name,
            read: Box::new(file),
            id: meta.map(|m| (m.dev(), m.ino())),
        });
    }
    Ok(Inputs {
        waiting,
        current: None,
        len,
        progress: None,
        warnings: Vec::new(),
        failed: false,
    })
}

impl Inputs {
    /// What the inputs are called, for the progress bar.
    pub fn name(&self) -> String {
        match self.waiting.len() {
            0 => String::new(),
            1 => self.waiting[0].name.clone(),
            n => format!("{} (+{} more)", self.waiting[0].name, n - 1),
        }
    }

    /// All inputs' bytes together (0 when one has no size, as stdin).
    pub fn size(&self) -> u64 {
        self.len.unwrap_or(0)
    }

    /// Counts what is read on `progress`.
    pub fn show_progress(&mut self, progress: &Progress) {
        self.progress = Some(progress.clone());
    }

    /// Fails when `path` is one of the inputs: writing it would empty it
    /// before it is read.
    pub fn refuse_as_output(&self, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let id = Some((meta.dev(), meta.ino()));
        if let Some(input) = self.waiting.iter().find(|input| input.id == id) {
            bail!(
                "--record {} is also an input ({}); write to another file",
                path.display(),
                input.name
            );
        }
        Ok(())
    }

    /// What was wrong but not fatal (a cut-off last line), once reading
    /// has ended.
    pub fn warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The next input's reader, its header read.
    fn open_next(&mut self) -> Option<anyhow::Result<()>> {
        let Opened { name, read, .. } = self.waiting.pop_front()?;
        let read: Box<dyn Read> = match &self.progress {
            Some(progress) => Box::new(progress.wrap(read)),
            None => read,
        };
        let buffered: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, read));
        Some(match RecordReader::new(buffered) {
            Ok(reader) => {
                self.current = Some((name, reader));
                Ok(())
            }
            Err(err) => Err(anyhow!("{name}: {err}")),
        })
    }
}

impl Iterator for Inputs {
    type Item = anyhow::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            let Some((name, reader)) = &mut self.current else {
                if let Err(err) = self.open_next()? {
                    self.failed = true;
                    return Some(Err(err));
                }
                continue;
            };
            match reader.next_event() {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => {
                    if let Some(line) = reader.truncated_at() {
                        self.warnings.push(format!(
                            "line {line} of {name} is cut off (the writer stopped mid-line); everything before it was read"
                        ));
                    }
                    self.current = None;
                }
                Err(err) => {
                    self.failed = true;
                    return Some(Err(anyhow!("{name}: {err}")));
                }
            }
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

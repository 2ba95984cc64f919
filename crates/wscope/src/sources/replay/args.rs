//! `wscope replay` and `wscope diff`'s flags, beside the replay they
//! configure.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::options::{Pace, parse_pace, parse_path};
use crate::network::connection::Limits;
use crate::sinks::output_args::{OutputArgs, RedactArgs};
use crate::values::parse_duration;

#[derive(Debug, Args)]
#[command(mut_args = crate::sinks::outputs::REPLAY.help())]
pub struct ReplayArgs {
    /// The recording: a record file, a HAR, or a packet capture (several
    /// capture files are read as one).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The server to play it against (ws:// or wss://). The recorded path
    /// and query are used, unless this URL has a path of its own.
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Only this recorded connection (c1, c2, ...).
    #[arg(long, value_name = "ID")]
    pub conn: Option<String>,

    /// Play the whole recording this many times, one run after the other.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    /// Play this many copies of each connection at once (a load run).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub connections: u32,

    /// A request header, as 'Name: value', sent in place of the recorded
    /// one of that name (or in addition); supplies headers that were
    /// redacted or stripped from the recording. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// replies (wait for the server's recorded number of answers before
    /// each client message), original (the recorded gaps), xN (the
    /// recorded gaps N times faster), or none.
    #[arg(long, default_value = "replies", value_parser = parse_pace, value_name = "PACE")]
    pub pace: Pace,

    /// How long to wait for each awaited server message (and for the
    /// server's close) before going on without it.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,

    /// NAME=json.path: take the value at the path from the server's
    /// messages; the value recorded there is replaced by the live one in
    /// every later client message (session ids, tokens), and the path is
    /// not compared. Repeatable.
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_extract)]
    pub extract: Vec<(String, Vec<wscope_events::filter::PathStep>)>,

    /// A message to send after the recorded client messages of each
    /// connection; {{NAME}} takes an --extract value. Repeatable.
    #[arg(long, value_name = "MESSAGE")]
    pub send: Vec<String>,

    /// TLS key log to decrypt wss:// connections in a capture.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,

    /// The most payload bytes of the server's compared messages kept per
    /// connection; a server that sends more ends that connection's replay
    /// (reported as failed).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_compared: u64,

    /// Trust only the CA certificate(s) in this PEM file for wss://.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Accept any server certificate (test servers only).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Give up on a TCP connection and handshake after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    #[command(flatten)]
    pub compare: CompareArgs,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The recording to compare against (before).
    #[arg(value_name = "A")]
    pub a: PathBuf,

    /// The recording to compare (after).
    #[arg(value_name = "B")]
    pub b: PathBuf,

    /// Only messages this filter expression matches count (the filter
    /// language, docs/FILTER.md): keep heartbeats out.
    #[arg(long, short, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Print the differences as JSON Lines `diff` events.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub compare: CompareArgs,

    #[command(flatten)]
    pub redact: RedactArgs,
}

/// What replay and diff compare, and how.
#[derive(Debug, Args, Clone)]
pub struct CompareArgs {
    /// A JSON path whose value never counts as a difference (json.ts,
    /// json.data.id); everything under it is left out too. Repeatable.
    #[arg(long, value_name = "PATH", value_parser = parse_path)]
    pub ignore: Vec<Vec<wscope_events::filter::PathStep>>,

    /// Write the whole report as one JSON document to FILE (for CI).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

/// `NAME=json.path`.
fn parse_extract(text: &str) -> Result<(String, Vec<wscope_events::filter::PathStep>), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: write it as NAME=json.path"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{name:?} is not a name for --extract (letters, digits, _ and -)"
        ));
    }
    let path = wscope_events::filter::parse_json_path(path)?;
    Ok((name.to_owned(), path))
}

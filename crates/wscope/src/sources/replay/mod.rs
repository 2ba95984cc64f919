//! Replay: a recording made into something that runs again.
//!
//! - [`conversation`]: any recording (record file, HAR, capture, through
//!   `read::open_inputs`) as conversations, one per connection.
//! - [`compare`]: what the server sent now against what it sent then,
//!   aligned, JSON compared structurally.
//! - [`driver`]: one live connection playing a conversation's client
//!   side (`wscope replay`).
//! - [`report`]: the report printed at the end and written with
//!   `--report-json`, and the exit status.
//! - [`diff`]: `wscope diff A B`, two recordings compared.
//! - [`script`] and [`mock`]: `wscope serve --replay`, a conversation's
//!   server side cut into exchanges and played to a live client (the
//!   serve session drives it).

pub mod args;
pub mod compare;
pub mod conversation;
pub mod diff;
pub mod driver;
pub mod mock;
pub mod options;
pub mod report;
pub mod script;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use url::Url;

use crate::sinks::emit::Events;
use crate::sinks::outputs::{self, Extras};
use args::ReplayArgs;
use conversation::{Conversation, Recording};
use driver::{ConnReport, Plan};

/// Reads a recording (any input `read` reads) into conversations.
pub fn load(
    files: &[std::path::PathBuf],
    keylogs: &[std::path::PathBuf],
) -> anyhow::Result<Recording> {
    let mut inputs = crate::sources::inputs::open_inputs(files)?;
    inputs.keylogs(keylogs)?;
    inputs.capture_options(wscope_capture::Options {
        // Replay needs whole messages and the handshake as it was.
        max_payload: 16 << 20,
        redact: false,
        frames: false,
        binary: true,
        keys_may_arrive: false,
    });
    let recording = Recording::from_events(inputs.by_ref())?;
    for warning in inputs.warnings() {
        eprintln!("wscope: {warning}");
    }
    Ok(recording)
}

/// The conversations `--conn` picks, or a clear error when there are none.
pub fn pick<'a>(
    recording: &'a Recording,
    conn: Option<&str>,
    name: &str,
) -> anyhow::Result<Vec<&'a Conversation>> {
    if recording.conversations.is_empty() {
        bail!(
            "{name} holds no WebSocket connection with an opening or a message: nothing to replay"
        );
    }
    let picked: Vec<&Conversation> = recording
        .conversations
        .iter()
        .filter(|c| conn.is_none_or(|id| c.conn == id))
        .collect();
    if picked.is_empty() {
        let ids: Vec<&str> = recording
            .conversations
            .iter()
            .map(|c| c.conn.as_str())
            .collect();
        bail!(
            "{name} has no connection {}; it has {}",
            conn.unwrap_or_default(),
            ids.join(", ")
        );
    }
    Ok(picked)
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    outputs::check(&args.output, &outputs::REPLAY)?;
    let to = Url::parse(&args.to).with_context(|| format!("--to {:?} is not a URL", args.to))?;
    if !matches!(to.scheme(), "ws" | "wss") {
        bail!("--to {to}: use a ws:// or wss:// URL");
    }
    let headers = args
        .headers
        .iter()
        .map(|h| driver::parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let name = args
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let recording = load(&args.files, &args.keylog)?;
    let picked = pick(&recording, args.conn.as_deref(), &name)?;
    // What cannot be sent as recorded stops the replay before it starts.
    for conv in &picked {
        for message in conv.sent_by(wscope_events::Direction::ClientToServer) {
            if let Some(why) = driver::unsendable(conv, message) {
                bail!(why);
            }
            if args.extract.is_empty()
                && let Some(text) = &message.payload.text
                && driver::redacted(text)
            {
                bail!(
                    "{} client message {} holds a value that was redacted when it was recorded; replay does not send it: take the live value with --extract NAME=json.path, or record with --no-redact",
                    conv.conn,
                    message.number
                );
            }
        }
    }
    let outputs = outputs::build(&args.output, &outputs::REPLAY, Extras::default())?;
    let plan = Arc::new(Plan {
        to,
        pace: args.pace,
        timeout: args.timeout,
        filter: outputs.filter.clone(),
        rules: compare::Rules {
            ignore: args.compare.ignore.clone(),
        },
        extract: args.extract.clone(),
        send: args.send.clone(),
        headers,
        ca: args.ca.clone(),
        insecure: args.insecure,
        connect_timeout: args.connect_timeout,
        max_message: args.limits.max_message,
        max_compared: args.max_compared,
    });
    let payload_limit = outputs.payload_limit();
    let events = Events::direct(outputs.sinks, payload_limit);
    let first = recording.started_us();
    let copies = args.connections;
    let one_each = copies == 1 && args.repeat == 1;
    let mut reports: Vec<ConnReport> = Vec::new();
    for run in 0..args.repeat {
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for conv in &picked {
            for copy in 0..copies {
                let id = if one_each {
                    conv.conn.clone()
                } else {
                    format!("{}.{}", conv.conn, run * copies + copy + 1)
                };
                let plan = Arc::clone(&plan);
                let conv: Conversation = (*conv).clone();
                let offset = Duration::from_micros(conv.started_us.saturating_sub(first));
                let events = events.clone();
                let order = tasks.len();
                tasks.spawn(async move {
                    tokio::time::sleep_until(started + offset).await;
                    (order, driver::play(&plan, &conv, &id, &events).await)
                });
            }
        }
        let mut this_run = Vec::new();
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok(report)) => this_run.push(report),
                    Some(Err(err)) => return Err(anyhow!("a replayed connection failed: {err}")),
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => {
                    tasks.abort_all();
                    eprintln!("wscope: interrupted; the report covers the connections that finished");
                    break;
                }
            }
        }
        this_run.sort_by_key(|(order, _)| *order);
        reports.extend(this_run.into_iter().map(|(_, report)| report));
    }
    let report = report::Report::new("replay", &name, Some(plan.to.as_str()), reports);
    report.finish(args.compare.report_json.as_deref(), args.output.json)
}

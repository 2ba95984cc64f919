//! The outputs of a run, built in one place. Every command that produces
//! events flattens the same group of output flags ([`OutputArgs`]) and
//! hands it, with its row of defaults below, to [`build`], which returns
//! the sinks (terminal view, `--json`, lifecycle log, `--record`,
//! `--metrics`, `--ui`). A new command gets every output by doing the same;
//! no command wires a sink of its own.
//!
//! The rows ([`CONNECT`], [`SERVE`], [`PROXY`], [`READ`], [`CAPTURE`]) are the only
//! place where outputs differ per command: default `--max-payload` and
//! `--log-format`, what the terminal view looks like, what `--filter`
//! narrows, and which flags a command cannot honour. clap cannot give a
//! flattened flag a different default per command, so those flags are
//! `Option`s and [`OutputDefaults::help`] writes each command's own default
//! into its `--help`, and hides the flags it refuses.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use wscope_events::filter::Expr;

use crate::sinks::interactive::Printer;
use crate::sinks::lifecycle::{LifecycleLog, LogFormat};
use crate::sinks::metrics::{Metrics, MetricsSink};
use crate::sinks::output_args::{OutputArgs, UiOptions};
use crate::sinks::preview::Preview;
use crate::sinks::progress::{OnStderr, Progress};
use crate::sinks::sink::{Human, JsonLines, Record, Sink, Sinks, filtered};
use crate::sinks::ui::{Mode, UiSink, hub::Hub};

/// What a command shows a person when no flag says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// Nothing on stdout: a server's lifecycle log is its human output.
    Off,
    /// One connection at a time (connect): received messages on stdout,
    /// how the connection ended on stderr (kept with `--quiet`), colours
    /// on a terminal.
    OneConnection,
    /// Many connections (proxy, read): each line starts with the
    /// connection id, both directions are marked; `--quiet` prints nothing.
    Many,
}

/// What `--filter` narrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterScope {
    /// What is printed (the terminal view, `--json`, the lifecycle log);
    /// `--record`, `--metrics` and `--ui` get every event. Live sources:
    /// the recording is the evidence, the screen is for reading.
    Printed,
    /// Everything, `--record` included: the source drops what does not
    /// pass (read, whose job is picking events out of a recording).
    Everything,
    /// Which messages a comparison counts (replay): the source applies it
    /// to what it compares and waits for; every event is printed.
    Compared,
}

/// One command's outputs when no flag says otherwise.
#[derive(Debug)]
pub struct OutputDefaults {
    /// The subcommand, for messages and help.
    pub command: &'static str,
    pub max_payload: usize,
    pub log_format: LogFormat,
    /// Secrets are redacted unless `--no-redact`.
    pub redact: bool,
    pub terminal: Terminal,
    /// The terminal view shows control frames even without
    /// `--show-control`.
    pub show_control: bool,
    /// The terminal view shows times even without `-t`.
    pub timestamps: bool,
    pub filter: FilterScope,
    /// Flags (by clap id) this command cannot honour, and why: hidden from
    /// its help, refused with the reason.
    pub refused: &'static [(&'static str, &'static str)],
}

const UI_IS_LIVE: &str = "the web UI runs on serve and proxy; record with --record and open the file with `wscope ui FILE`";
const NO_TERMINAL_VIEW: &str =
    "serve has no terminal view; its lifecycle log (--log-format) is what it prints";
const READ_UI: &str = "open record files in the web UI with `wscope ui FILE...`";

pub static CONNECT: OutputDefaults = OutputDefaults {
    command: "connect",
    max_payload: 64 * 1024,
    log_format: LogFormat::Off,
    redact: true,
    terminal: Terminal::OneConnection,
    show_control: false,
    timestamps: false,
    filter: FilterScope::Printed,
    refused: &[
        ("ui", UI_IS_LIVE),
        ("ui_allow_remote", UI_IS_LIVE),
        ("open", UI_IS_LIVE),
    ],
};

pub static SERVE: OutputDefaults = OutputDefaults {
    command: "serve",
    max_payload: 64 * 1024,
    log_format: LogFormat::Text,
    redact: true,
    terminal: Terminal::Off,
    show_control: false,
    timestamps: false,
    filter: FilterScope::Printed,
    refused: &[
        ("quiet", NO_TERMINAL_VIEW),
        ("pretty", NO_TERMINAL_VIEW),
        ("timestamps", NO_TERMINAL_VIEW),
        ("show_control", NO_TERMINAL_VIEW),
        ("full", NO_TERMINAL_VIEW),
        ("preview_width", NO_TERMINAL_VIEW),
    ],
};

/// The proxy keeps less of each payload by default: it sees every message
/// of every connection, and keeping costs (BENCHMARKS.md).
pub static PROXY: OutputDefaults = OutputDefaults {
    command: "proxy",
    max_payload: 16 * 1024,
    log_format: LogFormat::Off,
    redact: true,
    terminal: Terminal::Many,
    show_control: false,
    timestamps: false,
    filter: FilterScope::Printed,
    refused: &[],
};

/// A recording is passed on with its payloads as they were recorded. Its
/// secrets are redacted on the way out unless `--no-redact`: a record file
/// was usually redacted already (markers are left as they are), and a
/// packet capture or a HAR holds them as they were on the wire.
pub static READ: OutputDefaults = OutputDefaults {
    command: "read",
    max_payload: usize::MAX,
    log_format: LogFormat::Off,
    redact: true,
    terminal: Terminal::Many,
    show_control: true,
    timestamps: true,
    filter: FilterScope::Everything,
    refused: &[
        (
            "frames",
            "a record file holds the frames it was recorded with (connect or proxy --frames)",
        ),
        (
            "metrics",
            "read ends with its input, before anything could scrape metrics",
        ),
        ("ui", READ_UI),
        ("ui_allow_remote", READ_UI),
        ("open", READ_UI),
    ],
};

/// A live capture shows what `read` shows of a capture file (control
/// frames, capture times), but it is a live source: `--filter` narrows
/// what is printed, and `--record` and `--ui` keep every event. Every
/// frame is reported already (`read` does the same with captures).
pub static CAPTURE: OutputDefaults = OutputDefaults {
    command: "capture",
    max_payload: crate::sources::captures::CAPTURE_MAX_PAYLOAD,
    log_format: LogFormat::Off,
    redact: true,
    terminal: Terminal::Many,
    show_control: true,
    timestamps: true,
    filter: FilterScope::Printed,
    refused: &[(
        "frames",
        "a capture reports every frame it sees (in --json, --record and the UI) already",
    )],
};

const REPLAY_ENDS: &str =
    "replay ends with its recording; record with --record and open the file with `wscope ui FILE`";

/// A replay shows both sides of every connection it plays, and what
/// differed; `--filter` picks the messages that are compared.
pub static REPLAY: OutputDefaults = OutputDefaults {
    command: "replay",
    max_payload: 64 * 1024,
    log_format: LogFormat::Off,
    redact: true,
    terminal: Terminal::Many,
    show_control: false,
    timestamps: false,
    filter: FilterScope::Compared,
    refused: &[
        ("ui", REPLAY_ENDS),
        ("ui_allow_remote", REPLAY_ENDS),
        ("open", REPLAY_ENDS),
        ("metrics", REPLAY_ENDS),
    ],
};

impl OutputDefaults {
    /// Why this command refuses the flag with clap id `id`, if it does.
    fn refuses(&self, id: &str) -> Option<&'static str> {
        self.refused
            .iter()
            .find(|(refused, _)| *refused == id)
            .map(|(_, why)| *why)
    }

    /// The output flags as this command's `--help` shows them: its own
    /// defaults written in, the flags it refuses hidden. For
    /// `#[command(mut_args = ...)]` on the command's arguments.
    pub fn help(&'static self) -> impl FnMut(clap::Arg) -> clap::Arg {
        move |arg| {
            let id = arg.get_id().as_str();
            if self.refuses(id).is_some() {
                return arg.hide(true);
            }
            let note = match id {
                "max_payload" if self.max_payload == usize::MAX => "[default: no limit]".to_owned(),
                "max_payload" => format!("[default: {}]", self.max_payload),
                "log_format" => format!("[default: {}]", self.log_format.name()),
                "timestamps" if self.timestamps => format!("[always on for {}]", self.command),
                "show_control" if self.show_control => {
                    format!("[always on for {}]", self.command)
                }
                _ => return arg,
            };
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} {note}"))
        }
    }
}

/// What only the running command knows.
#[derive(Default)]
pub struct Extras<'a> {
    /// Mark sent (`>`) and received (`<`) messages in a one-connection
    /// view (connect on a terminal, the demo); a many-connection view
    /// always does.
    pub arrows: bool,
    /// Print through the line editor (connect's interactive mode).
    pub printer: Option<Printer>,
    /// Keep printing sinks clear of read's progress bar.
    pub progress: Option<&'a Progress>,
    /// The command prints something else in place of the terminal view
    /// (read --stats).
    pub no_terminal: bool,
}

/// The sinks the flags asked for, and what the source needs to know to
/// feed them.
pub struct Outputs {
    pub sinks: Sinks,
    /// `--filter` where it narrows everything ([`FilterScope::Everything`]):
    /// the source applies it. Where it narrows what is printed it is
    /// already inside those sinks, and this is `None`.
    pub filter: Option<Expr>,
    /// `--max-payload`, or the command's default.
    pub max_payload: usize,
    /// `--frames`: the source reports every data frame.
    pub frames: bool,
    /// `--metrics`: the counters (for what no event carries) and the URL
    /// they are already served at.
    pub metrics: Option<(Arc<Metrics>, String)>,
    /// `--ui`: its sink is in `sinks`; the command starts it once it knows
    /// what the UI may act on ([`LiveUi::start`]).
    pub ui: Option<LiveUi>,
}

impl Outputs {
    /// How many bytes of each payload the source should keep: none when no
    /// sink looks at payloads (a server then builds no copies for them).
    pub fn payload_limit(&self) -> usize {
        if self.sinks.wants_payloads() {
            self.max_payload
        } else {
            0
        }
    }
}

/// The web UI of a live command, fed but not yet listening.
pub struct LiveUi {
    addr: SocketAddr,
    options: UiOptions,
    pub hub: Arc<Hub>,
}

impl LiveUi {
    /// Starts serving (and opens it with `--open`); returns its URL.
    pub async fn start(
        self,
        mode: Mode,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<String> {
        crate::sinks::ui::start_live(self.addr, &self.options, self.hub, mode, shutdown).await
    }
}

/// Refuses the flags this command cannot honour and compiles `--filter`,
/// so a mistake is reported before anything starts. [`build`] does it too;
/// a command calls this first when it has other work to do before
/// building (binding listeners, starting the line editor).
pub fn check(args: &OutputArgs, defaults: &OutputDefaults) -> anyhow::Result<Option<Expr>> {
    let given = [
        ("json", args.json),
        ("quiet", args.quiet),
        ("pretty", args.pretty),
        ("full", args.full),
        ("preview_width", args.preview_width.is_some()),
        ("timestamps", args.timestamps),
        ("show_control", args.show_control),
        ("frames", args.frames),
        ("filter", args.filter.is_some()),
        ("record", args.record.is_some()),
        ("record_max_size", args.record_max_size.is_some()),
        ("record_keep", args.record_keep.is_some()),
        ("max_payload", args.max_payload.is_some()),
        ("no_redact", args.redact.no_redact),
        ("log_format", args.log_format.is_some()),
        ("metrics", args.metrics.is_some()),
        ("ui", args.ui.is_some()),
        ("ui_allow_remote", args.ui_options.ui_allow_remote),
        ("open", args.ui_options.open),
    ];
    for (id, _) in given.iter().filter(|(_, given)| *given) {
        if let Some(why) = defaults.refuses(id) {
            bail!(
                "--{} is not available on `wscope {}`: {why}",
                id.replace('_', "-"),
                defaults.command
            );
        }
    }
    args.redact.rules()?;
    crate::sinks::output_args::parse_filter(args.filter.as_deref())
}

/// Turns the output flags into sinks, with `defaults` for what they leave
/// open: creates the record file, starts serving metrics. Sinks are added
/// printing ones first, so a batch reaches the screen and logs before the
/// record file.
pub fn build(
    args: &OutputArgs,
    defaults: &OutputDefaults,
    extras: Extras<'_>,
) -> anyhow::Result<Outputs> {
    let filter = check(args, defaults)?;
    let max_payload = args.max_payload.unwrap_or(defaults.max_payload);
    let redactor = args.redact.redactor(defaults.redact)?;
    let redaction = redactor.as_ref().map(|r| r.rules().clone());
    let log_format = args.log_format.unwrap_or(defaults.log_format);
    let (printed, source_filter) = match defaults.filter {
        FilterScope::Printed => (filter, None),
        FilterScope::Everything | FilterScope::Compared => (None, filter),
    };
    let progress = extras.progress;
    let around = |sink: Box<dyn Sink>, on_stderr| match progress {
        Some(progress) => progress.around(sink, on_stderr),
        None => sink,
    };

    let mut sinks = Sinks::redacting(redactor);
    if args.json {
        let json = Box::new(JsonLines::new(max_payload));
        sinks.add(
            "--json",
            filtered(printed.as_ref(), around(json, OnStderr::Nothing)),
        );
    } else if let Some(human) = terminal_view(args, defaults, extras) {
        sinks.add(
            "terminal",
            filtered(
                printed.as_ref(),
                around(Box::new(human), OnStderr::EventsWithoutAMessage),
            ),
        );
    }
    if log_format != LogFormat::Off {
        let log = Box::new(LifecycleLog::new(log_format));
        sinks.add(
            "log",
            filtered(printed.as_ref(), around(log, OnStderr::Everything)),
        );
    }
    if let Some(path) = &args.record {
        let rotation = args
            .record_max_size
            .map(|max_size| crate::sinks::sink::Rotation {
                max_size,
                keep: args.record_keep.map(|keep| keep as usize),
            });
        let record = Record::create(path, redaction.as_ref(), max_payload, rotation)
            .with_context(|| format!("cannot create the record file {}", path.display()))?;
        sinks.add("--record", Box::new(record));
    }
    let metrics = match args.metrics {
        Some(addr) => {
            let (metrics, url) = serve_metrics(addr)?;
            sinks.add("--metrics", Box::new(MetricsSink(Arc::clone(&metrics))));
            Some((metrics, url))
        }
        None => None,
    };
    let ui = args.ui.map(|addr| {
        let hub = Hub::new(redaction.clone(), args.ui_options.ui_history);
        sinks.add("--ui", Box::new(UiSink(Arc::clone(&hub))));
        LiveUi {
            addr,
            options: args.ui_options.clone(),
            hub,
        }
    });
    Ok(Outputs {
        sinks,
        filter: source_filter,
        max_payload,
        frames: args.frames,
        metrics,
        ui,
    })
}

/// The terminal view, when this command has one and nothing replaces it.
fn terminal_view(args: &OutputArgs, defaults: &OutputDefaults, extras: Extras) -> Option<Human> {
    use std::io::IsTerminal;
    if extras.no_terminal {
        return None;
    }
    let on_terminal = extras.printer.is_some() || std::io::stdout().is_terminal();
    let color = crate::color::enabled(on_terminal);
    let (arrows, show_conn) = match defaults.terminal {
        Terminal::Off => return None,
        Terminal::Many if args.quiet => return None,
        Terminal::Many => (true, true),
        Terminal::OneConnection => (extras.arrows, false),
    };
    Some(Human {
        arrows,
        quiet: args.quiet,
        show_control: defaults.show_control || args.show_control,
        timestamps: defaults.timestamps || args.timestamps,
        pretty: args.pretty,
        color,
        printer: extras.printer,
        show_conn,
        preview: match (args.preview_width, args.full) {
            (Some(columns), _) => Preview::Columns(columns.into()),
            (None, true) => Preview::Full,
            // A person reads a terminal: a line per message. A script
            // reads a pipe: the text whole.
            (None, false) if on_terminal => Preview::Terminal,
            (None, false) => Preview::TextWhole,
        },
    })
}

/// Binds `addr` and serves the metrics there; returns them and their URL.
/// Bound as `tokio::net::TcpListener::bind` does (address reuse, backlog
/// 1024), but without awaiting, so that building outputs stays a plain
/// function (it must already run inside the runtime).
fn serve_metrics(addr: SocketAddr) -> anyhow::Result<(Arc<Metrics>, String)> {
    let bind = || -> std::io::Result<tokio::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    let listener = bind().with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    let metrics = Metrics::new();
    tokio::spawn(crate::sinks::metrics::serve(listener, Arc::clone(&metrics)));
    Ok((metrics, url))
}

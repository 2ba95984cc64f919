//! The output flags every command that produces events shares (`--json`,
//! `--record`, `--filter`, redaction, `--metrics`, `--ui` and theirs),
//! defined beside the sinks they become (`outputs.rs`) so that the sinks
//! never reach up into the command-line definitions: `cli.rs` flattens
//! these into each command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::values::parse_size;

/// Where the events of a run go: the output flags, the same on every
/// command that produces events (connect, serve, proxy, read, and those to
/// come), turned into sinks by [`crate::sinks::outputs::build`]. Defaults that
/// differ per command (`--max-payload`, `--log-format`) are `None` here and
/// come from that command's row in `crate::sinks::outputs` (its `--help` shows
/// them). A flag a command cannot honour is hidden from its help and
/// refused with the reason.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Print the events as JSON Lines on stdout (docs/FORMAT.md), in place
    /// of the terminal view.
    #[arg(long)]
    pub json: bool,

    /// Print no messages. connect still says how each connection ended;
    /// proxy, read and capture print nothing. --json, --record, logs and metrics
    /// still get every event.
    #[arg(long, short)]
    pub quiet: bool,

    /// Pretty-print JSON payloads; show binary as a hex dump.
    #[arg(long)]
    pub pretty: bool,

    /// Print every message whole on its line (binary as hex), rather than
    /// cut to the terminal's width (on a terminal) or binary cut to its
    /// first bytes (anywhere).
    #[arg(long)]
    pub full: bool,

    /// Cut each message's line to N columns, after its kind and size
    /// (`c1 > text 65536 B {"type":…`), also in a pipe. On a terminal the
    /// default is its width; in a pipe text is printed whole.
    #[arg(long, value_name = "N", conflicts_with_all = ["full", "pretty"], value_parser = clap::value_parser!(u16).range(20..))]
    pub preview_width: Option<u16>,

    /// Prefix every printed line with the time (UTC).
    #[arg(long, short = 't')]
    pub timestamps: bool,

    /// Show control frames: pings, pongs, close frames with the code's
    /// meaning.
    #[arg(long)]
    pub show_control: bool,

    /// Also report every data frame (FIN, RSV bits, opcode, payload as on
    /// the wire) in --json and --record output.
    #[arg(long)]
    pub frames: bool,

    /// Only the events that pass this filter, e.g. 'dir == s2c &&
    /// json.type == "error"' (docs/FILTER.md). On connect, serve, proxy and
    /// capture it narrows what is printed (the terminal view, --json, the lifecycle
    /// log) and --record, --metrics and --ui still get every event; on
    /// read it narrows everything, --record included.
    #[arg(long, short, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Write the events to this record file (JSON Lines, docs/FORMAT.md;
    /// created readable by you only).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Start a new record file when the current one would grow past SIZE
    /// (K, M, G suffixes, powers of 1024): FILE, then FILE's name with .1,
    /// .2, ... before its extension (session.jsonl, session.1.jsonl), each
    /// standing alone (docs/FORMAT.md, "Rotation"). `wscope read` and
    /// `wscope ui` put the files of a set back in order.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "record")]
    pub record_max_size: Option<u64>,

    /// With --record-max-size: keep only the newest N files of the set,
    /// deleting the oldest as new ones start.
    #[arg(long, value_name = "N", requires = "record_max_size", value_parser = clap::value_parser!(u32).range(1..))]
    pub record_keep: Option<u32>,

    /// Keep at most this many bytes of each payload in --json, --record
    /// and the UI (the true length is always kept). The proxy forwards
    /// frames whole whatever this is, but keeping more costs more: see
    /// BENCHMARKS.md before raising it on a busy proxy.
    #[arg(long, value_name = "BYTES")]
    pub max_payload: Option<usize>,

    #[command(flatten)]
    pub redact: RedactArgs,

    /// Lifecycle logs on stderr: a line per connect, message, close and
    /// error, with client address, Origin and User-Agent.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<crate::sinks::lifecycle::LogFormat>,

    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Serve the web UI (docs/UI.md) at ADDR (default 127.0.0.1 and a free
    /// port): every connection and message live, searchable; on the proxy
    /// also actions on live connections (send, close, reset), for which it
    /// holds each message whole, as with rules.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub ui: Option<SocketAddr>,

    #[command(flatten)]
    pub ui_options: UiOptions,
}

/// Which secrets are taken out of everything a command writes or shows
/// (docs/FORMAT.md, "Redaction"); turned into one `Redactor` by
/// [`RedactArgs::redactor`].
#[derive(Debug, Args, Clone, Default)]
pub struct RedactArgs {
    /// Keep every secret as it was: credentials in headers, query
    /// parameters, subprotocols and JSON messages are redacted by default
    /// in --json, --record, the terminal, logs and the UI.
    #[arg(long, conflicts_with_all = ["redact_header", "redact_query", "redact_json"])]
    pub no_redact: bool,

    /// Also redact this header's value (Authorization, Cookie, X-Api-Key
    /// and a few more are by default). Repeatable.
    #[arg(long, value_name = "NAME", value_parser = parse_redact_name)]
    pub redact_header: Vec<String>,

    /// Also redact this query string parameter wherever a URL appears
    /// (token, access_token, key, sig, ... are by default). Repeatable.
    #[arg(long, value_name = "NAME", value_parser = parse_redact_name)]
    pub redact_query: Vec<String>,

    /// Also redact this field of JSON text messages, as a filter path:
    /// json.user.pin or json.items[0].key (fields named password, token,
    /// secret and authorization are at any depth by default). Repeatable.
    #[arg(long, value_name = "PATH", value_parser = parse_redact_path)]
    pub redact_json: Vec<String>,
}

impl RedactArgs {
    /// The redaction rules the flags ask for: the defaults plus every
    /// `--redact-header`, `--redact-query` and `--redact-json`.
    pub fn rules(&self) -> anyhow::Result<wscope_events::redact::Rules> {
        let mut rules = wscope_events::redact::Rules::default();
        for name in &self.redact_header {
            rules.add_header(name)?;
        }
        for name in &self.redact_query {
            rules.add_query(name)?;
        }
        for path in &self.redact_json {
            rules.add_json_path(path)?;
        }
        Ok(rules)
    }

    /// The one redactor of a run (`None` with `--no-redact`, or where a
    /// command redacts nothing, `redact` false): every event passes it on
    /// its way to the sinks (`Sinks::redacting`), so all outputs show the
    /// same markers.
    pub fn redactor(
        &self,
        redact: bool,
    ) -> anyhow::Result<Option<std::sync::Arc<wscope_events::redact::Redactor>>> {
        if !redact || self.no_redact {
            return Ok(None);
        }
        let redactor = wscope_events::redact::Redactor::new(self.rules()?)?;
        Ok(Some(std::sync::Arc::new(redactor)))
    }
}

/// A header or parameter name for a redaction rule: not empty.
fn parse_redact_name(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("a name is needed".to_owned()),
        name => Ok(name.to_owned()),
    }
}

/// A JSON path for `--redact-json`, checked when the flags are read.
fn parse_redact_path(text: &str) -> Result<String, String> {
    wscope_events::filter::parse_json_path(text)
        .map(|path| wscope_events::filter::json_path_string(&path))
}

/// How the web UI is served.
#[derive(Debug, Args, Clone, Default)]
pub struct UiOptions {
    /// Let the UI listen on a non-loopback address (anyone with its URL
    /// sees every message). Needs --ui-origin.
    #[arg(long)]
    pub ui_allow_remote: bool,

    /// With --ui-allow-remote: the exact origin the UI's page is loaded
    /// from (scheme://host[:port], e.g. https://wscope.example.com behind
    /// a TLS proxy); pages from any other origin cannot use it.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_ui_origin)]
    pub ui_origin: Option<String>,

    /// Open the UI in the default browser.
    #[arg(long)]
    pub open: bool,

    /// How much the UI keeps for pages that open later, in bytes (K, M, G
    /// suffixes, powers of 1024: 256M, 1G); the oldest events go first.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256M")]
    pub ui_history: u64,
}

/// What is done with the packets themselves (not the events made of
/// them): shared by `capture` and `read`.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Packets")]
pub struct PacketArgs {
    /// Write the packets, as captured, to this pcapng file (created
    /// readable by you only; nanosecond timestamps), for Wireshark, tshark
    /// or a later `wscope read`. On read, only from captures.
    #[arg(long, short, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// Compiles a `--filter` expression; a mistake is shown with a caret under
/// it, before anything starts.
pub fn parse_filter(text: Option<&str>) -> anyhow::Result<Option<wscope_events::filter::Expr>> {
    text.map(|text| {
        wscope_events::filter::parse(text)
            .map_err(|e| anyhow::anyhow!("--filter:\n{}", e.render(text)))
    })
    .transpose()
}

/// `--ui-origin`: an origin as a browser sends it (`Origin` header), no
/// path, query or credentials.
pub fn parse_ui_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|err| {
        format!("{text:?} is not an origin ({err}); e.g. https://wscope.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{text:?}: an origin is http:// or https:// and a host"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?}: an origin has no path, query or fragment"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?}: an origin has no user or password"));
    }
    Ok(url.origin().ascii_serialization())
}

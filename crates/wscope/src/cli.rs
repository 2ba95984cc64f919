//! The whole command-line surface, in one place: every subcommand and flag
//! with its help text. Nothing else defines flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::values::{parse_close_code, parse_duration, parse_probability, parse_rate, parse_size};

/// Debug WebSocket connections: talk to an endpoint, stand up a test server.
#[derive(Debug, Parser)]
#[command(name = "wscope", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "WSCOPE_LOG")]
    pub log: String,

    /// Colours: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: crate::color::ColorChoice,
}

// Parsed once at start-up and moved into its subcommand: the size
// difference between variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a WebSocket server that behaves, or misbehaves, on request: one
    /// behaviour per URL path (echo, close with a code, drop, hang, stop
    /// answering pings, refuse the upgrade, ...), to test clients against.
    ///
    /// With --replay FILE it is a mock instead: every connection is
    /// answered from a recording, the recorded server messages sent in
    /// answer to the recorded client messages (docs/REPLAY.md).
    ///
    /// The first line of stdout names the addresses it listens on (useful
    /// with port 0). permessage-deflate is accepted when a client offers it.
    /// Lifecycle logs go to stderr.
    #[command(after_help = crate::serve::behavior::HELP)]
    Serve(ServeArgs),
    /// Connect to a WebSocket endpoint, print what arrives, send stdin lines.
    ///
    /// Exit status: 0 after a normal closure (1000, or a close without a
    /// code), 3 if the TCP connection failed, 4 if the handshake failed, 5 if
    /// the connection closed with another code, 6 if it dropped without a
    /// close frame (1006), 7 if the server broke the protocol, 8 if the TLS
    /// handshake failed, 9 if a header command or an --on-open step failed.
    /// With SSLKEYLOGFILE set, TLS secrets are written to that file so
    /// Wireshark can decrypt the session.
    ///
    /// A header value may hold {{cmd:COMMAND}}: COMMAND runs with sh -c
    /// before every attempt and its trimmed output is the value (redacted
    /// in events unless --no-redact).
    Connect(ConnectArgs),
    /// Open a connection, show the handshake as sent and received with each
    /// step timed, check it, close cleanly (the curl -i of WebSockets).
    ///
    /// Exit status as for connect: 0 upgraded, 3 no TCP connection, 4
    /// upgrade refused or invalid, 8 TLS failed.
    Probe(ProbeArgs),
    /// Find out why a WebSocket endpoint fails: DNS, TCP, TLS, the upgrade
    /// (and what refused it), extensions and subprotocols, the Origin
    /// policy, keepalive, and with --long the idle timeout. One line per
    /// check, with what to change under each warning and problem
    /// (docs/DOCTOR.md).
    ///
    /// By default the handshake looks like a browser's (a browser
    /// User-Agent, permessage-deflate offered); --plain turns that off.
    ///
    /// Exit status: 0 when no check found a problem, 1 when one did (a
    /// refused upgrade included), 3 when nothing could be reached at all.
    Doctor(DoctorArgs),
    /// An inspecting WebSocket proxy: see every frame between a real client
    /// and a real server, recorded, without changing what they exchange.
    ///
    /// Reverse (--upstream ws[s]://HOST[:PORT][/PREFIX]): clients connect to
    /// wscope as if it were the server. Forward (--forward): an HTTP proxy
    /// for browsers and apps; CONNECT tunnels are TLS-intercepted with
    /// wscope's own CA (see `wscope ca`) when it exists or --intercept-tls
    /// is given. Non-WebSocket requests pass through.
    ///
    /// The first line of stdout names the address it listens on. Then one
    /// line per message (`c1 > text` from the client, `c1 < text` from the
    /// server); --json for events as JSON Lines instead.
    Proxy(ProxyArgs),
    /// Show wscope's interception CA (made on first use) and how to trust
    /// it.
    Ca(CaArgs),
    /// Measure an echo endpoint: round trips per second, throughput and
    /// round-trip latency, with messages of a given size.
    Bench(BenchArgs),
    /// Print a record file, a packet capture (pcap, pcapng) or a HAR as the live
    /// views do, or as JSON Lines, or sum it up per connection; narrow it
    /// with a filter (docs/FILTER.md).
    ///
    /// A file over 8 MiB shows a progress bar on stderr when that is a
    /// terminal and the output goes to a file (or with --stats).
    ///
    /// Exit status: 0, or 1 when a line in the middle of the file is
    /// damaged (everything before it is printed) or --write failed.
    Read(ReadArgs),
    /// Capture packets on a network interface and show the WebSocket
    /// connections in them as they pass, as `read` shows a capture file
    /// (docs/CAPTURE.md). Linux; needs root or CAP_NET_RAW.
    ///
    /// FILTER is a capture filter in tcpdump's and Wireshark's syntax
    /// ('tcp port 8080'), compiled by libpcap (Debian's libpcap0.8) and
    /// run in the kernel. Once capturing, a line on stderr says so; Ctrl-C
    /// or SIGTERM stops, writes everything out and sums the capture up.
    ///
    /// Exit status: 0 when stopped (Ctrl-C, SIGTERM, --count), 1 when
    /// capturing could not start (no such interface, no permission, a
    /// filter that does not compile) or failed.
    Capture(CaptureArgs),
    /// Open a record file in the web UI: connections, messages, the filter
    /// language, JSON trees and hex dumps, exports (docs/UI.md).
    ///
    /// Prints the UI's URL (with its access token) and serves it until
    /// Ctrl-C.
    Ui(UiArgs),
    /// Play the client side of a recording (a record file, a HAR, a packet
    /// capture) against a live server and show what the server now sends
    /// differently (docs/REPLAY.md).
    ///
    /// Every connection in the file is replayed, concurrently, at its
    /// recorded start offset, with its recorded path, headers, subprotocols
    /// and extensions. What the server sends is aligned with what it sent
    /// in the recording (JSON compared structurally) and every difference
    /// is printed.
    ///
    /// Exit status: 0 when the server answered as recorded, 1 when anything
    /// differs (a message, a missing or extra one, the close code), or the
    /// status of `connect` when a connection could not be made (3 no TCP
    /// connection, 4 handshake refused, 8 TLS failed). 2 for a usage error.
    Replay(ReplayArgs),
    /// Compare two recordings of the same conversation (before and after a
    /// deploy) with the rules of `replay`: messages aligned, JSON compared
    /// structurally, --ignore for fields that always differ.
    ///
    /// Exit status: 0 when they are the same, 1 when anything differs.
    Diff(DiffArgs),
    /// wscope's main job on a built-in example: an echo server, the
    /// inspecting proxy in front of it with its web UI and one rule that
    /// rewrites a message, and a client talking through it, all on
    /// 127.0.0.1. Prints the proxy's live view and the UI's URL; the UI
    /// stays up until Ctrl-C.
    Demo(DemoArgs),
    /// Explain a close code (1000-4999) or an HTTP status from a failed
    /// handshake (100-599): meaning, usual causes, what to check.
    Explain(ExplainArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell,
    /// elvish) on stdout; README.md says where to put it.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (wscope.1 and wscope-COMMAND.1 for each command)
    /// into DIR, e.g. ~/.local/share/man/man1.
    Manpages {
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub handshake: HandshakeArgs,

    /// Print the events (open or handshake_failed, with headers and
    /// timings) as JSON Lines.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub redact: RedactArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub handshake: HandshakeArgs,

    /// Handshake as wscope itself, not as a browser: no browser
    /// User-Agent, no compression offered unless --compress.
    #[arg(long)]
    pub plain: bool,

    /// Also run the slow checks: the idle timeout (for --idle, 75 s by
    /// default) and whether the server pings on its own.
    #[arg(long)]
    pub long: bool,

    /// Measure the idle timeout: hold a silent connection, and one that
    /// pings, for up to DURATION (implies the idle check without --long).
    #[arg(long, alias = "idle-limit", value_parser = parse_duration, value_name = "DURATION")]
    pub idle: Option<Duration>,

    /// The pinging connection of the idle check pings this often (a
    /// third of --idle by default).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub ping_every: Option<Duration>,

    /// Also send an echo endpoint messages of 1 KiB, 64 KiB, 1 MiB and
    /// 16 MiB and see which come back (a 1009 close, a drop, silence).
    #[arg(long)]
    pub sizes: bool,

    /// Like --sizes for an endpoint that does not echo: send this text,
    /// its {{payload}} filled up to each size, and await any answer.
    #[arg(long, value_name = "TEMPLATE")]
    pub probe_message: Option<String>,

    /// With --sizes: the largest message to try.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_message: u64,

    /// Run the same checks against a second URL (the backend directly,
    /// another path) and show where the verdicts differ. The exit status
    /// is the first URL's.
    #[arg(long, value_name = "URL2")]
    pub compare: Option<String>,

    /// Pings sent by the keepalive check, to measure round trips.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub pings: usize,

    /// Print the findings as JSON Lines (docs/FORMAT.md, "Doctor findings").
    #[arg(long)]
    pub json: bool,

    /// Also write the whole report as one JSON document to FILE (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,

    #[command(flatten)]
    pub redact: RedactArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A close code such as 1006, or an HTTP status such as 403.
    pub code: String,

    /// Print the explanation as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(mut_args = crate::outputs::SERVE.help())]
pub struct ServeArgs {
    /// Address to listen on; repeat for several. Port 0 picks a free port.
    #[arg(long, short, default_value = "127.0.0.1:9001", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,

    /// Refuse new connections (503) while this many are open.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_connections: usize,

    /// Serve wss:// with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve wss:// with a certificate for localhost, 127.0.0.1 and ::1,
    /// made on first use in wscope's data directory (the path is printed).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub mock: MockArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// `serve --replay`: every connection answered from a recording instead
/// of by its path (docs/REPLAY.md).
#[derive(Debug, Args)]
#[command(next_help_heading = "Mock server from a recording")]
pub struct MockArgs {
    /// Answer every WebSocket connection from this recording (a record
    /// file, a HAR, a packet capture; repeat for the pieces of one
    /// capture) instead of by the path behaviours: the recorded server
    /// messages are sent in answer to the recorded client messages. Only
    /// files named here are read; a client can never name one.
    #[arg(long, value_name = "FILE")]
    pub replay: Vec<PathBuf>,

    /// Serve every connection from this recorded connection (c1, c2, ...).
    /// Without it: the one whose recorded path and query match the
    /// client's, else the one with the same path, else the first.
    #[arg(long, value_name = "ID", requires = "replay")]
    pub conn: Option<String>,

    /// Which recorded client message a live one must match.
    #[arg(long = "match", value_enum, default_value_t = MatchOrder::Next, value_name = "ORDER", requires = "replay")]
    pub order: MatchOrder,

    /// A client message may also match a recorded one already used; its
    /// recorded replies are sent again.
    #[arg(long, requires = "replay")]
    pub reuse: bool,

    /// replies (each reply sent as soon as its client message matched;
    /// unprompted messages at their recorded times), original (replies
    /// too at their recorded gaps after the client message), xN (the
    /// recorded times N times faster), or none (no waiting at all).
    #[arg(long, default_value = "replies", value_parser = parse_pace, value_name = "PACE", requires = "replay")]
    pub pace: Pace,

    /// What a client message that matches no recorded one gets, besides
    /// a note saying so.
    #[arg(long, value_enum, default_value_t = OnMismatch::Ignore, value_name = "ACTION", requires = "replay")]
    pub on_mismatch: OnMismatch,

    /// A JSON path whose value does not count when matching client
    /// messages (json.id, json.ts); repeatable.
    #[arg(long, value_name = "PATH", value_parser = parse_path, requires = "replay")]
    pub ignore: Vec<Vec<wscope_events::filter::PathStep>>,

    /// TLS key log to decrypt wss:// connections in a capture.
    #[arg(long, value_name = "FILE", requires = "replay")]
    pub keylog: Vec<PathBuf>,
}

/// Which recorded client message a live one must match (`serve --replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MatchOrder {
    /// The next recorded client message, in recorded order.
    Next,
    /// Any recorded client message not used yet.
    Any,
}

/// What `serve --replay` does with a client message that matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnMismatch {
    /// Nothing more: the connection goes on.
    Ignore,
    /// Close 1008 (policy violation), with the mismatch as the reason.
    Close,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Record files (from --record), packet captures (pcap, pcapng) or HAR
    /// files, shown together in the order given; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Address for the web UI.
    #[arg(long, short, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub ui: UiOptions,

    #[command(flatten)]
    pub redact: RedactArgs,

    /// TLS key log (NSS format, as SSLKEYLOGFILE writes it) to decrypt
    /// wss:// connections in captures; repeatable. Decryption Secrets
    /// Blocks inside a pcapng are used as well.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
}

/// Where the events of a run go: the output flags, the same on every
/// command that produces events (connect, serve, proxy, read, and those to
/// come), turned into sinks by [`crate::outputs::build`]. Defaults that
/// differ per command (`--max-payload`, `--log-format`) are `None` here and
/// come from that command's row in `crate::outputs` (its `--help` shows
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
    pub log_format: Option<crate::lifecycle::LogFormat>,

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

#[derive(Debug, Args)]
#[command(mut_args = crate::outputs::READ.help())]
pub struct ReadArgs {
    /// Record files (from --record), packet captures (pcap, pcapng) or HAR
    /// files (Chrome's, with `_webSocketMessages`), read one after the
    /// other in the order given; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Only this connection (c1, c2, ...).
    #[arg(long, value_name = "ID")]
    pub conn: Option<String>,

    /// Only events at or after this time (2026-11-26T04:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only events at or before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Per connection: duration, messages and bytes each way, close code,
    /// the most common message types (instead of the terminal view).
    #[arg(long, conflicts_with = "json")]
    pub stats: bool,

    /// The JSON field that names a message's type, for --stats.
    #[arg(long, default_value = "type", value_name = "FIELD")]
    pub stats_field: String,

    /// TLS key log (NSS format, as SSLKEYLOGFILE writes it) to decrypt
    /// wss:// connections in captures; repeatable. Decryption Secrets
    /// Blocks inside a pcapng are used as well.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,

    #[command(flatten)]
    pub packets: PacketArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(mut_args = crate::outputs::CAPTURE.help())]
pub struct CaptureArgs {
    /// The network interface to capture on (lo, eth0, ...).
    #[arg(long, short, value_name = "IFACE")]
    pub interface: String,

    /// A capture filter, e.g. tcp port 8080 (tcpdump's syntax; the words
    /// are joined with spaces). Without one, every packet on the interface
    /// is decoded.
    #[arg(value_name = "FILTER")]
    pub capture_filter: Vec<String>,

    /// Keep at most this many bytes of each packet (the rest is counted as
    /// missing, never guessed).
    #[arg(long, short, default_value_t = 262_144, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..=262_144))]
    pub snaplen: u32,

    /// Stop after this many packets.
    #[arg(long, short, value_name = "N")]
    pub count: Option<u64>,

    /// TLS key log (NSS format, as SSLKEYLOGFILE writes it) to decrypt
    /// wss:// as it passes; repeatable. Followed as it grows (a browser
    /// appends as it connects), and waited for if it does not exist yet.
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,

    #[command(flatten)]
    pub packets: PacketArgs,

    #[command(flatten)]
    pub output: OutputArgs,
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

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub handshake: HandshakeArgs,

    /// Payload bytes per message.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub size: usize,

    /// Messages in flight per connection (1: strict request/response).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub window: usize,

    /// Connections, each with its own window.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub connections: usize,

    /// How long to measure (after a 300 ms warm-up).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Send text messages instead of binary.
    #[arg(long)]
    pub text: bool,

    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Print the CA certificate (PEM) only.
    #[arg(long)]
    pub pem: bool,
}

#[derive(Debug, Args)]
#[command(mut_args = crate::outputs::PROXY.help())]
pub struct ProxyArgs {
    /// Address to listen on; repeat for several. Port 0 picks a free port.
    #[arg(long, short, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,

    /// Reverse proxy to this server: ws[s]://HOST[:PORT][/PREFIX]. The
    /// path and query of each request are appended to the prefix.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "forward",
        conflicts_with = "forward"
    )]
    pub upstream: Option<String>,

    /// Forward proxy: handle absolute-URI requests and CONNECT tunnels.
    #[arg(long)]
    pub forward: bool,

    /// Intercept TLS in CONNECT tunnels with wscope's CA, creating it if
    /// needed (on by default once the CA exists).
    #[arg(long, requires = "forward", conflicts_with = "no_intercept")]
    pub intercept_tls: bool,

    /// Never intercept TLS: CONNECT tunnels are passed through blind.
    #[arg(long, requires = "forward")]
    pub no_intercept: bool,

    /// Keep the client's Host header instead of the upstream's.
    #[arg(long)]
    pub preserve_host: bool,

    /// Accept any upstream certificate (test servers only).
    #[arg(long)]
    pub upstream_insecure: bool,

    /// Trust only the CA certificate(s) in this PEM file upstream.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,

    /// Speak wss:// to clients with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse new connections (503) while this many are open.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_connections: usize,

    /// Give up on a client's request, or on the upstream's TCP, TLS and
    /// upgrade, after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Duration,

    /// Memory all connections together may hold for the rules (messages
    /// held whole, bytes queued behind delays and throttles); a connection
    /// that needs more is closed with 1013 (try again later).
    #[arg(long, default_value = "1G", value_parser = parse_size, value_name = "SIZE")]
    pub hold_budget: u64,

    #[command(flatten)]
    pub faults: FaultArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Faults and rewrites the proxy applies on purpose (docs/RULES.md). The
/// shortcut flags are rules too, in force before the file's.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Faults and rules")]
pub struct FaultArgs {
    /// A TOML file of rules (delay, drop, replace, inject, close, reset,
    /// throttle, idle-timeout, pause); reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Hold every message and control frame this long, each way (order is
    /// kept; a round trip gets it twice).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub latency: Option<Duration>,

    /// Vary --latency by up to this much either way.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "latency")]
    pub jitter: Option<Duration>,

    /// Drop this fraction of data messages (0 to 1), each way.
    #[arg(long, value_parser = parse_probability, value_name = "P")]
    pub drop_rate: Option<f64>,

    /// Close every connection this long after it opened (close frames to
    /// both sides, with --close-code).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub close_after: Option<Duration>,

    /// The code --close-after sends.
    #[arg(long, default_value_t = 1000, value_parser = parse_close_code, value_name = "CODE", requires = "close_after")]
    pub close_code: u16,

    /// Reset both TCP connections this long after opening (peers see 1006).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub reset_after: Option<Duration>,

    /// Close connections that carried nothing either way for this long, by
    /// closing TCP as a load balancer does.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Option<Duration>,

    /// Limit each direction of each connection to this rate (64KiB/s, 1MB/s,
    /// 8mbit/s).
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    pub bandwidth: Option<u64>,
}

/// `wscope demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// End after the exchange (exit 0 when it went as it should) rather
    /// than keep the web UI up until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

/// What it takes to open a client connection: shared by connect and probe.
#[derive(Debug, Args, Clone)]
pub struct HandshakeArgs {
    /// ws:// or wss:// URL to connect to.
    pub url: String,

    /// Offer permessage-deflate compression.
    #[arg(long)]
    pub compress: bool,

    /// Extra request header, as 'Name: value'. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// HTTP Basic credentials, as user:password.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub auth: Option<String>,

    /// Origin header to send.
    #[arg(long)]
    pub origin: Option<String>,

    /// Subprotocol to offer (Sec-WebSocket-Protocol). Repeatable.
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,

    /// Trust only the CA certificate(s) in this PEM file for wss://.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// Accept any server certificate (test servers only).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Client certificate chain (PEM) for servers that ask for one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<std::path::PathBuf>,

    /// Private key (PEM) for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<std::path::PathBuf>,

    /// Go through this HTTP proxy (HTTP CONNECT), e.g.
    /// http://user:password@proxy.example:3128.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,

    /// Connect to ADDR for HOST:PORT instead of asking DNS, as curl's
    /// --resolve (the URL, Host and TLS name stay). ADDR may be a list
    /// (a,b); HOST may be *. Repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDR", value_parser = crate::hosts::parse_resolve)]
    pub resolve: Vec<crate::hosts::Resolve>,

    /// Send connections for HOST1:PORT1 to HOST2:PORT2 instead, as
    /// curl's --connect-to (an empty part is any, or unchanged).
    /// Repeatable; the first match wins.
    #[arg(long, value_name = "HOST1:PORT1:HOST2:PORT2", value_parser = crate::hosts::parse_connect_to)]
    pub connect_to: Vec<crate::hosts::ConnectTo>,

    /// Give up on the TCP connection and handshake after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

#[derive(Debug, Args)]
#[command(mut_args = crate::outputs::CONNECT.help())]
pub struct ConnectArgs {
    #[command(flatten)]
    pub handshake: HandshakeArgs,

    /// Send every text and binary message back unchanged, instead of reading
    /// stdin (how a conformance suite tests a client).
    #[arg(long)]
    pub echo: bool,

    /// Send this message after connecting, instead of reading stdin.
    /// Repeatable; sent in order, after the --on-open steps, again on every
    /// connection with --reconnect.
    #[arg(long, value_name = "MESSAGE")]
    pub send: Vec<String>,

    /// Opening steps run at the start of every connection (again after each
    /// reconnection), before stdin lines are sent. One per line: send TEXT,
    /// send-json JSON, send-hex HEX, expect EXPR (wait for a server message
    /// matching a filter expression, docs/FILTER.md), sleep DURATION.
    #[arg(long, value_name = "FILE")]
    pub on_open: Option<PathBuf>,

    /// How long an `expect` step of --on-open waits; a miss fails the
    /// attempt.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub expect_timeout: Duration,

    /// Send stdin lines and --send messages as binary messages.
    #[arg(long)]
    pub binary: bool,

    /// Close normally once this many messages have arrived.
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,

    /// Send a ping this often and print the round-trip time of each pong.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,

    /// End the connection when a ping gets no pong within this long (needs
    /// --ping-interval).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "ping_interval")]
    pub ping_timeout: Option<Duration>,

    /// When the connection ends (other than by you: input done, --expect met,
    /// Ctrl-C), connect again, with exponential backoff and jitter.
    #[arg(long)]
    pub reconnect: bool,

    /// The longest wait between reconnection attempts (a Retry-After from a
    /// 429 or 503 refusal may ask for longer, and gets it).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub reconnect_max_delay: Duration,

    /// With --reconnect: the attempt count (and so the backoff) starts
    /// again only after a connection stayed up this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub stable_after: Duration,

    /// With --reconnect: give up after N attempts in a row that did not
    /// give a connection lasting --stable-after, exiting with the last
    /// one's status.
    #[arg(long, value_name = "N", requires = "reconnect", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,

    /// With --reconnect: reconnect only when the connection closed with
    /// one of these codes (comma-separated); 1006 (dropped) and a ping
    /// timeout always reconnect. Default: any close wscope did not start.
    #[arg(long, value_name = "CODES", requires = "reconnect", value_parser = crate::reconnect::parse_codes)]
    pub reconnect_on: Option<crate::reconnect::CloseCodes>,

    /// After stdin (or --send) ends, close once nothing has arrived for
    /// this long, so replies to the last messages are not lost.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub wait: Duration,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// How a replay paces the client's messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Before each client message, wait until the server has sent as many
    /// compared messages as it had at that point in the recording.
    Replies,
    /// The recorded gaps, scaled by the factor (1.0: as recorded).
    Original(f64),
    /// As fast as the server takes them.
    None,
}

fn parse_pace(text: &str) -> Result<Pace, String> {
    match text {
        "replies" => Ok(Pace::Replies),
        "original" => Ok(Pace::Original(1.0)),
        "none" => Ok(Pace::None),
        _ => {
            let factor = text
                .strip_prefix('x')
                .and_then(|f| f.parse::<f64>().ok())
                .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0)
                .ok_or_else(|| {
                    format!(
                        "{text:?}: use replies, original, none, or xN (x2: twice as fast, x0.5: half as fast)"
                    )
                })?;
            Ok(Pace::Original(1.0 / factor))
        }
    }
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

fn parse_path(text: &str) -> Result<Vec<wscope_events::filter::PathStep>, String> {
    wscope_events::filter::parse_json_path(text)
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

#[derive(Debug, Args)]
#[command(mut_args = crate::outputs::REPLAY.help())]
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

impl HandshakeArgs {
    /// `--resolve` and `--connect-to`.
    pub fn hosts(&self) -> crate::hosts::Hosts<'_> {
        crate::hosts::Hosts {
            resolve: &self.resolve,
            connect_to: &self.connect_to,
        }
    }

    /// The TLS flags, for wss:// URLs.
    pub fn tls_options(&self) -> crate::tls::TlsOptions {
        crate::tls::TlsOptions {
            ca: self.ca.clone(),
            insecure: self.insecure,
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// Limits that keep a connection from eating memory.
#[derive(Debug, Args, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted, in bytes; a bigger one closes with 1009.
    #[arg(long, default_value_t = wscope_proto::message::DEFAULT_MAX_MESSAGE)]
    pub max_message: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

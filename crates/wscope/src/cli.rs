//! The command-line surface: every subcommand, and the flags of the
//! commands themselves. Flag groups that configure something below the
//! commands live beside what they configure and are flattened in here:
//! the output flags (`output_args.rs`), what it takes to dial
//! (`dial::HandshakeArgs`), connection limits (`connection::Limits`), fault
//! flags (`rules::FaultArgs`), `serve` and `proxy` (`serve/args.rs`,
//! `proxy/args.rs`), `ca` and `ui FILE`. So imports point one way: this
//! module reaches down to them, nothing below reaches up to it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::network::ca::CaArgs;
use crate::network::connection::Limits;
use crate::sinks::output_args::{OutputArgs, PacketArgs, RedactArgs};
use crate::sinks::ui::UiArgs;
use crate::sources::dial::HandshakeArgs;
use crate::sources::proxy::args::ProxyArgs;
use crate::sources::replay::args::{DiffArgs, ReplayArgs};
use crate::sources::serve::args::ServeArgs;
use crate::values::parse_duration;

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
    #[command(after_help = crate::sources::serve::behavior::HELP)]
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
#[command(mut_args = crate::sinks::outputs::READ.help())]
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
#[command(mut_args = crate::sinks::outputs::CAPTURE.help())]
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

/// `wscope demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// End after the exchange (exit 0 when it went as it should) rather
    /// than keep the web UI up until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
#[command(mut_args = crate::sinks::outputs::CONNECT.help())]
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
    #[arg(long, value_name = "CODES", requires = "reconnect", value_parser = crate::network::reconnect::parse_codes)]
    pub reconnect_on: Option<crate::network::reconnect::CloseCodes>,

    /// After stdin (or --send) ends, close once nothing has arrived for
    /// this long, so replies to the last messages are not lost.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub wait: Duration,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub output: OutputArgs,
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

/// The per-command defaults of `outputs.rs` as each command's `--help`
/// shows them.
#[cfg(test)]
mod output_defaults {
    use clap::CommandFactory;

    use crate::sinks::output_args::OutputArgs;
    use crate::sinks::outputs::{CAPTURE, CONNECT, PROXY, READ, REPLAY, SERVE, check};

    /// The help text clap shows for `--long` of `wscope command`.
    fn help_of(command: &str, long: &str) -> Option<(String, bool)> {
        let cli = super::Cli::command();
        let sub = cli.find_subcommand(command)?;
        sub.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .map(|a| {
                (
                    a.get_help().map(ToString::to_string).unwrap_or_default(),
                    a.is_hide_set(),
                )
            })
    }

    #[test]
    fn each_command_shows_its_own_defaults() {
        let (proxy, _) = help_of("proxy", "max-payload").unwrap();
        assert!(proxy.ends_with("[default: 16384]"), "{proxy}");
        let (connect, _) = help_of("connect", "max-payload").unwrap();
        assert!(connect.ends_with("[default: 65536]"), "{connect}");
        let (serve, _) = help_of("serve", "log-format").unwrap();
        assert!(serve.ends_with("[default: text]"), "{serve}");
        let (proxy, _) = help_of("proxy", "log-format").unwrap();
        assert!(proxy.ends_with("[default: off]"), "{proxy}");
        let (read, _) = help_of("read", "max-payload").unwrap();
        assert!(read.ends_with("[default: no limit]"), "{read}");
    }

    #[test]
    fn refused_flags_are_hidden_and_refused_with_a_reason() {
        for defaults in [&CONNECT, &SERVE, &PROXY, &READ, &CAPTURE, &REPLAY] {
            for (id, _) in defaults.refused {
                let long = id.replace('_', "-");
                let (_, hidden) = help_of(defaults.command, &long)
                    .unwrap_or_else(|| panic!("{} has no --{long}", defaults.command));
                assert!(hidden, "--{long} shows in {} --help", defaults.command);
            }
        }
        let args = OutputArgs {
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            ..OutputArgs::default()
        };
        let err = check(&args, &READ).unwrap_err().to_string();
        assert!(
            err.starts_with("--metrics is not available on `wscope read`: "),
            "{err}"
        );
        assert!(check(&args, &SERVE).is_ok());
    }
}

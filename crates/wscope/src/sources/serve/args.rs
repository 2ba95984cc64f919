//! `wscope serve`'s flags, beside the server they configure.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::network::connection::Limits;
use crate::sinks::output_args::OutputArgs;
use crate::sources::replay::options::{MatchOrder, OnMismatch, Pace, parse_pace, parse_path};

#[derive(Debug, Args)]
#[command(mut_args = crate::sinks::outputs::SERVE.help())]
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

//! `wscope proxy`'s flags, beside the proxy they configure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::sinks::output_args::OutputArgs;
use crate::sources::rules::FaultArgs;
use crate::values::{parse_duration, parse_size};

#[derive(Debug, Args)]
#[command(mut_args = crate::sinks::outputs::PROXY.help())]
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

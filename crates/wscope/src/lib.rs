//! wscope: debug WebSocket connections.
//!
//! This crate wires things together: the CLI ([`cli`]), the async
//! connection around the sans-IO protocol core ([`connection`]), the event
//! sinks, and one module per subcommand. It is a library only so that the
//! binary, the fuzz targets and benchmarks share one build of it; its API
//! is not meant for other crates.

#[cfg(feature = "count-alloc")]
pub mod alloc_count;
pub mod bench;
pub mod ca;
#[cfg(target_os = "linux")]
pub mod capture;
mod captures;
pub mod cli;
pub mod color;
pub mod connect;
pub mod connection;
pub mod control;
pub mod demo;
pub mod dial;
pub mod doctor;
pub mod emit;
pub mod exit;
pub mod explain;
pub mod files;
pub mod header_cmd;
pub mod hosts;
pub mod http_io;
pub mod inputs;
pub mod interactive;
pub mod keylog_follow;
pub mod lifecycle;
pub mod listen;
pub mod manuals;
pub mod metrics;
pub mod net;
pub mod opening;
pub mod output_args;
pub mod outputs;
pub mod pipeline;
pub mod preview;
pub mod probe;
mod progress;
pub mod proxy;
pub mod read;
pub mod read_buffer;
pub mod reconnect;
pub mod replay;
pub mod rules;
pub mod serve;
pub mod sink;
pub mod timers;
pub mod tls;
pub mod ui;
pub mod values;

//! wscope: debug WebSocket connections.
//!
//! The binary's modules, grouped as the architecture reads (docs/
//! ARCHITECTURE.md): [`commands`] (one per subcommand) run [`sources`]
//! (servers, the proxy, dialing, stored inputs, replay) whose events go to
//! [`sinks`] (terminal, JSON Lines, records, logs, metrics, the web UI),
//! over [`network`] (the async connection, TLS, listening). [`cli`] holds
//! the commands' flags and flattens the groups defined below it. It is a
//! library only so that the binary, the fuzz targets and benchmarks share
//! one build of it; its API is not meant for other crates.

#[cfg(feature = "count-alloc")]
pub mod alloc_count;
pub mod cli;
pub mod color;
pub mod exit;
pub mod files;
pub mod heap;
pub mod values;

pub mod commands;
pub mod network;
pub mod sinks;
pub mod sources;

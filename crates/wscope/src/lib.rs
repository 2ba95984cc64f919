//! wscope: debug WebSocket connections.
//!
//! This crate wires things together: the CLI ([`cli`]), the async
//! connection around the sans-IO protocol core ([`connection`]), the event
//! sinks, and one module per subcommand. It is a library only so that the
//! binary, the fuzz targets and benchmarks share one build of it; its API
//! is not meant for other crates.

#[cfg(feature = "count-alloc")]
pub mod alloc_count;
pub mod cli;
pub mod color;
pub mod exit;
pub mod files;
pub mod values;

pub mod commands;
pub mod network;
pub mod sinks;
pub mod sources;

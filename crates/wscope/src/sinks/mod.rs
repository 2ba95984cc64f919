//! Where events go: the one emit handle every source uses, the sink
//! thread, the outputs built from the output flags (terminal, JSON Lines,
//! record files, lifecycle logs, metrics, the web UI).

pub mod emit;
pub mod interactive;
pub mod lifecycle;
pub mod metrics;
pub mod output_args;
pub mod outputs;
pub mod pipeline;
pub mod preview;
pub(crate) mod progress;
pub mod sink;
pub mod ui;

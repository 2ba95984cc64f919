//! One module per subcommand (and what only that command uses): each
//! turns its flags into sources and sinks and runs them.

pub mod bench;
#[cfg(target_os = "linux")]
pub mod capture;
pub mod connect;
pub mod demo;
pub mod doctor;
pub mod explain;
pub mod header_cmd;
pub mod manuals;
pub mod opening;
pub mod probe;
pub mod read;

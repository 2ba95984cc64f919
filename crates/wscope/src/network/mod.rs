//! Sockets and the protocol on them: the async connection around the
//! sans-IO core, TLS and the interception CA, listening, HTTP heads,
//! host overrides, reconnect policy, timers.

pub mod ca;
pub mod connection;
pub mod hosts;
pub mod http_io;
pub mod listen;
pub mod read_buffer;
pub mod reconnect;
pub mod stream;
pub mod timers;
pub mod tls;

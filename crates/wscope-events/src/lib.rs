//! The event model every wscope source produces and every sink consumes,
//! and the record file that stores it.
//!
//! A client, a server, a proxy or a capture reader all describe what
//! happened as [`Event`]s; printers, the record writer, and later the web UI
//! and metrics only ever see events. Neither side knows the other, so a new
//! output is a new sink and a new input is a new source.
//!
//! - [`event`]: the types, with their JSON shape (docs/FORMAT.md).
//! - [`line`]: one event as one line of JSON, fast for big payloads.
//! - [`record`]: the JSON Lines record file: writer and crash-tolerant reader.
//! - [`redact`]: which values are secrets (headers, query parameters,
//!   credential subprotocols, JSON fields) and the `Redactor` that
//!   replaces them.
//! - [`har`]: HAR 1.2 with Chrome's `_webSocketMessages`, read and written.
//! - [`filter`]: the filter expression language (docs/FILTER.md).

pub mod event;
pub mod filter;
pub mod har;
pub mod line;
pub mod observed;
pub mod record;
pub mod redact;
pub mod rotate;

pub use event::{
    Change, Close, Closed, ClosedBy, Diff, Direction, Ending, Event, EventKind, Frame,
    HandshakeFailed, HandshakeSeen, Head, Message, Open, PathChange, Payload, Timings,
    ViolationInfo,
};
pub use har::{HarError, HarEvents, read_har, write_har};
pub use record::{Header, Part, ReadError, RecordReader, RecordWriter};
pub use rotate::{Files, RotatingWriter};

//! Where events come from: the server, the proxy, client dialing, stored
//! inputs (records, HAR, captures), replayed recordings, rules and the
//! controls that act on live connections.

pub(crate) mod captures;
pub mod control;
pub mod dial;
pub mod inputs;
pub mod keylog_follow;
pub mod proxy;
pub mod replay;
pub mod rules;
pub mod serve;

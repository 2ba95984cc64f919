//! Exit statuses scripts can rely on, for every command in one place
//! (also in each command's `--help` and the README).

/// `connect`, `probe`, `bench` and `replay`: how the connection went.
pub mod connection {
    pub const NORMAL: i32 = 0;
    pub const CONNECT_FAILED: i32 = 3;
    pub const HANDSHAKE_FAILED: i32 = 4;
    pub const CLOSED_WITH_ERROR: i32 = 5;
    pub const ABNORMAL: i32 = 6;
    pub const PROTOCOL_ERROR: i32 = 7;
    pub const TLS_FAILED: i32 = 8;
    /// A `{{cmd:...}}` header command or an `--on-open` step failed.
    pub const OPENING_FAILED: i32 = 9;
}

/// `doctor`: what the checks found.
pub mod doctor {
    pub const NO_PROBLEM: i32 = 0;
    pub const PROBLEM: i32 = 1;
    pub const USAGE: i32 = 2;
    /// Nothing at all could be reached (no address, no TCP connection).
    pub const UNREACHABLE: i32 = 3;
    /// Ctrl-C before every check finished, and no problem found so far
    /// (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: i32 = 130;
}

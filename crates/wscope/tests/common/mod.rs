//! Helpers shared by the integration tests: start the real binary, find the
//! peers that `scripts/test.sh` installs, read addresses from stdout.
//!
//! A missing peer fails the test with instructions; it never skips it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// The wscope binary under test.
pub fn wscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wscope"))
}

/// A program from the test virtualenv (`.venv`, or `$WSCOPE_VENV`).
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("WSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv with the test peers from tests/requirements.txt)",
        path.display()
    );
    path
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
pub struct Running {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wscope serve` on a free loopback port; returns it and its ws:// URL.
pub fn start_server(extra: &[&str]) -> (Running, String) {
    let mut child = wscope()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wscope serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first stdout line");
    let url = ws_url_in(&line);
    (
        Running {
            child,
            stdout: Some(stdout),
        },
        url,
    )
}

/// The ws:// or wss:// URL in a line a server printed when it started.
pub fn ws_url_in(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("ws://") || word.starts_with("wss://"))
        .unwrap_or_else(|| panic!("a ws:// URL in the first line: {line:?}"))
        .trim_end_matches('/')
        .to_owned()
}

/// The `host:port` part of a ws:// URL.
pub fn host_port(url: &str) -> &str {
    url.trim_start_matches("ws://").trim_end_matches('/')
}

//! What the slow checks are doing while they run: one line on stderr
//! when each starts (so a person, or a test, knows the run is waiting on
//! purpose and that Ctrl-C prints the report so far), and on a terminal a
//! status line that counts the seconds until they finish.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared by the checks of one run (both URLs with `--compare`).
#[derive(Clone, Default)]
pub struct Progress {
    running: Arc<Mutex<Vec<(String, Instant)>>>,
    /// Nothing on stderr (`--json` keeps the lines, which are not JSON,
    /// off stdout anyway; this is for unit tests and quiet runs).
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            running: Arc::default(),
            quiet,
        }
    }

    /// A slow check starts: `what` says what it waits for.
    pub fn started(&self, check: &str, what: String) {
        if let Ok(mut running) = self.running.lock() {
            running.push((check.to_owned(), Instant::now()));
        }
        if !self.quiet {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}doctor: {check}: {what}",
                self.clear()
            );
        }
    }

    /// The quick checks of a URL are done: say which slow ones are left.
    pub fn quick_done(&self, url: &str) {
        let Some(left) = self.running_names() else {
            return;
        };
        if !self.quiet {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}doctor: {url}: quick checks done; still running: {left} (Ctrl-C prints the report so far)",
                self.clear()
            );
        }
    }

    fn running_names(&self) -> Option<String> {
        let running = self.running.lock().ok()?;
        let names: Vec<&str> = running.iter().map(|(name, _)| name.as_str()).collect();
        (!names.is_empty()).then(|| names.join(", "))
    }

    /// On a terminal the status line is cleared before a line is written.
    fn clear(&self) -> &'static str {
        if std::io::stderr().is_terminal() {
            "\r\x1b[K"
        } else {
            ""
        }
    }

    pub fn finished(&self, check: &str) {
        if let Ok(mut running) = self.running.lock()
            && let Some(at) = running.iter().position(|(name, _)| name == check)
        {
            running.remove(at);
        }
    }

    /// The status line: each running check and how long it has run.
    fn status(&self) -> Option<String> {
        let running = self.running.lock().ok()?;
        if running.is_empty() {
            return None;
        }
        let parts: Vec<String> = running
            .iter()
            .map(|(name, since)| format!("{name} {} s", since.elapsed().as_secs()))
            .collect();
        Some(format!("doctor: waiting for {}", parts.join(", ")))
    }

    /// On a terminal, redraws the status line every second until dropped
    /// (the returned guard clears it).
    pub fn ticker(&self) -> Ticker {
        if self.quiet || !std::io::stderr().is_terminal() {
            return Ticker(None);
        }
        let progress = self.clone();
        Ticker(Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                if let Some(status) = progress.status() {
                    let mut stderr = std::io::stderr().lock();
                    let _ = write!(stderr, "\r\x1b[K{status}");
                    let _ = stderr.flush();
                }
            }
        })))
    }
}

/// Stops the status line and clears it.
pub struct Ticker(Option<tokio::task::JoinHandle<()>>);

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

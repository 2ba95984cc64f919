//! The progress bar of `wscope read` on a large record file: bytes of the
//! file read so far, on stderr, cleared when reading ends.
//!
//! It is drawn only where nothing else writes while it is up: stderr is a
//! terminal, and stdout goes to a file (or, with `--stats`, is written only
//! at the end). Lines printed on the same terminal between two redraws would
//! be torn by the bar, and a pipe's reader (`less`, `jq`) usually writes to
//! that terminal too; when the events themselves scroll by, they are the
//! progress. The few lines the terminal view does write to stderr (opens,
//! closes, errors) go out with the bar stepped aside.

use std::io::{self, IsTerminal, Read};
use std::os::fd::AsFd;

use indicatif::{ProgressBar, ProgressBarIter, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use wscope_events::{Event, EventKind};

use crate::sinks::sink::Sink;

/// Smaller files are read before a bar would be worth looking at.
const WORTH_A_BAR: u64 = 8 << 20;

const TEMPLATE: &str =
    "{prefix} {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta} left)";

/// When the output of a read is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Event by event as the file is read (the terminal view, `--json`).
    AsItGoes,
    /// Once the whole file is read (`--stats`).
    AtTheEnd,
}

/// What a printing sink writes to stderr, where the bar is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStderr {
    /// Nothing (`--json`: every event goes to stdout).
    Nothing,
    /// The events without a message (the terminal view: opens, closes,
    /// errors, notes; a few per connection).
    EventsWithoutAMessage,
    /// Every event (the lifecycle log).
    Everything,
}

/// The bar of one read: shown, or hidden and free. Clones draw the same
/// bar.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for reading `len` bytes of the file `name`, hidden unless it
    /// is worth showing and nothing else writes where it is drawn.
    pub fn for_file(name: &str, len: u64, output: Output) -> Self {
        let clear_terminal = match output {
            Output::AsItGoes => stdout_is_a_file(),
            Output::AtTheEnd => stdout_is_a_file() || io::stdout().is_terminal(),
        };
        if len <= WORTH_A_BAR || !io::stderr().is_terminal() || !clear_terminal {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let style = ProgressStyle::with_template(TEMPLATE)
            .expect("TEMPLATE uses only indicatif's own keys (checked by a unit test)");
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(name.to_owned())
            // Also when reading stops early with an error: the error is
            // printed after the bar is gone.
            .with_finish(ProgressFinish::AndClear);
        Progress { bar }
    }

    /// `read`, counted on the bar as it is consumed.
    pub fn wrap<R: Read>(&self, read: R) -> ProgressBarIter<R> {
        self.bar.wrap_read(read)
    }

    /// `sink`, writing around the bar (see [`ClearOfBar`]).
    pub fn around(&self, sink: Box<dyn Sink>, on_stderr: OnStderr) -> Box<dyn Sink> {
        if self.bar.is_hidden() {
            return sink;
        }
        Box::new(ClearOfBar {
            bar: self.bar.clone(),
            on_stderr,
            inner: sink,
        })
    }

    /// Takes the bar off the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Whether stdout is a regular file (`> out.txt`), where nothing anyone
/// reads is written while the bar is up.
fn stdout_is_a_file() -> bool {
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .is_ok_and(|meta| meta.is_file())
}

/// A printing sink under the bar: the bar steps aside (cleared, then drawn
/// again) for each event the sink writes to stderr. When the sink fails,
/// the bar goes for good, so the "output stopped" message that follows is
/// readable.
struct ClearOfBar {
    bar: ProgressBar,
    on_stderr: OnStderr,
    inner: Box<dyn Sink>,
}

impl ClearOfBar {
    fn cleared_on_error(&self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.bar.finish_and_clear();
        }
        result
    }
}

impl Sink for ClearOfBar {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let to_stderr = match self.on_stderr {
            OnStderr::Nothing => false,
            OnStderr::EventsWithoutAMessage => !matches!(
                event.kind,
                EventKind::Message(_) | EventKind::Frame(_) | EventKind::Close(_)
            ),
            OnStderr::Everything => true,
        };
        let result = if to_stderr {
            self.bar.suspend(|| self.inner.event(event))
        } else {
            self.inner.event(event)
        };
        self.cleared_on_error(result)
    }

    fn skipped(&mut self, event: &Event) -> io::Result<()> {
        self.inner.skipped(event)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.cleared_on_error(result)
    }

    fn wants_payloads(&self) -> bool {
        self.inner.wants_payloads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_valid() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn small_files_get_no_bar() {
        let progress = Progress::for_file("small.jsonl", WORTH_A_BAR, Output::AtTheEnd);
        assert!(progress.bar.is_hidden());
        let mut read = progress.wrap(&b"abc"[..]);
        let mut text = String::new();
        read.read_to_string(&mut text).unwrap();
        assert_eq!(text, "abc");
    }
}

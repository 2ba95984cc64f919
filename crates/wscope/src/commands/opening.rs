//! The opening steps of `connect`: what is sent (and waited for) at the
//! start of every connection, so that a reconnection is authenticated and
//! subscribed again, as the first connection was.
//!
//! `--on-open FILE` holds one step per line:
//!
//! ```text
//! # comments and blank lines are skipped
//! send {"op":"auth","token":"t0k"}
//! expect json.ok == true
//! send-json {"op":"subscribe","channel":"trades"}
//! send-hex 01 02 ff
//! sleep 200ms
//! ```
//!
//! Every `--send` message becomes a `send` step after the file's steps.
//! Parsing is pure (no I/O) so that the fuzz target can drive it; every
//! mistake names its line.

use std::time::Duration;

use tokio::time::Instant;
use wscope_events::filter::{self, Expr};
use wscope_proto::OpCode;

/// The longest script file read, and the most steps kept: an opening is a
/// handful of lines, and a huge file is a mistake.
pub const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// One opening step.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send a message (text, or binary from `send-hex`).
    Send { opcode: OpCode, data: Vec<u8> },
    /// Wait until a message from the server matches (a filter expression,
    /// docs/FILTER.md), for at most `--expect-timeout`.
    Expect { expr: Expr, line: usize },
    /// Wait this long.
    Sleep(Duration),
}

/// An `--on-open` script that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ScriptError {}

const STEPS: &str = "send TEXT, send-json JSON, send-hex HEX, expect EXPR, sleep DURATION";

/// Parses a script: one step per line; `#` starts a comment line.
pub fn parse(text: &str) -> Result<Vec<Step>, ScriptError> {
    let mut steps = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (word, rest) = match trimmed.split_once([' ', '\t']) {
            Some((word, rest)) => (word, rest),
            None => (trimmed.trim_end(), ""),
        };
        let fail = |reason: String| ScriptError { line, reason };
        let step = match word {
            // The text is kept as written (trailing spaces included):
            // what to send is the user's business.
            "send" => Step::Send {
                opcode: OpCode::Text,
                data: rest.as_bytes().to_vec(),
            },
            "send-json" => {
                let json = rest.trim();
                if let Err(err) = serde_json::from_str::<serde_json::Value>(json) {
                    return Err(fail(format!("send-json: not JSON ({err})")));
                }
                Step::Send {
                    opcode: OpCode::Text,
                    data: json.as_bytes().to_vec(),
                }
            }
            "send-hex" => Step::Send {
                opcode: OpCode::Binary,
                data: parse_hex(rest).map_err(|why| fail(format!("send-hex: {why}")))?,
            },
            "expect" => {
                let source = rest.trim();
                if source.is_empty() {
                    return Err(fail(
                        "expect needs a filter expression (docs/FILTER.md), e.g. expect json.ok == true"
                            .to_owned(),
                    ));
                }
                let expr = filter::parse(source).map_err(|err| {
                    fail(format!(
                        "expect: the expression does not parse:\n{}",
                        err.render(source)
                    ))
                })?;
                Step::Expect { expr, line }
            }
            "sleep" => {
                let duration = crate::values::parse_duration(rest)
                    .map_err(|why| fail(format!("sleep: {why}")))?;
                Step::Sleep(duration)
            }
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(fail(format!(
                    "unknown step {shown:?}; the steps are: {STEPS}"
                )));
            }
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Hex digits, optionally separated by spaces (`01 02 ff` or `0102ff`).
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(format!("{:?} is not a hex digit", b as char)),
        })
        .collect::<Result<_, _>>()?;
    if digits.is_empty() {
        return Err("no bytes given (write them as hex, e.g. send-hex 01 02 ff)".to_owned());
    }
    if digits.len() % 2 == 1 {
        return Err("an odd number of hex digits (each byte is two)".to_owned());
    }
    Ok(digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect())
}

/// Reads and parses `--on-open FILE`; the error names the file and line.
pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<Step>> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|err| anyhow::anyhow!("--on-open {}: {err}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_SCRIPT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| anyhow::anyhow!("--on-open {}: {err}", path.display()))?;
    if text.len() as u64 > MAX_SCRIPT_BYTES {
        anyhow::bail!(
            "--on-open {}: larger than {} KiB; an opening is a few lines",
            path.display(),
            MAX_SCRIPT_BYTES / 1024
        );
    }
    parse(&text).map_err(|err| anyhow::anyhow!("--on-open {}: {err}", path.display()))
}

/// Runs a script on one connection: hands out what to send, and holds the
/// rest while a `sleep` or an `expect` waits. Stdin lines wait until it is
/// done, so that they never overtake the authentication.
pub struct Runner<'a> {
    steps: &'a [Step],
    next: usize,
    waiting: Option<Waiting<'a>>,
}

struct Waiting<'a> {
    until: Instant,
    /// The expression an `expect` waits for, and its line.
    expect: Option<(&'a Expr, usize)>,
}

impl<'a> Runner<'a> {
    pub fn new(steps: &'a [Step]) -> Runner<'a> {
        Runner {
            steps,
            next: 0,
            waiting: None,
        }
    }

    /// The next message to send now; `None` when the script is done or
    /// has reached a wait (which starts now).
    pub fn next_send(&mut self, expect_timeout: Duration) -> Option<(OpCode, &'a [u8])> {
        if self.waiting.is_some() {
            return None;
        }
        let step = self.steps.get(self.next)?;
        self.next += 1;
        let now = Instant::now();
        match step {
            Step::Send { opcode, data } => return Some((*opcode, data)),
            Step::Sleep(duration) => {
                self.waiting = Some(Waiting {
                    until: now + *duration,
                    expect: None,
                });
            }
            Step::Expect { expr, line } => {
                self.waiting = Some(Waiting {
                    until: now + expect_timeout,
                    expect: Some((expr, *line)),
                });
            }
        }
        None
    }

    /// Every step has run.
    pub fn done(&self) -> bool {
        self.waiting.is_none() && self.next >= self.steps.len()
    }

    /// When the current wait ends (or times out).
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting.as_ref().map(|w| w.until)
    }

    /// The expression a message must match for the script to go on.
    pub fn expecting(&self) -> Option<&'a Expr> {
        self.waiting.as_ref()?.expect.map(|(expr, _)| expr)
    }

    /// A message matched the `expect`: go on.
    pub fn matched(&mut self) {
        self.waiting = None;
    }

    /// The deadline passed: a `sleep` is over; an `expect` failed, and its
    /// line and expression come back.
    pub fn timed_out(&mut self) -> Result<(), (usize, &'a Expr)> {
        match self.waiting.take().and_then(|w| w.expect) {
            Some((expr, line)) => Err((line, expr)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(step: &Step) -> (OpCode, &[u8]) {
        match step {
            Step::Send { opcode, data } => (*opcode, data),
            other => panic!("not a send: {other:?}"),
        }
    }

    #[test]
    fn every_step_parses() {
        let script = "# auth first\n\nsend {\"op\":\"auth\"}\nexpect json.ok == true\n  send-json  {\"op\": \"sub\"} \nsend-hex 01 02 FF\nsleep 250ms\nsend\n";
        let steps = parse(script).unwrap();
        assert_eq!(steps.len(), 6, "{steps:?}");
        assert_eq!(sent(&steps[0]), (OpCode::Text, &b"{\"op\":\"auth\"}"[..]));
        match &steps[1] {
            Step::Expect { expr, line } => {
                assert_eq!(*line, 4);
                assert_eq!(expr.to_string(), "json.ok == true");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sent(&steps[2]), (OpCode::Text, &b"{\"op\": \"sub\"}"[..]));
        assert_eq!(sent(&steps[3]), (OpCode::Binary, &[1u8, 2, 255][..]));
        assert!(matches!(steps[4], Step::Sleep(d) if d == Duration::from_millis(250)));
        // `send` alone sends an empty message.
        assert_eq!(sent(&steps[5]), (OpCode::Text, &b""[..]));
    }

    #[test]
    fn mistakes_name_their_line() {
        let cases = [
            ("send a\nsubscribe x", 2, "unknown step \"subscribe\""),
            ("expect json.ok ==", 1, "does not parse"),
            ("\n\nexpect", 3, "needs a filter expression"),
            ("send-json {nope", 1, "not JSON"),
            ("send-hex 0g", 1, "not a hex digit"),
            ("send-hex abc", 1, "odd number"),
            ("send-hex", 1, "no bytes"),
            ("sleep soon", 1, "not a duration"),
            ("sleep 5 parsecs", 1, "unknown unit"),
        ];
        for (script, line, reason) in cases {
            let err = parse(script).expect_err(script);
            assert_eq!(err.line, line, "{script:?}: {err}");
            assert!(err.reason.contains(reason), "{script:?}: {err}");
        }
    }

    #[test]
    fn the_runner_waits_where_the_script_does() {
        let steps = parse("send a\nexpect \"ok\"\nsend b\nsleep 0s\nsend c").unwrap();
        let mut runner = Runner::new(&steps);
        let timeout = Duration::from_secs(5);
        assert_eq!(runner.next_send(timeout), Some((OpCode::Text, &b"a"[..])));
        assert_eq!(runner.next_send(timeout), None);
        assert!(runner.expecting().is_some() && !runner.done());
        // Still waiting: nothing more goes out.
        assert_eq!(runner.next_send(timeout), None);
        runner.matched();
        assert_eq!(runner.next_send(timeout), Some((OpCode::Text, &b"b"[..])));
        assert_eq!(runner.next_send(timeout), None);
        assert!(runner.deadline().is_some() && runner.expecting().is_none());
        assert_eq!(runner.timed_out(), Ok(()));
        assert_eq!(runner.next_send(timeout), Some((OpCode::Text, &b"c"[..])));
        assert_eq!(runner.next_send(timeout), None);
        assert!(runner.done());
        // An expect that times out names its line.
        let steps = parse("\nexpect \"ok\"").unwrap();
        let mut runner = Runner::new(&steps);
        assert_eq!(runner.next_send(timeout), None);
        let (line, expr) = runner.timed_out().unwrap_err();
        assert_eq!(
            (line, expr.to_string().as_str()),
            (2, "payload contains \"ok\"")
        );
    }

    #[test]
    fn the_expect_error_shows_the_caret() {
        let err = parse("expect json.x = 1").unwrap_err();
        assert!(err.reason.contains("json.x = 1\n"), "{err}");
        assert!(err.reason.contains('^'), "{err}");
    }
}

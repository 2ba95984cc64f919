//! Message sizes (`--sizes`, for an echo endpoint, or `--probe-message
//! TEMPLATE` for any endpoint that answers a message): messages of 1 KiB,
//! 64 KiB, 1 MiB and 16 MiB (up to `--max-message`) sent one at a time,
//! each awaited as its echo (or any answer), to find where a size limit
//! sits in the path and how it shows: a 1009 close (the limit said so), a
//! drop, or silence.

use std::time::Duration;

use wscope_proto::OpCode;

use super::attempt::{Attempt, attempt};
use super::finding::{Finding, Verdict};
use super::progress::Progress;
use crate::network::connection::Incoming;
use crate::sources::dial::HandshakeArgs;

/// The sizes tried, smallest first.
const SIZES: [usize; 4] = [1 << 10, 64 << 10, 1 << 20, 16 << 20];

/// How long one echo may take.
const ECHO_WAIT: Duration = Duration::from_secs(10);

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// Bytes that do not compress, so a limit on the wire is met as on the
/// application side (xorshift; any pattern without runs would do).
fn payload(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Where `--probe-message` puts the filler that makes up the size.
pub const PLACEHOLDER: &str = "{{payload}}";

/// What is sent, and what counts as the answer.
pub enum Probe {
    /// Binary messages, answered by their echo.
    Echo,
    /// A text message from the template, its `{{payload}}` filled to
    /// the size; any message answers it.
    Template(String),
}

impl Probe {
    /// `--probe-message`'s template, checked before anything connects.
    pub fn template(template: &str) -> Result<Probe, String> {
        if !template.contains(PLACEHOLDER) {
            return Err(format!(
                "--probe-message {template:?} has no {PLACEHOLDER}: put it where the filler that makes up each size goes, as in '{{\"type\":\"echo\",\"data\":\"{PLACEHOLDER}\"}}'"
            ));
        }
        Ok(Probe::Template(template.to_owned()))
    }

    /// The message of `len` bytes (a template longer than that is sent
    /// as it is, with an empty filler).
    fn message(&self, len: usize) -> (OpCode, Vec<u8>) {
        match self {
            Probe::Echo => (OpCode::Binary, payload(len)),
            Probe::Template(template) => {
                let fixed = template.len() - PLACEHOLDER.len();
                let filler: Vec<u8> = payload(len.saturating_sub(fixed))
                    .into_iter()
                    .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()])
                    .collect();
                let filler = String::from_utf8(filler).expect("the alphabet is ASCII");
                (
                    OpCode::Text,
                    template.replacen(PLACEHOLDER, &filler, 1).into_bytes(),
                )
            }
        }
    }

    fn answered(&self, sent: &[u8], answer: &[u8]) -> bool {
        match self {
            Probe::Echo => sent == answer,
            Probe::Template(_) => true,
        }
    }

    fn waits_for(&self) -> &'static str {
        match self {
            Probe::Echo => "echo",
            Probe::Template(_) => "answer",
        }
    }
}

/// Filler characters that need no escaping in JSON, a URL or a CSV field.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The `sizes` finding.
pub async fn check(
    h: &HandshakeArgs,
    probe: &Probe,
    max_message: u64,
    progress: &Progress,
) -> Finding {
    progress.started(
        "sizes",
        format!(
            "sending messages up to {}, each awaiting its {}",
            size(
                SIZES
                    .iter()
                    .copied()
                    .filter(|&l| l as u64 <= max_message)
                    .max()
                    .unwrap_or(0)
            ),
            probe.waits_for()
        ),
    );
    let Ok(Attempt::Open(mut conn, _)) = attempt(h).await else {
        progress.finished("sizes");
        return Finding::skipped("sizes", "no connection to send messages on");
    };
    let finding = sizes(&mut conn, probe, max_message).await;
    progress.finished("sizes");
    finding
}

async fn sizes(
    conn: &mut crate::sources::dial::Dialed,
    probe: &Probe,
    max_message: u64,
) -> Finding {
    let mut echoed = Vec::new();
    for &len in SIZES.iter().filter(|&&len| len as u64 <= max_message) {
        let (opcode, data) = probe.message(len);
        if let Err(err) = conn.send(opcode, &data).await {
            return failed(
                &echoed,
                len,
                format!("the connection failed while sending it: {err}"),
            );
        }
        let answer = tokio::time::timeout(ECHO_WAIT, async {
            loop {
                match conn.next().await {
                    Ok(Incoming::Message(message)) => {
                        return Ok(probe.answered(&data, &message.data));
                    }
                    Ok(Incoming::Close(close)) => {
                        return Err(match close.code {
                            Some(code) => format!("closed with {code}"),
                            None => "closed without a code".to_owned(),
                        });
                    }
                    Ok(Incoming::Eof) => {
                        return Err("dropped without a close frame".to_owned());
                    }
                    Err(err) => return Err(format!("the connection failed: {err}")),
                    Ok(_) => {}
                }
            }
        })
        .await;
        match answer {
            Ok(Ok(true)) => echoed.push(len),
            Ok(Ok(false)) if echoed.is_empty() => {
                super::attempt::close(conn).await;
                return Finding::skipped(
                    "sizes",
                    "not an echo endpoint: the 1 KiB message was answered with something else",
                );
            }
            Ok(Ok(false)) => {
                return failed(
                    &echoed,
                    len,
                    "answered with something other than its echo".to_owned(),
                );
            }
            Ok(Err(how)) if echoed.is_empty() && !how.contains("1009") => {
                return Finding::skipped(
                    "sizes",
                    match probe {
                        Probe::Echo => format!("not an echo endpoint? the 1 KiB message: {how}"),
                        Probe::Template(_) => format!("the 1 KiB --probe-message: {how}"),
                    },
                );
            }
            Ok(Err(how)) => return failed(&echoed, len, how),
            Err(_) if echoed.is_empty() => {
                super::attempt::close(conn).await;
                return Finding::skipped(
                    "sizes",
                    match probe {
                        Probe::Echo => format!(
                            "not an echo endpoint: no answer to 1 KiB within {}s (--probe-message TEMPLATE sends a message this endpoint answers)",
                            ECHO_WAIT.as_secs()
                        ),
                        Probe::Template(_) => format!(
                            "no answer to the 1 KiB --probe-message within {}s",
                            ECHO_WAIT.as_secs()
                        ),
                    },
                );
            }
            Err(_) => {
                return failed(
                    &echoed,
                    len,
                    format!("no {} within {}s", probe.waits_for(), ECHO_WAIT.as_secs()),
                );
            }
        }
    }
    super::attempt::close(conn).await;
    let largest = echoed.last().copied().unwrap_or(0);
    Finding::ok(
        "sizes",
        match probe {
            Probe::Echo => format!("every message echoed, up to {}", size(largest)),
            Probe::Template(_) => format!("every message answered, up to {}", size(largest)),
        },
    )
}

/// A size that did not come back: a 1009 close is the limit saying so (a
/// warning); anything else leaves a client guessing (a problem).
fn failed(echoed: &[usize], len: usize, how: String) -> Finding {
    let below = match echoed.last() {
        Some(&ok) => format!(" ({} came back)", size(ok)),
        None => String::new(),
    };
    let summary = format!("a {} message: {how}{below}", size(len));
    if how.contains("1009") {
        Finding::new("sizes", Verdict::Warning, summary).advice(format!(
            "messages of {} or more are over a limit (the server's, or a proxy's): keep messages under it, split large ones, or raise the limit",
            size(len)
        ))
    } else {
        Finding::new("sizes", Verdict::Problem, summary).advice(
            "a message over some limit is lost without a 1009 close (RFC 6455 section 7.4.1): clients cannot tell why; find the limit (proxy buffer, server max size) and make it close with 1009, or keep messages smaller",
        )
    }
}

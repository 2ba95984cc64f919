//! `wscope connect`: a client. Sends stdin lines (or echoes, `--echo`) and
//! reports everything that happens as events, which the sinks print
//! (human, `--json`) or record (`--record`).
//!
//! Every connection starts with the opening steps (`--on-open`, `--send`,
//! [`crate::commands::opening`]) and with header values computed afresh
//! ([`crate::commands::header_cmd`]); with `--reconnect`, [`crate::network::reconnect`] decides
//! whether and when the next attempt comes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use wscope_events::{Close, Closed, ClosedBy, Direction, Event, EventKind, Frame, Message};
use wscope_proto::{CloseCode, OpCode};

use crate::cli::ConnectArgs;
use crate::commands::header_cmd::{self, HeaderTemplate};
use crate::commands::opening::{self, Runner, Step};
use crate::network::connection::{ConnError, Incoming};
use crate::network::reconnect::{self, Tally};
use crate::network::timers::{sleep_until, tick};
use crate::sinks::emit::Events;
use crate::sinks::interactive::{self, Command, Printer};
use crate::sinks::outputs::{self, Extras};
use crate::sources::dial::{DialFailure, DialOptions};

pub use crate::exit::connection as exit;

/// The id of a run's first connection (later ones, after --reconnect, count up).
pub const CONN: &str = "c1";

/// Where the messages to send come from, and how to show traffic.
pub struct Session {
    /// What to send; `None` sends nothing of its own (`--echo`).
    pub lines: Option<mpsc::Receiver<Command>>,
    /// Mark lines with `>` (sent) and `<` (received), for people watching.
    pub arrows: bool,
    /// Print through the line editor (interactive mode).
    pub printer: Option<Printer>,
}

/// What every connection starts with, checked before the first one.
pub struct Prepared {
    /// The --on-open steps, then every --send message.
    steps: Vec<Step>,
    /// The -H headers, some computed by commands.
    headers: Vec<HeaderTemplate>,
}

impl Prepared {
    /// Reads --on-open and the headers; a mistake in either is said here,
    /// before anything connects.
    pub fn new(args: &ConnectArgs) -> anyhow::Result<Prepared> {
        let mut steps = match &args.on_open {
            Some(path) => opening::load(path)?,
            None => Vec::new(),
        };
        let opcode = if args.binary {
            OpCode::Binary
        } else {
            OpCode::Text
        };
        steps.extend(args.send.iter().map(|message| Step::Send {
            opcode,
            data: message.as_bytes().to_vec(),
        }));
        let headers = args
            .handshake
            .headers
            .iter()
            .map(|h| header_cmd::parse(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| anyhow::anyhow!(why))?;
        Ok(Prepared { steps, headers })
    }
}

/// Runs the client on stdin; returns the process exit status.
pub async fn run(args: ConnectArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    // Before the line editor or the connection: a mistake starts nothing.
    outputs::check(&args.output, &outputs::CONNECT)?;
    let prepared = Prepared::new(&args)?;
    let opcode = if args.binary {
        OpCode::Binary
    } else {
        OpCode::Text
    };
    let interactive = !args.echo
        && args.send.is_empty()
        && !args.output.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    let mut printer = None;
    let commands = if !args.send.is_empty() {
        // --send replaces stdin: the messages are opening steps, and the
        // input has ended from the start.
        let (_, commands) = mpsc::channel(1);
        Some(commands)
    } else if args.echo {
        None
    } else if interactive {
        let (commands, print) = interactive::start()?;
        printer = Some(print);
        Some(commands)
    } else {
        let (tx, commands) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut stdin = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = stdin.next_line().await {
                if tx
                    .send(Command::Send(opcode, line.into_bytes()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Some(commands)
    };
    let status = run_prepared(
        args,
        prepared,
        Session {
            lines: commands,
            arrows: interactive,
            printer,
        },
    )
    .await;
    if interactive {
        interactive::finish();
    }
    status
}

/// Runs the client with messages from `session`.
pub async fn run_session(args: ConnectArgs, session: Session) -> anyhow::Result<i32> {
    let prepared = Prepared::new(&args)?;
    run_prepared(args, prepared, session).await
}

async fn run_prepared(
    args: ConnectArgs,
    prepared: Prepared,
    session: Session,
) -> anyhow::Result<i32> {
    let outputs = outputs::build(
        &args.output,
        &outputs::CONNECT,
        Extras {
            arrows: session.arrows,
            printer: session.printer,
            ..Extras::default()
        },
    )?;
    // Every data frame, as much of each as the outputs keep.
    let frames = outputs.frames.then_some(outputs.max_payload);
    let payload_limit = outputs.payload_limit();
    let events = Events::direct(outputs.sinks, payload_limit);
    let mut input = Input {
        open: session.lines.is_some(),
        ended: false,
        lines: session.lines.unwrap_or_else(|| mpsc::channel(1).1),
    };
    let mut tally = Tally::start();
    // Attempts since the last connection that stayed up for --stable-after.
    let mut attempt = 0u32;
    let mut number = 0u64;
    loop {
        number += 1;
        attempt += 1;
        tally.attempts += 1;
        let conn_id = format!("c{number}");
        let this = Attempt {
            conn_id: &conn_id,
            number: args.reconnect.then_some(attempt),
        };
        let outcome = one_connection(
            &args, &prepared, &events, frames, &mut input, &this, &mut tally,
        )
        .await?;
        if !args.reconnect {
            return Ok(outcome.status);
        }
        let finish = async |tally: &Tally, why: Option<String>| {
            if let Some(text) = why {
                events.emit(&conn_id, None, EventKind::Note { text }).await;
            }
            let text = tally.summary();
            events.emit(&conn_id, None, EventKind::Note { text }).await;
        };
        if outcome.user_ended {
            finish(&tally, None).await;
            return Ok(outcome.status);
        }
        if let Some(code) = outcome.code
            && !outcome.always_retry
            && !reconnect::reconnects_on(args.reconnect_on.as_ref(), code)
        {
            let why = format!(
                "{conn_id} (attempt {attempt}) {}; {code} is not in --reconnect-on, so no reconnection",
                outcome.reason
            );
            finish(&tally, Some(why)).await;
            return Ok(outcome.status);
        }
        let stable = outcome.lasted >= args.stable_after;
        if let Some(max) = args.max_attempts
            && !stable
            && attempt >= max
        {
            let why = format!(
                "{conn_id} (attempt {attempt}) {}; giving up after {attempt} attempts in a row without a connection lasting {:?} (--max-attempts {max})",
                outcome.reason, args.stable_after
            );
            finish(&tally, Some(why)).await;
            return Ok(outcome.status);
        }
        let ended = attempt;
        if stable {
            attempt = 0;
        }
        let mut delay = reconnect::backoff(attempt.max(1), args.reconnect_max_delay);
        let mut asked = String::new();
        if let Some(retry_after) = outcome.retry_after
            && retry_after > delay
        {
            delay = retry_after;
            asked = " as the server's Retry-After asks".to_owned();
        }
        let text = format!(
            "reconnecting in {delay:.1?}{asked} (attempt {}): {conn_id}, attempt {ended}, {}",
            attempt + 1,
            outcome.reason
        );
        events.emit(&conn_id, None, EventKind::Note { text }).await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::signal::ctrl_c() => {
                finish(&tally, None).await;
                return Ok(outcome.status);
            }
        }
    }
}

/// Which connection this is.
struct Attempt<'a> {
    conn_id: &'a str,
    /// With --reconnect: the attempt number since the last stable
    /// connection.
    number: Option<u32>,
}

/// Where messages to send come from, across reconnections.
struct Input {
    lines: mpsc::Receiver<Command>,
    /// The source has not ended yet.
    open: bool,
    /// The source ended (stdin closed, or --send): later connections close
    /// once their opening is done and the replies have stopped.
    ended: bool,
}

/// How one attempt ended.
struct Outcome {
    status: i32,
    /// The close code, when the connection opened.
    code: Option<CloseCode>,
    /// How long it was open.
    lasted: Duration,
    /// wscope ended it on purpose (input done, --expect met, Ctrl-C).
    user_ended: bool,
    /// Reconnect whatever --reconnect-on says: the attempt failed before
    /// or during its opening.
    always_retry: bool,
    /// The server asked to wait this long (Retry-After).
    retry_after: Option<Duration>,
    reason: String,
}

impl Outcome {
    /// An attempt that never opened a connection.
    fn failed(status: i32, retry_after: Option<Duration>, reason: String) -> Outcome {
        Outcome {
            status,
            code: None,
            lasted: Duration::ZERO,
            user_ended: false,
            always_retry: true,
            retry_after,
            reason,
        }
    }
}

/// The -H headers with their commands run: the header lines to send, and
/// the names of those whose values are secrets for that reason.
async fn expand_headers(
    templates: &[HeaderTemplate],
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut headers = Vec::with_capacity(templates.len());
    let mut secret = Vec::new();
    for template in templates {
        headers.push(header_cmd::expand(template).await?);
        if template.runs_commands() {
            secret.push(template.name().to_owned());
        }
    }
    Ok((headers, secret))
}

/// One connection, from dialing to its end; `frames`: report every data
/// frame, keeping this many bytes of each.
async fn one_connection(
    args: &ConnectArgs,
    prepared: &Prepared,
    events: &Events,
    frames: Option<usize>,
    input: &mut Input,
    attempt: &Attempt<'_>,
    tally: &mut Tally,
) -> anyhow::Result<Outcome> {
    let conn_id = attempt.conn_id;
    // Fresh header values for every attempt.
    let (headers, secret_headers) = match expand_headers(&prepared.headers).await {
        Ok(expanded) => expanded,
        Err(why) => {
            let message = format!("{why}; the attempt fails");
            events
                .emit(conn_id, None, EventKind::Error { message })
                .await;
            return Ok(Outcome::failed(
                exit::OPENING_FAILED,
                None,
                "a header command failed".to_owned(),
            ));
        }
    };
    let handshake = crate::sources::dial::HandshakeArgs {
        headers,
        ..args.handshake.clone()
    };
    let options = DialOptions {
        attempt: attempt.number,
        secret_headers: if args.output.redact.no_redact {
            Vec::new()
        } else {
            secret_headers
        },
    };
    let dialed = crate::sources::dial::dial_with(
        &handshake,
        args.limits.max_message,
        events,
        conn_id,
        &options,
    )
    .await?;
    let mut conn = match dialed {
        Ok(conn) => conn,
        Err(DialFailure {
            status,
            retry_after,
        }) => {
            return Ok(Outcome::failed(
                status,
                retry_after,
                "the connection could not be opened".to_owned(),
            ));
        }
    };
    tally.opened();
    let mut script = Runner::new(&prepared.steps);
    // Set once the opening steps are done, so that the input (and a close
    // after it ended) waits for them.
    let mut opened_fully = false;
    // An `expect` step missed: the attempt failed.
    let mut opening_failed = false;
    if let Some(limit) = frames {
        conn.capture_frames(limit);
    }
    // Whether the data frames of the message in progress carry plain text.
    let mut frames_are_text = false;
    // Set when stdin has ended: the close goes out once the connection has
    // been quiet for `--wait`.
    let mut linger: Option<tokio::time::Instant> = None;
    let mut we_closed_first = false;
    let opened = Instant::now();
    let mut received = 0u64;
    let mut pings = args.ping_interval.map(crate::network::timers::every);
    let mut ping_seq = 0u64;
    // The ping awaiting its pong: its payload and when it left.
    let mut ping_out: Option<(Vec<u8>, tokio::time::Instant)> = None;

    let (by, clean, code, reason, status) = 'conn: loop {
        if !conn.close_sent() {
            while let Some((opcode, data)) = script.next_send(args.expect_timeout) {
                // A server that drops right after the upgrade is what
                // --reconnect is for: a failed send ends this connection,
                // not the run.
                if let Err(err) = conn.send(opcode, data).await {
                    let message = format!("connection error while sending the opening: {err}");
                    events
                        .emit(conn_id, None, EventKind::Error { message })
                        .await;
                    break 'conn dropped();
                }
                if events.wants_payloads() {
                    let message = sent_message(opcode, data);
                    events
                        .emit(
                            conn_id,
                            Some(Direction::ClientToServer),
                            EventKind::Message(message),
                        )
                        .await;
                }
            }
        }
        if !opened_fully && script.done() {
            opened_fully = true;
            if input.ended && linger.is_none() {
                linger = Some(tokio::time::Instant::now() + args.wait);
            }
        }
        let incoming = tokio::select! {
            incoming = conn.next() => incoming,
            _ = sleep_until(script.deadline()), if script.deadline().is_some() => {
                if let Err((line, expr)) = script.timed_out() {
                    let message = format!(
                        "--on-open line {line}: no message matched `{expr}` within {:?} (--expect-timeout); closing, the attempt failed",
                        args.expect_timeout
                    );
                    events.emit(conn_id, None, EventKind::Error { message }).await;
                    opening_failed = true;
                    if !conn.close_sent() {
                        we_closed_first = true;
                        conn.close(Some(CloseCode::GOING_AWAY), "opening failed").await?;
                    }
                }
                continue;
            }
            command = input.lines.recv(), if input.open && opened_fully => {
                match command {
                    Some(Command::Send(opcode, data)) => {
                        conn.send(opcode, &data).await?;
                        if events.wants_payloads() {
                            let message = sent_message(opcode, &data);
                            events.emit(conn_id, Some(Direction::ClientToServer), EventKind::Message(message)).await;
                        }
                    }
                    Some(Command::Ping(payload)) => {
                        conn.send_control(OpCode::Ping, &payload).await?;
                        events.emit(conn_id, Some(Direction::ClientToServer), control_frame(OpCode::Ping, &payload)).await;
                        ping_out = Some((payload, tokio::time::Instant::now()));
                    }
                    Some(Command::Pong(payload)) => {
                        conn.send_control(OpCode::Pong, &payload).await?;
                        events.emit(conn_id, Some(Direction::ClientToServer), control_frame(OpCode::Pong, &payload)).await;
                    }
                    Some(Command::Close(code, reason)) => {
                        we_closed_first = !conn.close_sent();
                        conn.close(code, &reason).await?;
                    }
                    Some(Command::Stats) => {
                        let stats = conn.stats();
                        let text = format!(
                            "{} messages / {} bytes sent, {} messages / {} bytes received, open for {:.1?}",
                            stats.messages_out, stats.bytes_out, stats.messages_in, stats.bytes_in, opened.elapsed()
                        );
                        events.emit(conn_id, None, EventKind::Note { text }).await;
                        if args.reconnect {
                            events.emit(conn_id, None, EventKind::Note { text: tally.summary() }).await;
                        }
                    }
                    Some(Command::Help) => {
                        events.emit(conn_id, None, EventKind::Note { text: interactive::HELP.to_owned() }).await;
                    }
                    Some(Command::Problem(text)) => events.emit(conn_id, None, EventKind::Note { text }).await,
                    None => {
                        input.open = false;
                        input.ended = true;
                        linger = Some(tokio::time::Instant::now() + args.wait);
                    }
                }
                continue;
            }
            _ = sleep_until(linger), if linger.is_some() && !conn.close_sent() => {
                // Input ended and the replies have stopped: close, and keep
                // reading until the server answers the close.
                we_closed_first = true;
                conn.close(Some(CloseCode::NORMAL), "").await?;
                continue;
            }
            _ = tick(&mut pings), if pings.is_some() && !conn.close_sent() => {
                ping_seq += 1;
                let payload = ping_seq.to_be_bytes();
                conn.send_control(OpCode::Ping, &payload).await?;
                events.emit(conn_id, Some(Direction::ClientToServer), control_frame(OpCode::Ping, &payload)).await;
                if ping_out.is_none() {
                    ping_out = Some((payload.to_vec(), tokio::time::Instant::now()));
                }
                continue;
            }
            _ = sleep_until(ping_out.as_ref().zip(args.ping_timeout).map(|((_, sent), timeout)| *sent + timeout)), if ping_out.is_some() && args.ping_timeout.is_some() => {
                let timeout = args.ping_timeout.unwrap_or_default();
                let message = format!("no pong within {timeout:?}: the server or the network stopped answering; closing");
                events.emit(conn_id, None, EventKind::Error { message }).await;
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(Some(CloseCode::GOING_AWAY), "ping timeout")).await;
                break (ClosedBy::Client, false, CloseCode::ABNORMAL, "no pong (ping timeout)".to_owned(), exit::ABNORMAL);
            }
            _ = tokio::signal::ctrl_c() => {
                we_closed_first = !conn.close_sent();
                conn.close(Some(CloseCode::GOING_AWAY), "client interrupted").await?;
                continue;
            }
        };
        match incoming {
            Ok(Incoming::Message(message)) => {
                if let Some(deadline) = linger.as_mut() {
                    *deadline = tokio::time::Instant::now() + args.wait;
                }
                if args.echo {
                    conn.send(message.opcode, &message.data).await?;
                }
                let expecting = script.expecting();
                if events.wants_payloads() || expecting.is_some() {
                    let event = Event::now(
                        conn_id,
                        Some(Direction::ServerToClient),
                        EventKind::Message(Message::capture(&message, usize::MAX)),
                    );
                    if expecting.is_some_and(|expr| expr.matches(&event)) {
                        script.matched();
                    }
                    if events.wants_payloads() {
                        events.emit_event(event).await;
                    }
                }
                if args.echo && events.wants_payloads() {
                    let echoed = sent_message(message.opcode, &message.data);
                    events
                        .emit(
                            conn_id,
                            Some(Direction::ClientToServer),
                            EventKind::Message(echoed),
                        )
                        .await;
                }
                received += 1;
                if args.expect.is_some_and(|n| received >= n) && !conn.close_sent() {
                    we_closed_first = true;
                    conn.close(Some(CloseCode::NORMAL), "").await?;
                }
            }
            Ok(Incoming::DataFrame(header, payload)) => {
                // A continuation is text when its message started as text.
                if header.opcode != OpCode::Continuation {
                    frames_are_text = header.opcode == OpCode::Text && !header.rsv1;
                }
                let frame = data_frame(&header, &payload, frames_are_text);
                events
                    .emit(conn_id, Some(Direction::ServerToClient), frame)
                    .await;
            }
            Ok(Incoming::Ping(payload)) => {
                events
                    .emit(
                        conn_id,
                        Some(Direction::ServerToClient),
                        control_frame(OpCode::Ping, &payload),
                    )
                    .await;
            }
            Ok(Incoming::Pong(payload)) => {
                events
                    .emit(
                        conn_id,
                        Some(Direction::ServerToClient),
                        control_frame(OpCode::Pong, &payload),
                    )
                    .await;
                let answered = ping_out
                    .as_ref()
                    .filter(|(expected, _)| payload[..] == expected[..])
                    .map(|(_, sent)| sent.elapsed());
                if let Some(round_trip) = answered {
                    {
                        ping_out = None;
                        let text = format!("pong: round trip {round_trip:.2?}");
                        events.emit(conn_id, None, EventKind::Note { text }).await;
                    }
                }
            }
            Ok(Incoming::Close(close)) => {
                let code = close.code.unwrap_or(CloseCode::NO_STATUS);
                let info = Close::new(close.code, &close.reason);
                events
                    .emit(
                        conn_id,
                        Some(Direction::ServerToClient),
                        EventKind::Close(info),
                    )
                    .await;
                conn.finish(Duration::from_secs(2)).await;
                let by = if we_closed_first {
                    ClosedBy::Client
                } else {
                    ClosedBy::Server
                };
                let status = match close.code {
                    None | Some(CloseCode::NORMAL) => exit::NORMAL,
                    Some(_) => exit::CLOSED_WITH_ERROR,
                };
                break (by, true, code, close.reason, status);
            }
            Ok(Incoming::Eof) => {
                break dropped();
            }
            Err(ConnError::Proto(err)) => {
                conn.finish(Duration::from_secs(2)).await;
                let message = format!(
                    "the server {}, so wscope closed the connection: {err}",
                    crate::network::connection::what_the_peer_did(&err)
                );
                events
                    .emit(conn_id, None, EventKind::Error { message })
                    .await;
                let code = crate::network::connection::close_code_for(&err);
                break (
                    ClosedBy::Client,
                    false,
                    code,
                    err.to_string(),
                    exit::PROTOCOL_ERROR,
                );
            }
            Err(ConnError::Io(err)) => {
                let message = format!("connection error: {err}");
                events
                    .emit(conn_id, None, EventKind::Error { message })
                    .await;
                break dropped();
            }
        }
    };
    let stats = conn.stats();
    let closed = Closed {
        by,
        clean,
        code: code.0,
        reason,
        meaning: format!("{}: {}", code.name(), code.meaning()),
        duration_us: opened.elapsed().as_micros() as u64,
        messages_c2s: stats.messages_out,
        messages_s2c: stats.messages_in,
        bytes_c2s: stats.bytes_out,
        bytes_s2c: stats.bytes_in,
        ended: None,
    };
    let ended = match by {
        ClosedBy::Server => format!("the server closed it with {}", code),
        ClosedBy::Client => format!("wscope closed it with {}", code),
        // connect's own connections have no proxy in between that it knows of.
        ClosedBy::Unknown | ClosedBy::Proxy => {
            format!("it dropped without a close frame ({})", code)
        }
    };
    let lasted = opened.elapsed();
    events.emit(conn_id, None, EventKind::Closed(closed)).await;
    tally.closed(code.0);
    if opening_failed {
        return Ok(Outcome {
            status: exit::OPENING_FAILED,
            code: Some(code),
            lasted,
            user_ended: false,
            always_retry: true,
            retry_after: None,
            reason: "its opening steps failed".to_owned(),
        });
    }
    Ok(Outcome {
        status,
        code: Some(code),
        lasted,
        user_ended: we_closed_first,
        // A ping timeout ends with 1006, which always reconnects.
        always_retry: false,
        retry_after: None,
        reason: format!("ended after {lasted:.1?}: {ended}"),
    })
}

/// How a connection ends when the TCP connection just went away: 1006.
fn dropped() -> (ClosedBy, bool, CloseCode, String, i32) {
    (
        ClosedBy::Unknown,
        false,
        CloseCode::ABNORMAL,
        String::new(),
        exit::ABNORMAL,
    )
}

/// A control frame (ping or pong) as an event.
fn control_frame(opcode: OpCode, payload: &[u8]) -> EventKind {
    EventKind::Frame(Frame::control(opcode, payload))
}

/// A frame as an event: the header as it was, the payload as kept.
fn data_frame(header: &wscope_proto::FrameHeader, kept: &[u8], text: bool) -> EventKind {
    EventKind::Frame(Frame::new(header, kept, text))
}

/// A message we sent, as an event.
fn sent_message(opcode: OpCode, data: &[u8]) -> Message {
    Message::new(opcode, data, usize::MAX)
}

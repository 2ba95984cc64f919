//! `wscope connect`: a client. Sends stdin lines (or echoes, `--echo`) and
//! reports everything that happens as events, which the sinks print
//! (human, `--json`) or record (`--record`).

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use wscope_events::filter::Expr;
use wscope_events::{Close, Closed, ClosedBy, Direction, Event, EventKind, Frame, Message};
use wscope_proto::{CloseCode, OpCode};

use crate::cli::ConnectArgs;
use crate::connection::{ConnError, Incoming};
use crate::interactive::{self, Command, Printer};
use crate::sink::{Human, JsonLines, Record, Sinks, filtered};
use crate::timers::{sleep_until, tick};

/// Exit statuses scripts can rely on (also in `wscope connect --help`).
pub mod exit {
    pub const NORMAL: i32 = 0;
    pub const CONNECT_FAILED: i32 = 3;
    pub const HANDSHAKE_FAILED: i32 = 4;
    pub const CLOSED_WITH_ERROR: i32 = 5;
    pub const ABNORMAL: i32 = 6;
    pub const PROTOCOL_ERROR: i32 = 7;
    pub const TLS_FAILED: i32 = 8;
}

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
    /// Print only the events that pass this (`--filter`); the record file
    /// gets them all.
    pub filter: Option<Expr>,
}

/// Runs the client on stdin; returns the process exit status.
pub async fn run(args: ConnectArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    // Before the line editor or the connection: a mistake starts nothing.
    let filter = crate::cli::parse_filter(args.filter.as_deref())?;
    let opcode = if args.binary {
        OpCode::Binary
    } else {
        OpCode::Text
    };
    let interactive = !args.echo
        && args.send.is_empty()
        && !args.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    let mut printer = None;
    let commands = if !args.send.is_empty() {
        // --send replaces stdin: the messages, then the input ends.
        let (tx, commands) = mpsc::channel(args.send.len());
        for message in &args.send {
            tx.try_send(Command::Send(opcode, message.as_bytes().to_vec()))
                .expect("the channel holds exactly the --send messages");
        }
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
    let status = run_session(
        args,
        Session {
            lines: commands,
            arrows: interactive,
            printer,
            filter,
        },
    )
    .await;
    if interactive {
        interactive::finish();
    }
    status
}

fn sinks_for(
    args: &ConnectArgs,
    arrows: bool,
    printer: Option<Printer>,
    filter: Option<&Expr>,
) -> anyhow::Result<Sinks> {
    use std::io::IsTerminal;
    let color = std::env::var_os("NO_COLOR").is_none()
        && (printer.is_some() || std::io::stdout().is_terminal());
    let mut sinks = Sinks::default();
    if args.json {
        sinks.add(
            "--json",
            filtered(
                filter,
                Box::new(JsonLines::new(args.max_payload, !args.no_redact)),
            ),
        );
    } else {
        sinks.add(
            "terminal",
            filtered(
                filter,
                Box::new(Human {
                    arrows,
                    quiet: args.quiet,
                    show_control: args.show_control,
                    timestamps: args.timestamps,
                    pretty: args.pretty,
                    color,
                    printer,
                    show_conn: false,
                }),
            ),
        );
    }
    if let Some(path) = &args.record {
        let record = Record::create(path, !args.no_redact, args.max_payload)
            .with_context(|| format!("cannot create record file {}", path.display()))?;
        sinks.add("--record", Box::new(record));
    }
    Ok(sinks)
}

/// Runs the client with messages from `session`.
pub async fn run_session(args: ConnectArgs, session: Session) -> anyhow::Result<i32> {
    let mut sinks = sinks_for(
        &args,
        session.arrows,
        session.printer,
        session.filter.as_ref(),
    )?;
    let mut input = Input {
        open: session.lines.is_some(),
        lines: session.lines.unwrap_or_else(|| mpsc::channel(1).1),
    };
    // Attempts since the last connection that opened; resets on success.
    let mut attempt = 0u32;
    let mut number = 0u64;
    loop {
        number += 1;
        let conn_id = format!("c{number}");
        let outcome = one_connection(&args, &mut sinks, &mut input, &conn_id).await?;
        if !args.reconnect || outcome.user_ended {
            return Ok(outcome.status);
        }
        if outcome.opened {
            attempt = 0;
        }
        attempt += 1;
        let delay = backoff(attempt, args.reconnect_max_delay);
        let text = format!(
            "reconnecting in {delay:.1?} (attempt {attempt}): {}",
            outcome.reason
        );
        sinks.emit(&Event::now(&conn_id, None, EventKind::Note { text }));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::signal::ctrl_c() => return Ok(outcome.status),
        }
    }
}

/// Where messages to send come from, across reconnections.
struct Input {
    lines: mpsc::Receiver<Command>,
    /// The source has not ended yet.
    open: bool,
}

/// How one connection ended.
struct Outcome {
    status: i32,
    /// The upgrade succeeded (so a reconnect starts its backoff afresh).
    opened: bool,
    /// wscope ended it on purpose (input done, --expect met, Ctrl-C).
    user_ended: bool,
    reason: String,
}

/// Exponential backoff from 500 ms, capped at `max`, with jitter (each delay
/// is drawn from the upper half of its range) so that many clients dropped
/// together do not come back together.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = base.min(max);
    capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// One connection, from dialing to its end.
async fn one_connection(
    args: &ConnectArgs,
    sinks: &mut Sinks,
    input: &mut Input,
    conn_id: &str,
) -> anyhow::Result<Outcome> {
    let emit = |sinks: &mut Sinks, dir: Option<Direction>, kind: EventKind| {
        sinks.emit(&Event::now(conn_id, dir, kind));
    };
    let mut conn =
        match crate::dial::dial(&args.handshake, args.limits.max_message, sinks, conn_id).await? {
            Ok(conn) => conn,
            Err(status) => {
                return Ok(Outcome {
                    status,
                    opened: false,
                    user_ended: false,
                    reason: "the connection could not be opened".to_owned(),
                });
            }
        };
    if args.frames {
        conn.capture_frames(args.max_payload);
    }
    // Whether the data frames of the message in progress carry plain text.
    let mut frames_are_text = false;
    // Set when stdin has ended: the close goes out once the connection has
    // been quiet for `--wait`.
    let mut linger: Option<tokio::time::Instant> = None;
    let mut we_closed_first = false;
    let opened = Instant::now();
    let mut received = 0u64;
    let mut pings = args.ping_interval.map(crate::timers::every);
    let mut ping_seq = 0u64;
    // The ping awaiting its pong: its payload and when it left.
    let mut ping_out: Option<(Vec<u8>, tokio::time::Instant)> = None;

    let (by, clean, code, reason, status) = loop {
        let incoming = tokio::select! {
            incoming = conn.next() => incoming,
            command = input.lines.recv(), if input.open => {
                match command {
                    Some(Command::Send(opcode, data)) => {
                        conn.send(opcode, &data).await?;
                        if sinks.wants_payloads() {
                            let message = sent_message(opcode, &data);
                            emit(sinks, Some(Direction::ClientToServer), EventKind::Message(message));
                        }
                    }
                    Some(Command::Ping(payload)) => {
                        conn.send_control(OpCode::Ping, &payload).await?;
                        emit(sinks, Some(Direction::ClientToServer), control_frame(OpCode::Ping, &payload));
                        ping_out = Some((payload, tokio::time::Instant::now()));
                    }
                    Some(Command::Pong(payload)) => {
                        conn.send_control(OpCode::Pong, &payload).await?;
                        emit(sinks, Some(Direction::ClientToServer), control_frame(OpCode::Pong, &payload));
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
                        emit(sinks, None, EventKind::Note { text });
                    }
                    Some(Command::Help) => {
                        emit(sinks, None, EventKind::Note { text: interactive::HELP.to_owned() });
                    }
                    Some(Command::Problem(text)) => emit(sinks, None, EventKind::Note { text }),
                    None => {
                        input.open = false;
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
                emit(sinks, Some(Direction::ClientToServer), control_frame(OpCode::Ping, &payload));
                if ping_out.is_none() {
                    ping_out = Some((payload.to_vec(), tokio::time::Instant::now()));
                }
                continue;
            }
            _ = sleep_until(ping_out.as_ref().zip(args.ping_timeout).map(|((_, sent), timeout)| *sent + timeout)), if ping_out.is_some() && args.ping_timeout.is_some() => {
                let timeout = args.ping_timeout.unwrap_or_default();
                let message = format!("no pong within {timeout:?}: the server or the network stopped answering; closing");
                emit(sinks, None, EventKind::Error { message });
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
                if sinks.wants_payloads() {
                    let event = Message::capture(&message, usize::MAX);
                    emit(
                        sinks,
                        Some(Direction::ServerToClient),
                        EventKind::Message(event),
                    );
                }
                if args.echo && sinks.wants_payloads() {
                    let echoed = sent_message(message.opcode, &message.data);
                    emit(
                        sinks,
                        Some(Direction::ClientToServer),
                        EventKind::Message(echoed),
                    );
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
                emit(sinks, Some(Direction::ServerToClient), frame);
            }
            Ok(Incoming::Ping(payload)) => {
                emit(
                    sinks,
                    Some(Direction::ServerToClient),
                    control_frame(OpCode::Ping, &payload),
                );
            }
            Ok(Incoming::Pong(payload)) => {
                emit(
                    sinks,
                    Some(Direction::ServerToClient),
                    control_frame(OpCode::Pong, &payload),
                );
                let answered = ping_out
                    .as_ref()
                    .filter(|(expected, _)| payload[..] == expected[..])
                    .map(|(_, sent)| sent.elapsed());
                if let Some(round_trip) = answered {
                    {
                        ping_out = None;
                        let text = format!("pong: round trip {round_trip:.2?}");
                        emit(sinks, None, EventKind::Note { text });
                    }
                }
            }
            Ok(Incoming::Close(close)) => {
                let code = close.code.unwrap_or(CloseCode::NO_STATUS);
                let info = Close::new(close.code, &close.reason);
                emit(
                    sinks,
                    Some(Direction::ServerToClient),
                    EventKind::Close(info),
                );
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
                    "the server broke the protocol, so wscope closed the connection: {err}"
                );
                emit(sinks, None, EventKind::Error { message });
                let code = crate::connection::close_code_for(&err);
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
                emit(sinks, None, EventKind::Error { message });
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
    emit(sinks, None, EventKind::Closed(closed));
    Ok(Outcome {
        status,
        opened: true,
        user_ended: we_closed_first,
        reason: ended,
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

//! Idle timeout (`--idle DURATION`, or `--long`): two connections opened
//! together, one held silent and one sending protocol pings every
//! `--ping-every`, each watched until something ends it or `--idle`
//! passes, reporting when and how (a close frame and its code, a FIN, a
//! reset). Load balancers and reverse proxies close idle connections after
//! their own timeout (nginx 60 s, AWS ALB 60 s, HAProxy's `timeout
//! tunnel`), far below what a quiet chat or dashboard needs; whether pings
//! reset that timer depends on the intermediary, so both are watched.
//!
//! The same watch counts the pings the server sends on its own: a server
//! that never pings leaves keeping idle connections alive to its clients.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use wscope_proto::OpCode;

use super::attempt::{Attempt, attempt};
use super::finding::{Finding, Verdict};
use super::progress::Progress;
use crate::network::connection::{ConnError, Incoming};
use crate::sources::dial::Dialed;
use crate::sources::dial::HandshakeArgs;

/// Pings are never sent more often than this, whatever the timeout.
const FASTEST_PING: Duration = Duration::from_millis(200);

/// How a watched connection ended.
#[derive(Debug, Clone)]
enum Ending {
    /// Still open when the watch ended.
    Open {
        after: Duration,
    },
    Ended {
        after: Duration,
        how: String,
    },
}

/// What one watch saw.
struct Watched {
    ending: Ending,
    /// Pings the server sent on its own.
    server_pings: u32,
}

/// Watches `conn` until it ends or the deadline in `deadline` passes (the
/// deadline may move while watching), sending a ping every `ping_every`
/// if given.
async fn watch_conn(
    conn: &mut Dialed,
    mut deadline: watch::Receiver<tokio::time::Instant>,
    ping_every: Option<Duration>,
) -> Watched {
    let started = Instant::now();
    let mut next_ping = ping_every.map(|every| tokio::time::Instant::now() + every);
    let mut server_pings = 0;
    let ended = |how: String, server_pings| Watched {
        ending: Ending::Ended {
            after: started.elapsed(),
            how,
        },
        server_pings,
    };
    loop {
        let until = *deadline.borrow_and_update();
        let wake = match next_ping {
            Some(at) if at < until => at,
            _ => until,
        };
        let next = tokio::select! {
            next = tokio::time::timeout_at(wake, conn.next()) => next,
            // The deadline moved: wake up for the new one.
            Ok(()) = deadline.changed() => continue,
        };
        match next {
            Err(_) if wake == until => {
                return Watched {
                    ending: Ending::Open {
                        after: started.elapsed(),
                    },
                    server_pings,
                };
            }
            Err(_) => {
                if conn
                    .send_control(OpCode::Ping, b"wscope-doctor-keepalive")
                    .await
                    .is_err()
                {
                    return ended(
                        "the connection failed while sending a ping".to_owned(),
                        server_pings,
                    );
                }
                next_ping = ping_every.map(|every| wake + every);
            }
            Ok(Ok(Incoming::Ping(_))) => server_pings += 1,
            Ok(Ok(Incoming::Close(close))) => {
                let how = match close.code {
                    Some(code) if close.reason.is_empty() => format!("close frame {code}"),
                    Some(code) => format!("close frame {code} {:?}", close.reason),
                    None => "close frame without a code".to_owned(),
                };
                return ended(how, server_pings);
            }
            Ok(Ok(Incoming::Eof)) => {
                return ended(
                    "dropped without a close frame (FIN)".to_owned(),
                    server_pings,
                );
            }
            Ok(Err(ConnError::Io(err))) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return ended("reset (RST)".to_owned(), server_pings);
            }
            Ok(Err(err)) => return ended(format!("failed: {err}"), server_pings),
            Ok(Ok(_)) => {}
        }
    }
}

/// Watches `conn` for at most `limit` with a fixed deadline.
async fn watch_for(conn: &mut Dialed, limit: Duration, ping_every: Option<Duration>) -> Watched {
    let (_keep, deadline) = watch::channel(tokio::time::Instant::now() + limit);
    watch_conn(conn, deadline, ping_every).await
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// How long a pinged connection must outlive a silent one's end to say
/// that pings keep connections open: twice that time and three pings.
fn hold_after(silent_after: Duration, every: Duration, limit: Duration) -> Duration {
    (silent_after * 2 + Duration::from_secs(1))
        .max(every * 3)
        .min(limit)
}

/// The `idle` and `server-pings` findings: `limit` is `--idle`,
/// `ping_every` is `--ping-every` (a third of `limit` if not given).
pub async fn check(
    h: &HandshakeArgs,
    limit: Duration,
    ping_every: Option<Duration>,
    progress: &Progress,
) -> Vec<Finding> {
    let every = ping_every.unwrap_or(limit / 3).max(FASTEST_PING);
    progress.started(
        "idle",
        format!(
            "holding a silent connection and one pinging every {} for up to {}",
            secs(every),
            secs(limit)
        ),
    );
    let (silent, pinged) = tokio::join!(attempt(h), attempt(h));
    let (Ok(Attempt::Open(mut silent, _)), pinged) = (silent, pinged) else {
        progress.finished("idle");
        return vec![
            Finding::skipped("idle", "no connection to hold open"),
            Finding::skipped("server-pings", "no connection to watch"),
        ];
    };
    let mut pinged = match pinged {
        Ok(Attempt::Open(conn, _)) => Some(conn),
        _ => None,
    };
    let started = tokio::time::Instant::now();
    let (pinged_deadline_tx, pinged_deadline) = watch::channel(started + limit);
    let silent_watch = async {
        let watched = watch_for(&mut silent, limit, None).await;
        // A silent connection that ended tells how long the pinged one
        // must last to prove anything: no need to wait out the limit.
        if let Ending::Ended { after, .. } = watched.ending {
            let _ = pinged_deadline_tx.send(started + hold_after(after, every, limit));
        }
        super::attempt::close(&mut silent).await;
        watched
    };
    let pinged_watch = async {
        match pinged.as_mut() {
            Some(conn) => {
                let watched = watch_conn(conn, pinged_deadline, Some(every)).await;
                super::attempt::close(conn).await;
                Some(watched)
            }
            None => None,
        }
    };
    let (silent, pinged) = tokio::join!(silent_watch, pinged_watch);
    progress.finished("idle");

    let server_pings = server_pings(&silent, limit);
    let Ending::Ended { after, how } = silent.ending else {
        let idle = Finding::ok(
            "idle",
            format!("a silent connection stayed open for {}", secs(limit)),
        );
        return vec![idle, server_pings];
    };
    let summary = format!("a silent connection ends after ~{}: {how}", secs(after));
    let mut tried = pinged.map(|watched| (every, watched.ending));
    // Pings as sparse as the timeout itself prove nothing: unless the
    // user chose the interval, try once more at a third of the timeout.
    if let Some((tried_every, Ending::Ended { .. })) = &tried
        && ping_every.is_none()
        && *tried_every >= after / 2
    {
        let faster = (after / 3).max(FASTEST_PING);
        tried = match attempt(h).await {
            Ok(Attempt::Open(mut conn, _)) => {
                let hold = hold_after(after, faster, limit);
                let watched = watch_for(&mut conn, hold, Some(faster)).await;
                super::attempt::close(&mut conn).await;
                Some((faster, watched.ending))
            }
            _ => tried,
        };
    }
    let idle = match tried {
        Some((every, Ending::Open { after: held })) => Finding::new("idle", Verdict::Warning, summary)
            .detail(format!(
                "pings every {} kept a second connection open for {}",
                secs(every),
                secs(held)
            ))
            .advice(format!(
                "an intermediary (or the server) closes idle connections after ~{}; pings every {} keep it open: make clients (or the server) ping more often than that, or raise the timeout (nginx: proxy_read_timeout; HAProxy: timeout tunnel; AWS ALB: idle timeout)",
                secs(after),
                secs(every)
            )),
        Some((every, Ending::Ended { after: pinged_after, how: pinged_how })) => {
            Finding::new("idle", Verdict::Problem, summary)
                .detail(format!(
                    "with pings every {} a second connection still ended after {}: {pinged_how}",
                    secs(every),
                    secs(pinged_after)
                ))
                .advice("pings do not keep connections open here: the timeout counts only data messages, or it is a hard limit on a connection's life; raise it (nginx: proxy_read_timeout; HAProxy: timeout tunnel) or send application-level heartbeats")
        }
        None => Finding::new("idle", Verdict::Warning, summary)
            .detail("a second connection, to try pings, could not be opened"),
    };
    vec![idle, server_pings]
}

/// Whether the server pinged the silent connection on its own.
fn server_pings(silent: &Watched, limit: Duration) -> Finding {
    let watched = match &silent.ending {
        Ending::Open { after } | Ending::Ended { after, .. } => *after,
    };
    let watched = watched.min(limit);
    match silent.server_pings {
        0 => Finding::info(
            "server-pings",
            format!("the server sent no pings of its own in {}", secs(watched)),
        )
        .detail("keeping idle connections open through intermediaries is then up to the clients: browsers never send pings, so a browser client needs application-level heartbeats"),
        n => Finding::ok(
            "server-pings",
            format!(
                "the server pinged {n} times on its own in {} (about every {})",
                secs(watched),
                secs(watched / n)
            ),
        ),
    }
}

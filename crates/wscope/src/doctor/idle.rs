//! Idle timeout (`--long`): one connection held silent until something
//! ends it or the limit passes, reporting when and how (a close frame and
//! its code, a FIN, a reset); if it ended, a second one that pings at a
//! third of that time, to tell whether pings keep such connections open.
//! Load balancers and reverse proxies close idle connections after their
//! own timeout (nginx 60 s, AWS ALB 60 s, HAProxy's `timeout tunnel`), far
//! below what a quiet chat or dashboard needs.

use std::time::{Duration, Instant};

use wscope_proto::OpCode;

use super::attempt::{Attempt, attempt};
use super::finding::{Finding, Verdict};
use crate::cli::HandshakeArgs;
use crate::connection::{ConnError, Incoming};
use crate::dial::Dialed;

/// How a watched connection ended.
enum Ending {
    /// Still open when the watch ended.
    Open,
    Ended {
        after: Duration,
        how: String,
    },
}

/// Watches `conn` for up to `limit`, sending a ping every `ping_every`
/// if given; also counts the pings the server sent on its own.
async fn watch(conn: &mut Dialed, limit: Duration, ping_every: Option<Duration>) -> (Ending, u32) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let mut next_ping = ping_every.map(|every| tokio::time::Instant::now() + every);
    let mut server_pings = 0;
    loop {
        let wake = match next_ping {
            Some(at) if at < deadline => at,
            _ => deadline,
        };
        match tokio::time::timeout_at(wake, conn.next()).await {
            Err(_) if wake == deadline => return (Ending::Open, server_pings),
            Err(_) => {
                if conn
                    .send_control(OpCode::Ping, b"wscope-doctor-keepalive")
                    .await
                    .is_err()
                {
                    return (
                        Ending::Ended {
                            after: started.elapsed(),
                            how: "the connection failed while sending a ping".to_owned(),
                        },
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
                return (
                    Ending::Ended {
                        after: started.elapsed(),
                        how,
                    },
                    server_pings,
                );
            }
            Ok(Ok(Incoming::Eof)) => {
                return (
                    Ending::Ended {
                        after: started.elapsed(),
                        how: "dropped without a close frame (FIN)".to_owned(),
                    },
                    server_pings,
                );
            }
            Ok(Err(ConnError::Io(err))) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return (
                    Ending::Ended {
                        after: started.elapsed(),
                        how: "reset (RST)".to_owned(),
                    },
                    server_pings,
                );
            }
            Ok(Err(err)) => {
                return (
                    Ending::Ended {
                        after: started.elapsed(),
                        how: format!("failed: {err}"),
                    },
                    server_pings,
                );
            }
            Ok(Ok(_)) => {}
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The `idle` finding.
pub async fn check(h: &HandshakeArgs, limit: Duration) -> Finding {
    let Ok(Attempt::Open(mut silent, _)) = attempt(h).await else {
        return Finding::skipped("idle", "no connection to hold open");
    };
    let (ending, server_pings) = watch(&mut silent, limit, None).await;
    super::attempt::close(&mut silent).await;
    let pinging = if server_pings > 0 {
        format!(" (the server pinged {server_pings} times on its own)")
    } else {
        " (the server sent no pings of its own)".to_owned()
    };
    let Ending::Ended { after, how } = ending else {
        return Finding::ok(
            "idle",
            format!(
                "a silent connection stayed open for {}{pinging}",
                secs(limit)
            ),
        );
    };
    // Pings at a third of the timeout, held twice as long as it lasted.
    let every = (after / 3).max(Duration::from_millis(200));
    let hold = (after * 2 + Duration::from_secs(1)).min(limit);
    let kept = match attempt(h).await {
        Ok(Attempt::Open(mut pinged, _)) => {
            let (ending, _) = watch(&mut pinged, hold, Some(every)).await;
            super::attempt::close(&mut pinged).await;
            Some(ending)
        }
        _ => None,
    };
    let summary = format!(
        "a silent connection ends after ~{}: {how}{pinging}",
        secs(after)
    );
    match kept {
        Some(Ending::Open) => Finding::new("idle", Verdict::Warning, summary)
            .detail(format!(
                "pings every {} kept a second connection open for {}",
                secs(every),
                secs(hold)
            ))
            .advice(format!(
                "an intermediary (or the server) closes idle connections after ~{}; pings every {} keep it open: make clients (or the server) ping more often than that, or raise the timeout (nginx: proxy_read_timeout; HAProxy: timeout tunnel; AWS ALB: idle timeout)",
                secs(after),
                secs(every)
            )),
        Some(Ending::Ended { after: pinged_after, how: pinged_how }) => {
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
    }
}

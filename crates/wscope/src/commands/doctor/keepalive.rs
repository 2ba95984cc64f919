//! Keepalive: protocol pings on the open connection, each awaited for its
//! pong. A server (or an intermediary) that does not answer pings breaks
//! every client that uses them to detect dead connections.

use std::time::{Duration, Instant};

use wscope_proto::OpCode;

use super::finding::{Finding, Verdict};
use super::network::ms;
use crate::network::connection::Incoming;
use crate::sources::dial::Dialed;

/// How long one pong may take before the check gives up on it.
const PONG_WAIT: Duration = Duration::from_secs(3);

/// Sends `pings` pings one after the other; the `keepalive` finding.
pub async fn check(conn: &mut Dialed, pings: usize) -> Finding {
    let mut rtts = Vec::new();
    for n in 0..pings.max(1) {
        let payload = format!("wscope-doctor-{n}");
        let sent = Instant::now();
        if let Err(err) = conn.send_control(OpCode::Ping, payload.as_bytes()).await {
            return Finding::new(
                "keepalive",
                Verdict::Problem,
                format!("the connection failed sending ping {}: {err}", n + 1),
            );
        }
        let answered = tokio::time::timeout(PONG_WAIT, async {
            loop {
                match conn.next().await {
                    Ok(Incoming::Pong(data)) if data.as_ref() == payload.as_bytes() => {
                        return Ok(());
                    }
                    Ok(Incoming::Close(close)) => {
                        return Err(format!(
                            "the server closed the connection ({}) instead",
                            close
                                .code
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "no code".into())
                        ));
                    }
                    Ok(Incoming::Eof) => {
                        return Err("the server dropped the connection instead".to_owned());
                    }
                    Err(err) => return Err(format!("the connection failed: {err}")),
                    Ok(_) => {}
                }
            }
        })
        .await;
        match answered {
            Ok(Ok(())) => rtts.push(sent.elapsed()),
            Ok(Err(why)) => {
                return Finding::new(
                    "keepalive",
                    Verdict::Problem,
                    format!("ping {} got no pong: {why}", n + 1),
                )
                .advice(NO_PONG);
            }
            Err(_) => {
                return Finding::new(
                    "keepalive",
                    Verdict::Problem,
                    format!(
                        "ping {} got no pong within {}s{}",
                        n + 1,
                        PONG_WAIT.as_secs(),
                        if rtts.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} before it were answered)", rtts.len())
                        }
                    ),
                )
                .advice(NO_PONG);
            }
        }
    }
    rtts.sort();
    Finding::ok(
        "keepalive",
        format!(
            "{} pings answered; round trip min {}, median {}, max {}",
            rtts.len(),
            ms(rtts[0]),
            ms(rtts[rtts.len() / 2]),
            ms(rtts[rtts.len() - 1])
        ),
    )
}

const NO_PONG: &str = "RFC 6455 section 5.5.2 requires a pong for every ping: clients that ping to detect dead connections (and browsers behind proxies that do) will drop this one; make the server (or the proxy in front) answer pings";

//! `wscope probe URL`: the `curl -i` of WebSockets. Opens the connection
//! with the same options as `connect`, shows the handshake as it went over
//! the wire with each step timed, checks what needs checking, then closes
//! cleanly. When the upgrade fails it says what the answer most likely
//! means.

use std::fmt::Write as _;
use std::time::Duration;

use wscope_events::{Event, EventKind, Head, Open};
use wscope_proto::CloseCode;

use crate::cli::ProbeArgs;
use crate::network::connection::Incoming;
use crate::sinks::emit::Events;
use crate::sinks::sink::{JsonLines, Sink, Sinks};
use crate::sources::dial::dial;

pub async fn run(args: ProbeArgs) -> anyhow::Result<i32> {
    let mut sinks = Sinks::redacting(args.redact.redactor(true)?);
    if args.json {
        sinks.add("--json", Box::new(JsonLines::new(64 * 1024)));
    } else {
        sinks.add("terminal", Box::new(ProbeReport));
    }
    let events = Events::direct(sinks, 64 * 1024);
    let mut conn = match dial(
        &args.handshake,
        1 << 20,
        &events,
        crate::commands::connect::CONN,
    )
    .await?
    {
        Ok(conn) => conn,
        Err(status) => return Ok(status),
    };
    // Close as a well-behaved client does, and see how the server answers.
    conn.close(Some(CloseCode::NORMAL), "probe done").await?;
    let answer = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match conn.next().await {
                Ok(Incoming::Close(close)) => return Some(close.code),
                Ok(Incoming::Eof) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await;
    conn.finish(Duration::from_secs(1)).await;
    let text = match answer {
        Ok(Some(code)) => format!(
            "closed cleanly: the server answered the close with {}",
            code.map(|c| c.to_string())
                .unwrap_or_else(|| "no status code".into())
        ),
        Ok(None) => "the server dropped the connection instead of answering the close frame".into(),
        Err(_) => "the server did not answer the close frame within 3s".into(),
    };
    events
        .emit(
            crate::commands::connect::CONN,
            None,
            EventKind::Note { text },
        )
        .await;
    Ok(0)
}

/// Prints the handshake like `curl -i`: `>` lines went out, `<` came back
/// (secrets already redacted by the sinks).
struct ProbeReport;

impl ProbeReport {
    fn head(&self, marker: &str, head: &Head, out: &mut String) {
        let _ = writeln!(out, "{marker} {}", head.line);
        for (name, value) in &head.headers {
            let _ = writeln!(out, "{marker} {name}: {value}");
        }
    }

    fn open(&self, open: &Open, out: &mut String) {
        self.head(">", &open.request, out);
        out.push('\n');
        self.head("<", &open.response, out);
        out.push('\n');
        let _ = writeln!(
            out,
            "upgraded: {} ({} -> {})",
            open.url, open.client, open.server
        );
        let _ = writeln!(out, "  Sec-WebSocket-Accept  matches the key");
        let _ = writeln!(
            out,
            "  subprotocol           {}",
            open.subprotocol.as_deref().unwrap_or("none")
        );
        let extensions = if open.extensions.is_empty() {
            "none".to_owned()
        } else {
            open.extensions.join(", ")
        };
        let _ = writeln!(out, "  extensions            {extensions}");
        let t = &open.timings;
        let ms = |us: Option<u64>| match us {
            Some(us) => format!("{:.2}ms", us as f64 / 1000.0),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "  timings               dns {}, tcp {}, tls {}, upgrade {}",
            ms(t.dns_us),
            ms(t.tcp_us),
            ms(t.tls_us),
            ms(t.upgrade_us)
        );
    }
}

impl Sink for ProbeReport {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let mut out = String::new();
        match &event.kind {
            EventKind::Open(open) => self.open(open, &mut out),
            EventKind::HandshakeFailed(failed) => {
                if let Some(request) = &failed.request {
                    self.head(">", request, &mut out);
                    out.push('\n');
                }
                if let Some(response) = &failed.response {
                    self.head("<", response, &mut out);
                    out.push('\n');
                }
                if !failed.body.is_empty() {
                    let _ = writeln!(out, "{}\n", failed.body.trim_end());
                }
                let _ = writeln!(out, "not upgraded: {}", failed.diagnosis);
            }
            EventKind::Error { message } => {
                let _ = writeln!(out, "failed: {message}");
            }
            EventKind::Note { text } => {
                let _ = writeln!(out, "{text}");
            }
            _ => return Ok(()),
        }
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()
    }
}

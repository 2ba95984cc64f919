//! `wscope doctor URL`: why a WebSocket endpoint fails, in one report.
//!
//! A list of independent checks (`proxy`: which HTTP proxy, from
//! `--proxy` or the environment; `network`: DNS and TCP; `tls`; `upgrade`:
//! the status and what it negotiated; `origin`; `keepalive`; `idle` with
//! `--long`; `sizes` with `--sizes`), each returning [`Finding`]s with a verdict and advice. The
//! checks run concurrently and never print; `render` turns the findings
//! into the terminal report, JSON Lines or one JSON document, and the
//! worst verdict becomes the exit status. Handshakes go through `dial`,
//! exactly as `connect` and `probe` make them (`attempt`).

mod attempt;
mod compare;
mod finding;
mod idle;
mod keepalive;
mod network;
mod origin;
mod proxy;
mod render;
mod sizes;
mod tls;
mod upgrade;

use serde::Serialize;
use url::Url;

pub use finding::{Finding, Verdict};

use crate::cli::{DoctorArgs, HandshakeArgs};
use attempt::{Attempt, Stage, attempt};

/// The User-Agent a browser-like handshake sends: intermediaries that
/// route or block by it treat doctor as they treat a browser.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Exit statuses.
pub mod exit {
    pub const NO_PROBLEM: i32 = 0;
    pub const PROBLEM: i32 = 1;
    pub const USAGE: i32 = 2;
    /// Nothing at all could be reached (no address, no TCP connection).
    pub const UNREACHABLE: i32 = 3;
}

/// Where the checks go, from the URL.
pub struct Target {
    pub host: String,
    pub port: u16,
    pub secure: bool,
    /// Through `--proxy`: DNS, TCP and TLS are the proxy's business.
    pub proxied: bool,
}

/// Everything the checks found, in the order they are listed.
#[derive(Debug, Serialize)]
pub struct Report {
    pub url: String,
    /// `browser` or `plain`.
    pub handshake: &'static str,
    pub findings: Vec<Finding>,
    /// The exit status this report gives.
    pub exit: i32,
    /// `--compare`: the same checks against the second URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared: Option<Box<Report>>,
    /// `--compare`: the checks whose verdict differs between the two.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<compare::Difference>,
}

fn target(h: &HandshakeArgs) -> Result<Target, String> {
    let url = Url::parse(&h.url).map_err(|e| format!("{:?} is not a URL: {e}", h.url))?;
    let secure = match url.scheme() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => {
            return Err(format!(
                "unsupported scheme {other}:// (use ws://, wss://, http:// or https://)"
            ));
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("{url} has no host"))?
        .to_owned();
    Ok(Target {
        host,
        port: url.port_or_known_default().unwrap_or(80),
        secure,
        proxied: h.proxy.is_some(),
    })
}

/// The handshake the checks make: the user's, made to look like a
/// browser's unless `--plain`.
fn handshake(args: &DoctorArgs, h: &HandshakeArgs) -> HandshakeArgs {
    let mut h = h.clone();
    if !args.plain {
        h.compress = true;
        let has_agent = h.headers.iter().any(|header| {
            header
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("user-agent:")
        });
        if !has_agent {
            h.headers.push(format!("User-Agent: {BROWSER_USER_AGENT}"));
        }
    }
    h
}

/// Runs every check (against `--compare`'s URL too) and prints the
/// report; returns the exit status, which is the first URL's.
pub async fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    let mut urls = vec![args.handshake.url.clone()];
    urls.extend(args.compare.clone());
    let mut targets = Vec::new();
    for url in &urls {
        let mut h = args.handshake.clone();
        h.url = url.clone();
        let (proxy, proxy_finding) = proxy::choose(url, args.handshake.proxy.as_deref());
        h.proxy = proxy;
        match target(&h) {
            Ok(target) => targets.push((target, h, proxy_finding)),
            Err(message) => {
                eprintln!("wscope: {message}");
                return Ok(exit::USAGE);
            }
        }
    }
    let mut runs = Vec::new();
    for (target, h, proxy_finding) in &targets {
        runs.push(diagnose(&args, target, h, proxy_finding.clone()));
    }
    let mut reports = Vec::new();
    // The two URLs are checked at the same time: their idle checks
    // overlap instead of adding up.
    let mut runs = runs.into_iter();
    let first = runs.next().expect("one URL at least");
    match runs.next() {
        Some(second) => {
            let (a, b) = tokio::join!(first, second);
            reports.push(a?);
            reports.push(b?);
        }
        None => reports.push(first.await?),
    }
    let mut report = reports.remove(0);
    if let Some(compared) = reports.pop() {
        report.differences = compare::differences(&report, &compared);
        report.compared = Some(Box::new(compared));
    }
    render::print(&report, args.json)?;
    if let Some(path) = &args.report_json {
        render::write_document(&report, path)?;
    }
    Ok(report.exit)
}

/// Every check against one URL.
async fn diagnose(
    args: &DoctorArgs,
    target: &Target,
    h: &HandshakeArgs,
    proxy: Finding,
) -> anyhow::Result<Report> {
    let h = handshake(args, h);
    let timeout = h.connect_timeout;
    let (network, tls, main, idle, sizes) = tokio::join!(
        network::check(target, timeout),
        tls::check(target, &h, timeout),
        main_checks(&h, args.pings, target.proxied),
        async {
            if args.long {
                idle::check(&h, args.idle_limit).await
            } else {
                Finding::skipped("idle", "not measured (--long measures it)")
            }
        },
        async {
            if args.sizes {
                sizes::check(&h, args.max_message).await
            } else {
                Finding::skipped("sizes", "not measured (--sizes, for an echo endpoint)")
            }
        },
    );
    let (main, unreachable) = main?;
    let mut findings = vec![proxy];
    findings.extend(network);
    findings.push(tls);
    findings.extend(main);
    findings.push(idle);
    findings.push(sizes);
    let exit = if unreachable {
        exit::UNREACHABLE
    } else if findings.iter().any(|f| f.verdict == Verdict::Problem) {
        exit::PROBLEM
    } else {
        exit::NO_PROBLEM
    };
    Ok(Report {
        url: h.url.clone(),
        handshake: if args.plain { "plain" } else { "browser" },
        findings,
        exit,
        compared: None,
        differences: Vec::new(),
    })
}

/// The checks that share the main handshake: upgrade, negotiation,
/// origin, keepalive. Also says whether nothing could be reached.
async fn main_checks(
    h: &HandshakeArgs,
    pings: usize,
    proxied: bool,
) -> anyhow::Result<(Vec<Finding>, bool)> {
    let mut main = attempt(h).await?;
    let unreachable = matches!(
        main,
        Attempt::Failed {
            stage: Stage::Connect,
            ..
        }
    );
    let mut findings = upgrade::check(&main, proxied);
    let keepalive = match &mut main {
        Attempt::Open(conn, _) => keepalive::check(conn, pings).await,
        _ => Finding::skipped("keepalive", "not upgraded"),
    };
    findings.push(origin::check(h, &main).await);
    findings.push(keepalive);
    if let Attempt::Open(mut conn, _) = main {
        attempt::close(&mut conn).await;
    }
    Ok((findings, unreachable))
}

//! `wscope doctor URL`: why a WebSocket endpoint fails, in one report.
//!
//! A list of independent checks (`proxy`: which HTTP proxy, from
//! `--proxy` or the environment; `network`: DNS and TCP; `tls`; `upgrade`:
//! the status and what it negotiated; `origin`; `keepalive`; `idle` with
//! `--long` or `--idle`, with the server's own pings; `sizes` with
//! `--sizes` or `--probe-message`), each returning [`Finding`]s with a
//! verdict and advice. The checks run concurrently and never print
//! (`progress` says on stderr what the slow ones wait for); `render` turns
//! the findings into the terminal report, JSON Lines or one JSON
//! document, and the worst verdict becomes the exit status. Handshakes go
//! through `dial`, exactly as `connect` and `probe` make them (`attempt`).

mod attempt;
mod compare;
mod finding;
mod idle;
mod keepalive;
mod network;
mod origin;
mod progress;
mod proxy;
mod render;
mod sizes;
mod tls;
mod upgrade;

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use url::Url;

pub use finding::{Finding, Verdict};

use crate::cli::DoctorArgs;
use crate::sources::dial::HandshakeArgs;
use attempt::{Attempt, Stage, attempt};
use progress::Progress;

/// The User-Agent a browser-like handshake sends: intermediaries that
/// route or block by it treat doctor as they treat a browser.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

pub use crate::exit::doctor as exit;

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
    /// Ctrl-C ended the run: the checks that had not finished say so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
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
fn handshake(plain: bool, h: &HandshakeArgs) -> HandshakeArgs {
    let mut h = h.clone();
    if !plain {
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

/// The idle check's limit when `--long` asks for it without `--idle`:
/// above the 60 s that nginx, AWS ALB and many others default to.
pub const LONG_IDLE: Duration = Duration::from_secs(75);

/// Runs every check (against `--compare`'s URL too) and prints the
/// report; returns the exit status, which is the first URL's. Ctrl-C
/// prints what was found so far, the unfinished checks listed as such.
pub async fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    let probe = match &args.probe_message {
        Some(template) => match sizes::Probe::template(template) {
            Ok(probe) => Some(probe),
            Err(message) => {
                eprintln!("wscope: {message}");
                return Ok(exit::USAGE);
            }
        },
        None => args.sizes.then_some(sizes::Probe::Echo),
    };
    // Response heads carry cookies, URLs tokens: the report is redacted
    // like any output (`--no-redact` keeps them).
    let redactor = args.redact.redactor(true)?;
    let plan = Plan {
        idle: args.idle.or(args.long.then_some(LONG_IDLE)),
        ping_every: args.ping_every,
        probe,
        max_message: args.max_message,
        pings: args.pings,
        plain: args.plain,
        progress: Progress::new(false),
    };
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
    let (interrupt_tx, interrupt) = watch::channel(false);
    let ticker = plan.progress.ticker();
    let interrupting = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt_tx.send(true);
        }
    });
    let mut runs = Vec::new();
    for (target, h, proxy_finding) in &targets {
        runs.push(diagnose(
            &plan,
            target,
            h,
            proxy_finding.clone(),
            interrupt.clone(),
        ));
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
    interrupting.abort();
    drop(ticker);
    let mut report = reports.remove(0);
    if let Some(compared) = reports.pop() {
        report.differences = compare::differences(&report, &compared);
        report.compared = Some(Box::new(compared));
    }
    if let Some(redactor) = &redactor {
        report.redact(redactor);
    }
    render::print(&report, args.json)?;
    if let Some(path) = &args.report_json {
        render::write_document(&report, path)?;
    }
    Ok(report.exit)
}

impl Report {
    /// Every text in the report with its secrets replaced.
    fn redact(&mut self, redactor: &wscope_events::redact::Redactor) {
        redactor.redact_line(&mut self.url);
        for finding in &mut self.findings {
            redactor.redact_line(&mut finding.summary);
            for line in &mut finding.detail {
                redactor.redact_line(line);
            }
        }
        for difference in &mut self.differences {
            redactor.redact_line(&mut difference.summary);
            redactor.redact_line(&mut difference.compared_summary);
        }
        if let Some(compared) = &mut self.compared {
            compared.redact(redactor);
        }
    }
}

/// What to check, from the command line, shared by both URLs.
struct Plan {
    /// The idle check's limit; `None` skips it.
    idle: Option<Duration>,
    ping_every: Option<Duration>,
    /// The sizes check; `None` skips it.
    probe: Option<sizes::Probe>,
    max_message: u64,
    pings: usize,
    plain: bool,
    progress: Progress,
}

/// The findings of each check as it finishes, in the order the report
/// lists them: what Ctrl-C leaves is the checks that did finish.
#[derive(Default)]
struct Slots(Mutex<Vec<Option<Vec<Finding>>>>);

impl Slots {
    fn with_len(len: usize) -> Self {
        Slots(Mutex::new(vec![None; len]))
    }

    fn put(&self, slot: usize, findings: Vec<Finding>) {
        if let Ok(mut slots) = self.0.lock() {
            slots[slot] = Some(findings);
        }
    }

    /// Every finding, a check that did not finish as one `skipped`
    /// finding under the name in `names`.
    fn take(self, names: &[&'static str]) -> Vec<Finding> {
        let slots = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        slots
            .into_iter()
            .zip(names)
            .flat_map(|(slot, name)| {
                slot.unwrap_or_else(|| {
                    vec![Finding::skipped(
                        name,
                        "interrupted (Ctrl-C) before it finished",
                    )]
                })
            })
            .collect()
    }
}

/// Every check against one URL.
async fn diagnose(
    plan: &Plan,
    target: &Target,
    h: &HandshakeArgs,
    proxy: Finding,
    mut interrupt: watch::Receiver<bool>,
) -> anyhow::Result<Report> {
    let h = handshake(plan.plain, h);
    let timeout = h.connect_timeout;
    // The slots, in report order, named for when they do not finish.
    const NAMES: [&str; 6] = ["proxy", "network", "tls", "upgrade", "idle", "sizes"];
    let slots = Slots::with_len(NAMES.len());
    slots.put(0, vec![proxy]);
    let unreachable = Mutex::new(false);
    let checks = async {
        let quick = async {
            let (_, _, main) = tokio::join!(
                async { slots.put(1, network::check(target, h.hosts(), timeout).await) },
                async { slots.put(2, vec![tls::check(target, &h, timeout).await]) },
                async {
                    let (findings, nothing) = main_checks(&h, plan.pings, target.proxied).await?;
                    *unreachable.lock().expect("not poisoned") = nothing;
                    slots.put(3, findings);
                    anyhow::Ok(())
                },
            );
            plan.progress.quick_done(&h.url);
            main
        };
        let (main, _, _) = tokio::join!(
            quick,
            async {
                slots.put(
                    4,
                    match plan.idle {
                        Some(limit) => {
                            idle::check(&h, limit, plan.ping_every, &plan.progress).await
                        }
                        None => vec![Finding::skipped(
                            "idle",
                            "not measured (--long or --idle measures it)",
                        )],
                    },
                )
            },
            async {
                slots.put(
                    5,
                    vec![match &plan.probe {
                        Some(probe) => {
                            sizes::check(&h, probe, plan.max_message, &plan.progress).await
                        }
                        None => Finding::skipped(
                            "sizes",
                            "not measured (--sizes for an echo endpoint, --probe-message for others)",
                        ),
                    }],
                )
            },
        );
        main
    };
    let interrupted = tokio::select! {
        finished = checks => {
            finished?;
            false
        }
        _ = interrupt.wait_for(|interrupted| *interrupted) => true,
    };
    let findings = slots.take(&NAMES);
    let unreachable = *unreachable.lock().expect("not poisoned");
    let exit = if unreachable {
        exit::UNREACHABLE
    } else if findings.iter().any(|f| f.verdict == Verdict::Problem) {
        exit::PROBLEM
    } else if interrupted {
        exit::INTERRUPTED
    } else {
        exit::NO_PROBLEM
    };
    Ok(Report {
        url: h.url.clone(),
        handshake: if plan.plain { "plain" } else { "browser" },
        findings,
        exit,
        interrupted,
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

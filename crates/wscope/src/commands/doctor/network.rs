//! DNS and TCP: every address the host name has, and a TCP connection to
//! each, timed. `dial` stops at the first address that answers; a host
//! with one dead address out of four fails one connection in four, so
//! this check tries them all.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::Target;
use super::finding::{Finding, Verdict};
use crate::network::hosts::Hosts;

/// The `dns` and `tcp` findings for `target`, after `--connect-to` and
/// `--resolve`.
pub async fn check(target: &Target, hosts: Hosts<'_>, timeout: Duration) -> Vec<Finding> {
    if target.proxied {
        return vec![
            Finding::skipped("dns", "through --proxy: the proxy resolves the name"),
            Finding::skipped("tcp", "through --proxy: see the upgrade check"),
        ];
    }
    let (host, port) = hosts.route(&target.host, target.port);
    let routed = hosts.describe(&target.host, target.port);
    let (dns, addrs) = match (hosts.pinned(&host, port), host.parse::<IpAddr>()) {
        (Some(addrs), _) => (
            Finding::info(
                "dns",
                routed.clone().unwrap_or_default() + ": DNS not asked",
            ),
            addrs,
        ),
        (None, Ok(ip)) => (
            Finding::skipped(
                "dns",
                match &routed {
                    Some(routed) => format!("{routed}: nothing to resolve"),
                    None => format!("{ip} is an address: nothing to resolve"),
                },
            ),
            vec![SocketAddr::new(ip, port)],
        ),
        (None, Err(_)) => {
            let literal = host.as_str();
            let started = Instant::now();
            let looked_up =
                tokio::time::timeout(timeout, tokio::net::lookup_host((literal, port))).await;
            let elapsed = started.elapsed();
            match looked_up {
                Ok(Ok(addrs)) => {
                    let mut addrs: Vec<SocketAddr> = addrs.collect();
                    addrs.dedup();
                    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                    let v4 = addrs.iter().filter(|a| a.is_ipv4()).count();
                    let mut finding = Finding::ok(
                        "dns",
                        format!(
                            "{host} resolves to {} in {}: {}",
                            plural(addrs.len(), "address", "addresses"),
                            ms(elapsed),
                            list.join(", ")
                        ),
                    );
                    finding =
                        finding.detail(format!("{v4} IPv4 (A), {} IPv6 (AAAA)", addrs.len() - v4));
                    if let Some(routed) = &routed {
                        finding = finding.detail(routed.clone());
                    }
                    (finding, addrs)
                }
                Ok(Err(err)) => {
                    return vec![
                        Finding::new(
                            "dns",
                            Verdict::Problem,
                            format!("{host} does not resolve: {err}"),
                        )
                        .advice("check the host name for typos, and that this machine's DNS knows it (a private name needs the private resolver or VPN)"),
                        Finding::skipped("tcp", "no address to connect to"),
                    ];
                }
                Err(_) => {
                    return vec![
                        Finding::new(
                            "dns",
                            Verdict::Problem,
                            format!("no answer resolving {host} within {timeout:?}"),
                        )
                        .advice("this machine's DNS resolver does not answer: check /etc/resolv.conf or the network"),
                        Finding::skipped("tcp", "no address to connect to"),
                    ];
                }
            }
        }
    };
    let tries = addrs.clone().into_iter().map(|addr| async move {
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        (addr, started.elapsed(), result)
    });
    let results = join_all(tries).await;
    let mut failed = 0;
    let mut detail = Vec::new();
    let mut times = Vec::new();
    for (addr, elapsed, result) in &results {
        match result {
            Ok(Ok(_)) => {
                times.push(*elapsed);
                detail.push(format!("{addr}: connected in {}", ms(*elapsed)));
            }
            Ok(Err(err)) => {
                failed += 1;
                detail.push(format!("{addr}: {err}"));
            }
            Err(_) => {
                failed += 1;
                detail.push(format!("{addr}: no answer within {timeout:?}"));
            }
        }
    }
    let tcp = if failed == 0 {
        let slowest = times.iter().max().copied().unwrap_or_default();
        let mut finding = Finding::ok(
            "tcp",
            if results.len() == 1 {
                format!("{} connected in {}", results[0].0, ms(slowest))
            } else {
                format!(
                    "all {} addresses connected (slowest {})",
                    results.len(),
                    ms(slowest)
                )
            },
        );
        if results.len() > 1 {
            finding.detail = detail;
        }
        finding
    } else if failed == results.len() {
        let mut finding = Finding::new(
            "tcp",
            Verdict::Problem,
            format!(
                "no TCP connection to port {} at {}",
                port,
                plural(results.len(), "address", "addresses")
            ),
        )
        .advice("is the server running and listening on this port and address? A refused connection means nothing listens there; no answer means a firewall or the wrong address");
        finding.detail = detail;
        finding
    } else {
        let mut finding = Finding::new(
            "tcp",
            Verdict::Warning,
            format!(
                "{failed} of {} addresses refuse TCP connections on port {}",
                results.len(),
                port
            ),
        )
        .advice("clients that pick a dead address fail: remove it from DNS or bring its server back (IPv6 addresses with no listener are the usual case)");
        finding.detail = detail;
        finding
    };
    vec![dns, tcp]
}

/// Runs the futures concurrently and returns their outputs in order.
async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

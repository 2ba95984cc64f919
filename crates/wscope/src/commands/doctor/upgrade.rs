//! The upgrade and what it negotiated: the status and its diagnosis, the
//! intermediaries the response names, and the extensions and subprotocol
//! offered and answered.

use wscope_events::Head;
use wscope_proto::handshake::status;

use super::attempt::{Attempt, Stage};
use super::finding::{Finding, Verdict};
use crate::commands::explain;

/// Response headers that name something between the client and the
/// application: proxies, CDNs, load balancers.
const INTERMEDIARY_HEADERS: &[&str] = &[
    "via",
    "server",
    "x-cache",
    "x-served-by",
    "x-amz-cf-id",
    "cf-ray",
    "x-azure-ref",
    "x-varnish",
    "fly-request-id",
    "x-vercel-id",
    "akamai-grn",
    "x-forwarded-by",
];

fn header<'a>(head: &'a Head, name: &str) -> Option<&'a str> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The `upgrade`, `intermediaries`, `extensions` and `subprotocol`
/// findings for the main handshake.
pub fn check(attempt: &Attempt, proxied: bool) -> Vec<Finding> {
    let (request, response) = match attempt {
        Attempt::Open(_, open) => (&open.request, Some(&open.response)),
        Attempt::Refused(failed) => match &failed.request {
            Some(request) => (request, failed.response.as_ref()),
            None => return no_answer(&failed.diagnosis, Verdict::Problem),
        },
        Attempt::Failed { message, stage } => {
            // A failure an earlier check names is not named twice, except
            // through a proxy, where the tcp check cannot see it.
            let verdict = match stage {
                Stage::Connect if !proxied => Verdict::Skipped,
                Stage::Tls => Verdict::Skipped,
                _ => Verdict::Problem,
            };
            return no_answer(message, verdict);
        }
    };
    let Some(response) = response else {
        return no_answer("no response", Verdict::Problem);
    };
    let status_code: u16 = response
        .line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut findings = Vec::new();

    let offered_protocols = list(header(request, "Sec-WebSocket-Protocol"));
    let answered_protocol = header(response, "Sec-WebSocket-Protocol").map(str::trim);
    let offered_extensions = list(header(request, "Sec-WebSocket-Extensions"));
    let answered_extensions = list(header(response, "Sec-WebSocket-Extensions"));
    let protocol_invalid =
        answered_protocol.is_some_and(|p| !offered_protocols.iter().any(|o| o == p));
    let extension_name = |e: &String| e.split(';').next().unwrap_or("").trim().to_owned();
    let offered_names: Vec<String> = offered_extensions.iter().map(extension_name).collect();
    let extension_invalid = answered_extensions
        .iter()
        .any(|e| !offered_names.contains(&extension_name(e)));

    // The upgrade itself.
    let mut upgrade = match attempt {
        Attempt::Open(_, open) => Finding::ok(
            "upgrade",
            format!(
                "{} in {}",
                open.response.line,
                open.timings
                    .upgrade_us
                    .map(|us| format!("{:.1} ms", us as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into())
            ),
        ),
        Attempt::Refused(failed) if status_code == 101 => {
            if protocol_invalid || extension_invalid {
                // The negotiation findings below name it.
                Finding::ok(
                    "upgrade",
                    format!("{} (but see what it negotiated)", response.line),
                )
            } else {
                Finding::new(
                    "upgrade",
                    Verdict::Problem,
                    format!("{} but the answer is invalid: {}", response.line, failed.diagnosis),
                )
                .advice("the server's WebSocket library or a proxy rewrote the handshake answer: compare Sec-WebSocket-Accept, Upgrade and Connection with RFC 6455 section 4.2.2")
            }
        }
        Attempt::Refused(failed) => {
            let mut summary = format!(
                "refused: {} ({})",
                response.line,
                status::diagnose(status_code)
            );
            let mut advice = explain::upgrade_advice(status_code).to_owned();
            if let (300..=399, Some(location)) = (status_code, header(response, "Location")) {
                summary = format!("refused: {} to {location}", response.line);
                advice = format!("{advice} (Location: {location})");
            }
            if status_code == 403 {
                match header(request, "Origin") {
                    Some(origin) => summary.push_str(&format!(" (Origin sent: {origin})")),
                    None => summary.push_str(" (no Origin was sent; try --origin)"),
                }
            }
            let mut finding = Finding::new("upgrade", Verdict::Problem, summary).advice(advice);
            if !failed.body.is_empty() {
                // The first line is enough to recognise who answered.
                let first = failed.body.lines().map(str::trim).find(|l| !l.is_empty());
                let body: String = first.unwrap_or("").chars().take(200).collect();
                finding = finding.detail(format!("body: {body}"));
            }
            finding
        }
        Attempt::Failed { .. } => unreachable!("handled above"),
    };
    let mut head = vec![
        format!("> {}", request.line),
        format!("< {}", response.line),
    ];
    for (name, value) in &response.headers {
        head.push(format!("< {name}: {value}"));
    }
    head.append(&mut upgrade.detail);
    upgrade.detail = head;
    findings.push(upgrade);

    // Intermediaries named by the response.
    let named: Vec<String> = response
        .headers
        .iter()
        .filter(|(n, _)| {
            INTERMEDIARY_HEADERS
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
        })
        .map(|(n, v)| format!("{n}: {v}"))
        .collect();
    findings.push(if named.is_empty() {
        Finding::new(
            "intermediaries",
            Verdict::Info,
            "none named in the response (no Via, Server or CDN headers)",
        )
    } else {
        Finding::new("intermediaries", Verdict::Info, named.join("; "))
    });

    // Extensions.
    let upgraded = status_code == 101;
    findings.push(if !upgraded {
        Finding::skipped("extensions", "not upgraded")
    } else if extension_invalid {
        Finding::new(
            "extensions",
            Verdict::Problem,
            format!(
                "the server answered extensions nobody offered: {} (offered: {})",
                answered_extensions.join(", "),
                none_if_empty(&offered_extensions)
            ),
        )
        .advice("a server may only accept extensions the client offered (RFC 6455 section 9.1): clients fail this connection; fix the server's extension negotiation")
    } else if offered_extensions.is_empty() {
        Finding::ok("extensions", "none offered, none answered")
    } else if answered_extensions.is_empty() {
        Finding::new(
            "extensions",
            Verdict::Info,
            format!(
                "compression offered, not answered: {}",
                offered_names.first().cloned().unwrap_or_default()
            ),
        )
        .advice("the server does not compress, or an intermediary strips Sec-WebSocket-Extensions: try the server directly to tell which (compression saves bandwidth on text messages)")
    } else {
        Finding::ok(
            "extensions",
            format!("answered: {}", answered_extensions.join(", ")),
        )
    });

    // Subprotocol.
    findings.push(if !upgraded {
        Finding::skipped("subprotocol", "not upgraded")
    } else if protocol_invalid {
        Finding::new(
            "subprotocol",
            Verdict::Problem,
            format!(
                "the server chose {:?}, which was not offered (offered: {})",
                answered_protocol.unwrap_or(""),
                none_if_empty(&offered_protocols)
            ),
        )
        .advice("a server may only answer one of the subprotocols the client offered (RFC 6455 section 4.2.2): browsers fail this connection; offer it (--subprotocol) or fix the server")
    } else if offered_protocols.is_empty() {
        Finding::ok("subprotocol", "none offered, none answered")
    } else if let Some(protocol) = answered_protocol {
        Finding::ok(
            "subprotocol",
            format!("{protocol} (offered: {})", offered_protocols.join(", ")),
        )
    } else {
        Finding::new(
            "subprotocol",
            Verdict::Warning,
            format!(
                "offered {}, none chosen",
                offered_protocols.join(", ")
            ),
        )
        .advice("browsers fail a connection whose offered subprotocols were all declined: check the names the server supports")
    });
    findings
}

fn none_if_empty(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn no_answer(why: &str, verdict: Verdict) -> Vec<Finding> {
    let why = format!("no upgrade answer: {why}");
    let advice = if verdict == Verdict::Problem {
        "the server accepted the connection and did not answer the upgrade: is this port a WebSocket (HTTP) server, and ws:// vs wss:// right?"
    } else {
        ""
    };
    vec![
        Finding::new("upgrade", verdict, why).advice(advice),
        Finding::skipped("intermediaries", "no response"),
        Finding::skipped("extensions", "no response"),
        Finding::skipped("subprotocol", "no response"),
    ]
}

#[cfg(test)]
mod tests {
    use wscope_events::HandshakeFailed;

    use super::*;

    fn head(line: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            line: line.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn refused(request: Head, status: u16, response: Head) -> Attempt {
        Attempt::Refused(Box::new(HandshakeFailed {
            url: "ws://127.0.0.1:1/".to_owned(),
            client: None,
            request: Some(request),
            response: Some(response),
            status: Some(status),
            body: String::new(),
            upstream_unreachable: false,
            diagnosis: "refused".to_owned(),
        }))
    }

    fn verdicts(findings: &[Finding]) -> Vec<(&'static str, Verdict)> {
        findings.iter().map(|f| (f.check, f.verdict)).collect()
    }

    #[test]
    fn a_426_is_the_upgrade_that_did_not_pass_with_the_nginx_lines() {
        let request = head(
            "GET / HTTP/1.1",
            &[("Sec-WebSocket-Extensions", "permessage-deflate")],
        );
        let response = head("HTTP/1.1 426 Upgrade Required", &[("Via", "1.1 edge")]);
        let findings = check(&refused(request, 426, response), false);
        assert_eq!(
            verdicts(&findings),
            [
                ("upgrade", Verdict::Problem),
                ("intermediaries", Verdict::Info),
                ("extensions", Verdict::Skipped),
                ("subprotocol", Verdict::Skipped),
            ]
        );
        assert!(
            findings[0]
                .advice
                .contains("proxy_set_header Connection \"upgrade\";")
        );
        assert!(findings[1].summary.contains("Via: 1.1 edge"));
    }

    #[test]
    fn a_redirect_names_its_location() {
        let response = head(
            "HTTP/1.1 301 Moved Permanently",
            &[("Location", "wss://x.test/ws")],
        );
        let findings = check(&refused(head("GET / HTTP/1.1", &[]), 301, response), false);
        assert!(findings[0].summary.contains("wss://x.test/ws"));
        assert!(
            findings[0]
                .advice
                .contains("browsers do not follow redirects")
        );
        assert!(findings[0].advice.contains("Location: wss://x.test/ws"));
    }

    #[test]
    fn a_101_with_an_unoffered_subprotocol_or_extension_names_that_one() {
        let request = head("GET / HTTP/1.1", &[("Sec-WebSocket-Protocol", "chat")]);
        let response = head(
            "HTTP/1.1 101 Switching Protocols",
            &[
                ("Sec-WebSocket-Protocol", "other"),
                ("Sec-WebSocket-Extensions", "x-zip"),
            ],
        );
        let findings = check(&refused(request, 101, response), false);
        assert_eq!(
            verdicts(&findings),
            [
                ("upgrade", Verdict::Ok),
                ("intermediaries", Verdict::Info),
                ("extensions", Verdict::Problem),
                ("subprotocol", Verdict::Problem),
            ]
        );
    }

    #[test]
    fn a_connection_failure_is_left_to_the_network_checks_unless_proxied() {
        let failed = || Attempt::Failed {
            message: "refused".to_owned(),
            stage: Stage::Connect,
        };
        assert_eq!(check(&failed(), false)[0].verdict, Verdict::Skipped);
        assert_eq!(check(&failed(), true)[0].verdict, Verdict::Problem);
    }
}

//! `wscope explain CODE`: what a close code or an HTTP status (seen when a
//! handshake fails) means, what usually causes it, and what to check. The
//! texts are the ones `connect` prints, from `wscope-proto`.

use wscope_proto::CloseCode;
use wscope_proto::handshake::response::reason_phrase;
use wscope_proto::handshake::status;

use crate::cli::ExplainArgs;

/// Prints the explanation; returns the exit status (2 for a number that is
/// neither a close code nor an HTTP status).
pub fn run(args: ExplainArgs) -> i32 {
    let text = args.code.trim();
    let Ok(code) = text.parse::<u16>() else {
        eprintln!(
            "wscope: {text:?} is not a number; try `wscope explain 1006` or `wscope explain 403`"
        );
        return 2;
    };
    let explanation = match code {
        100..=599 => http(code),
        1000..=4999 => close(CloseCode(code)),
        _ if code < 1000 => {
            eprintln!(
                "wscope: {code} is neither an HTTP status (100-599) nor a close code (1000-4999)"
            );
            return 2;
        }
        _ => close(CloseCode(code)),
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "code": code,
                "kind": explanation.kind,
                "name": explanation.name,
                "meaning": explanation.meaning,
                "on_the_wire": explanation.wire,
                "advice": explanation.advice,
            })
        );
    } else {
        println!("{code} {} ({})", explanation.name, explanation.kind);
        println!("  meaning:     {}", explanation.meaning);
        if let Some(wire) = explanation.wire {
            println!("  on the wire: {wire}");
        }
        println!("  check:       {}", explanation.advice);
    }
    0
}

struct Explanation {
    kind: &'static str,
    name: String,
    meaning: String,
    wire: Option<&'static str>,
    advice: String,
}

fn close(code: CloseCode) -> Explanation {
    let wire = if code.is_local_only() {
        "never sent in a close frame; an endpoint reports it locally"
    } else if code.is_valid_on_wire() {
        "may be sent in a close frame"
    } else {
        "not allowed in a close frame; receiving it is a protocol error"
    };
    Explanation {
        kind: "WebSocket close code",
        name: code.name().to_owned(),
        meaning: code.meaning().to_owned(),
        wire: Some(wire),
        advice: code.advice().to_owned(),
    }
}

fn http(code: u16) -> Explanation {
    Explanation {
        kind: "HTTP status answering a WebSocket upgrade",
        name: reason_phrase(code).to_owned(),
        meaning: status::diagnose(code).to_owned(),
        wire: None,
        advice: upgrade_advice(code).to_owned(),
    }
}

/// What to change when `code` answers a WebSocket upgrade: the words
/// `explain` prints and `doctor` puts under a refused upgrade.
pub fn upgrade_advice(code: u16) -> &'static str {
    match code {
        101 => "nothing: the connection upgraded",
        403 => {
            "send the Origin the server allows (connect --origin), check credentials, and read the response body"
        }
        401 => "add credentials: connect -H 'Authorization: Bearer ...' or --auth user:pass",
        200..=299 | 400 | 426 => PASS_THE_UPGRADE,
        300..=399 => REDIRECT,
        404 => "check the path, and that the proxy in front forwards it to the WebSocket route",
        _ => "read the response body and the server's (or proxy's) logs",
    }
}

/// The fix for a proxy that does not pass the upgrade through, in the
/// lines people paste.
pub const PASS_THE_UPGRADE: &str = "something in front does not pass the Upgrade through: compare the request headers that left with those that arrived, and try the server directly. nginx needs, where it proxies the WebSocket path: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; HAProxy passes upgrades in mode http by itself: check that no rule deletes Upgrade or Connection and that the backend is the WebSocket server, and set timeout tunnel for long-lived connections";

/// Why a redirect breaks a WebSocket, and the fix.
pub const REDIRECT: &str = "browsers do not follow redirects for WebSockets: use the final URL (the Location header; ws:// to wss:// is the usual one)";

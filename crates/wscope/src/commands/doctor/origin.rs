//! Origin policy: the same handshake with the app's own Origin (the main
//! handshake, when `--origin` is given), with none, and with a foreign
//! one. Browsers send the page's Origin and nothing else stops another
//! site's page from opening the socket with the user's cookies
//! (cross-site WebSocket hijacking), so a server that uses cookies must
//! check it.

use wscope_events::Head;

use super::attempt::{Attempt, attempt};
use super::finding::{Finding, Verdict};
use crate::sources::dial::HandshakeArgs;

/// The Origin no real site has: `.invalid` never resolves (RFC 2606).
pub const FOREIGN_ORIGIN: &str = "https://wscope-foreign.invalid";

/// What one handshake answered, for comparing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Upgraded,
    Refused(u16),
    Silent,
}

impl Answer {
    fn of(attempt: &Attempt) -> Answer {
        match attempt {
            Attempt::Open(..) => Answer::Upgraded,
            // A 101 whose negotiation is invalid still accepted the Origin.
            Attempt::Refused(failed) if failed.status == Some(101) => Answer::Upgraded,
            Attempt::Refused(failed) => failed.status.map_or(Answer::Silent, Answer::Refused),
            Attempt::Failed { .. } => Answer::Silent,
        }
    }

    fn words(self) -> String {
        match self {
            Answer::Upgraded => "accepted".to_owned(),
            Answer::Refused(status) => format!("refused ({status})"),
            Answer::Silent => "no answer".to_owned(),
        }
    }
}

fn sets_cookie(attempt: &Attempt) -> bool {
    let response: Option<&Head> = match attempt {
        Attempt::Open(_, open) => Some(&open.response),
        Attempt::Refused(failed) => failed.response.as_ref(),
        Attempt::Failed { .. } => None,
    };
    response.is_some_and(|head| {
        head.headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("Set-Cookie"))
    })
}

/// Makes the handshakes without an Origin and with a foreign one and
/// compares them with `main` (made with `h.origin`); the `origin` finding.
pub async fn check(h: &HandshakeArgs, main: &Attempt) -> Finding {
    let main_answer = Answer::of(main);
    if main_answer == Answer::Silent {
        return Finding::skipped("origin", "the upgrade got no answer");
    }
    let mut without = h.clone();
    without.origin = None;
    let mut foreign = h.clone();
    foreign.origin = Some(FOREIGN_ORIGIN.to_owned());
    let (without_attempt, foreign_attempt) = tokio::join!(
        async {
            if h.origin.is_none() {
                None
            } else {
                attempt(&without).await.ok()
            }
        },
        attempt(&foreign)
    );
    let Ok(foreign_attempt) = foreign_attempt else {
        return Finding::skipped("origin", "the foreign-origin handshake could not be made");
    };
    let without_answer = match &without_attempt {
        Some(a) => Answer::of(a),
        None => main_answer,
    };
    let foreign_answer = Answer::of(&foreign_attempt);
    let cookies = h.headers.iter().any(|header| {
        header
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("cookie:")
    }) || sets_cookie(main)
        || sets_cookie(&foreign_attempt)
        || without_attempt.as_ref().is_some_and(sets_cookie);
    close_quietly(foreign_attempt).await;
    if let Some(a) = without_attempt {
        close_quietly(a).await;
    }

    let mut detail = Vec::new();
    if let Some(origin) = &h.origin {
        detail.push(format!("Origin: {origin} → {}", main_answer.words()));
    }
    detail.push(format!("no Origin → {}", without_answer.words()));
    detail.push(format!(
        "Origin: {FOREIGN_ORIGIN} → {}",
        foreign_answer.words()
    ));

    let finding = match (&h.origin, main_answer, foreign_answer) {
        (Some(origin), Answer::Refused(status), Answer::Upgraded) => Finding::new(
            "origin",
            Verdict::Problem,
            format!("your Origin {origin} is refused ({status}) while a foreign one is accepted"),
        )
        .advice("the server's origin check is upside down or keyed on something else (a header, a cookie): look at its allow-list"),
        (Some(origin), Answer::Refused(status), _) if without_answer == Answer::Upgraded => {
            Finding::new(
                "origin",
                Verdict::Problem,
                format!("your Origin {origin} is refused ({status}); without an Origin the upgrade is accepted"),
            )
            .advice(format!("add {origin} to the server's allowed origins (exactly: scheme, host and port)"))
        }
        (Some(origin), Answer::Refused(403), _) => Finding::new(
            "origin",
            Verdict::Problem,
            format!("the upgrade is refused (403) with your Origin {origin}, and with every other"),
        )
        .advice(format!("if the app runs at {origin}, add it to the server's allowed origins; else the 403 is about credentials")),
        (_, Answer::Refused(_), _) => Finding::new(
            "origin",
            Verdict::Info,
            "the upgrade is refused whatever the Origin: not an origin policy",
        ),
        (_, Answer::Upgraded, Answer::Upgraded) if cookies => Finding::new(
            "origin",
            Verdict::Warning,
            "a foreign Origin is accepted and the handshake carries cookies: cross-site WebSocket hijacking",
        )
        .advice("any web page can open this socket with the visitor's cookies and act as them: check the Origin header against an allow-list in the upgrade handler, or authenticate with a token sent after connecting"),
        (_, Answer::Upgraded, Answer::Upgraded) => Finding::new(
            "origin",
            Verdict::Info,
            "any Origin is accepted (no cookies seen, so no hijacking risk from that)",
        )
        .advice("if this endpoint ever authenticates with cookies, check the Origin header against an allow-list"),
        (_, Answer::Upgraded, refused) => Finding::ok(
            "origin",
            format!(
                "a foreign Origin is {}; {}",
                refused.words(),
                match h.origin {
                    Some(ref origin) => format!("{origin} is accepted"),
                    None => "no Origin is accepted (non-browser clients)".to_owned(),
                }
            ),
        ),
        (_, Answer::Silent, _) => unreachable!("returned above"),
    };
    let mut finding = finding;
    finding.detail = detail;
    finding
}

/// Ends an upgraded attempt politely, so the server logs no error for it.
async fn close_quietly(attempt: Attempt) {
    if let Attempt::Open(mut conn, _) = attempt {
        super::attempt::close(&mut conn).await;
    }
}

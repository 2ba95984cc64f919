//! Secrets in handshake headers, kept out of recordings.
//!
//! Record files get shared in bug reports; a bearer token or session cookie
//! in one is a leak. These headers are replaced with a marker unless the
//! user asks for raw headers (`--no-redact`).

use crate::{Event, EventKind};

/// Headers whose values are secrets.
pub const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// What a redacted value is replaced with.
pub const MARKER: &str = "<redacted>";

/// Whether `name` is a sensitive header (ASCII case-insensitive).
pub fn is_sensitive(name: &str) -> bool {
    SENSITIVE.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Replaces the values of sensitive headers in place.
pub fn redact_headers(headers: &mut [(String, String)]) {
    for (name, value) in headers.iter_mut() {
        if is_sensitive(name) {
            *value = MARKER.to_owned();
        }
    }
}

/// Whether `event` carries handshake headers (and so may hold secrets).
pub fn carries_headers(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::Open(_) | EventKind::HandshakeFailed(_)
    )
}

/// Redacts the handshake headers an event carries.
pub fn redact_event(event: &mut Event) {
    match &mut event.kind {
        EventKind::Open(open) => {
            redact_headers(&mut open.request.headers);
            redact_headers(&mut open.response.headers);
        }
        EventKind::HandshakeFailed(failed) => {
            for head in [&mut failed.request, &mut failed.response]
                .into_iter()
                .flatten()
            {
                redact_headers(&mut head.headers);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_only_secrets() {
        let mut headers = vec![
            ("AUTHORIZATION".to_owned(), "Bearer abc".to_owned()),
            ("Cookie".to_owned(), "sid=1".to_owned()),
            ("Origin".to_owned(), "http://x".to_owned()),
        ];
        redact_headers(&mut headers);
        assert_eq!(headers[0].1, MARKER);
        assert_eq!(headers[1].1, MARKER);
        assert_eq!(headers[2].1, "http://x");
    }
}

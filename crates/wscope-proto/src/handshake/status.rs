//! What an HTTP status means when it answers a WebSocket upgrade: the
//! single most common question when a handshake fails.

/// A plain-language diagnosis of `status` as the answer to an upgrade
/// request: what it usually means and what to check.
// Specific statuses come first and their class after as the fallback: the
// overlap is the point.
#[allow(clippy::match_overlapping_arm)]
pub fn diagnose(status: u16) -> &'static str {
    match status {
        101 => "the upgrade succeeded",
        200..=299 => {
            "the server answered like a plain HTTP request: something in front of it (a proxy, CDN or load balancer) did not pass the Upgrade through, or this URL is not a WebSocket endpoint"
        }
        301 | 302 | 303 | 307 | 308 => {
            "a redirect: WebSocket clients do not follow redirects; connect to the Location it names (often http→https, i.e. ws→wss, or a trailing slash)"
        }
        300..=399 => "a redirect-like answer, which WebSocket clients do not follow",
        400 => {
            "bad request: the server (or a proxy) found the upgrade request malformed; check the Sec-WebSocket-* headers and that nothing rewrites Connection/Upgrade"
        }
        401 => {
            "authentication required: send credentials (an Authorization header, a token in the URL, or a cookie)"
        }
        403 => {
            "forbidden: usually the Origin is not on the server's allow-list, or the credentials were rejected"
        }
        404 => "not found: the path is wrong, or the WebSocket route is not mounted at it",
        405 => "method not allowed: the endpoint does not take GET upgrades at this path",
        426 => {
            "upgrade required: the server wants a different protocol version (see Sec-WebSocket-Version) or the Upgrade header did not arrive"
        }
        429 => "too many requests: the server is rate-limiting connections; back off and retry",
        431 => "request headers too large: trim cookies or custom headers",
        500 => "the server failed while handling the upgrade: look at its logs",
        502 => {
            "bad gateway: a proxy could not reach the WebSocket server behind it, or the server closed the upgrade"
        }
        503 => "service unavailable: the server or its proxy is overloaded or down for maintenance",
        504 => {
            "gateway timeout: a proxy gave up waiting for the WebSocket server to answer the upgrade"
        }
        400..=499 => {
            "the server refused the request (a client-side problem: path, headers or credentials)"
        }
        500..=599 => "the server or a proxy in front of it failed",
        _ => "an unexpected status for a WebSocket upgrade",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_suspects_are_explained() {
        assert!(diagnose(403).contains("Origin"));
        assert!(diagnose(200).contains("Upgrade"));
        assert!(diagnose(302).contains("redirect"));
        assert!(diagnose(404).contains("path"));
        for status in 0..1000 {
            assert!(!diagnose(status).is_empty());
        }
    }
}

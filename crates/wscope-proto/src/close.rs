//! Close codes and close frame payloads (RFC 6455 sections 5.5.1, 7.4).
//!
//! A debugger's most common answer is "what does this close code mean?", so
//! every registered code carries a name and a plain-language explanation of
//! what usually causes it.

use std::fmt;

use crate::Violation;

/// A close status code. Any `u16` can be on the wire; [`CloseCode::is_valid_on_wire`]
/// says whether an endpoint may send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether an endpoint may put this code in a close frame (section 7.4.1
    /// and 7.4.2, plus the IANA registrations 1012-1014). 1005, 1006 and
    /// 1015 are reserved for reporting and must never be sent.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The registered name, or the range the code falls in.
    pub fn name(self) -> &'static str {
        match self.0 {
            1000 => "Normal Closure",
            1001 => "Going Away",
            1002 => "Protocol Error",
            1003 => "Unsupported Data",
            1004 => "Reserved",
            1005 => "No Status Received",
            1006 => "Abnormal Closure",
            1007 => "Invalid Frame Payload Data",
            1008 => "Policy Violation",
            1009 => "Message Too Big",
            1010 => "Mandatory Extension",
            1011 => "Internal Error",
            1012 => "Service Restart",
            1013 => "Try Again Later",
            1014 => "Bad Gateway",
            1015 => "TLS Handshake",
            0..=999 => "Invalid (below 1000)",
            1016..=2999 => "Reserved for the WebSocket protocol",
            3000..=3999 => "Registered (libraries, frameworks, applications)",
            4000..=4999 => "Private use (application-defined)",
            _ => "Invalid (above 4999)",
        }
    }

    /// What the code usually means in practice, for a person debugging.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            1000 => "the connection did what it was for and was closed on purpose",
            1001 => {
                "the endpoint is going away: a server shutting down or a browser leaving the page"
            }
            1002 => "the peer received a frame that breaks the WebSocket protocol",
            1003 => {
                "the peer received a kind of data it cannot accept (e.g. binary when it only takes text)"
            }
            1004 => "reserved; no endpoint should send it",
            1005 => {
                "the close frame carried no status code (never sent on the wire; reported locally)"
            }
            1006 => {
                "the connection dropped without a close frame: a crash, a network cut, a proxy or load balancer killing it, or a failed TLS/upgrade (never sent on the wire)"
            }
            1007 => {
                "a message's data was inconsistent with its type, usually invalid UTF-8 in a text message"
            }
            1008 => {
                "the message violated the endpoint's policy (a generic refusal when no other code fits)"
            }
            1009 => "a message was too big for the endpoint to process",
            1010 => "the client expected the server to negotiate an extension it did not",
            1011 => {
                "the server hit an unexpected condition (an internal error) while handling the connection"
            }
            1012 => "the server is restarting; reconnecting later should work",
            1013 => "the server is overloaded or temporarily unable to serve; try again later",
            1014 => "a gateway or proxy got an invalid response from the upstream server",
            1015 => {
                "the TLS handshake failed, e.g. the certificate could not be verified (never sent on the wire)"
            }
            0..=999 => "not a valid close code",
            1016..=2999 => "reserved for future WebSocket extensions; not valid on the wire today",
            3000..=3999 => "defined by a library, framework or application registered with IANA",
            4000..=4999 => "defined privately by the application; look it up in its documentation",
            _ => "not a valid close code",
        }
    }
}

impl CloseCode {
    /// Whether the code is only ever reported locally (1005, 1006, 1015):
    /// no endpoint puts it in a close frame.
    pub fn is_local_only(self) -> bool {
        matches!(self.0, 1005 | 1006 | 1015)
    }

    /// Typical causes and what to check, for a person debugging.
    pub fn advice(self) -> &'static str {
        match self.0 {
            1000 => {
                "nothing is wrong; if the close was unexpected, look at which side sent it and why its code path closes"
            }
            1001 => {
                "the server restarted or deployed, a load balancer drained the connection, or a browser tab navigated away; clients should reconnect with backoff"
            }
            1002 => {
                "a bug in one side's framing: masking, reserved bits, fragmentation or control frames; record the frames (wscope connect --record) and look for violations"
            }
            1003 => {
                "a text-only endpoint got binary (or the reverse); check the message type the client sends"
            }
            1005 => {
                "the peer sent a close frame with no code; that is legal, but says nothing about why"
            }
            1006 => {
                "look for whatever dropped the TCP connection: a crash or restart, an idle timeout in a proxy or load balancer (often 60 s), a network change, a failed TLS handshake or upgrade; send pings to keep idle connections alive"
            }
            1007 => {
                "a text message was not valid UTF-8 (often binary data sent as text, or a string cut in the middle of a character)"
            }
            1008 => {
                "the server's own rules refused the message or the client: authentication, rate limits, message content; look at the reason and the server's logs"
            }
            1009 => {
                "a message exceeded the peer's size limit; raise the limit or split the message"
            }
            1010 => {
                "the client requires an extension (e.g. permessage-deflate) the server did not accept; check Sec-WebSocket-Extensions in the handshake"
            }
            1011 => {
                "the server threw an error while handling a message; look at the server's logs around the close time"
            }
            1012 => "the server is restarting; reconnect after a short delay",
            1013 => "the server is overloaded or rate-limiting; reconnect with exponential backoff",
            1014 => {
                "a gateway or proxy got a bad answer from the server behind it; check the upstream's health"
            }
            1015 => {
                "the TLS handshake failed: certificate not trusted, wrong host name, expired, or a protocol mismatch"
            }
            3000..=3999 => {
                "see the documentation of the library or framework that registered it (IANA WebSocket close code registry)"
            }
            4000..=4999 => {
                "the application defined it; look it up in the application's source or documentation, and read the reason text"
            }
            _ => {
                "an endpoint that receives this code should fail the connection with 1002; look for a bug in the side that sent it"
            }
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// The payload of a close frame: nothing, or a code and a UTF-8 reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosePayload {
    pub code: Option<CloseCode>,
    /// The reason as sent. Lossily decoded when it was not UTF-8 (that case
    /// is also reported as a violation by [`ClosePayload::parse`]).
    pub reason: String,
}

impl ClosePayload {
    /// Reads an (unmasked) close payload, leniently: the result is what could
    /// be read plus what is wrong with it.
    pub fn parse(payload: &[u8]) -> (ClosePayload, Option<Violation>) {
        match payload.len() {
            0 => (
                ClosePayload {
                    code: None,
                    reason: String::new(),
                },
                None,
            ),
            1 => (
                ClosePayload {
                    code: None,
                    reason: String::new(),
                },
                Some(Violation::ClosePayloadTooShort),
            ),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                let (reason, violation) = match std::str::from_utf8(&payload[2..]) {
                    Ok(reason) => (reason.to_owned(), None),
                    Err(_) => (
                        String::from_utf8_lossy(&payload[2..]).into_owned(),
                        Some(Violation::InvalidCloseReason),
                    ),
                };
                let violation = if code.is_valid_on_wire() {
                    violation
                } else {
                    Some(Violation::InvalidCloseCode(code.0))
                };
                (
                    ClosePayload {
                        code: Some(code),
                        reason,
                    },
                    violation,
                )
            }
        }
    }

    /// Encodes a close payload. The reason is cut (at a character boundary)
    /// so the payload fits the 125-byte control frame limit.
    pub fn encode(code: Option<CloseCode>, reason: &str, out: &mut Vec<u8>) {
        let Some(code) = code else { return };
        out.extend_from_slice(&code.0.to_be_bytes());
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        out.extend_from_slice(&reason.as_bytes()[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes_match_autobahn_lists() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn every_code_has_words() {
        for code in 0..=u16::MAX {
            assert!(!CloseCode(code).name().is_empty());
            assert!(!CloseCode(code).meaning().is_empty());
        }
    }

    #[test]
    fn parse_and_encode() {
        let mut buf = Vec::new();
        ClosePayload::encode(Some(CloseCode::GOING_AWAY), "bye", &mut buf);
        let (p, v) = ClosePayload::parse(&buf);
        assert_eq!(p.code, Some(CloseCode::GOING_AWAY));
        assert_eq!(p.reason, "bye");
        assert!(v.is_none());
        assert_eq!(
            ClosePayload::parse(&[3]).1,
            Some(Violation::ClosePayloadTooShort)
        );
        assert_eq!(
            ClosePayload::parse(&[0x03, 0xEC]).1,
            Some(Violation::InvalidCloseCode(1004))
        );
        assert_eq!(
            ClosePayload::parse(&[0x03, 0xE8, 0xFF]).1,
            Some(Violation::InvalidCloseReason)
        );
    }

    #[test]
    fn long_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100);
        let mut buf = Vec::new();
        ClosePayload::encode(Some(CloseCode::NORMAL), &reason, &mut buf);
        assert!(buf.len() <= 125);
        assert!(std::str::from_utf8(&buf[2..]).is_ok());
    }
}

//! The client's side of a cleartext HTTP/2 connection, walked frame by
//! frame for an RFC 8441 extended CONNECT: a HEADERS frame whose header
//! block carries the `:protocol` pseudo-header with the value `websocket`.
//!
//! The header block is HPACK-compressed, but `:protocol` is not in HPACK's
//! static table, so the first extended CONNECT of a connection carries it
//! as a literal name — written plain or Huffman-coded (RFC 7541 Appendix
//! B), as is its value. Both forms are looked for, and only inside HEADERS
//! and CONTINUATION frames: a path or a body that says "websocket" is not
//! an extended CONNECT.

const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

const PROTOCOL: [&[u8]; 2] = [b":protocol", &[0xb9, 0x5d, 0x87, 0x49, 0xc8, 0x7a, 0x3f]];
const WEBSOCKET: [&[u8]; 2] = [b"websocket", &[0xf0, 0x58, 0xd0, 0x72, 0x75, 0x2a, 0x7f]];

/// Frames the client sent, not yet whole.
#[derive(Debug, Default)]
pub struct ExtendedConnect {
    buf: Vec<u8>,
    preface_seen: bool,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl ExtendedConnect {
    /// Takes the client's next bytes; true once an extended CONNECT to
    /// `websocket` went by.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        if !self.preface_seen {
            if self.buf.len() < PREFACE_LEN {
                return false;
            }
            self.preface_seen = true;
            at = PREFACE_LEN;
        }
        let mut found = false;
        while let Some(head) = self.buf.get(at..at + 9) {
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let (kind, flags) = (head[3], head[4]);
            let Some(payload) = self.buf.get(at + 9..at + 9 + len) else {
                break;
            };
            if kind == HEADERS || kind == CONTINUATION {
                let block = header_block(kind, flags, payload);
                if PROTOCOL.iter().any(|p| contains(block, p))
                    && WEBSOCKET.iter().any(|w| contains(block, w))
                {
                    found = true;
                    break;
                }
            }
            at += 9 + len;
        }
        self.buf.drain(..at.min(self.buf.len()));
        found
    }
}

/// The header block fragment of a HEADERS or CONTINUATION frame's payload.
fn header_block(kind: u8, flags: u8, payload: &[u8]) -> &[u8] {
    let mut block = payload;
    if kind != HEADERS {
        return block;
    }
    if flags & PADDED != 0 {
        let Some((&pad, rest)) = block.split_first() else {
            return &[];
        };
        block = rest
            .get(..rest.len().saturating_sub(usize::from(pad)))
            .unwrap_or(&[]);
    }
    if flags & PRIORITY != 0 {
        block = block.get(5..).unwrap_or(&[]);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        out.extend_from_slice(payload);
        out
    }

    fn stream(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(0x4, 0, &[]));
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn finds_protocol_websocket_in_headers_only() {
        // Literal name and value, as a minimal HPACK literal would carry them.
        let block = [&[0x00, 0x09][..], b":protocol", &[0x09], b"websocket"].concat();
        let all = stream(&[frame(HEADERS, 0x4, &block)]);
        // Fed a byte at a time: frames cut anywhere.
        let mut walker = ExtendedConnect::default();
        assert!(all.iter().any(|b| walker.feed(std::slice::from_ref(b))));

        // Huffman-coded, behind padding and a priority.
        let block = [&[0x00, 0x87][..], PROTOCOL[1], &[0x87], WEBSOCKET[1]].concat();
        let payload = [&[2u8][..], &[0, 0, 0, 0, 16], &block, &[0, 0]].concat();
        let mut walker = ExtendedConnect::default();
        assert!(walker.feed(&stream(&[frame(
            HEADERS,
            PADDED | PRIORITY | 0x4,
            &payload
        )])));

        // A path that says websocket, and a body that says both: no.
        let path = [&[0x04, 0x0a][..], b"/websocket"].concat();
        let body = [&b":protocol"[..], b"websocket"].concat();
        let mut walker = ExtendedConnect::default();
        assert!(!walker.feed(&stream(&[frame(HEADERS, 0x4, &path), frame(0x0, 0, &body)])));
    }
}

//! What can be read of a TLS connection without its keys: the server name
//! (SNI) and the protocols offered (ALPN) in the client's hello.

/// What a ClientHello says in the clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
}

/// Whether `bytes` start like a TLS handshake record (a ClientHello).
pub fn looks_like_handshake(bytes: &[u8]) -> bool {
    matches!(bytes, [0x16, 0x03, 0x00..=0x04, ..])
}

/// Whether `bytes` start like any TLS record (mid-connection).
pub fn looks_like_record(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// One end of a TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// Which end sent `bytes`, the first a capture holds of one direction of a
/// TLS connection whose start it missed, when their first record says so:
/// a handshake message in the clear that only one end sends (RFC 8446 §4,
/// RFC 5246 §7.4). Encrypted records, alerts and change_cipher_spec say
/// nothing. An encrypted handshake record (TLS 1.2's Finished) could look
/// like any type; its message length would then be random, so the message
/// must fit in its record.
pub fn sender(bytes: &[u8]) -> Option<Sender> {
    let [0x16, 0x03, 0x00..=0x04, r0, r1, kind, l0, l1, l2, ..] = *bytes else {
        return None;
    };
    let record_len = usize::from(u16::from_be_bytes([r0, r1]));
    let message_len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    if message_len + 4 > record_len {
        return None;
    }
    match kind {
        // client_hello, client_key_exchange
        1 | 16 => Some(Sender::Client),
        // server_hello (and TLS 1.3's HelloRetryRequest), TLS 1.2's
        // new_session_ticket, server_key_exchange, server_hello_done
        2 | 4 | 12 | 14 => Some(Sender::Server),
        _ => None,
    }
}

/// The result of reading the start of a client's stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Hello(ClientHello),
    /// The first record is not complete yet.
    NeedMore,
    /// Not a ClientHello after all.
    Invalid,
}

/// Reads the ClientHello in the first record of `bytes`.
pub fn client_hello(bytes: &[u8]) -> Parsed {
    if bytes.len() < 5 {
        return Parsed::NeedMore;
    }
    let record_len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    if bytes.len() < 5 + record_len {
        return Parsed::NeedMore;
    }
    let mut r = Reader(&bytes[5..5 + record_len]);
    parse(&mut r).map_or(Parsed::Invalid, Parsed::Hello)
}

/// Reads TLS's length-prefixed structures (RFC 8446 §3), failing softly.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    pub(crate) fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    pub(crate) fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = self.u8()?;
        self.take(n).map(Reader)
    }
    pub(crate) fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = self.u16()?;
        self.take(n).map(Reader)
    }
    /// A hello's extensions as (type, body), as far as they can be read.
    pub(crate) fn extensions(&mut self) -> Vec<(usize, &'a [u8])> {
        let mut all = Vec::new();
        let Some(mut list) = self.vec16() else {
            return all;
        };
        while let (Some(kind), Some(body)) = (list.u16(), list.vec16()) {
            all.push((kind, body.0));
        }
        all
    }
}

fn parse(r: &mut Reader<'_>) -> Option<ClientHello> {
    // Handshake header: type 1 (client_hello), 24-bit length; the body may
    // continue in the next record, so only what is here is read.
    if r.u8()? != 1 {
        return None;
    }
    r.take(3)?;
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut hello = ClientHello::default();
    let Some(mut extensions) = r.vec16() else {
        return Some(hello);
    };
    while let (Some(kind), Some(mut body)) = (extensions.u16(), extensions.vec16()) {
        match kind {
            0 => {
                // server_name: a list of (type, name); type 0 is a host name.
                let mut list = body.vec16()?;
                while let (Some(name_type), Some(name)) = (list.u8(), list.vec16()) {
                    if name_type == 0 {
                        hello.sni = Some(String::from_utf8_lossy(name.0).into_owned());
                    }
                }
            }
            16 => {
                let mut list = body.vec16()?;
                while let Some(proto) = list.vec8() {
                    hello
                        .alpn
                        .push(String::from_utf8_lossy(proto.0).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello with SNI `example.test` and ALPN `h2`, `http/1.1`.
    pub(crate) fn hello() -> Vec<u8> {
        let mut ext = Vec::new();
        let name = b"example.test";
        let mut sni = Vec::new();
        sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni);
        let alpn = [&[2u8][..], b"h2", &[8], b"http/1.1"].concat();
        ext.extend_from_slice(&[0, 16]);
        ext.extend_from_slice(&((alpn.len() + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(alpn.len() as u16).to_be_bytes());
        ext.extend_from_slice(&alpn);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut record = vec![0x16, 3, 1];
        record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        record.extend_from_slice(&hs);
        record
    }

    #[test]
    fn reads_sni_and_alpn() {
        let bytes = hello();
        assert!(looks_like_handshake(&bytes));
        assert_eq!(client_hello(&bytes[..20]), Parsed::NeedMore);
        assert_eq!(
            client_hello(&bytes),
            Parsed::Hello(ClientHello {
                sni: Some("example.test".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            })
        );
        let mut bad = bytes.clone();
        bad[5] = 2;
        assert_eq!(client_hello(&bad), Parsed::Invalid);
    }

    #[test]
    fn tells_the_sender_by_the_handshake_message() {
        let hello = hello();
        assert_eq!(sender(&hello), Some(Sender::Client));
        // A ServerHello record: type 2, a 38-byte body.
        let server_hello = [&[0x16, 3, 3, 0, 42, 2, 0, 0, 38][..], &[0; 38]].concat();
        assert_eq!(sender(&server_hello), Some(Sender::Server));
        assert_eq!(sender(&server_hello[..7]), None, "too short to tell");
        // Change cipher spec and application data: either end sends them.
        assert_eq!(sender(&[0x14, 3, 3, 0, 1, 1]), None);
        assert_eq!(sender(&[0x17, 3, 3, 0, 40, 1, 0, 0, 2, 0, 0]), None);
        // An encrypted handshake record whose first byte happens to be 2:
        // the "length" after it does not fit the record.
        assert_eq!(sender(&[0x16, 3, 3, 0, 40, 2, 0x9c, 0x41, 0x07]), None);
    }
}

//! The connection table: packets in, events out.
//!
//! [`Decoder`] takes packets in capture order, finds each one's TCP
//! connection (by its two addresses, either way round), and lets the
//! connection turn its bytes into events (`conn.rs`). Connection ids are
//! handed out in the order connections become worth reporting, so the same
//! capture always gives the same ids. At the end, [`Decoder::finish`]
//! reports the connections still open, in id order.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use wscope_events::{Direction, Event, EventKind, redact};

use crate::conn::Conn;
use crate::ip::{IpLayer, Segment};
use crate::keylog::KeyLog;
use crate::link;
use crate::packets::{Packet, Problem};

/// How events are built.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Payload bytes kept per frame and message (the true length is kept).
    pub max_payload: usize,
    /// Report every data frame, not only control frames and messages.
    pub frames: bool,
    /// Replace secrets with wscope's default redaction rules (headers,
    /// query parameters, JSON fields; `wscope_events::redact`).
    pub redact: bool,
    /// Keep binary payloads. A reader that only counts them
    /// (`read --stats`) saves copying them.
    pub binary: bool,
    /// TLS secrets may still arrive (a key log followed while capturing
    /// live): encrypted records wait for them instead of being given up.
    pub keys_may_arrive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_payload: 64 * 1024,
            frames: true,
            redact: true,
            binary: true,
            keys_may_arrive: false,
        }
    }
}

/// What a capture held, for the line printed at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub packets: u64,
    pub tcp_connections: u64,
    pub websocket: u64,
    pub handshake_failed: u64,
    pub handshake_missing: u64,
    pub tls: u64,
    /// TLS connections decrypted with a key log.
    pub tls_decrypted: u64,
    /// Some of the TLS server names seen.
    pub tls_names: Vec<String>,
    pub http2: u64,
    /// HTTP/2 connections seen opening a WebSocket (RFC 8441).
    pub websocket_over_http2: u64,
    pub http_without_upgrade: u64,
    pub frames: u64,
    pub messages: u64,
    pub gaps: u64,
    pub problems: u64,
}

/// What a connection needs from the decoder while it works.
pub struct Ctx<'a> {
    pub options: &'a Options,
    pub keys: &'a mut KeyLog,
    pub summary: &'a mut Summary,
    out: &'a mut Vec<Event>,
    next_conn: &'a mut u64,
    order: &'a mut u64,
}

impl Ctx<'_> {
    pub fn emit(&mut self, ts: u64, conn: &str, dir: Option<Direction>, kind: EventKind) {
        let mut event = Event {
            ts,
            conn: conn.to_owned(),
            dir,
            kind,
        };
        if self.options.redact {
            redact::redact_event(&mut event);
        }
        self.out.push(event);
    }

    /// A fresh connection id.
    pub fn next_id(&mut self) -> String {
        *self.next_conn += 1;
        format!("c{}", self.next_conn)
    }

    /// A number that orders closes, FINs and resets across connections.
    pub fn next_order(&mut self) -> u64 {
        *self.order += 1;
        *self.order
    }
}

/// How long (capture time) TLS records wait for secrets that may still be
/// written to a followed key log before they are given up.
const KEY_WAIT_US: u64 = 3_000_000;

/// Problems reported one by one before only being counted.
const PROBLEMS_IN_DETAIL: u64 = 20;

type Key = (SocketAddr, SocketAddr);

fn key(a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b { (a, b) } else { (b, a) }
}

/// Packets in, events out.
pub struct Decoder {
    options: Options,
    ip: IpLayer,
    conns: HashMap<Key, Conn>,
    /// Connections holding bytes not yet turned into events, by the
    /// capture time of the oldest: no event older than the first can be
    /// missing from what was handed out.
    pending: BTreeSet<(u64, Key)>,
    summary: Summary,
    problems: Vec<Problem>,
    unsupported_links: Vec<i32>,
    next_conn: u64,
    order: u64,
    last_ts: u64,
    keys: KeyLog,
}

impl Decoder {
    pub fn new(options: Options) -> Decoder {
        Decoder {
            options,
            ip: IpLayer::default(),
            conns: HashMap::new(),
            pending: BTreeSet::new(),
            summary: Summary::default(),
            problems: Vec::new(),
            unsupported_links: Vec::new(),
            next_conn: 0,
            order: 0,
            last_ts: 0,
            keys: KeyLog::default(),
        }
    }

    /// Takes one packet; its events are appended to `out`.
    pub fn packet(&mut self, packet: &Packet<'_>, out: &mut Vec<Event>) {
        if self.options.keys_may_arrive && self.last_ts > 0 {
            self.expire_key_waits(self.last_ts, out);
        }
        self.summary.packets += 1;
        let ts = packet.ts_us();
        self.last_ts = self.last_ts.max(ts);
        let ip = match link::ip_payload(packet.linktype, packet.data) {
            Ok(Some(ip)) => ip,
            Ok(None) => return,
            Err(link::LinkError::Unsupported(linktype)) => {
                if !self.unsupported_links.contains(&linktype) {
                    self.unsupported_links.push(linktype);
                    self.problem(
                        packet.number,
                        link::LinkError::Unsupported(linktype).to_string()
                            + "; packets of this link type are skipped",
                    );
                }
                return;
            }
            Err(err) => {
                self.problem(packet.number, format!("{err}; skipped"));
                return;
            }
        };
        let Decoder {
            options,
            ip: ip_layer,
            conns,
            pending,
            summary,
            next_conn,
            order,
            keys,
            ..
        } = self;
        let mut ctx = Ctx {
            options,
            keys,
            summary,
            out,
            next_conn,
            order,
        };
        let result = ip_layer.packet(packet.number, ip, &mut |seg: &Segment<'_>| {
            let k = key(seg.src, seg.dst);
            let fresh_syn = seg.syn && !seg.ack;
            if !conns.contains_key(&k) && !seg.syn && seg.payload.is_empty() && seg.missing == 0 {
                // The last ACKs and FINs of a connection already over (or
                // one joined at its very end): nothing to decode.
                return;
            }
            let conn = conns.entry(k).or_insert_with(|| {
                ctx.summary.tcp_connections += 1;
                Conn::new(seg.src, seg.dst)
            });
            if fresh_syn && (conn.is_done() || conn.both_ended()) {
                // The same addresses again: a new connection.
                ctx.summary.tcp_connections += 1;
                *conn = Conn::new(seg.src, seg.dst);
            }
            let side = conn.side_of(seg.src);
            conn.segment(side, seg, ts, &mut ctx);
            let gone = (conn.is_done() || conn.ignored()) && conn.both_ended();
            let since = if gone { None } else { conn.pending_since() };
            if since != conn.registered {
                if let Some(old) = conn.registered {
                    pending.remove(&(old, k));
                }
                if let Some(new) = since {
                    pending.insert((new, k));
                }
                conn.registered = since;
            }
            if gone {
                if let Some(random) = conn.client_random() {
                    ctx.keys.abandon(&random);
                }
                conns.remove(&k);
            }
        });
        if let Err(text) = result {
            self.problem(packet.number, text);
        }
    }

    /// Events stamped later than this may still come from bytes held
    /// back; those up to it can go out in time order.
    pub fn watermark(&self) -> u64 {
        self.pending.first().map_or(u64::MAX, |(ts, _)| *ts)
    }

    /// The capture ended: every connection still open is reported.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.pending.clear();
        let mut open: Vec<(Key, Conn)> = self.conns.drain().collect();
        // Deterministic order: by the first packet's addresses.
        open.sort_by_key(|(key, _)| *key);
        let mut ctx = Ctx {
            options: &self.options,
            keys: &mut self.keys,
            summary: &mut self.summary,
            out,
            next_conn: &mut self.next_conn,
            order: &mut self.order,
        };
        let start = ctx.out.len();
        for (_, mut conn) in open {
            conn.finish(self.last_ts, &mut ctx);
            if let Some(random) = conn.client_random() {
                ctx.keys.abandon(&random);
            }
        }
        // Events of the end, in connection order.
        let tail = &mut out[start..];
        tail.sort_by_key(|e| conn_number(&e.conn));
    }

    /// Whether secrets may still arrive (a key log followed live).
    pub fn keys_may_arrive(&self) -> bool {
        self.options.keys_may_arrive
    }

    /// The TLS secrets known so far. After adding to them, call
    /// [`Decoder::retry_tls`].
    pub fn keys(&self) -> &KeyLog {
        &self.keys
    }

    /// The same, to add to.
    pub fn keys_mut(&mut self) -> &mut KeyLog {
        &mut self.keys
    }

    /// TLS records held for secrets are tried again with those known now.
    pub fn retry_tls(&mut self, out: &mut Vec<Event>) {
        let waiting: Vec<Key> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.waiting_for_keys())
            .map(|(k, _)| *k)
            .collect();
        for k in waiting {
            self.with_conn(k, out, |conn, ctx| conn.retry_tls(ctx));
        }
    }

    /// Gives up on keys for connections whose records have waited for
    /// them since before `now - KEY_WAIT` (capture time, microseconds):
    /// a live capture calls this while idle, so that one connection whose
    /// secrets are never logged does not hold back every other's events.
    pub fn expire_key_waits(&mut self, now: u64, out: &mut Vec<Event>) {
        let cutoff = now.saturating_sub(KEY_WAIT_US);
        // The oldest pending bytes first; only a few looked at per call.
        let old: Vec<Key> = self
            .pending
            .iter()
            .take_while(|(since, _)| *since < cutoff)
            .take(16)
            .map(|(_, k)| *k)
            .filter(|k| self.conns.get(k).is_some_and(Conn::waiting_for_keys))
            .collect();
        for k in old {
            self.with_conn(k, out, |conn, ctx| conn.give_up_keys(now, ctx));
        }
    }

    /// Runs `f` on one connection, then files it again by what it holds
    /// (or forgets it, when it is over).
    fn with_conn(&mut self, k: Key, out: &mut Vec<Event>, f: impl FnOnce(&mut Conn, &mut Ctx<'_>)) {
        let Some(conn) = self.conns.get_mut(&k) else {
            return;
        };
        let mut ctx = Ctx {
            options: &self.options,
            keys: &mut self.keys,
            summary: &mut self.summary,
            out,
            next_conn: &mut self.next_conn,
            order: &mut self.order,
        };
        f(conn, &mut ctx);
        let gone = (conn.is_done() || conn.ignored()) && conn.both_ended();
        let since = if gone { None } else { conn.pending_since() };
        if since != conn.registered {
            if let Some(old) = conn.registered {
                self.pending.remove(&(old, k));
            }
            if let Some(new) = since {
                self.pending.insert((new, k));
            }
            conn.registered = since;
        }
        if gone {
            if let Some(random) = conn.client_random() {
                self.keys.abandon(&random);
            }
            self.conns.remove(&k);
        }
    }

    /// Problems with the capture itself (not with a connection), taken.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Counts for the closing line.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    fn problem(&mut self, packet: u64, text: String) {
        self.summary.problems += 1;
        if self.summary.problems <= PROBLEMS_IN_DETAIL {
            self.problems.push(Problem { packet, text });
        } else if self.summary.problems == PROBLEMS_IN_DETAIL + 1 {
            self.problems.push(Problem {
                packet,
                text: "more problems; only counted from here on".into(),
            });
        }
    }
}

fn conn_number(id: &str) -> u64 {
    id.trim_start_matches('c').parse().unwrap_or(u64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tls::tests::hello as client_hello;

    /// LINKTYPE_IPV4: raw IPv4, no link header.
    pub(super) const LINKTYPE_IPV4: i32 = 228;
    const CLIENT: u16 = 5555;
    const SERVER: u16 = 443;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;

    /// One raw IPv4 packet on 127.0.0.1 (checksums left zero: not checked).
    pub(super) fn packet(from: u16, to: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let total = (40 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        p.extend_from_slice(&from.to_be_bytes());
        p.extend_from_slice(&to.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// The notes of a capture of `packets`.
    fn notes(packets: &[Vec<u8>]) -> Vec<String> {
        events(packets, Options::default())
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Note { text } => Some(text),
                _ => None,
            })
            .collect()
    }

    fn server_hello() -> Vec<u8> {
        [&[0x16, 3, 3, 0, 42, 2, 0, 0, 38][..], &[0; 38]].concat()
    }

    /// TLS 1.3's change_cipher_spec and an application data record.
    fn client_finish() -> Vec<u8> {
        [&[0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 4][..], &[9; 4]].concat()
    }

    fn ends(text: &str) -> &str {
        let start = "TLS connection ".len();
        &text[start..text.find(" (").expect("a parenthesis")]
    }

    #[test]
    fn tls_joined_after_the_client_hello_knows_the_client_by_the_server_hello() {
        // The server's hello is the first thing the capture has.
        let notes = notes(&[
            packet(SERVER, CLIENT, 1000, PSH_ACK, &server_hello()),
            packet(CLIENT, SERVER, 2000, PSH_ACK, &client_finish()),
        ]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(ends(&notes[0]), "127.0.0.1:5555 → 127.0.0.1:443");
        assert!(
            notes[0].contains("(joined after its ClientHello: no SNI)"),
            "{notes:?}"
        );
    }

    #[test]
    fn tls_client_hello_without_its_syn_still_names_the_server() {
        let notes = notes(&[
            packet(CLIENT, SERVER, 2000, PSH_ACK, &client_hello()),
            packet(SERVER, CLIENT, 1000, PSH_ACK, &server_hello()),
        ]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(ends(&notes[0]), "127.0.0.1:5555 → 127.0.0.1:443");
        assert!(
            notes[0].contains("(SNI example.test, ALPN h2, http/1.1)"),
            "{notes:?}"
        );
    }

    #[test]
    fn tls_whose_client_hello_the_capture_lost_is_still_tls() {
        // The handshake is there; the client's first segment is not.
        let lost = client_hello().len() as u32;
        let notes = notes(&[
            packet(CLIENT, SERVER, 1999, SYN, &[]),
            packet(SERVER, CLIENT, 999, SYN | ACK, &[]),
            packet(SERVER, CLIENT, 1000, PSH_ACK, &server_hello()),
            packet(CLIENT, SERVER, 2000 + lost, PSH_ACK, &client_finish()),
        ]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(ends(&notes[0]), "127.0.0.1:5555 → 127.0.0.1:443");
        assert!(
            notes[0].contains("(its ClientHello is not in the capture: no SNI)"),
            "{notes:?}"
        );
    }

    #[test]
    fn tls_joined_in_encrypted_records_does_not_guess_the_client() {
        let data = [&[0x17, 3, 3, 0, 4][..], &[9; 4]].concat();
        let notes = notes(&[
            packet(SERVER, CLIENT, 1000, PSH_ACK, &data),
            packet(CLIENT, SERVER, 2000, PSH_ACK, &data),
        ]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(ends(&notes[0]), "between 127.0.0.1:443 and 127.0.0.1:5555");
    }

    /// The events of a capture of `packets`, read with `options`.
    fn events(packets: &[Vec<u8>], options: Options) -> Vec<Event> {
        let mut decoder = Decoder::new(options);
        let mut out = Vec::new();
        for (i, data) in packets.iter().enumerate() {
            let number = i as u64 + 1;
            let packet = Packet {
                number,
                ts_ns: number * 1000,
                linktype: LINKTYPE_IPV4,
                data,
                orig_len: data.len() as u32,
                interface: 0,
                snaplen: 0,
            };
            decoder.packet(&packet, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn secrets_in_a_captured_handshake_are_redacted_unless_asked() {
        let request = b"GET /feed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer sekrit\r\nCookie: id=sekrit\r\n\r\n";
        let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSet-Cookie: s=sekrit\r\n\r\n";
        let capture = [
            packet(CLIENT, SERVER, 1999, SYN, &[]),
            packet(SERVER, CLIENT, 999, SYN | ACK, &[]),
            packet(CLIENT, SERVER, 2000, PSH_ACK, request),
            packet(SERVER, CLIENT, 1000, PSH_ACK, response),
        ];
        let shown = |redact| {
            let events = events(
                &capture,
                Options {
                    redact,
                    ..Options::default()
                },
            );
            let open = events
                .iter()
                .find(|e| matches!(e.kind, EventKind::Open(_)))
                .expect("the upgrade is found");
            serde_json::to_string(open).unwrap()
        };
        let redacted = shown(true);
        assert!(!redacted.contains("sekrit"), "{redacted}");
        assert!(redacted.contains("/feed"), "{redacted}");
        assert!(shown(false).contains("Bearer sekrit"));
    }
}

#[cfg(test)]
mod key_wait_tests {
    use super::tests::{LINKTYPE_IPV4, packet};
    use super::*;
    use crate::tls_session::tests::tls13_conversation;

    /// A TLS 1.3 conversation on 127.0.0.1:5555 → :443, SYN to FINs, fed
    /// to a decoder that expects keys to come later; and its key log.
    fn fed_without_keys() -> (Decoder, String, Vec<Event>) {
        let (log, flow) = tls13_conversation(false);
        let mut packets = vec![
            packet(5555, 443, 99, 0x02, &[]),
            packet(443, 5555, 499, 0x12, &[]),
        ];
        let mut seq = [100u32, 500];
        for (client, bytes) in &flow {
            let (from, to, i) = if *client {
                (5555, 443, 0)
            } else {
                (443, 5555, 1)
            };
            packets.push(packet(from, to, seq[i], 0x18, bytes));
            seq[i] += bytes.len() as u32;
        }
        packets.push(packet(5555, 443, seq[0], 0x11, &[]));
        packets.push(packet(443, 5555, seq[1], 0x11, &[]));
        let mut decoder = Decoder::new(Options {
            keys_may_arrive: true,
            ..Options::default()
        });
        let mut out = Vec::new();
        for (i, data) in packets.iter().enumerate() {
            let packet = Packet {
                number: i as u64 + 1,
                ts_ns: (i as u64 + 1) * 1000,
                linktype: LINKTYPE_IPV4,
                data,
                orig_len: data.len() as u32,
                interface: 0,
                snaplen: 0,
            };
            decoder.packet(&packet, &mut out);
        }
        (decoder, log, out)
    }

    fn notes(events: &[Event]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Note { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_connection_that_ended_before_its_keys_came_is_kept_for_them() {
        let (mut decoder, log, out) = fed_without_keys();
        assert!(out.is_empty(), "nothing to say before the keys: {out:?}");
        assert_eq!(decoder.conns.len(), 1, "kept, though both ends sent FIN");
        assert!(
            decoder.watermark() < u64::MAX,
            "its records hold the watermark"
        );
        let mut out = Vec::new();
        assert!(crate::keylog::parse(log.as_bytes(), decoder.keys_mut()).is_empty());
        decoder.retry_tls(&mut out);
        assert!(
            notes(&out)
                .iter()
                .any(|n| n.ends_with("decrypted with the key log")),
            "{out:?}"
        );
        assert!(decoder.conns.is_empty(), "over once its ends are replayed");
        assert_eq!(decoder.watermark(), u64::MAX);
    }

    #[test]
    fn keys_that_never_come_are_given_up_after_a_while() {
        let (mut decoder, _, _) = fed_without_keys();
        let mut out = Vec::new();
        decoder.expire_key_waits(1_000, &mut out);
        assert!(out.is_empty(), "not yet: {out:?}");
        decoder.expire_key_waits(KEY_WAIT_US + 1_000_000, &mut out);
        let notes = notes(&out);
        assert!(
            matches!(notes.as_slice(), [one] if one.contains("no key log line has the secrets")),
            "{notes:?}"
        );
        assert!(decoder.conns.is_empty());
        assert_eq!(decoder.watermark(), u64::MAX);
    }
}

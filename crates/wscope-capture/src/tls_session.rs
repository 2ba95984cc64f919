//! One TLS connection's record layer, decrypted with logged secrets.
//!
//! Bytes of each direction come in as TCP delivered them; records are cut
//! out of them (a record may span segments, a segment hold many records),
//! the handshake is read in the clear as far as it is in the clear (the
//! client's random ties the connection to its key log line, the server's
//! hello gives version and cipher suite), and protected records are opened
//! with the keys derived from the secrets: TLS 1.2 after each side's
//! ChangeCipherSpec, TLS 1.3 under the handshake keys until each side's
//! Finished, then the application keys, replaced at every KeyUpdate. What
//! comes out is the application data, in order, per direction.
//!
//! Records that need keys not known yet (the server's hello not seen yet,
//! or a key log line still to be written by a live browser) wait, up to a
//! bound. A record that fails to authenticate is reported and skipped: its
//! successor is opened with the next sequence number.

use std::collections::VecDeque;

use crate::keylog::{ClientRandom, KeyLog, SessionSecrets};
use crate::tls::Reader;
use crate::tls_crypto::{self, RecordKey, Suite};

/// The largest record body: 2^14 plus TLS 1.2's allowance for expansion.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// The largest handshake message read in the clear or decrypted.
const MAX_HANDSHAKE_MESSAGE: usize = 1 << 18;
/// Bytes of records held per direction while waiting for keys.
pub const MAX_WAITING: usize = 1 << 20;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// The random of a HelloRetryRequest (RFC 8446 §4.1.3): not a real hello.
const HELLO_RETRY: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What the record layer has to say.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsOut {
    /// Application data, decrypted.
    Plain {
        from_client: bool,
        bytes: Vec<u8>,
        ts: u64,
    },
    /// The first record opened: decryption works.
    Decrypting {
        version: &'static str,
        suite: &'static str,
        ts: u64,
    },
    /// Something worth a note (an alert, a record that failed).
    Note {
        from_client: Option<bool>,
        text: String,
        ts: u64,
    },
    /// Decryption is over for this connection, and why (said once);
    /// `keys_missing` when a key log line would have made the difference.
    Stopped {
        reason: String,
        keys_missing: bool,
        ts: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Tls12,
    Tls13,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::Tls12 => "TLS 1.2",
            Version::Tls13 => "TLS 1.3",
        }
    }
}

/// TLS 1.3's key phases of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Application,
}

#[derive(Debug)]
struct Dir {
    from_client: bool,
    /// A record not complete yet.
    partial: Vec<u8>,
    /// Handshake bytes not yet a whole message.
    handshake: Vec<u8>,
    /// TLS 1.2: a ChangeCipherSpec came, records are protected.
    protected: bool,
    phase: Phase,
    key: Option<RecordKey>,
    /// TLS 1.3: the traffic secret `key` comes from.
    secret: Option<Vec<u8>>,
    seq: u64,
    /// TLS 1.3 without the handshake secret in the key log: records that
    /// fail before the first application record opens are the encrypted
    /// handshake.
    skip_until_open: bool,
    opened_any: bool,
    /// Records waiting for keys: the record, its capture time, and the
    /// order it arrived in across both directions.
    waiting: VecDeque<(Vec<u8>, u64, u64)>,
    waiting_bytes: usize,
    /// Bytes went missing before decryption was under way: records
    /// cannot be found again.
    lost: bool,
    /// Bytes went missing while records were opening: looking for the
    /// next record that opens.
    resync: Option<Resync>,
}

/// The search for a record boundary after a hole.
#[derive(Debug)]
struct Resync {
    /// What arrived since the hole, from the first byte not ruled out.
    buf: Vec<u8>,
    /// How many bytes the hole took (a lower bound on the records lost).
    lost: u64,
}

/// Bytes searched for a record boundary after a hole before giving up.
const MAX_RESYNC: usize = 1 << 20;
/// Bytes decrypted trying sequence numbers for one candidate record.
const RESYNC_WORK: usize = 64 << 20;

impl Dir {
    fn new(from_client: bool) -> Dir {
        Dir {
            from_client,
            partial: Vec::new(),
            handshake: Vec::new(),
            protected: false,
            phase: Phase::Handshake,
            key: None,
            secret: None,
            seq: 0,
            skip_until_open: false,
            opened_any: false,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            lost: false,
            resync: None,
        }
    }

    fn name(&self) -> &'static str {
        // As the connection's other notes name directions.
        if self.from_client { "c2s" } else { "s2c" }
    }
}

/// The record layer of one connection.
#[derive(Debug)]
pub struct TlsSession {
    client_random: Option<ClientRandom>,
    server_random: Option<[u8; 32]>,
    offered_early_data: bool,
    version: Option<Version>,
    suite: Option<&'static Suite>,
    /// Index 0: what the client sends; 1: what the server sends.
    dirs: [Dir; 2],
    stopped: bool,
    announced: bool,
    /// The key log has been told this connection's random was seen.
    marked: bool,
    /// Records held so far, to open them in the order they came.
    arrivals: u64,
    /// Keys may still arrive (a key log being written while captured).
    keys_may_arrive: bool,
}

/// Why a record could not be opened now.
enum Blocked {
    /// Keys may come later: keep it.
    Wait,
    Stop(String),
}

impl TlsSession {
    pub fn new(keys_may_arrive: bool) -> TlsSession {
        TlsSession {
            client_random: None,
            server_random: None,
            offered_early_data: false,
            version: None,
            suite: None,
            dirs: [Dir::new(true), Dir::new(false)],
            stopped: false,
            announced: false,
            marked: false,
            arrivals: 0,
            keys_may_arrive,
        }
    }

    /// The client's random, once its hello was read.
    pub fn client_random(&self) -> Option<&ClientRandom> {
        self.client_random.as_ref()
    }

    /// Whether decryption has produced anything.
    pub fn decrypting(&self) -> bool {
        self.announced
    }

    /// The capture time of the oldest record held for keys.
    pub fn waiting_since(&self) -> Option<u64> {
        self.dirs
            .iter()
            .filter_map(|d| d.waiting.front().map(|w| w.1))
            .min()
    }

    /// Takes bytes one side sent.
    pub fn feed(
        &mut self,
        from_client: bool,
        mut bytes: &[u8],
        ts: u64,
        keys: &mut KeyLog,
        out: &mut Vec<TlsOut>,
    ) {
        let d = usize::from(!from_client);
        if self.dirs[d].resync.is_some() {
            self.resync_feed(d, bytes, ts, keys, out);
            return;
        }
        while !bytes.is_empty() && !self.stopped && !self.dirs[d].lost {
            let dir = &mut self.dirs[d];
            let need = if dir.partial.len() < 5 {
                5 - dir.partial.len()
            } else {
                let len = usize::from(u16::from_be_bytes([dir.partial[3], dir.partial[4]]));
                5 + len - dir.partial.len()
            };
            let take = need.min(bytes.len());
            dir.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if dir.partial.len() == 5 {
                let [kind, major, _, l0, l1] = dir.partial[..] else {
                    unreachable!("five bytes")
                };
                let len = usize::from(u16::from_be_bytes([l0, l1]));
                if !(CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&kind)
                    || major != 3
                    || len > MAX_RECORD
                {
                    let text = format!(
                        "{}: bytes that are not a TLS record ({:02x?}): the stream cannot be decrypted past them",
                        dir.name(),
                        &dir.partial[..]
                    );
                    self.stop(text, ts, out);
                    return;
                }
                if len > 0 {
                    continue;
                }
            }
            if dir.partial.len() >= 5 && take == need {
                let record = std::mem::take(&mut self.dirs[d].partial);
                self.record(d, record, ts, keys, out);
            }
        }
    }

    /// `lost` bytes of one side went missing. Once records of that side
    /// have opened, the next one that opens after the hole is looked for
    /// (the sequence numbers skipped are found by trying them); before
    /// that, its records cannot be found again.
    pub fn gap(&mut self, from_client: bool, lost: u64, ts: u64, out: &mut Vec<TlsOut>) {
        let d = usize::from(!from_client);
        let dir = &mut self.dirs[d];
        if self.stopped || dir.lost || dir.resync.is_some() {
            if let Some(resync) = &mut dir.resync {
                // Another hole while searching: the search goes on.
                resync.buf.clear();
                resync.lost += lost;
            }
            return;
        }
        dir.partial.clear();
        let text = if dir.opened_any && dir.key.is_some() && dir.waiting.is_empty() {
            dir.resync = Some(Resync {
                buf: Vec::new(),
                lost,
            });
            format!(
                "{}: {lost} bytes of the TLS stream are missing from the capture; decryption resumes at the next record that can be found and opened",
                dir.name()
            )
        } else {
            dir.lost = true;
            format!(
                "{}: bytes of the TLS stream are missing from the capture before its records could be opened; the records after them cannot be found, so decryption of this direction stops",
                dir.name()
            )
        };
        out.push(TlsOut::Note {
            from_client: Some(from_client),
            text,
            ts,
        });
    }

    /// Bytes after a hole: searched for a record that opens; from there
    /// on, records as usual.
    fn resync_feed(
        &mut self,
        d: usize,
        bytes: &[u8],
        ts: u64,
        keys: &mut KeyLog,
        out: &mut Vec<TlsOut>,
    ) {
        let Some(resync) = &mut self.dirs[d].resync else {
            return;
        };
        resync.buf.extend_from_slice(bytes);
        let Some((at, seq)) = self.find_record(d) else {
            let dir = &mut self.dirs[d];
            if dir
                .resync
                .as_ref()
                .is_some_and(|r| r.buf.len() > MAX_RESYNC)
            {
                dir.resync = None;
                dir.lost = true;
                let text = format!(
                    "{}: no record that opens in the {} KiB after the hole; decryption of this direction stops",
                    dir.name(),
                    MAX_RESYNC / 1024
                );
                out.push(TlsOut::Note {
                    from_client: Some(dir.from_client),
                    text,
                    ts,
                });
            }
            return;
        };
        let dir = &mut self.dirs[d];
        let resync = dir.resync.take().expect("searching");
        let skipped = seq.saturating_sub(dir.seq);
        dir.seq = seq;
        let text = format!(
            "{}: decryption resumes at TLS record {seq} ({skipped} records lost in the hole)",
            dir.name()
        );
        let from_client = dir.from_client;
        out.push(TlsOut::Note {
            from_client: Some(from_client),
            text,
            ts,
        });
        self.feed(from_client, &resync.buf[at..], ts, keys, out);
    }

    /// The first offset in the bytes after a hole where a record starts
    /// that opens, and its sequence number. Bytes ruled out are dropped.
    fn find_record(&mut self, d: usize) -> Option<(usize, u64)> {
        let tls13 = self.version == Some(Version::Tls13);
        let dir = &mut self.dirs[d];
        let key = dir.key.as_ref()?;
        let resync = dir.resync.as_mut()?;
        let buf = &resync.buf;
        let mut at = 0;
        let mut found = None;
        while at + 5 <= buf.len() {
            let header: [u8; 5] = buf[at..at + 5].try_into().expect("five bytes");
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            let kind_ok = if tls13 {
                header[0] == APPLICATION_DATA
            } else {
                (ALERT..=APPLICATION_DATA).contains(&header[0])
            };
            if !kind_ok || header[1..3] != [3, 3] || !(17..=MAX_RECORD).contains(&len) {
                at += 1;
                continue;
            }
            let Some(record) = buf.get(at..at + 5 + len) else {
                // A candidate not complete yet: wait for the rest.
                break;
            };
            // The records lost took at least this many sequence numbers.
            let first = dir.seq + resync.lost / (MAX_RECORD as u64 + 5);
            let tries = (resync.lost / 22 + 64).min((RESYNC_WORK / record.len()) as u64);
            let mut candidates: Vec<u64> = Vec::new();
            if !tls13 && len >= 8 {
                // Most TLS 1.2 stacks send the sequence number as the
                // explicit nonce.
                candidates.push(u64::from_be_bytes(record[5..13].try_into().expect("8")));
            }
            candidates.extend(first..first + tries.max(1));
            let mut body = Vec::with_capacity(len);
            let opens = |seq: u64, body: &mut Vec<u8>| {
                body.clear();
                body.extend_from_slice(&record[5..]);
                if tls13 {
                    key.open_tls13(seq, &header, body).is_some()
                } else {
                    key.open_tls12(seq, header[0], [3, 3], body).is_some()
                }
            };
            if let Some(seq) = candidates
                .into_iter()
                .filter(|&seq| seq >= dir.seq)
                .find(|&seq| opens(seq, &mut body))
            {
                found = Some((at, seq));
                break;
            }
            at += 1;
        }
        match found {
            Some(found) => Some(found),
            None => {
                resync.buf.drain(..at);
                None
            }
        }
    }

    /// New secrets may have arrived: records held for them are tried again.
    pub fn retry(&mut self, keys: &mut KeyLog, out: &mut Vec<TlsOut>) {
        // Both directions, in the order their records came (as a capture
        // read with every key at hand opens them), while keys allow.
        let mut blocked = [false; 2];
        while !self.stopped {
            let next = (0..2)
                .filter(|&d| !blocked[d])
                .filter_map(|d| self.dirs[d].waiting.front().map(|w| (w.2, d)))
                .min();
            let Some((_, d)) = next else {
                return;
            };
            blocked[d] = !self.open_waiting(d, keys, out);
        }
    }

    /// The capture ended: records still held for keys never got them.
    pub fn finish(&mut self, ts: u64, out: &mut Vec<TlsOut>) {
        if self.stopped {
            return;
        }
        if self.dirs.iter().any(|d| !d.waiting.is_empty()) {
            let reason = self.missing_keys_reason();
            self.stop_for(reason, true, ts, out);
        }
    }

    fn stop(&mut self, reason: String, ts: u64, out: &mut Vec<TlsOut>) {
        self.stop_for(reason, false, ts, out);
    }

    fn stop_for(&mut self, reason: String, keys_missing: bool, ts: u64, out: &mut Vec<TlsOut>) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        for dir in &mut self.dirs {
            dir.waiting.clear();
            dir.waiting_bytes = 0;
            dir.partial = Vec::new();
            dir.handshake = Vec::new();
        }
        out.push(TlsOut::Stopped {
            reason,
            keys_missing,
            ts,
        });
    }

    fn missing_keys_reason(&self) -> String {
        let Some(random) = &self.client_random else {
            return "its ClientHello is not in the capture, so no key log line can be matched to it".into();
        };
        let short: String = random[..8].iter().map(|b| format!("{b:02x}")).collect();
        match (self.version, self.suite) {
            (Some(Version::Tls12), Some(s)) if tls_crypto::rsa_key_exchange(s.id) => format!(
                "RSA key exchange ({}) and no key log line for client random {short}…: without the logged master secret it cannot be decrypted",
                s.name
            ),
            (None, _) | (_, None) => {
                format!("the server's hello is not in the capture (client random {short}…)")
            }
            _ => format!("no key log line has the secrets for client random {short}…"),
        }
    }

    fn record(
        &mut self,
        d: usize,
        record: Vec<u8>,
        ts: u64,
        keys: &mut KeyLog,
        out: &mut Vec<TlsOut>,
    ) {
        if !self.dirs[d].waiting.is_empty() {
            // Records open in order: behind the ones already waiting.
            self.hold(d, record, ts, out);
            return;
        }
        if let Some(record) = self.process(d, record, ts, keys, out) {
            self.hold(d, record, ts, out);
        }
    }

    /// Reads or opens one record; gives it back when it must wait for keys.
    fn process(
        &mut self,
        d: usize,
        record: Vec<u8>,
        ts: u64,
        keys: &mut KeyLog,
        out: &mut Vec<TlsOut>,
    ) -> Option<Vec<u8>> {
        let kind = record[0];
        let protected = match self.version {
            Some(Version::Tls13) => kind == APPLICATION_DATA,
            _ => self.dirs[d].protected,
        };
        if !protected {
            self.clear_record(d, &record, ts, out);
            if let (Some(random), false) = (self.client_random, self.marked) {
                keys.mark_used(random);
                self.marked = true;
            }
            // The other side may have been waiting for this hello.
            if kind == HANDSHAKE {
                self.drain(1 - d, keys, out);
            }
            return None;
        }
        match self.keys(d, keys) {
            Ok(()) => self.open(d, record, ts, out),
            Err(Blocked::Wait) => return Some(record),
            Err(Blocked::Stop(reason)) => self.stop_for(reason, true, ts, out),
        }
        None
    }

    fn hold(&mut self, d: usize, record: Vec<u8>, ts: u64, out: &mut Vec<TlsOut>) {
        self.arrivals += 1;
        let arrival = self.arrivals;
        let dir = &mut self.dirs[d];
        dir.waiting_bytes += record.len();
        dir.waiting.push_back((record, ts, arrival));
        if dir.waiting_bytes > MAX_WAITING {
            let reason = format!(
                "{} (gave up after holding {} KiB of records for it)",
                self.missing_keys_reason(),
                MAX_WAITING / 1024
            );
            self.stop_for(reason, true, ts, out);
        }
    }

    /// Opens the records held for keys, in order, as far as keys allow.
    fn drain(&mut self, d: usize, keys: &mut KeyLog, out: &mut Vec<TlsOut>) {
        while !self.stopped && self.open_waiting(d, keys, out) {}
    }

    /// Opens (or reads) the first record waiting in direction `d`; false
    /// when there is none or it must wait on.
    fn open_waiting(&mut self, d: usize, keys: &mut KeyLog, out: &mut Vec<TlsOut>) -> bool {
        let Some((record, ts, arrival)) = self.dirs[d].waiting.pop_front() else {
            return false;
        };
        self.dirs[d].waiting_bytes -= record.len();
        match self.process(d, record, ts, keys, out) {
            Some(record) => {
                self.dirs[d].waiting_bytes += record.len();
                self.dirs[d].waiting.push_front((record, ts, arrival));
                false
            }
            None => true,
        }
    }

    /// A record in the clear: the handshake is read, a ChangeCipherSpec
    /// turns protection on (TLS 1.2), alerts are noted.
    fn clear_record(&mut self, d: usize, record: &[u8], ts: u64, out: &mut Vec<TlsOut>) {
        let body = &record[5..];
        match record[0] {
            CHANGE_CIPHER_SPEC if self.version != Some(Version::Tls13) => {
                let dir = &mut self.dirs[d];
                dir.protected = true;
                dir.seq = 0;
            }
            HANDSHAKE => {
                self.dirs[d].handshake.extend_from_slice(body);
                self.handshake_messages(d, ts, out);
            }
            ALERT => self.alert(d, body, ts, out),
            _ => {}
        }
    }

    fn alert(&mut self, d: usize, body: &[u8], ts: u64, out: &mut Vec<TlsOut>) {
        let [level, description, ..] = *body else {
            return;
        };
        if description == 0 {
            // close_notify: the usual end, not worth a note.
            return;
        }
        let name = match description {
            10 => "unexpected_message",
            20 => "bad_record_mac",
            40 => "handshake_failure",
            42 => "bad_certificate",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            48 => "unknown_ca",
            50 => "decode_error",
            51 => "decrypt_error",
            70 => "protocol_version",
            80 => "internal_error",
            90 => "user_canceled",
            112 => "unrecognized_name",
            116 => "certificate_required",
            120 => "no_application_protocol",
            _ => "alert",
        };
        let level = if level == 2 { "fatal" } else { "warning" };
        out.push(TlsOut::Note {
            from_client: Some(self.dirs[d].from_client),
            text: format!(
                "{}: TLS {level} alert {name} ({description})",
                self.dirs[d].name()
            ),
            ts,
        });
    }

    /// Whole handshake messages out of `dirs[d].handshake`.
    fn handshake_messages(&mut self, d: usize, ts: u64, out: &mut Vec<TlsOut>) {
        loop {
            let buf = &self.dirs[d].handshake;
            if buf.len() < 4 {
                return;
            }
            let len = usize::from(buf[1]) << 16 | usize::from(buf[2]) << 8 | usize::from(buf[3]);
            if len > MAX_HANDSHAKE_MESSAGE {
                let text = format!(
                    "{}: a handshake message of {len} bytes: not a TLS handshake wscope can follow",
                    self.dirs[d].name()
                );
                self.stop(text, ts, out);
                return;
            }
            if buf.len() < 4 + len {
                return;
            }
            let message: Vec<u8> = self.dirs[d].handshake.drain(..4 + len).collect();
            self.handshake_message(d, message[0], &message[4..], ts, out);
            if self.stopped {
                return;
            }
        }
    }

    fn handshake_message(
        &mut self,
        d: usize,
        kind: u8,
        body: &[u8],
        ts: u64,
        out: &mut Vec<TlsOut>,
    ) {
        match (kind, self.dirs[d].from_client) {
            (1, true) => {
                if let Some((random, early)) = parse_client_hello(body) {
                    self.client_random.get_or_insert(random);
                    self.offered_early_data |= early;
                }
            }
            (2, false) => match parse_server_hello(body) {
                Some((random, _, _)) if random == HELLO_RETRY => {}
                Some((random, version, suite)) => {
                    self.server_random = Some(random);
                    self.version = Some(version);
                    match tls_crypto::find_suite(suite) {
                        Ok(s) if s.tls13 == (version == Version::Tls13) => self.suite = Some(s),
                        Ok(s) => {
                            let text = format!(
                                "{} with {}: a suite of the other version",
                                version.name(),
                                s.name
                            );
                            self.stop(text, ts, out);
                        }
                        Err(why) => self.stop(format!("{}, {why}", version.name()), ts, out),
                    }
                }
                None => self.stop("the server's hello cannot be read".into(), ts, out),
            },
            // Finished: TLS 1.3's application keys from here on.
            (20, _) if self.version == Some(Version::Tls13) => {
                let dir = &mut self.dirs[d];
                if dir.phase == Phase::Handshake {
                    dir.phase = Phase::Application;
                    dir.key = None;
                    dir.secret = None;
                    dir.seq = 0;
                }
            }
            // KeyUpdate: the next traffic secret.
            (24, _) if self.version == Some(Version::Tls13) => {
                let suite = self.suite.expect("TLS 1.3 records open only with a suite");
                let dir = &mut self.dirs[d];
                if let Some(secret) = &dir.secret {
                    let next = tls_crypto::tls13_next_secret(suite, secret);
                    dir.key = Some(tls_crypto::tls13_key(suite, &next));
                    dir.secret = Some(next);
                    dir.seq = 0;
                }
            }
            _ => {}
        }
    }

    /// Makes sure direction `d` has the key its next protected record
    /// needs.
    fn keys(&mut self, d: usize, keys: &mut KeyLog) -> Result<(), Blocked> {
        if self.dirs[d].key.is_some() {
            return Ok(());
        }
        let (Some(random), Some(version), Some(suite)) =
            (self.client_random, self.version, self.suite)
        else {
            if self.client_random.is_none() && self.version.is_some() {
                return Err(Blocked::Stop(self.missing_keys_reason()));
            }
            // The server's hello is yet to be read (the other direction).
            return Err(Blocked::Wait);
        };
        keys.mark_used(random);
        let Some(secrets) = keys.get(&random) else {
            return Err(self.no_keys());
        };
        match version {
            Version::Tls12 => {
                let (Some(master), Some(server_random)) = (&secrets.master, &self.server_random)
                else {
                    return Err(self.no_keys());
                };
                let (client, server) =
                    tls_crypto::tls12_keys(suite, master, &random, server_random);
                let (mine, other) = if d == 0 {
                    (client, server)
                } else {
                    (server, client)
                };
                self.dirs[d].key = Some(mine);
                if self.dirs[1 - d].key.is_none() {
                    self.dirs[1 - d].key = Some(other);
                }
                Ok(())
            }
            Version::Tls13 => {
                let dir = &self.dirs[d];
                let secret = match dir.phase {
                    Phase::Handshake => tls13_handshake_secret(secrets, dir.from_client),
                    Phase::Application => None,
                };
                let (secret, skip) = match secret {
                    Some(s) => (s.clone(), false),
                    None => match tls13_traffic_secret(secrets, dir.from_client) {
                        // No handshake secret: the handshake's records are
                        // skipped until an application record opens.
                        Some(s) => (s.clone(), dir.phase == Phase::Handshake),
                        None => return Err(self.no_keys()),
                    },
                };
                let dir = &mut self.dirs[d];
                if skip {
                    dir.phase = Phase::Application;
                    dir.skip_until_open = true;
                }
                dir.key = Some(tls_crypto::tls13_key(suite, &secret));
                dir.secret = Some(secret);
                Ok(())
            }
        }
    }

    fn no_keys(&self) -> Blocked {
        if self.keys_may_arrive {
            Blocked::Wait
        } else {
            Blocked::Stop(self.missing_keys_reason())
        }
    }

    fn open(&mut self, d: usize, mut record: Vec<u8>, ts: u64, out: &mut Vec<TlsOut>) {
        let version = self.version.unwrap_or(Version::Tls12);
        let header: [u8; 5] = record[..5].try_into().expect("a header");
        let dir = &mut self.dirs[d];
        let key = dir.key.as_ref().expect("keys() gave one");
        let opened = match version {
            Version::Tls13 => key
                .open_tls13(dir.seq, &header, &mut record[5..])
                .map(|(kind, len)| (kind, 5, len)),
            Version::Tls12 => key
                .open_tls12(dir.seq, header[0], [header[1], header[2]], &mut record[5..])
                .map(|(start, len)| (header[0], 5 + start, len)),
        };
        let Some((kind, start, len)) = opened else {
            if dir.skip_until_open
                || (dir.from_client
                    && !dir.opened_any
                    && self.offered_early_data
                    && dir.phase == Phase::Handshake)
            {
                // The encrypted handshake (its secret not logged), or
                // 0-RTT data under a secret wscope does not use.
                return;
            }
            if !dir.opened_any {
                let text = format!(
                    "{}: the key log's secrets for this connection do not decrypt it (a key log from another run, or another connection with the same client random?)",
                    dir.name()
                );
                self.stop(text, ts, out);
                return;
            }
            let seq = dir.seq;
            dir.seq += 1;
            out.push(TlsOut::Note {
                from_client: Some(dir.from_client),
                text: format!(
                    "{}: TLS record {seq} failed to authenticate (damaged in the capture?); skipped, decryption continues with the next record",
                    dir.name()
                ),
                ts,
            });
            return;
        };
        dir.seq += 1;
        dir.opened_any = true;
        dir.skip_until_open = false;
        if !self.announced {
            self.announced = true;
            out.push(TlsOut::Decrypting {
                version: version.name(),
                suite: self.suite.map_or("?", |s| s.name),
                ts,
            });
        }
        let plain = &record[start..start + len];
        match kind {
            APPLICATION_DATA if !plain.is_empty() => out.push(TlsOut::Plain {
                from_client: self.dirs[d].from_client,
                bytes: plain.to_vec(),
                ts,
            }),
            HANDSHAKE => {
                self.dirs[d].handshake.extend_from_slice(plain);
                self.handshake_messages(d, ts, out);
            }
            ALERT => {
                let plain = plain.to_vec();
                self.alert(d, &plain, ts, out);
            }
            _ => {}
        }
    }
}

fn tls13_handshake_secret(s: &SessionSecrets, client: bool) -> Option<&Vec<u8>> {
    if client {
        s.client_handshake.as_ref()
    } else {
        s.server_handshake.as_ref()
    }
}

fn tls13_traffic_secret(s: &SessionSecrets, client: bool) -> Option<&Vec<u8>> {
    if client {
        s.client_traffic.as_ref()
    } else {
        s.server_traffic.as_ref()
    }
}

/// A ClientHello's random, and whether it offers 0-RTT data.
fn parse_client_hello(body: &[u8]) -> Option<(ClientRandom, bool)> {
    let mut r = Reader(body);
    r.take(2)?;
    let random = r.take(32)?.try_into().ok()?;
    r.vec8()?;
    r.vec16()?;
    r.vec8()?;
    let early = r.extensions().iter().any(|(kind, _)| *kind == 42);
    Some((random, early))
}

/// A ServerHello's random, version (its supported_versions extension
/// says 1.3) and cipher suite.
fn parse_server_hello(body: &[u8]) -> Option<([u8; 32], Version, u16)> {
    let mut r = Reader(body);
    let legacy = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    r.vec8()?;
    let suite = r.u16()?;
    r.take(1)?;
    let selected = r
        .extensions()
        .iter()
        .find(|(kind, _)| *kind == 43)
        .and_then(|(_, b)| Reader(b).u16());
    let version = match selected.unwrap_or(legacy) as u16 {
        0x0304 => Version::Tls13,
        0x0303 => Version::Tls12,
        // TLS 1.0 and 1.1 have no AEAD suites: refused by the suite check.
        _ => Version::Tls12,
    };
    Some((random, version, suite as u16))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tls_crypto::{find_suite, tls12_keys, tls13_key};

    pub(crate) const CLIENT_RANDOM: [u8; 32] = [0x11; 32];
    const SERVER_RANDOM: [u8; 32] = [0x22; 32];

    fn handshake_record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut msg = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
        msg.extend_from_slice(body);
        let mut rec = vec![HANDSHAKE, 3, 3, (msg.len() >> 8) as u8, msg.len() as u8];
        rec.extend_from_slice(&msg);
        rec
    }

    pub(crate) fn client_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&CLIENT_RANDOM);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]);
        handshake_record(1, &body)
    }

    fn server_hello(suite: u16, tls13: bool) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&SERVER_RANDOM);
        body.push(0);
        body.extend_from_slice(&suite.to_be_bytes());
        body.push(0);
        if tls13 {
            body.extend_from_slice(&[0, 6, 0, 43, 0, 2, 3, 4]);
        } else {
            body.extend_from_slice(&[0, 0]);
        }
        handshake_record(2, &body)
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// A TLS 1.3 conversation and the key log that opens it: the client's
    /// and server's bytes in the order sent.
    pub(crate) fn tls13_conversation(update: bool) -> (String, Vec<(bool, Vec<u8>)>) {
        let suite = find_suite(0x1301).unwrap();
        let secrets = [[1u8; 32], [2; 32], [3; 32], [4; 32]];
        let r = hex(&CLIENT_RANDOM);
        let log = format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {}\nCLIENT_TRAFFIC_SECRET_0 {r} {}\nSERVER_TRAFFIC_SECRET_0 {r} {}\n",
            hex(&secrets[0]),
            hex(&secrets[1]),
            hex(&secrets[2]),
            hex(&secrets[3])
        );
        let (chs, shs) = (tls13_key(suite, &secrets[0]), tls13_key(suite, &secrets[1]));
        let (capp, sapp) = (tls13_key(suite, &secrets[2]), tls13_key(suite, &secrets[3]));
        let finished = [20, 0, 0, 4, 9, 9, 9, 9];
        let mut flow = vec![
            (true, client_hello()),
            (false, server_hello(0x1301, true)),
            (false, vec![CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]),
            (false, shs.seal_tls13(0, HANDSHAKE, &[8, 0, 0, 2, 0, 0])),
            (false, shs.seal_tls13(1, HANDSHAKE, &finished)),
            (true, vec![CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]),
            (true, chs.seal_tls13(0, HANDSHAKE, &finished)),
            (
                true,
                capp.seal_tls13(0, APPLICATION_DATA, b"GET / HTTP/1.1\r\n"),
            ),
            (false, sapp.seal_tls13(0, HANDSHAKE, &[4, 0, 0, 1, 0])),
            (
                false,
                sapp.seal_tls13(1, APPLICATION_DATA, b"HTTP/1.1 101 "),
            ),
        ];
        if update {
            let next = tls_crypto::tls13_next_secret(suite, &secrets[3]);
            let next_key = tls13_key(suite, &next);
            flow.push((false, sapp.seal_tls13(2, HANDSHAKE, &[24, 0, 0, 1, 0])));
            flow.push((
                false,
                next_key.seal_tls13(0, APPLICATION_DATA, b"after update"),
            ));
        }
        (log, flow)
    }

    fn run(log: &str, flow: &[(bool, Vec<u8>)], split: usize) -> Vec<TlsOut> {
        let mut keys = KeyLog::default();
        assert!(crate::keylog::parse(log.as_bytes(), &mut keys).is_empty());
        let mut session = TlsSession::new(false);
        let mut out = Vec::new();
        for (i, (client, bytes)) in flow.iter().enumerate() {
            for piece in bytes.chunks(split) {
                session.feed(*client, piece, i as u64, &mut keys, &mut out);
            }
        }
        session.finish(99, &mut out);
        out
    }

    fn plain(out: &[TlsOut]) -> Vec<(bool, String)> {
        out.iter()
            .filter_map(|o| match o {
                TlsOut::Plain {
                    from_client, bytes, ..
                } => Some((*from_client, String::from_utf8_lossy(bytes).into_owned())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tls13_opens_through_finished_and_key_update_in_any_segmentation() {
        let (log, flow) = tls13_conversation(true);
        for split in [1, 3, 7, 1000] {
            let out = run(&log, &flow, split);
            assert_eq!(
                plain(&out),
                [
                    (true, "GET / HTTP/1.1\r\n".to_owned()),
                    (false, "HTTP/1.1 101 ".to_owned()),
                    (false, "after update".to_owned())
                ],
                "split {split}: {out:?}"
            );
            assert!(matches!(
                out[0],
                TlsOut::Decrypting {
                    version: "TLS 1.3",
                    suite: "TLS_AES_128_GCM_SHA256",
                    ..
                }
            ));
        }
    }

    #[test]
    fn tls13_with_only_traffic_secrets_skips_the_handshake() {
        let (log, flow) = tls13_conversation(false);
        let log: String = log
            .lines()
            .filter(|l| !l.contains("HANDSHAKE"))
            .map(|l| format!("{l}\n"))
            .collect();
        let out = run(&log, &flow, 1000);
        assert_eq!(plain(&out).len(), 2, "{out:?}");
    }

    #[test]
    fn a_damaged_record_is_noted_and_the_next_one_still_opens() {
        let (log, mut flow) = tls13_conversation(true);
        // Damage the server's first application record (the 101).
        let (_, rec) = &mut flow[9];
        rec[10] ^= 1;
        let out = run(&log, &flow, 1000);
        assert_eq!(plain(&out).len(), 2, "{out:?}");
        assert!(out.iter().any(
            |o| matches!(o, TlsOut::Note { text, .. } if text.contains("failed to authenticate"))
        ));
    }

    #[test]
    fn decryption_resumes_after_a_hole_at_the_next_record_that_opens() {
        let (log, flow) = tls13_conversation(true);
        let mut keys = KeyLog::default();
        crate::keylog::parse(log.as_bytes(), &mut keys);
        let mut session = TlsSession::new(false);
        let mut out = Vec::new();
        for (i, (client, bytes)) in flow.iter().enumerate() {
            match i {
                // The 101's record lost, and half of the next one (the
                // KeyUpdate's): the search must skip that half.
                9 => session.gap(*client, bytes.len() as u64, 0, &mut out),
                10 => {
                    session.gap(*client, 10, 0, &mut out);
                    session.feed(*client, &bytes[10..], 0, &mut keys, &mut out);
                }
                _ => session.feed(*client, bytes, 0, &mut keys, &mut out),
            }
        }
        // The KeyUpdate went with the hole: what follows cannot open.
        assert_eq!(plain(&out).len(), 1, "{out:?}");

        // Without the key update: a lost record, then one that opens.
        let (log, mut flow) = tls13_conversation(false);
        let suite = find_suite(0x1301).unwrap();
        let sapp = tls13_key(suite, &[4; 32]);
        flow.push((
            false,
            sapp.seal_tls13(2, APPLICATION_DATA, b"after the hole"),
        ));
        let mut keys = KeyLog::default();
        crate::keylog::parse(log.as_bytes(), &mut keys);
        let mut session = TlsSession::new(false);
        let mut out = Vec::new();
        for (i, (client, bytes)) in flow.iter().enumerate() {
            if i == 9 {
                session.gap(*client, bytes.len() as u64, 0, &mut out);
            } else {
                // Garbage before the record, as if a hole ended mid-record.
                if i == 10 {
                    session.feed(*client, &[0x17, 3, 3, 0xff], 0, &mut keys, &mut out);
                }
                session.feed(*client, bytes, 0, &mut keys, &mut out);
            }
        }
        assert_eq!(
            plain(&out),
            [
                (true, "GET / HTTP/1.1\r\n".to_owned()),
                (false, "after the hole".to_owned())
            ],
            "{out:?}"
        );
        assert!(out.iter().any(|o| matches!(o, TlsOut::Note { text, .. } if text.contains("resumes at TLS record 2 (1 records lost"))), "{out:?}");
    }

    #[test]
    fn tls12_resumes_by_the_explicit_nonce() {
        let suite = find_suite(0xc02f).unwrap();
        let master = [9u8; 48];
        let log = format!("CLIENT_RANDOM {} {}\n", hex(&CLIENT_RANDOM), hex(&master));
        let mut keys = KeyLog::default();
        crate::keylog::parse(log.as_bytes(), &mut keys);
        let (c, _) = tls12_keys(suite, &master, &CLIENT_RANDOM, &SERVER_RANDOM);
        let mut session = TlsSession::new(false);
        let mut out = Vec::new();
        session.feed(true, &client_hello(), 0, &mut keys, &mut out);
        session.feed(false, &server_hello(0xc02f, false), 0, &mut keys, &mut out);
        session.feed(
            true,
            &[CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1],
            0,
            &mut keys,
            &mut out,
        );
        session.feed(
            true,
            &c.seal_tls12(0, APPLICATION_DATA, b"first"),
            0,
            &mut keys,
            &mut out,
        );
        // 500 records lost: more than the search would try by counting.
        session.gap(true, 500 * 30, 0, &mut out);
        session.feed(
            true,
            &c.seal_tls12(501, APPLICATION_DATA, b"later"),
            0,
            &mut keys,
            &mut out,
        );
        session.feed(
            true,
            &c.seal_tls12(502, APPLICATION_DATA, b"and on"),
            0,
            &mut keys,
            &mut out,
        );
        let texts: Vec<String> = plain(&out).into_iter().map(|p| p.1).collect();
        assert_eq!(texts, ["first", "later", "and on"], "{out:?}");
    }

    #[test]
    fn missing_and_wrong_secrets_are_said_once() {
        let (log, flow) = tls13_conversation(false);
        let out = run("", &flow, 1000);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(&out[0], TlsOut::Stopped { reason, .. } if reason.contains("no key log line"))
        );
        let wrong = log.replace(&hex(&[2; 32]), &hex(&[5; 32]));
        let out = run(&wrong, &flow, 1000);
        let stops = out
            .iter()
            .filter(|o| matches!(o, TlsOut::Stopped { .. }))
            .count();
        assert_eq!(stops, 1, "{out:?}");
    }

    #[test]
    fn keys_that_arrive_later_open_the_records_held() {
        let (log, flow) = tls13_conversation(false);
        let mut keys = KeyLog::default();
        let mut session = TlsSession::new(true);
        let mut out = Vec::new();
        for (client, bytes) in &flow {
            session.feed(*client, bytes, 0, &mut keys, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        assert!(session.waiting_since().is_some());
        crate::keylog::parse(log.as_bytes(), &mut keys);
        session.retry(&mut keys, &mut out);
        assert_eq!(plain(&out).len(), 2, "{out:?}");
        assert_eq!(session.waiting_since(), None);
    }

    #[test]
    fn tls12_gcm_and_chacha_open_after_change_cipher_spec() {
        for id in [0xc02f, 0xc030, 0xcca8] {
            let suite = find_suite(id).unwrap();
            let master = [9u8; 48];
            let log = format!("CLIENT_RANDOM {} {}\n", hex(&CLIENT_RANDOM), hex(&master));
            let (c, s) = tls12_keys(suite, &master, &CLIENT_RANDOM, &SERVER_RANDOM);
            let ccs = vec![CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1];
            let flow = vec![
                (true, client_hello()),
                (false, server_hello(id, false)),
                (true, ccs.clone()),
                (
                    true,
                    c.seal_tls12(
                        0,
                        HANDSHAKE,
                        &[20, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    ),
                ),
                (false, ccs),
                (
                    false,
                    s.seal_tls12(
                        0,
                        HANDSHAKE,
                        &[20, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    ),
                ),
                (true, c.seal_tls12(1, APPLICATION_DATA, b"hello")),
                (false, s.seal_tls12(1, APPLICATION_DATA, b"world")),
                (false, s.seal_tls12(2, ALERT, &[2, 40])),
            ];
            let out = run(&log, &flow, 5);
            assert_eq!(
                plain(&out),
                [(true, "hello".to_owned()), (false, "world".to_owned())],
                "{}: {out:?}",
                suite.name
            );
            assert!(out.iter().any(
                |o| matches!(o, TlsOut::Note { text, .. } if text.contains("handshake_failure"))
            ));
        }
    }

    #[test]
    fn cbc_suites_and_rsa_without_keys_are_refused_with_the_reason() {
        let flow = vec![(true, client_hello()), (false, server_hello(0xc013, false))];
        let out = run("", &flow, 1000);
        assert!(
            matches!(&out[..], [TlsOut::Stopped { reason, .. }] if reason.contains("CBC")),
            "{out:?}"
        );
        let flow = vec![
            (true, client_hello()),
            (false, server_hello(0x009c, false)),
            (true, vec![CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]),
            (
                true,
                vec![HANDSHAKE, 3, 3, 0, 40]
                    .into_iter()
                    .chain([0; 40])
                    .collect(),
            ),
        ];
        let out = run("", &flow, 1000);
        assert!(
            matches!(&out[..], [TlsOut::Stopped { reason, .. }] if reason.contains("RSA key exchange")),
            "{out:?}"
        );
    }

    #[test]
    fn garbage_stops_with_a_reason_instead_of_panicking() {
        let mut keys = KeyLog::default();
        let mut session = TlsSession::new(false);
        let mut out = Vec::new();
        session.feed(true, b"GET / HTTP/1.1\r\n", 0, &mut keys, &mut out);
        assert!(matches!(&out[..], [TlsOut::Stopped { .. }]), "{out:?}");
    }
}

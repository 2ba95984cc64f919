//! The TLS record layer on hostile input, two ways: arbitrary bytes from
//! both ends with an arbitrary key log, and a real TLS 1.3 or 1.2
//! conversation (sealed here with the crate's own keys) cut into segments,
//! damaged and holed where the input says. Never a panic; nothing decrypted
//! that was not sent; `Stopped` said at most once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_capture::keylog::{self, KeyLog};
use wscope_capture::tls_crypto::{find_suite, tls12_keys, tls13_key};
use wscope_capture::tls_session::{TlsOut, TlsSession};

const CLIENT_RANDOM: [u8; 32] = [0x11; 32];
const SERVER_RANDOM: [u8; 32] = [0x22; 32];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
    msg.extend_from_slice(body);
    let mut rec = vec![22, 3, 3, (msg.len() >> 8) as u8, msg.len() as u8];
    rec.extend_from_slice(&msg);
    rec
}

fn hellos(suite: u16, tls13: bool) -> [Vec<u8>; 2] {
    let mut client = vec![3, 3];
    client.extend_from_slice(&CLIENT_RANDOM);
    client.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]);
    let mut server = vec![3, 3];
    server.extend_from_slice(&SERVER_RANDOM);
    server.push(0);
    server.extend_from_slice(&suite.to_be_bytes());
    server.push(0);
    if tls13 {
        server.extend_from_slice(&[0, 6, 0, 43, 0, 2, 3, 4]);
    } else {
        server.extend_from_slice(&[0, 0]);
    }
    [handshake(1, &client), handshake(2, &server)]
}

/// A conversation: (from the client?, bytes), the key log, and every
/// application byte sent.
fn conversation(tls13: bool) -> (Vec<(bool, Vec<u8>)>, String, Vec<u8>) {
    let r = hex(&CLIENT_RANDOM);
    let finished = [20, 0, 0, 4, 9, 9, 9, 9];
    let messages: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 101 \r\n\r\n",
        b"\x81\x05hello",
    ];
    let sent = messages.concat();
    let [ch, sh] = if tls13 {
        hellos(0x1301, true)
    } else {
        hellos(0xc02f, false)
    };
    if tls13 {
        let suite = find_suite(0x1301).unwrap();
        let s = [[1u8; 32], [2; 32], [3; 32], [4; 32]];
        let log = format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {}\nCLIENT_TRAFFIC_SECRET_0 {r} {}\nSERVER_TRAFFIC_SECRET_0 {r} {}\n",
            hex(&s[0]),
            hex(&s[1]),
            hex(&s[2]),
            hex(&s[3])
        );
        let k: Vec<_> = s.iter().map(|x| tls13_key(suite, x)).collect();
        let flow = vec![
            (true, ch),
            (false, sh),
            (false, k[1].seal_tls13(0, 22, &finished)),
            (true, k[0].seal_tls13(0, 22, &finished)),
            (true, k[2].seal_tls13(0, 23, messages[0])),
            (false, k[3].seal_tls13(0, 23, messages[1])),
            (false, k[3].seal_tls13(1, 23, messages[2])),
        ];
        (flow, log, sent)
    } else {
        let suite = find_suite(0xc02f).unwrap();
        let master = [9u8; 48];
        let log = format!("CLIENT_RANDOM {r} {}\n", hex(&master));
        let (c, s) = tls12_keys(suite, &master, &CLIENT_RANDOM, &SERVER_RANDOM);
        let ccs = vec![20, 3, 3, 0, 1, 1];
        let fin = [20, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let flow = vec![
            (true, ch),
            (false, sh),
            (true, ccs.clone()),
            (true, c.seal_tls12(0, 22, &fin)),
            (false, ccs),
            (false, s.seal_tls12(0, 22, &fin)),
            (true, c.seal_tls12(1, 23, messages[0])),
            (false, s.seal_tls12(1, 23, messages[1])),
            (false, s.seal_tls12(2, 23, messages[2])),
        ];
        (flow, log, sent)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut keys = KeyLog::default();
    let mut session = TlsSession::new(mode & 1 != 0);
    let mut out = Vec::new();
    let limit;
    if mode & 2 == 0 {
        // Raw: a key log up to the first 0xff, then chunks, each with a
        // header byte (high bit: which end; the rest: the length).
        let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
        keylog::parse(&rest[..split], &mut keys);
        let mut stream = rest.get(split + 1..).unwrap_or_default();
        limit = stream.len();
        while let Some((&head, tail)) = stream.split_first() {
            let n = usize::from(head & 0x7f).min(tail.len());
            session.feed(head & 0x80 != 0, &tail[..n], 0, &mut keys, &mut out);
            stream = &tail[n..];
        }
    } else {
        let (flow, log, sent) = conversation(mode & 4 != 0);
        limit = sent.len();
        keylog::parse(log.as_bytes(), &mut keys);
        let mut flow = flow;
        // Damage: pairs of (byte index in the whole flow, XOR value).
        for pair in rest.chunks_exact(2).take(4) {
            let total: usize = flow.iter().map(|f| f.1.len()).sum();
            let mut at = usize::from(pair[0]) * 7 % total;
            for (_, bytes) in &mut flow {
                if at < bytes.len() {
                    bytes[at] ^= pair[1];
                    break;
                }
                at -= bytes.len();
            }
        }
        let split = usize::from(mode >> 3).max(1);
        // A piece of the flow lost (a hole in TCP), where the input says.
        let lost = rest.get(8).map(|&b| usize::from(b) % (flow.len() * 4));
        for (i, (client, bytes)) in flow.iter().enumerate() {
            for (j, piece) in bytes.chunks(split).enumerate() {
                if lost == Some(i * 4 + j.min(3)) {
                    session.gap(*client, piece.len() as u64, 0, &mut out);
                } else {
                    session.feed(*client, piece, 0, &mut keys, &mut out);
                }
            }
        }
    }
    session.retry(&mut keys, &mut out);
    session.finish(1, &mut out);
    let plain: usize = out
        .iter()
        .map(|o| match o {
            TlsOut::Plain { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    assert!(plain <= limit, "{plain} bytes out of {limit}");
    let stops = out
        .iter()
        .filter(|o| matches!(o, TlsOut::Stopped { .. }))
        .count();
    assert!(stops <= 1);
});

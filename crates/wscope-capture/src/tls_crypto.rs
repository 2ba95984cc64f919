//! TLS record keys from logged secrets, and records opened with them.
//!
//! Only AEAD cipher suites are decrypted (every TLS 1.3 suite; TLS 1.2's
//! AES-GCM and ChaCha20-Poly1305 ones), with ring's ciphers: key schedules
//! are small and specified (RFC 5246 §5 and §6.3, RFC 8446 §7), ciphers are
//! not written here. CBC suites are named and refused with the reason.

use ring::{aead, hkdf, hmac};

/// The bulk cipher of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Cipher {
    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    fn key_len(self) -> usize {
        self.algorithm().key_len()
    }

    /// TLS 1.2's implicit part of the nonce (RFC 5288 §3, RFC 7905 §2).
    fn tls12_iv_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes256Gcm => 4,
            Cipher::ChaCha20Poly1305 => 12,
        }
    }
}

/// The hash of a suite's PRF or HKDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
        }
    }

    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Hash::Sha256 => hkdf::HKDF_SHA256,
            Hash::Sha384 => hkdf::HKDF_SHA384,
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
}

/// A cipher suite wscope can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub name: &'static str,
    pub cipher: Cipher,
    pub hash: Hash,
    pub tls13: bool,
}

const fn suite(id: u16, name: &'static str, cipher: Cipher, hash: Hash, tls13: bool) -> Suite {
    Suite {
        id,
        name,
        cipher,
        hash,
        tls13,
    }
}

const SUITES: &[Suite] = &[
    suite(
        0x1301,
        "TLS_AES_128_GCM_SHA256",
        Cipher::Aes128Gcm,
        Hash::Sha256,
        true,
    ),
    suite(
        0x1302,
        "TLS_AES_256_GCM_SHA384",
        Cipher::Aes256Gcm,
        Hash::Sha384,
        true,
    ),
    suite(
        0x1303,
        "TLS_CHACHA20_POLY1305_SHA256",
        Cipher::ChaCha20Poly1305,
        Hash::Sha256,
        true,
    ),
    suite(
        0xc02b,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Cipher::Aes128Gcm,
        Hash::Sha256,
        false,
    ),
    suite(
        0xc02c,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Cipher::Aes256Gcm,
        Hash::Sha384,
        false,
    ),
    suite(
        0xc02f,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Cipher::Aes128Gcm,
        Hash::Sha256,
        false,
    ),
    suite(
        0xc030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Cipher::Aes256Gcm,
        Hash::Sha384,
        false,
    ),
    suite(
        0xcca8,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Cipher::ChaCha20Poly1305,
        Hash::Sha256,
        false,
    ),
    suite(
        0xcca9,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        Cipher::ChaCha20Poly1305,
        Hash::Sha256,
        false,
    ),
    suite(
        0xccaa,
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        Cipher::ChaCha20Poly1305,
        Hash::Sha256,
        false,
    ),
    suite(
        0x009e,
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        Cipher::Aes128Gcm,
        Hash::Sha256,
        false,
    ),
    suite(
        0x009f,
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        Cipher::Aes256Gcm,
        Hash::Sha384,
        false,
    ),
    suite(
        0x009c,
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        Cipher::Aes128Gcm,
        Hash::Sha256,
        false,
    ),
    suite(
        0x009d,
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        Cipher::Aes256Gcm,
        Hash::Sha384,
        false,
    ),
];

/// Suites that are named but not decrypted.
const KNOWN_OTHERS: &[(u16, &str)] = &[
    (0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    (0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
];

/// The suite with this id, or why it is not decrypted.
pub fn find_suite(id: u16) -> Result<&'static Suite, String> {
    if let Some(s) = SUITES.iter().find(|s| s.id == id) {
        return Ok(s);
    }
    let name = KNOWN_OTHERS.iter().find(|(i, _)| *i == id).map_or_else(
        || format!("cipher suite 0x{id:04x}"),
        |(_, n)| (*n).to_owned(),
    );
    let why = if name.contains("_CBC_") {
        "a CBC suite (wscope decrypts only AEAD suites: AES-GCM and ChaCha20-Poly1305)"
    } else {
        "not an AEAD suite wscope knows (it decrypts AES-GCM and ChaCha20-Poly1305)"
    };
    Err(format!("{name}: {why}"))
}

/// Whether a TLS 1.2 suite uses RSA key exchange (decryptable only with a
/// key log: there is no ephemeral secret, but wscope takes no private keys).
pub fn rsa_key_exchange(id: u16) -> bool {
    KNOWN_OTHERS
        .iter()
        .map(|(i, n)| (*i, *n))
        .chain(SUITES.iter().map(|s| (s.id, s.name)))
        .any(|(i, n)| i == id && n.starts_with("TLS_RSA_"))
}

/// One direction's record protection.
pub struct RecordKey {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    /// TLS 1.2 AES-GCM: a 4-byte salt and an 8-byte explicit nonce per
    /// record; otherwise the IV is XORed with the sequence number.
    explicit_nonce: bool,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey")
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(hash: Hash, secret: &[u8], label: &str, len: usize) -> Vec<u8> {
    let prk = hkdf::Prk::new_less_safe(hash.hkdf(), secret);
    let full = [b"tls13 ", label.as_bytes()].concat();
    let length = (len as u16).to_be_bytes();
    let label_len = [full.len() as u8];
    let info: [&[u8]; 4] = [&length, &label_len, &full, &[0]];
    let mut out = vec![0; len];
    prk.expand(&info, Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .expect("lengths within HKDF's limits");
    out
}

/// TLS 1.2's PRF (RFC 5246 §5): P_hash(secret, label + seed).
fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac(), secret);
    let seed = [label, seed].concat();
    let mut a = hmac::sign(&key, &seed);
    let mut out = Vec::with_capacity(len + hash.len());
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(&seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, a.as_ref());
    }
    out.truncate(len);
    out
}

fn aead_key(cipher: Cipher, key: &[u8]) -> aead::LessSafeKey {
    aead::LessSafeKey::new(
        aead::UnboundKey::new(cipher.algorithm(), key).expect("key length from the suite"),
    )
}

/// TLS 1.3: a traffic secret's record key.
pub fn tls13_key(suite: &Suite, secret: &[u8]) -> RecordKey {
    let key = expand_label(suite.hash, secret, "key", suite.cipher.key_len());
    let iv = expand_label(suite.hash, secret, "iv", 12);
    RecordKey {
        key: aead_key(suite.cipher, &key),
        iv: iv.try_into().expect("12 bytes"),
        explicit_nonce: false,
    }
}

/// TLS 1.3: the traffic secret after a KeyUpdate (RFC 8446 §7.2).
pub fn tls13_next_secret(suite: &Suite, secret: &[u8]) -> Vec<u8> {
    expand_label(suite.hash, secret, "traffic upd", suite.hash.len())
}

/// TLS 1.2: the client's and the server's write keys from the master
/// secret (RFC 5246 §6.3).
pub fn tls12_keys(
    suite: &Suite,
    master: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
) -> (RecordKey, RecordKey) {
    let (key_len, iv_len) = (suite.cipher.key_len(), suite.cipher.tls12_iv_len());
    let seed = [&server_random[..], &client_random[..]].concat();
    let block = prf(
        suite.hash,
        master,
        b"key expansion",
        &seed,
        2 * (key_len + iv_len),
    );
    let (client_key, rest) = block.split_at(key_len);
    let (server_key, rest) = rest.split_at(key_len);
    let (client_iv, server_iv) = rest.split_at(iv_len);
    let make = |key: &[u8], iv: &[u8]| {
        let mut full = [0; 12];
        full[..iv.len()].copy_from_slice(iv);
        RecordKey {
            key: aead_key(suite.cipher, key),
            iv: full,
            explicit_nonce: iv.len() == 4,
        }
    };
    (make(client_key, client_iv), make(server_key, server_iv))
}

impl RecordKey {
    fn xor_nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// Opens a TLS 1.3 record body in place; `header` is its 5-byte
    /// header. Returns the inner plaintext's content type and length
    /// (padding removed), or `None` when it does not authenticate.
    pub fn open_tls13(&self, seq: u64, header: &[u8; 5], body: &mut [u8]) -> Option<(u8, usize)> {
        let nonce = aead::Nonce::assume_unique_for_key(self.xor_nonce(seq));
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::from(header), body)
            .ok()?;
        let end = plain.iter().rposition(|&b| b != 0)?;
        Some((plain[end], end))
    }

    /// Opens a TLS 1.2 record body in place. Returns where the plaintext
    /// starts and its length.
    pub fn open_tls12(
        &self,
        seq: u64,
        content_type: u8,
        version: [u8; 2],
        body: &mut [u8],
    ) -> Option<(usize, usize)> {
        let tag = aead::MAX_TAG_LEN;
        let (nonce, start) = if self.explicit_nonce {
            let explicit = body.get(..8)?;
            let mut nonce = self.iv;
            nonce[4..].copy_from_slice(explicit);
            (nonce, 8)
        } else {
            (self.xor_nonce(seq), 0)
        };
        let len = body.len().checked_sub(start + tag)?;
        let mut aad = [0; 13];
        aad[..8].copy_from_slice(&seq.to_be_bytes());
        aad[8] = content_type;
        aad[9..11].copy_from_slice(&version);
        aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
        let nonce = aead::Nonce::assume_unique_for_key(nonce);
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::from(aad), &mut body[start..])
            .ok()?;
        Some((start, plain.len()))
    }

    /// Seals a record body the way a TLS 1.3 sender does (for tests and
    /// fuzzing: records that really authenticate).
    pub fn seal_tls13(&self, seq: u64, content_type: u8, plain: &[u8]) -> Vec<u8> {
        let mut body = plain.to_vec();
        body.push(content_type);
        let len = body.len() + aead::MAX_TAG_LEN;
        let header = [0x17, 3, 3, (len >> 8) as u8, len as u8];
        let nonce = aead::Nonce::assume_unique_for_key(self.xor_nonce(seq));
        self.key
            .seal_in_place_append_tag(nonce, aead::Aad::from(header), &mut body)
            .expect("record size");
        [&header[..], &body].concat()
    }

    /// Seals a TLS 1.2 record (explicit nonce = the sequence number, as
    /// OpenSSL and most stacks do).
    pub fn seal_tls12(&self, seq: u64, content_type: u8, plain: &[u8]) -> Vec<u8> {
        let mut aad = [0; 13];
        aad[..8].copy_from_slice(&seq.to_be_bytes());
        aad[8] = content_type;
        aad[9..11].copy_from_slice(&[3, 3]);
        aad[11..].copy_from_slice(&(plain.len() as u16).to_be_bytes());
        let (nonce, prefix) = if self.explicit_nonce {
            let mut nonce = self.iv;
            nonce[4..].copy_from_slice(&seq.to_be_bytes());
            (nonce, seq.to_be_bytes().to_vec())
        } else {
            (self.xor_nonce(seq), Vec::new())
        };
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut body,
            )
            .expect("record size");
        let body = [prefix, body].concat();
        let len = body.len();
        [
            &[content_type, 3, 3, (len >> 8) as u8, len as u8][..],
            &body,
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn tls13_key_schedule_matches_rfc8448() {
        // RFC 8448 §3, "Simple 1-RTT Handshake": the server handshake
        // traffic secret and the key and IV derived from it.
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        assert_eq!(
            expand_label(Hash::Sha256, &secret, "key", 16),
            unhex("3fce516009c21727d0f2e4e86ee403bc")
        );
        assert_eq!(
            expand_label(Hash::Sha256, &secret, "iv", 12),
            unhex("5d313eb2671276ee13000b30")
        );
    }

    #[test]
    fn tls12_prf_matches_a_known_vector() {
        // The TLS 1.2 PRF-SHA256 test vector published with the IETF TLS
        // working group's test vectors (100 bytes of output).
        let secret = unhex("9bbe436ba940f017b17652849a71db35");
        let seed = unhex("a0ba9f936cda311827a6f796ffd5198c");
        let out = prf(Hash::Sha256, &secret, b"test label", &seed, 100);
        assert_eq!(
            out[..16],
            unhex("e3f229ba727be17b8d122620557cd453")[..],
            "{out:02x?}"
        );
    }

    #[test]
    fn records_sealed_are_opened_for_every_suite() {
        for suite in SUITES {
            let secret = vec![7; suite.hash.len()];
            if suite.tls13 {
                let key = tls13_key(suite, &secret);
                let record = key.seal_tls13(3, 23, b"hello");
                let mut body = record[5..].to_vec();
                let header: [u8; 5] = record[..5].try_into().unwrap();
                let (kind, len) = key.open_tls13(3, &header, &mut body).unwrap();
                assert_eq!((kind, &body[..len]), (23, &b"hello"[..]), "{}", suite.name);
                assert!(
                    key.open_tls13(4, &header, &mut record[5..].to_vec())
                        .is_none()
                );
                let next = tls13_next_secret(suite, &secret);
                assert_ne!(next, secret);
            } else {
                let (client, server) = tls12_keys(suite, &[1; 48], &[2; 32], &[3; 32]);
                let record = client.seal_tls12(5, 23, b"hello");
                let mut body = record[5..].to_vec();
                let (start, len) = client.open_tls12(5, 23, [3, 3], &mut body).unwrap();
                assert_eq!(&body[start..start + len], b"hello", "{}", suite.name);
                let mut body = record[5..].to_vec();
                assert!(server.open_tls12(5, 23, [3, 3], &mut body).is_none());
            }
        }
    }

    #[test]
    fn cbc_and_unknown_suites_are_named_with_the_reason() {
        let err = find_suite(0xc013).unwrap_err();
        assert!(err.contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA") && err.contains("CBC"));
        assert!(find_suite(0x1234).unwrap_err().contains("0x1234"));
        assert!(rsa_key_exchange(0x002f) && rsa_key_exchange(0x009c));
        assert!(!rsa_key_exchange(0xc02f));
    }
}

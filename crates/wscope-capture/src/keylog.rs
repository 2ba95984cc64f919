//! TLS session secrets from NSS key log files (`SSLKEYLOGFILE`).
//!
//! Each line is `LABEL CLIENT_RANDOM SECRET` in hex: `CLIENT_RANDOM` holds
//! a TLS 1.2 master secret, the `*_TRAFFIC_SECRET*` labels TLS 1.3's
//! traffic secrets. The same text arrives from files, from a file still
//! being written (a browser appends as it connects), and from pcapng
//! Decryption Secrets Blocks, so the reader takes bytes in any pieces and
//! keeps a partial last line until its newline comes. A line that does not
//! parse is reported with its number; the rest are still used.

use std::collections::HashMap;

/// A ClientHello's random: what ties a key log line to its connection.
pub type ClientRandom = [u8; 32];

/// The secrets logged for one TLS session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSecrets {
    /// TLS 1.2 (and earlier): the 48-byte master secret.
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    /// TLS 1.3's first application traffic secrets (`*_TRAFFIC_SECRET_0`).
    pub client_traffic: Option<Vec<u8>>,
    pub server_traffic: Option<Vec<u8>>,
    pub client_early: Option<Vec<u8>>,
}

/// A key log line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based, within the source it came from.
    pub line: u64,
    pub message: String,
}

/// Every secret learned so far, by client random.
#[derive(Debug, Default)]
pub struct KeyLog {
    sessions: HashMap<ClientRandom, SessionSecrets>,
    /// Each session's accepted lines not yet taken by
    /// [`KeyLog::take_lines_in_use`] (for a Decryption Secrets Block).
    unwritten: HashMap<ClientRandom, Vec<u8>>,
    /// Client randoms that some connection asked for.
    used: std::collections::HashSet<ClientRandom>,
    /// Sessions in use with unwritten lines.
    dirty: Vec<ClientRandom>,
    /// Sessions in use whose secrets are not all here yet (and not given
    /// up on): a writer may hold packets back for them.
    awaiting: std::collections::HashSet<ClientRandom>,
}

impl SessionSecrets {
    /// Whether these open a session of either version.
    fn complete(&self) -> bool {
        self.master.is_some() || (self.client_traffic.is_some() && self.server_traffic.is_some())
    }
}

/// The longest line accepted (a label, 64 and 96 hex digits, spaces).
const MAX_LINE: usize = 1024;

impl KeyLog {
    /// The secrets for a session, if any were logged.
    pub fn get(&self, random: &ClientRandom) -> Option<&SessionSecrets> {
        self.sessions.get(random)
    }

    /// Notes that a connection of the capture had this client random (to
    /// tell, at the end, how many sessions of the key log were not seen).
    pub fn mark_used(&mut self, random: ClientRandom) {
        if !self.used.insert(random) {
            return;
        }
        if self.unwritten.contains_key(&random) {
            self.dirty.push(random);
        }
        if !self
            .sessions
            .get(&random)
            .is_some_and(SessionSecrets::complete)
        {
            self.awaiting.insert(random);
        }
    }

    /// A connection stopped waiting for this session's secrets (they will
    /// not come in time, or do not matter any more).
    pub fn abandon(&mut self, random: &ClientRandom) {
        self.awaiting.remove(random);
    }

    /// Whether some connection in use still waits for its secrets.
    pub fn awaiting_any(&self) -> bool {
        !self.awaiting.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// How many sessions have secrets.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// How many sessions with secrets no connection asked for.
    pub fn unused(&self) -> usize {
        self.sessions
            .keys()
            .filter(|r| !self.used.contains(*r))
            .count()
    }

    /// The key log lines (newline-terminated) of the sessions some
    /// connection has asked for, not taken before: what a Decryption
    /// Secrets Block written now must hold. Secrets of sessions the capture
    /// does not have never leave.
    pub fn take_lines_in_use(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for random in std::mem::take(&mut self.dirty) {
            if let Some(lines) = self.unwritten.remove(&random) {
                out.extend_from_slice(&lines);
            }
        }
        out
    }

    /// Adds one line. Blank lines and `#` comments are accepted and
    /// ignored; so are labels for secrets wscope has no use for.
    pub fn add_line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(label), Some(random), Some(secret), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("expected three fields: LABEL CLIENT_RANDOM SECRET".into());
        };
        let lengths: &[usize] = match label {
            "CLIENT_RANDOM" => &[48],
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
            | "SERVER_HANDSHAKE_TRAFFIC_SECRET"
            | "CLIENT_TRAFFIC_SECRET_0"
            | "SERVER_TRAFFIC_SECRET_0"
            | "CLIENT_EARLY_TRAFFIC_SECRET"
            | "EXPORTER_SECRET"
            | "EARLY_EXPORTER_SECRET" => &[32, 48],
            // RSA's pre-master secrets are keyed by the encrypted secret,
            // not the client random; Wireshark uses them, wscope does not
            // (CLIENT_RANDOM lines cover the same sessions).
            "RSA" => return Ok(()),
            // Secrets after key updates (OpenSSL writes them as `_N`):
            // wscope derives those from the first itself.
            other
                if other.starts_with("CLIENT_TRAFFIC_SECRET_")
                    || other.starts_with("SERVER_TRAFFIC_SECRET_") =>
            {
                return Ok(());
            }
            other => return Err(format!("unknown label {other:?}")),
        };
        let random: ClientRandom = hex(random)
            .and_then(|r| r.try_into().ok())
            .ok_or("the client random is not 64 hex digits")?;
        let secret = hex(secret).ok_or("the secret is not hex")?;
        if !lengths.contains(&secret.len()) {
            return Err(format!(
                "a {label} secret of {} bytes (expected {})",
                secret.len(),
                lengths
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        let entry = self.sessions.entry(random).or_default();
        let slot = match label {
            "CLIENT_RANDOM" => &mut entry.master,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" => &mut entry.client_traffic,
            "SERVER_TRAFFIC_SECRET_0" => &mut entry.server_traffic,
            "CLIENT_EARLY_TRAFFIC_SECRET" => &mut entry.client_early,
            _ => return Ok(()),
        };
        if slot.as_deref() != Some(&secret) {
            *slot = Some(secret);
            let lines = self.unwritten.entry(random).or_default();
            if lines.is_empty() && self.used.contains(&random) {
                self.dirty.push(random);
            }
            lines.extend_from_slice(line.as_bytes());
            lines.push(b'\n');
            if entry_complete(&self.sessions, &random) {
                self.awaiting.remove(&random);
            }
        }
        Ok(())
    }
}

fn entry_complete(sessions: &HashMap<ClientRandom, SessionSecrets>, random: &ClientRandom) -> bool {
    sessions.get(random).is_some_and(SessionSecrets::complete)
}

/// Reads key log text in pieces, line by line, counting lines.
#[derive(Debug, Default)]
pub struct LineReader {
    line: u64,
    partial: Vec<u8>,
    /// The partial line is too long: skip to its end.
    overlong: bool,
}

impl LineReader {
    /// Takes the next bytes of the source; complete lines go into `log`.
    pub fn feed(&mut self, mut bytes: &[u8], log: &mut KeyLog, errors: &mut Vec<LineError>) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.push(&bytes[..nl]);
            self.end_line(log, errors);
            bytes = &bytes[nl + 1..];
        }
        self.push(bytes);
    }

    /// The source ended: a last line without its newline counts too.
    pub fn finish(&mut self, log: &mut KeyLog, errors: &mut Vec<LineError>) {
        if !self.partial.is_empty() || self.overlong {
            self.end_line(log, errors);
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, log: &mut KeyLog, errors: &mut Vec<LineError>) {
        self.line += 1;
        let result = if std::mem::take(&mut self.overlong) {
            Err(format!("longer than {MAX_LINE} bytes"))
        } else {
            match std::str::from_utf8(&self.partial) {
                Ok(text) => log.add_line(text),
                Err(_) => Err("not text".into()),
            }
        };
        self.partial.clear();
        if let Err(message) = result {
            errors.push(LineError {
                line: self.line,
                message,
            });
        }
    }
}

/// Parses a whole key log text.
pub fn parse(text: &[u8], log: &mut KeyLog) -> Vec<LineError> {
    let mut errors = Vec::new();
    let mut reader = LineReader::default();
    reader.feed(text, log, &mut errors);
    reader.finish(log, &mut errors);
    errors
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "0102030405060708091011121314151617181920212223242526272829303132";

    #[test]
    fn reads_tls12_and_tls13_lines_and_reports_bad_ones_by_number() {
        let master = "ab".repeat(48);
        let traffic = "cd".repeat(32);
        let text = format!(
            "# a comment\nCLIENT_RANDOM {RANDOM} {master}\n\nbogus line\nSERVER_TRAFFIC_SECRET_0 {RANDOM} {traffic}\nCLIENT_RANDOM {RANDOM} abc\nNEW_LABEL {RANDOM} {traffic}\nEXPORTER_SECRET {RANDOM} {traffic}\nCLIENT_TRAFFIC_SECRET_N {RANDOM} {traffic}"
        );
        let mut log = KeyLog::default();
        let errors = parse(text.as_bytes(), &mut log);
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 6, 7], "{errors:?}");
        assert!(errors[2].message.contains("NEW_LABEL"));
        let random: ClientRandom = hex(RANDOM).unwrap().try_into().unwrap();
        let secrets = log.get(&random).expect("the session");
        assert_eq!(secrets.master.as_deref(), Some(&[0xab; 48][..]));
        assert_eq!(secrets.server_traffic.as_deref(), Some(&[0xcd; 32][..]));
        assert_eq!(secrets.client_traffic, None);
        assert_eq!(log.sessions(), 1);
        assert_eq!(log.unused(), 1);
        assert!(
            log.take_lines_in_use().is_empty(),
            "no connection asked yet"
        );
        log.mark_used(random);
        assert_eq!(log.unused(), 0);
        let new = String::from_utf8(log.take_lines_in_use()).unwrap();
        assert_eq!(new.lines().count(), 2, "{new}");
        assert!(log.take_lines_in_use().is_empty());
        // A line that comes later for a session in use is taken next time.
        let later = format!("CLIENT_TRAFFIC_SECRET_0 {RANDOM} {traffic}\n");
        log.add_line(&later).unwrap();
        assert_eq!(log.take_lines_in_use(), later.as_bytes());
    }

    #[test]
    fn lines_split_anywhere_read_the_same() {
        let text = format!("CLIENT_RANDOM {RANDOM} {}\n", "0f".repeat(48));
        for cut in 0..text.len() {
            let mut log = KeyLog::default();
            let mut errors = Vec::new();
            let mut reader = LineReader::default();
            reader.feed(&text.as_bytes()[..cut], &mut log, &mut errors);
            reader.feed(&text.as_bytes()[cut..], &mut log, &mut errors);
            assert!(errors.is_empty(), "cut at {cut}: {errors:?}");
            assert_eq!(log.sessions(), 1, "cut at {cut}");
        }
    }

    #[test]
    fn an_overlong_line_is_one_error_and_the_next_line_still_counts() {
        let text = format!(
            "{}\nCLIENT_RANDOM {RANDOM} {}\n",
            "x".repeat(5000),
            "0f".repeat(48)
        );
        let mut log = KeyLog::default();
        let errors = parse(text.as_bytes(), &mut log);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 1);
        assert_eq!(log.sessions(), 1);
    }
}

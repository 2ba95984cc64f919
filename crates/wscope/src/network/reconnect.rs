//! When `connect --reconnect` tries again, after how long, and when it gives
//! up; and the tally of a run's attempts that is reported at the end.
//!
//! An attempt is one try at a connection: a header command, the dial, the
//! opening steps, and the connection's life. The attempt number counts
//! attempts since the last connection that stayed up for `--stable-after`;
//! a server that accepts and drops at once therefore backs off like one
//! that refuses, instead of being redialled every half second forever.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wscope_proto::CloseCode;

/// The longest `Retry-After` honoured: a server asking for more is asking
/// for the run to end, which is the user's call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Exponential backoff from 500 ms, capped at `max`, with jitter (each delay
/// is drawn from the upper half of its range) so that many clients dropped
/// together do not come back together.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = base.min(max);
    capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// `Retry-After` in seconds (RFC 9110 section 10.2.3). The HTTP-date form
/// is not read: servers refusing WebSocket upgrades send seconds.
pub fn retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The close codes of `--reconnect-on` (one value, so that clap does not
/// read a list of them as a repeated flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCodes(pub Vec<u16>);

/// `--reconnect-on 1001,1012`: the close codes that reconnect.
pub fn parse_codes(text: &str) -> Result<CloseCodes, String> {
    let mut codes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(code @ 1000..=4999) => codes.push(code),
            _ => {
                return Err(format!(
                    "{part:?} is not a close code (1000-4999); give a list such as 1001,1012"
                ));
            }
        }
    }
    if codes.is_empty() {
        return Err("give at least one close code, such as 1012".to_owned());
    }
    Ok(CloseCodes(codes))
}

/// Whether a connection that ended with `code` is reconnected. 1006 (it
/// dropped) always is; without a list, every code is.
pub fn reconnects_on(list: Option<&CloseCodes>, code: CloseCode) -> bool {
    match list {
        None => true,
        Some(CloseCodes(codes)) => code == CloseCode::ABNORMAL || codes.contains(&code.0),
    }
}

/// What a run saw, across its attempts.
#[derive(Debug)]
pub struct Tally {
    pub attempts: u64,
    pub opens: u64,
    /// Close codes of the connections that opened, with how often.
    pub codes: BTreeMap<u16, u64>,
    /// Time without an open connection, outages ended so far.
    pub downtime: Duration,
    pub longest_outage: Duration,
    /// Since when no connection has been open (`None` while one is).
    down_since: Option<Instant>,
}

impl Tally {
    /// A run starting now, not yet connected.
    pub fn start() -> Tally {
        Tally {
            attempts: 0,
            opens: 0,
            codes: BTreeMap::new(),
            downtime: Duration::ZERO,
            longest_outage: Duration::ZERO,
            down_since: Some(Instant::now()),
        }
    }

    /// A connection opened: the outage, if any, is over.
    pub fn opened(&mut self) {
        self.opens += 1;
        if let Some(since) = self.down_since.take() {
            self.add_outage(since.elapsed());
        }
    }

    /// An open connection ended with `code`.
    pub fn closed(&mut self, code: u16) {
        *self.codes.entry(code).or_default() += 1;
        self.down_since = Some(Instant::now());
    }

    fn add_outage(&mut self, outage: Duration) {
        self.downtime += outage;
        self.longest_outage = self.longest_outage.max(outage);
    }

    /// The summary line, counting an outage still going on up to now.
    pub fn summary(&self) -> String {
        let ongoing = self.down_since.map(|s| s.elapsed()).unwrap_or_default();
        let downtime = self.downtime + ongoing;
        let longest = self.longest_outage.max(ongoing);
        let codes = if self.codes.is_empty() {
            "none".to_owned()
        } else {
            self.codes
                .iter()
                .map(|(code, n)| format!("{code}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "reconnect summary: attempts {}, opened {}, downtime {:.1?}, longest outage {:.1?}, close codes {codes}",
            self.attempts, self.opens, downtime, longest
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        for attempt in 1..=20 {
            let d = backoff(attempt, Duration::from_secs(4));
            let full = Duration::from_millis(500)
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(4));
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_is_seconds_and_bounded() {
        assert_eq!(retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("99999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after("-1"), None);
    }

    #[test]
    fn codes_and_what_reconnects() {
        assert_eq!(parse_codes("1001, 1012").unwrap().0, vec![1001, 1012]);
        assert!(parse_codes("999").is_err());
        assert!(parse_codes("abc").is_err());
        assert!(parse_codes(",").is_err());
        let list = CloseCodes(vec![1012]);
        assert!(reconnects_on(Some(&list), CloseCode(1012)));
        assert!(reconnects_on(Some(&list), CloseCode::ABNORMAL));
        assert!(!reconnects_on(Some(&list), CloseCode(1001)));
        assert!(reconnects_on(None, CloseCode(1001)));
    }

    #[test]
    fn the_tally_counts_outages() {
        let mut tally = Tally::start();
        tally.attempts = 2;
        std::thread::sleep(Duration::from_millis(20));
        tally.opened();
        tally.closed(1006);
        tally.opened();
        tally.closed(1006);
        tally.closed(1012);
        assert!(tally.downtime >= Duration::from_millis(20));
        let summary = tally.summary();
        assert!(summary.contains("attempts 2, opened 2,"), "{summary}");
        assert!(summary.contains("1006×2, 1012×1"), "{summary}");
    }
}

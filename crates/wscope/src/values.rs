//! The values flags and rules files take: durations, sizes, rates,
//! probabilities, close codes, hex. One module that every command imports,
//! so no command needs another's module (or the CLI's) to read a value.

use std::time::Duration;

/// The longest duration accepted anywhere: a year.
const MAX_DURATION_SECS: f64 = 365.0 * 86_400.0;

/// A size in bytes: a number, optionally with K, M or G (KiB, MiB, GiB:
/// powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; e.g. 256M, 1G, 65536"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("{text:?}: unknown unit {other:?} (K, M or G)")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `250ms`, `2s`, `1.5s`, `3m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 500ms, 2s, 1m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    // Deadlines are computed as now + duration: keep them far from overflow.
    if !(0.0..=MAX_DURATION_SECS).contains(&seconds) {
        return Err(format!("{text:?} is out of range (0 to 365 days)"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

pub fn parse_close_code(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|c| wscope_proto::CloseCode(*c).is_valid_on_wire())
        .ok_or_else(|| {
            format!(
                "{text:?} is not a close code that can be sent (1000-1003, 1007-1014, 3000-4999)"
            )
        })
}

/// Parses `64KiB/s`, `1MB/s`, `500B/s`, `2mbit/s` (the `/s` may be left
/// out; a bare number is bytes per second) into bytes per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let body = text.strip_suffix("/s").unwrap_or(text).trim();
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (try 64KiB/s, 1MB/s, 8mbit/s)"))?;
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1e3 / 8.0,
        "mbit" | "Mbit" => 1e6 / 8.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use B, KiB, MB, mbit, …)"
            ));
        }
    };
    let rate = value * scale;
    if !(1.0..=1e12).contains(&rate) {
        return Err(format!("{text:?} is out of range (1 B/s to 1 TB/s)"));
    }
    Ok(rate as u64)
}

/// Hex digits (whitespace and a leading `0x` allowed) into bytes.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = digits.strip_prefix("0x").unwrap_or(&digits);
    if !digits.is_ascii() {
        return Err(format!("{digits:?} is not hex"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "an even number of hex digits is needed, got {}",
            digits.len()
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| format!("{:?} is not a hex byte", &digits[i..i + 2]))
        })
        .collect()
}

/// Parses a probability (0 to 1).
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a probability (a number from 0 to 1)"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{text:?} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3m").unwrap(), Duration::from_secs(180));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("100000000000h").is_err());
        assert!(parse_duration("366d").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("64KiB/s").unwrap(), 65536);
        assert_eq!(parse_rate("1MB/s").unwrap(), 1_000_000);
        assert_eq!(parse_rate("8mbit/s").unwrap(), 1_000_000);
        assert_eq!(parse_rate("500").unwrap(), 500);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0B/s").is_err());
        assert!(parse_rate("3 furlongs/s").is_err());
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.25").unwrap(), 0.25);
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("-0.1").is_err());
        assert!(parse_probability("often").is_err());
    }
}

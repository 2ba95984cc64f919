//! Prometheus metrics scraped the way a monitoring system would: with the
//! official Python client's OpenMetrics parser (tests/peers/scrape_metrics.py).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TimedOutput, parse_report, peer_script, venv_bin};

pub fn scrape(metrics_url: &str) -> Value {
    let out = Command::new(venv_bin("python"))
        .arg(peer_script("scrape_metrics.py"))
        .arg(metrics_url)
        .timed_output()
        .unwrap();
    parse_report("scrape_metrics", &out)
}

/// The metrics URL a command printed on its ready line, after "metrics:"
/// when it says so (the proxy's line starts with its own address).
pub fn metrics_url(line: &str) -> String {
    let from = line
        .find("metrics: ")
        .map_or(0, |at| at + "metrics: ".len());
    line[from..]
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("a metrics URL in {line:?}"))
        .to_owned()
}

/// Scrapes until `check` holds on the samples (the metrics lag the events a
/// little); the last scrape is returned either way, for the assertion.
pub fn scrape_until(url: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = scrape(url);
        if check(&metrics["samples"]) || Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! The report's outputs: one line per finding on a terminal (coloured as
//! `--color` says), JSON Lines with `--json`, and one
//! JSON document with `--report-json`. Checks never print.

use std::io::Write;
use std::path::Path;

use super::Report;
use super::compare::Difference;
use super::finding::{Finding, Verdict};

/// Widest check name, for the column.
const CHECK_WIDTH: usize = 14;

fn paint(verdict: Verdict, color: bool) -> String {
    let name = verdict.name();
    if !color {
        return format!("{name:<8}");
    }
    let code = match verdict {
        Verdict::Ok => "32",
        Verdict::Info => "36",
        Verdict::Warning => "33",
        Verdict::Problem => "1;31",
        Verdict::Skipped => "2",
    };
    format!("\x1b[{code}m{name:<8}\x1b[0m")
}

/// The report as a person reads it; with `--compare`, the second one
/// after it and the differences last.
pub fn terminal(report: &Report, color: bool) -> String {
    let mut out = one(report, color);
    if let Some(compared) = &report.compared {
        out.push('\n');
        out.push_str(&one(compared, color));
        out.push_str(&format!(
            "\n{} differs from {}:\n",
            report.url, compared.url
        ));
        if report.differences.is_empty() {
            out.push_str("  no check has a different verdict\n");
        }
        for d in &report.differences {
            out.push_str(&format!(
                "  {:<CHECK_WIDTH$} {}: {}\n  {:<CHECK_WIDTH$} {}: {}\n",
                d.check, d.verdict, d.summary, "", d.compared_verdict, d.compared_summary
            ));
        }
    }
    out
}

fn one(report: &Report, color: bool) -> String {
    let mut out = format!(
        "wscope doctor {} ({} handshake)\n",
        report.url, report.handshake
    );
    for finding in &report.findings {
        out.push_str(&line(finding, color));
    }
    let count = |v: Verdict| report.findings.iter().filter(|f| f.verdict == v).count();
    if report.interrupted {
        out.push_str("\ninterrupted (Ctrl-C): the report so far\n");
    }
    out.push_str(&format!(
        "\n{} checks: {} ok, {} info, {} warning, {} problem, {} skipped\n",
        report.findings.len(),
        count(Verdict::Ok),
        count(Verdict::Info),
        count(Verdict::Warning),
        count(Verdict::Problem),
        count(Verdict::Skipped),
    ));
    out
}

fn line(finding: &Finding, color: bool) -> String {
    let mut out = format!(
        "  {} {:<CHECK_WIDTH$} {}\n",
        paint(finding.verdict, color),
        finding.check,
        finding.summary
    );
    let indent = " ".repeat(2 + 8 + 1 + CHECK_WIDTH + 1);
    let serious = matches!(finding.verdict, Verdict::Warning | Verdict::Problem);
    if serious || finding.verdict == Verdict::Info {
        for detail in &finding.detail {
            out.push_str(&format!("{indent}{detail}\n"));
        }
    }
    if serious && !finding.advice.is_empty() {
        out.push_str(&format!("{indent}fix: {}\n", finding.advice));
    }
    out
}

/// Whether the terminal output gets colours.
pub fn color() -> bool {
    crate::color::stdout()
}

/// One finding as a JSON Lines line (docs/FORMAT.md, "Doctor findings").
pub fn json_line(report: &Report, finding: &Finding) -> String {
    let mut value = serde_json::to_value(finding).expect("a finding serializes");
    if let Some(object) = value.as_object_mut() {
        object.insert("url".into(), report.url.clone().into());
    }
    value.to_string()
}

/// One `--compare` difference as a JSON Lines line: `check` and
/// `verdict` are the first URL's, so a reader filtering on them meets
/// it; `"difference": true` tells it from a finding.
pub fn difference_line(report: &Report, difference: &Difference) -> String {
    let mut value = serde_json::to_value(difference).expect("a difference serializes");
    if let Some(object) = value.as_object_mut() {
        object.insert("difference".into(), true.into());
        object.insert("url".into(), report.url.clone().into());
        if let Some(compared) = &report.compared {
            object.insert("compared_url".into(), compared.url.clone().into());
        }
    }
    value.to_string()
}

/// Prints the report on stdout: the terminal form or JSON Lines (the
/// findings of each URL, then the differences).
pub fn print(report: &Report, json: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        for report in std::iter::once(report).chain(report.compared.as_deref()) {
            for finding in &report.findings {
                writeln!(stdout, "{}", json_line(report, finding))?;
            }
        }
        for difference in &report.differences {
            writeln!(stdout, "{}", difference_line(report, difference))?;
        }
    } else {
        stdout.write_all(terminal(report, color()).as_bytes())?;
    }
    stdout.flush()
}

/// Writes the report as one JSON document, readable only by its owner
/// (the response heads may carry cookies).
pub fn write_document(report: &Report, path: &Path) -> anyhow::Result<()> {
    let document = serde_json::to_vec_pretty(report).expect("a report serializes");
    crate::network::tls::write_private(path, &document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_check_advice_only_under_warnings_and_problems() {
        let report = Report {
            url: "ws://x/".to_owned(),
            handshake: "browser",
            findings: vec![
                Finding::ok("tcp", "connected").advice("never shown"),
                Finding::new("keepalive", Verdict::Problem, "no pong").advice("answer pings"),
            ],
            exit: 1,
            interrupted: false,
            compared: None,
            differences: Vec::new(),
        };
        let text = terminal(&report, false);
        assert!(
            text.contains("  ok       tcp            connected\n"),
            "{text}"
        );
        assert!(
            text.contains("  problem  keepalive      no pong\n"),
            "{text}"
        );
        assert!(text.contains("fix: answer pings"), "{text}");
        assert!(!text.contains("never shown"), "{text}");
        assert!(!text.contains('\x1b'));
        assert!(terminal(&report, true).contains("\x1b[1;31mproblem"));
        assert!(text.contains("2 checks: 1 ok, 0 info, 0 warning, 1 problem, 0 skipped"));
    }
}

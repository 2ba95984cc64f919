//! What a check found: one `Finding` per thing it looked at, each with a
//! verdict. The renderers and the exit status read only these.

use serde::Serialize;

/// How a finding weighs. Ordered: a report's worst verdict decides the
/// exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not checked: it did not apply, or something it needs failed first.
    Skipped,
    Ok,
    Info,
    Warning,
    Problem,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Skipped => "skipped",
            Verdict::Ok => "ok",
            Verdict::Info => "info",
            Verdict::Warning => "warning",
            Verdict::Problem => "problem",
        }
    }
}

/// One result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check's name (`dns`, `tcp`, `upgrade`, ...).
    pub check: &'static str,
    pub verdict: Verdict,
    /// One line: what was seen.
    pub summary: String,
    /// More lines: the evidence (a response head, each address, timings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    /// What to change; empty for ok, info and skipped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advice: String,
}

impl Finding {
    pub fn new(check: &'static str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Finding {
            check,
            verdict,
            summary: summary.into(),
            detail: Vec::new(),
            advice: String::new(),
        }
    }

    pub fn ok(check: &'static str, summary: impl Into<String>) -> Self {
        Self::new(check, Verdict::Ok, summary)
    }

    pub fn info(check: &'static str, summary: impl Into<String>) -> Self {
        Self::new(check, Verdict::Info, summary)
    }

    pub fn skipped(check: &'static str, summary: impl Into<String>) -> Self {
        Self::new(check, Verdict::Skipped, summary)
    }

    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.detail.push(line.into());
        self
    }

    pub fn advice(mut self, advice: impl Into<String>) -> Self {
        self.advice = advice.into();
        self
    }
}

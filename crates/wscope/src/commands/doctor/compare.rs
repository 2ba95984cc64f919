//! `--compare URL2`: the same checks against a second URL (the backend
//! directly, another path), and the checks whose verdict differs between
//! the two, in words: "upgrade: problem through ws://a (refused: 400),
//! ok at ws://b (101)".

use serde::Serialize;

use super::Report;

/// One check that came out differently.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub check: &'static str,
    /// The verdict and summary at the first URL.
    pub verdict: &'static str,
    pub summary: String,
    /// The same at `--compare`'s URL.
    pub compared_verdict: &'static str,
    pub compared_summary: String,
}

/// The checks whose verdict differs, in the order they are listed.
pub fn differences(first: &Report, second: &Report) -> Vec<Difference> {
    first
        .findings
        .iter()
        .filter_map(|a| {
            let b = second.findings.iter().find(|b| b.check == a.check)?;
            (a.verdict != b.verdict).then(|| Difference {
                check: a.check,
                verdict: a.verdict.name(),
                summary: a.summary.clone(),
                compared_verdict: b.verdict.name(),
                compared_summary: b.summary.clone(),
            })
        })
        .collect()
}

//! The report of a replay or a diff: one JSON document for CI
//! (`--report-json`), a summary line for people, and the exit status.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::compare::Tally;
use super::driver::ConnReport;

#[derive(Debug, Serialize)]
pub struct Report {
    /// `replay` or `diff`.
    pub command: &'static str,
    /// The recording(s).
    pub recording: String,
    /// The server played against, or the second recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `same`, `different` or `failed`.
    pub result: &'static str,
    pub status: i32,
    pub totals: Totals,
    pub connections: Vec<ConnReport>,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub connections: u64,
    pub same: u64,
    pub different: u64,
    pub failed: u64,
    pub messages: Tally,
}

impl Report {
    pub fn new(
        command: &'static str,
        recording: &str,
        to: Option<&str>,
        connections: Vec<ConnReport>,
    ) -> Report {
        let mut totals = Totals::default();
        for conn in &connections {
            totals.connections += 1;
            match conn.result {
                "same" => totals.same += 1,
                "different" => totals.different += 1,
                _ => totals.failed += 1,
            }
            totals.messages.same += conn.tally.same;
            totals.messages.differs += conn.tally.differs;
            totals.messages.missing += conn.tally.missing;
            totals.messages.extra += conn.tally.extra;
        }
        // A connection that could not be made says why with connect's
        // status; otherwise 1 for any difference.
        let status = connections
            .iter()
            .map(|c| c.status)
            .find(|s| *s > 1)
            .unwrap_or_else(|| i32::from(connections.iter().any(|c| c.status != 0)));
        let result = if totals.failed > 0 {
            "failed"
        } else if totals.different > 0 {
            "different"
        } else {
            "same"
        };
        Report {
            command,
            recording: recording.to_owned(),
            to: to.map(str::to_owned),
            result,
            status,
            totals,
            connections,
        }
    }

    /// Writes the JSON document if asked, prints the summary line unless
    /// `quiet`, and returns the exit status.
    pub fn finish(&self, json: Option<&Path>, quiet: bool) -> anyhow::Result<i32> {
        if let Some(path) = json {
            let mut file = crate::files::create_private(path)
                .with_context(|| format!("cannot create the report {}", path.display()))?;
            serde_json::to_writer_pretty(&mut file, self)?;
            file.write_all(b"\n")?;
        }
        if !quiet {
            eprintln!("wscope: {}", self.summary());
        }
        Ok(self.status)
    }

    pub fn summary(&self) -> String {
        let t = &self.totals;
        let m = &t.messages;
        format!(
            "{} {}: {} connection{}: {} same, {} different, {} failed; messages: {} same, {} differ, {} missing, {} extra",
            self.command,
            self.result,
            t.connections,
            if t.connections == 1 { "" } else { "s" },
            t.same,
            t.different,
            t.failed,
            m.same,
            m.differs,
            m.missing,
            m.extra
        )
    }
}

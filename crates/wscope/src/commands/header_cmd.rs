//! Header values computed per connection: `-H 'Authorization: Bearer
//! {{cmd:get-token}}'` runs `get-token` with `sh -c` before every attempt,
//! so that a reconnection carries a fresh credential instead of the one
//! that expired.
//!
//! Only `connect` expands these, and only in headers given on its command
//! line: a header read from a file or a recording is never run. The values
//! a command produced are treated as secrets (redacted in events unless
//! `--no-redact`), whatever the header is called.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

const OPEN: &str = "{{cmd:";
const CLOSE: &str = "}}";

/// The most output read from a command: a token, not a file.
const MAX_OUTPUT: u64 = 64 * 1024;

/// How long a command may run before the attempt counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One piece of a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Command(String),
}

/// A `Name: value` header whose value may hold commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    name: String,
    pieces: Vec<Piece>,
}

impl HeaderTemplate {
    /// Whether a command computes (part of) the value.
    pub fn runs_commands(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Command(_)))
    }

    /// The header's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads `Name: value` with its `{{cmd:...}}` parts; a mistake (no colon,
/// a `{{cmd:` never closed, an empty command) is said before connecting.
pub fn parse(header: &str) -> Result<HeaderTemplate, String> {
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| format!("header {header:?} should look like 'Name: value'"))?;
    let name = name.trim().to_owned();
    let mut pieces = Vec::new();
    let mut rest = value.trim();
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            pieces.push(Piece::Literal(rest[..start].to_owned()));
        }
        let after = &rest[start + OPEN.len()..];
        let end = after.find(CLOSE).ok_or_else(|| {
            format!(
                "header {name}: {OPEN}... is not closed with {CLOSE} (write {OPEN}COMMAND{CLOSE})"
            )
        })?;
        let command = after[..end].trim();
        if command.is_empty() {
            return Err(format!("header {name}: {OPEN}{CLOSE} names no command"));
        }
        pieces.push(Piece::Command(command.to_owned()));
        rest = &after[end + CLOSE.len()..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_owned()));
    }
    Ok(HeaderTemplate { name, pieces })
}

/// Runs the template's commands and gives the header as `Name: value`.
/// The error says which command failed and how, never what it printed on
/// stdout (that may be half a secret).
pub async fn expand(template: &HeaderTemplate) -> Result<String, String> {
    let mut value = String::new();
    for piece in &template.pieces {
        match piece {
            Piece::Literal(text) => value.push_str(text),
            Piece::Command(command) => {
                let output = run(command).await.map_err(|why| {
                    format!("header {}: the command {command:?} {why}", template.name)
                })?;
                value.push_str(&output);
            }
        }
    }
    Ok(format!("{}: {value}", template.name))
}

/// Runs one command; its stdout, trimmed, must be one non-empty line.
async fn run(command: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("could not start (sh -c): {err}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let finished = tokio::time::timeout(TIMEOUT, async {
        let (out, err) = tokio::join!(read_bounded(stdout), read_bounded(stderr));
        (out, err, child.wait().await)
    })
    .await;
    let Ok((out, err, status)) = finished else {
        return Err(format!("did not finish within {TIMEOUT:?}"));
    };
    let status = status.map_err(|err| format!("could not be waited for: {err}"))?;
    if !status.success() {
        let said = String::from_utf8_lossy(&err);
        let said = said.trim().lines().last().unwrap_or("").trim();
        let said: String = said.chars().take(200).collect();
        let code = status.code().map_or_else(
            || "was killed by a signal".to_owned(),
            |c| format!("exited with {c}"),
        );
        return Err(if said.is_empty() {
            code
        } else {
            format!("{code}: {said}")
        });
    }
    let text =
        String::from_utf8(out).map_err(|_| "printed something that is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("printed nothing (a header value must not be empty)".to_owned());
    }
    // A newline or control character would end the header early and let
    // the rest pass for headers of its own.
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(
            "printed more than one line, or control characters, which cannot go in a header"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

async fn read_bounded(stream: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = stream.take(MAX_OUTPUT).read_to_end(&mut bytes).await;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        let t = parse("Authorization: Bearer {{cmd:cat /tmp/t}}").unwrap();
        assert_eq!(t.name(), "Authorization");
        assert!(t.runs_commands());
        assert_eq!(
            t.pieces,
            vec![
                Piece::Literal("Bearer ".into()),
                Piece::Command("cat /tmp/t".into())
            ]
        );
        assert!(!parse("X-A: plain").unwrap().runs_commands());
        assert!(parse("X-A: {{cmd:date").unwrap_err().contains("not closed"));
        assert!(parse("X-A: {{cmd: }}").unwrap_err().contains("no command"));
        assert!(parse("no colon").unwrap_err().contains("Name: value"));
    }

    #[tokio::test]
    async fn commands_run_and_fail_clearly() {
        let ok = expand(&parse("X-T: a-{{cmd:printf ' tok\\n'}}-b").unwrap()).await;
        assert_eq!(ok.unwrap(), "X-T: a-tok-b");
        let failed = expand(&parse("X-T: {{cmd:echo nope >&2; exit 3}}").unwrap()).await;
        let failed = failed.unwrap_err();
        assert!(failed.contains("exited with 3: nope"), "{failed}");
        let empty = expand(&parse("X-T: {{cmd:true}}").unwrap()).await;
        assert!(empty.unwrap_err().contains("printed nothing"));
        let two = expand(&parse("X-T: {{cmd:printf 'a\\nb'}}").unwrap()).await;
        assert!(two.unwrap_err().contains("more than one line"));
    }
}

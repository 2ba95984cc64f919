//! Secrets kept out of everything wscope writes or shows.
//!
//! Record files get shared in bug reports and terminals get screen-shared;
//! a bearer token in either is a leak. A [`Redactor`] is built once per
//! run from the [`Rules`] (the defaults, plus what `--redact-header`,
//! `--redact-query` and `--redact-json` add) and applied to every event
//! on its way to the sinks, so the record file, `--json`, the terminal,
//! the lifecycle log, the UI and its exports all show the same markers.
//!
//! What is redacted, and where:
//! - header values by name (`Authorization`, `Cookie`, `X-Api-Key`, ...);
//! - query parameters by name (`?token=`), in the URL, the request line,
//!   other header values (`Referer`), notes, errors and close reasons;
//! - `Sec-WebSocket-Protocol` values shaped like credentials
//!   ([`subprotocol`]);
//! - fields of whole JSON text messages, by name or path ([`json`]).
//!
//! Each secret becomes `<redacted:HASH>` ([`hash`]: keyed, so equal secrets
//! match within a run and cannot be guessed from a file). A value that is
//! a marker already is left alone, so redacting twice changes nothing.

mod hash;
mod json;
mod query;
mod subprotocol;

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::event::{Diff, Head, Payload};
use crate::filter::{PathStep, json_path_string, parse_json_path};
use crate::{Event, EventKind};

pub use hash::{MARKER_FORM, MARKER_PREFIX, is_redacted};

/// Headers whose values are secrets by default.
pub const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// Query string parameters whose values are secrets by default.
pub const SENSITIVE_QUERY: &[&str] = &[
    "token",
    "access_token",
    "auth",
    "key",
    "sig",
    "signature",
    "password",
    "jwt",
];

/// JSON fields (at any depth, any case) whose values are secrets by
/// default.
pub const SENSITIVE_JSON: &[&str] = &["password", "token", "secret", "authorization"];

/// Which values are secrets. Serialised as is into a record file's
/// header (`redaction`), so a reader knows what was taken out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// What each secret was replaced with.
    #[serde(default)]
    pub marker: String,
    /// Header names (lower case) whose whole values are secret.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query parameter names (lower case).
    #[serde(default)]
    pub query: Vec<String>,
    /// The credential shapes redacted in `Sec-WebSocket-Protocol`.
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// JSON field names, at any depth, any case.
    #[serde(default)]
    pub json_fields: Vec<String>,
    /// JSON paths from the root (`json.user.pin`), as the filter language
    /// writes them.
    #[serde(default)]
    pub json_paths: Vec<String>,
}

impl Default for Rules {
    /// The rules wscope applies unless told otherwise.
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        Rules {
            marker: MARKER_FORM.to_owned(),
            headers: owned(SENSITIVE),
            query: owned(SENSITIVE_QUERY),
            subprotocols: owned(&subprotocol::DESCRIPTION),
            json_fields: owned(SENSITIVE_JSON),
            json_paths: Vec::new(),
        }
    }
}

/// A rule the user wrote that is not one.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("--redact-json {0}")]
    JsonPath(String),
    #[error("--redact-{flag} needs a name, not an empty value")]
    Empty { flag: &'static str },
}

impl Rules {
    /// Adds a header whose value is secret.
    pub fn add_header(&mut self, name: &str) -> Result<(), RuleError> {
        add_name(&mut self.headers, name, "header")
    }

    /// Adds a query parameter whose value is secret.
    pub fn add_query(&mut self, name: &str) -> Result<(), RuleError> {
        add_name(&mut self.query, name, "query")
    }

    /// Adds a JSON path (`json.user.pin`, the filter language's syntax).
    pub fn add_json_path(&mut self, path: &str) -> Result<(), RuleError> {
        let steps = parse_json_path(path).map_err(RuleError::JsonPath)?;
        let written = json_path_string(&steps);
        if !self.json_paths.contains(&written) {
            self.json_paths.push(written);
        }
        Ok(())
    }
}

fn add_name(list: &mut Vec<String>, name: &str, flag: &'static str) -> Result<(), RuleError> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(RuleError::Empty { flag });
    }
    if !list.contains(&name) {
        list.push(name);
    }
    Ok(())
}

/// Rules ready to apply, with the run's key for markers.
pub struct Redactor {
    rules: Rules,
    json_paths: Vec<Vec<PathStep>>,
    json_prefilter: Option<regex::bytes::Regex>,
    hasher: hash::Hasher,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the key.
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for `rules`, with a fresh random key.
    pub fn new(rules: Rules) -> Result<Redactor, RuleError> {
        Self::with_hasher(rules, hash::Hasher::random())
    }

    fn with_hasher(rules: Rules, hasher: hash::Hasher) -> Result<Redactor, RuleError> {
        let json_paths = rules
            .json_paths
            .iter()
            .map(|path| parse_json_path(path).map_err(RuleError::JsonPath))
            .collect::<Result<_, _>>()?;
        Ok(Redactor {
            json_prefilter: json::names_pattern(&rules.json_fields),
            rules,
            json_paths,
            hasher,
        })
    }

    /// The default rules, for library users that want wscope's defaults
    /// (one redactor per process, so their markers agree).
    pub fn shared_default() -> &'static Redactor {
        static DEFAULT: OnceLock<Redactor> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Redactor::new(Rules::default()).expect("the default rules are valid"))
    }

    /// The rules applied (for the record header).
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    fn marker(&self, secret: &str) -> String {
        self.hasher.marker(secret)
    }

    /// `event` with its secrets replaced: borrowed when it has none (most
    /// messages), so the common path copies nothing.
    pub fn redact<'a>(&self, event: &'a Event) -> Cow<'a, Event> {
        let payload = match &event.kind {
            EventKind::Message(message) => Some((&message.opcode, &message.payload)),
            EventKind::Frame(frame) if frame.fin => Some((&frame.opcode, &frame.payload)),
            // Nothing in them can be secret.
            EventKind::Frame(_) | EventKind::Closed(_) => return Cow::Borrowed(event),
            _ => None,
        };
        if let Some((opcode, payload)) = payload {
            return match self.payload(opcode, payload) {
                Some(new) => {
                    let mut event = event.clone();
                    match &mut event.kind {
                        EventKind::Message(message) => message.payload = new,
                        EventKind::Frame(frame) => frame.payload = new,
                        _ => {}
                    }
                    Cow::Owned(event)
                }
                None => Cow::Borrowed(event),
            };
        }
        let mut event = event.clone();
        self.redact_in_place(&mut event);
        Cow::Owned(event)
    }

    /// Replaces the secrets `event` carries, in place.
    pub fn redact_in_place(&self, event: &mut Event) {
        match &mut event.kind {
            EventKind::Open(open) => {
                self.text(&mut open.url);
                self.head(&mut open.request);
                self.head(&mut open.response);
                if let Some(chosen) = &mut open.subprotocol {
                    self.subprotocols(chosen);
                }
            }
            EventKind::HandshakeFailed(failed) => {
                self.text(&mut failed.url);
                for head in [&mut failed.request, &mut failed.response]
                    .into_iter()
                    .flatten()
                {
                    self.head(head);
                }
                self.text(&mut failed.body);
                self.text(&mut failed.diagnosis);
            }
            EventKind::Message(message) => {
                if let Some(new) = self.payload(&message.opcode, &message.payload) {
                    message.payload = new;
                }
            }
            EventKind::Frame(frame) if frame.fin => {
                if let Some(new) = self.payload(&frame.opcode, &frame.payload) {
                    frame.payload = new;
                }
            }
            EventKind::Frame(_) => {}
            EventKind::Close(close) => self.text(&mut close.reason),
            EventKind::Closed(_) => {}
            EventKind::Error { message } => self.text(message),
            EventKind::Note { text } => self.text(text),
            EventKind::Diff(diff) => self.diff(diff),
        }
    }

    /// One line of a report that is not an event (doctor's findings): a
    /// header line (`Name: value`, maybe after `> ` or `< `) by the header
    /// rules, anything else for the query parameters in it.
    pub fn redact_line(&self, line: &mut String) {
        let body_at = if line.starts_with("> ") || line.starts_with("< ") {
            2
        } else {
            0
        };
        if let Some((name, value)) = line[body_at..].split_once(": ")
            && !name.is_empty()
            && !name.contains(' ')
        {
            let mut head = Head {
                line: String::new(),
                headers: vec![(name.to_owned(), value.to_owned())],
            };
            self.head(&mut head);
            let (name, value) = &head.headers[0];
            *line = format!("{}{name}: {value}", &line[..body_at]);
            return;
        }
        self.text(line);
    }

    /// Query parameters in free text (a URL, a line, a note).
    fn text(&self, text: &mut String) {
        if let Cow::Owned(new) = query::redact_query(text, &self.rules.query, &|v| self.marker(v)) {
            *text = new;
        }
    }

    fn head(&self, head: &mut Head) {
        self.text(&mut head.line);
        for (name, value) in head.headers.iter_mut() {
            if is_redacted(value) {
                continue;
            }
            if self
                .rules
                .headers
                .iter()
                .any(|secret| secret.eq_ignore_ascii_case(name))
            {
                *value = self.marker(value);
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                self.subprotocols(value);
            } else {
                self.text(value);
            }
        }
    }

    fn subprotocols(&self, value: &mut String) {
        if self.rules.subprotocols.is_empty() {
            return;
        }
        if let Cow::Owned(new) = subprotocol::redact_subprotocols(value, &|v| self.marker(v)) {
            *value = new;
        }
    }

    /// A whole text payload that is JSON, its secret fields replaced;
    /// `None` when nothing changed; `len` keeps the size that went over
    /// the wire. A payload cut by `--max-payload` is not looked at: its
    /// kept part is no longer a JSON document, and the large messages that
    /// get cut are where looking would cost most.
    fn payload(&self, opcode: &str, payload: &Payload) -> Option<Payload> {
        if opcode != "text" || payload.truncated {
            return None;
        }
        let text = payload.text.as_deref()?;
        let rules = json::JsonRules {
            names: &self.rules.json_fields,
            paths: &self.json_paths,
            prefilter: self.json_prefilter.as_ref(),
        };
        match json::redact_json(text, &rules, &|v| self.marker(v)) {
            Cow::Borrowed(_) => None,
            Cow::Owned(new) => Some(Payload {
                text: Some(new),
                ..payload.clone()
            }),
        }
    }

    /// A replay's difference: both payloads, and the values of secret
    /// paths among those that differ.
    fn diff(&self, diff: &mut Diff) {
        for payload in [&mut diff.old, &mut diff.new].into_iter().flatten() {
            if let Some(new) = self.payload("text", payload) {
                *payload = new;
            }
        }
        for change in &mut diff.paths {
            let Ok(path) = parse_json_path(&change.path) else {
                continue;
            };
            let by_name = matches!(path.last(), Some(PathStep::Key(key))
                if self.rules.json_fields.iter().any(|n| n.eq_ignore_ascii_case(key)));
            if by_name || self.json_paths.contains(&path) {
                for value in [&mut change.old, &mut change.new].into_iter().flatten() {
                    let secret = match &*value {
                        serde_json::Value::String(text) if is_redacted(text) => continue,
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    *value = serde_json::Value::String(self.marker(&secret));
                }
            }
        }
    }
}

/// Whether `name` is a header redacted by default (ASCII case-insensitive).
pub fn is_sensitive(name: &str) -> bool {
    SENSITIVE.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Redacts an event with the default rules (library users; the binary
/// builds its own [`Redactor`] from its flags).
pub fn redact_event(event: &mut Event) {
    Redactor::shared_default().redact_in_place(event);
}

#[cfg(test)]
mod tests;

//! The rules file: TOML, one `[[rule]]` table per rule.
//!
//! ```toml
//! [[rule]]
//! match = 'dir == s2c && json.type == "price"'
//! action = "delay"
//! delay = "200ms"
//! jitter = "50ms"
//! ```
//!
//! Every mistake is reported with its line: TOML syntax, an unknown key, a
//! key the action does not take, a filter that does not parse (with its
//! own caret message), a value out of range.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use wscope_events::Direction;
use wscope_events::filter::{self, Expr, Field};

use super::{Action, After, Injected, Replace, Rule, RuleSet, Sides};

/// A rules file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    /// 1-based; 0 when the whole file is at fault.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for RulesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: S<String>,
    #[serde(rename = "match")]
    filter: S<String>,
    probability: S<f64>,
    after: S<toml::Value>,
    count: S<i64>,
    action: Spanned<String>,
    // delay
    delay: S<String>,
    jitter: S<String>,
    reorder: S<bool>,
    // replace
    regex: S<String>,
    with: S<String>,
    path: S<String>,
    value: S<toml::Value>,
    // inject, close
    to: S<String>,
    text: S<String>,
    json: S<toml::Value>,
    binary: S<String>,
    every: S<String>,
    code: S<i64>,
    reason: S<String>,
    // throttle, idle-timeout, pause
    rate: S<String>,
    timeout: S<String>,
    duration: S<String>,
    direction: S<String>,
}

/// The keys each action takes, beyond the common ones.
fn keys_of(action: &str) -> Option<&'static [&'static str]> {
    Some(match action {
        "delay" => &["delay", "jitter", "reorder"],
        "drop" | "reset" => &[],
        "replace" => &["regex", "with", "path", "value"],
        "inject" => &["to", "text", "json", "binary", "every"],
        "close" => &["to", "code", "reason"],
        "throttle" => &["rate"],
        "idle-timeout" => &["timeout", "code"],
        "pause" | "stall" => &["duration", "direction"],
        _ => return None,
    })
}

const ACTIONS: &str =
    "delay, drop, replace, inject, close, reset, throttle, idle-timeout, pause (or stall)";

/// Line of a byte offset, 1-based.
fn line_of(source: &str, at: usize) -> usize {
    source[..at.min(source.len())].matches('\n').count() + 1
}

/// Parses a rules file. `source` is its text.
pub fn parse(source: &str) -> Result<RuleSet, RulesError> {
    let raw: RawFile = toml::from_str(source).map_err(|err| RulesError {
        line: err.span().map_or(0, |span| line_of(source, span.start)),
        reason: err.message().trim().to_owned(),
    })?;
    let mut rules = Vec::with_capacity(raw.rule.len());
    for (index, spanned) in raw.rule.into_iter().enumerate() {
        let line = line_of(source, spanned.span().start);
        let raw = spanned.into_inner();
        let fail = |span: Range<usize>, reason: String| RulesError {
            line: line_of(source, span.start),
            reason,
        };
        let label = match &raw.name {
            Some(name) => format!("rule {:?} (line {line})", name.get_ref()),
            None => format!("rule {} (line {line})", index + 1),
        };
        let rule = build(&raw, label, &fail)?;
        rules.push(rule);
    }
    Ok(RuleSet { rules })
}

fn build(
    raw: &RawRule,
    label: String,
    fail: &dyn Fn(Range<usize>, String) -> RulesError,
) -> Result<Rule, RulesError> {
    let action_name = raw.action.get_ref().as_str();
    let Some(allowed) = keys_of(action_name) else {
        return Err(fail(
            raw.action.span(),
            format!("unknown action {action_name:?}; the actions are {ACTIONS}"),
        ));
    };
    for (key, span) in raw.action_keys() {
        if !allowed.contains(&key) {
            return Err(fail(
                span,
                format!("`{key}` does not apply to a {action_name} rule"),
            ));
        }
    }

    let filter = match &raw.filter {
        None => None,
        Some(text) => Some(parse_filter(text, fail)?),
    };
    let probability = match &raw.probability {
        None => None,
        Some(p) if (0.0..=1.0).contains(p.get_ref()) => Some(*p.get_ref()),
        Some(p) => {
            return Err(fail(
                p.span(),
                format!("probability {} is not between 0 and 1", p.get_ref()),
            ));
        }
    };
    let after = match &raw.after {
        None => None,
        Some(value) => Some(match value.get_ref() {
            toml::Value::Integer(n) if *n >= 0 => After::Matches(*n as u64),
            toml::Value::String(text) => {
                After::Time(duration(&Spanned::new(value.span(), text.clone()), fail)?)
            }
            _ => {
                return Err(fail(
                    value.span(),
                    "`after` is a number of matches (3) or a time since the connection opened (\"30s\")".to_owned(),
                ));
            }
        }),
    };
    let count = match &raw.count {
        None => None,
        Some(n) if *n.get_ref() >= 1 => Some(*n.get_ref() as u64),
        Some(n) => return Err(fail(n.span(), "`count` must be at least 1".to_owned())),
    };

    let action = match action_name {
        "delay" => Action::Delay {
            delay: duration(required(&raw.delay, "delay", &raw.action, fail)?, fail)?,
            jitter: optional_duration(&raw.jitter, fail)?.unwrap_or_default(),
            reorder: raw.reorder.as_ref().is_some_and(|r| *r.get_ref()),
        },
        "drop" => Action::Drop,
        "reset" => Action::Reset,
        "replace" => Action::Replace(replacement(raw, fail)?),
        "inject" => Action::Inject {
            to: sides_to(&raw.to, fail)?,
            message: injected(raw, fail)?,
            every: optional_duration(&raw.every, fail)?,
        },
        "close" => Action::Close {
            to: sides_to(&raw.to, fail)?,
            code: close_code(&raw.code, fail)?.unwrap_or(1000),
            reason: close_reason(&raw.reason, fail)?,
        },
        "throttle" => {
            let rate = required(&raw.rate, "rate", &raw.action, fail)?;
            Action::Throttle {
                rate: crate::values::parse_rate(rate.get_ref())
                    .map_err(|e| fail(rate.span(), e))?,
            }
        }
        "idle-timeout" => Action::IdleTimeout {
            timeout: duration(required(&raw.timeout, "timeout", &raw.action, fail)?, fail)?,
            code: close_code(&raw.code, fail)?,
        },
        _ => Action::Pause {
            duration: duration(
                required(&raw.duration, "duration", &raw.action, fail)?,
                fail,
            )?,
            direction: match &raw.direction {
                None => None,
                Some(text) => Some(direction(text, fail)?),
            },
        },
    };
    Ok(Rule {
        label,
        filter,
        probability,
        after,
        count,
        action,
    })
}

impl RawRule {
    /// The action-specific keys present, with where they are.
    fn action_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut keys = Vec::new();
        let mut add = |name, span: Option<Range<usize>>| {
            if let Some(span) = span {
                keys.push((name, span));
            }
        };
        add("delay", self.delay.as_ref().map(Spanned::span));
        add("jitter", self.jitter.as_ref().map(Spanned::span));
        add("reorder", self.reorder.as_ref().map(Spanned::span));
        add("regex", self.regex.as_ref().map(Spanned::span));
        add("with", self.with.as_ref().map(Spanned::span));
        add("path", self.path.as_ref().map(Spanned::span));
        add("value", self.value.as_ref().map(Spanned::span));
        add("to", self.to.as_ref().map(Spanned::span));
        add("text", self.text.as_ref().map(Spanned::span));
        add("json", self.json.as_ref().map(Spanned::span));
        add("binary", self.binary.as_ref().map(Spanned::span));
        add("every", self.every.as_ref().map(Spanned::span));
        add("code", self.code.as_ref().map(Spanned::span));
        add("reason", self.reason.as_ref().map(Spanned::span));
        add("rate", self.rate.as_ref().map(Spanned::span));
        add("timeout", self.timeout.as_ref().map(Spanned::span));
        add("duration", self.duration.as_ref().map(Spanned::span));
        add("direction", self.direction.as_ref().map(Spanned::span));
        keys
    }
}

type Fail<'a> = &'a dyn Fn(Range<usize>, String) -> RulesError;

fn required<'a, T>(
    value: &'a S<T>,
    key: &str,
    action: &Spanned<String>,
    fail: Fail,
) -> Result<&'a Spanned<T>, RulesError> {
    value.as_ref().ok_or_else(|| {
        fail(
            action.span(),
            format!("a {} rule needs `{key}`", action.get_ref()),
        )
    })
}

fn parse_filter(text: &Spanned<String>, fail: Fail) -> Result<Expr, RulesError> {
    filter::parse(text.get_ref()).map_err(|err| {
        fail(
            text.span(),
            format!(
                "`match` is not a valid filter:\n{}",
                err.render(text.get_ref())
            ),
        )
    })
}

fn duration(text: &Spanned<String>, fail: Fail) -> Result<Duration, RulesError> {
    crate::values::parse_duration(text.get_ref()).map_err(|e| fail(text.span(), e))
}

fn optional_duration(text: &S<String>, fail: Fail) -> Result<Option<Duration>, RulesError> {
    text.as_ref().map(|t| duration(t, fail)).transpose()
}

/// `to = "client" | "server" | "both"`; default both.
fn sides_to(to: &S<String>, fail: Fail) -> Result<Sides, RulesError> {
    let Some(to) = to else {
        return Ok(Sides::Both);
    };
    Ok(match to.get_ref().as_str() {
        "client" => Sides::One(Direction::ServerToClient),
        "server" => Sides::One(Direction::ClientToServer),
        "both" => Sides::Both,
        other => {
            return Err(fail(
                to.span(),
                format!("`to` is client, server or both, not {other:?}"),
            ));
        }
    })
}

/// `direction = "c2s" | "s2c" | "both"` (and the filter's aliases).
fn direction(text: &Spanned<String>, fail: Fail) -> Result<Sides, RulesError> {
    Ok(match text.get_ref().as_str() {
        "c2s" | "client" => Sides::One(Direction::ClientToServer),
        "s2c" | "server" => Sides::One(Direction::ServerToClient),
        "both" => Sides::Both,
        other => {
            return Err(fail(
                text.span(),
                format!("`direction` is c2s, s2c or both, not {other:?}"),
            ));
        }
    })
}

fn close_code(code: &S<i64>, fail: Fail) -> Result<Option<u16>, RulesError> {
    let Some(code) = code else {
        return Ok(None);
    };
    let value = *code.get_ref();
    let sendable = u16::try_from(value)
        .ok()
        .filter(|c| wscope_proto::CloseCode(*c).is_valid_on_wire());
    match sendable {
        Some(c) => Ok(Some(c)),
        None => Err(fail(
            code.span(),
            format!(
                "close code {value} cannot be sent in a close frame (1000-1003, 1007-1014, 3000-4999)"
            ),
        )),
    }
}

fn close_reason(reason: &S<String>, fail: Fail) -> Result<String, RulesError> {
    let Some(reason) = reason else {
        return Ok(String::new());
    };
    if reason.get_ref().len() > 123 {
        return Err(fail(
            reason.span(),
            "a close reason is at most 123 bytes (RFC 6455 section 5.5)".to_owned(),
        ));
    }
    Ok(reason.get_ref().clone())
}

fn injected(raw: &RawRule, fail: Fail) -> Result<Injected, RulesError> {
    match (&raw.text, &raw.json, &raw.binary) {
        (Some(text), None, None) => Ok(Injected::Text(text.get_ref().clone())),
        (None, Some(json), None) => {
            let value = serde_json::to_value(json.get_ref())
                .map_err(|e| fail(json.span(), format!("`json` cannot be sent as JSON: {e}")))?;
            Ok(Injected::Text(value.to_string()))
        }
        (None, None, Some(hex)) => crate::values::decode_hex(hex.get_ref())
            .map(Injected::Binary)
            .map_err(|e| fail(hex.span(), e)),
        _ => Err(fail(
            raw.action.span(),
            "an inject rule needs exactly one of `text`, `json` or `binary` (hex)".to_owned(),
        )),
    }
}

fn replacement(raw: &RawRule, fail: Fail) -> Result<Replace, RulesError> {
    match (&raw.regex, &raw.with, &raw.path, &raw.value) {
        (Some(regex), Some(with), None, None) => Ok(Replace::Regex {
            regex: regex::Regex::new(regex.get_ref())
                .map_err(|e| fail(regex.span(), format!("`regex` is not valid: {e}")))?,
            with: with.get_ref().clone(),
        }),
        (None, None, Some(path), Some(value)) => {
            let source = format!("json.{} exists", path.get_ref());
            let steps = match filter::parse(&source) {
                Ok(Expr::Exists(Field::Json(steps))) => steps,
                _ => {
                    return Err(fail(
                        path.span(),
                        format!(
                            "`path` {:?} is not a JSON path (like `user.name` or `items[0].price`)",
                            path.get_ref()
                        ),
                    ));
                }
            };
            let value = serde_json::to_value(value.get_ref())
                .map_err(|e| fail(value.span(), format!("`value` cannot be JSON: {e}")))?;
            Ok(Replace::Json { path: steps, value })
        }
        _ => Err(fail(
            raw.action.span(),
            "a replace rule needs `regex` and `with`, or `path` and `value`".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(source: &str) -> RulesError {
        parse(source).unwrap_err()
    }

    #[test]
    fn every_action_parses() {
        let set = parse(
            r#"
[[rule]]
match = 'dir == s2c'
action = "delay"
delay = "100ms"
jitter = "10ms"

[[rule]]
action = "drop"
probability = 0.5
after = 2
count = 3

[[rule]]
action = "replace"
regex = 'h(i)'
with = "H$1"

[[rule]]
action = "replace"
path = "user.name"
value = "mallory"

[[rule]]
action = "inject"
to = "client"
json = { type = "hello", n = 1 }
every = "1s"

[[rule]]
action = "inject"
to = "server"
binary = "00ff 10"

[[rule]]
action = "close"
to = "both"
code = 4000
reason = "bye"
after = "30s"

[[rule]]
action = "reset"

[[rule]]
action = "throttle"
rate = "64KiB/s"

[[rule]]
action = "idle-timeout"
timeout = "60s"

[[rule]]
name = "stall replies"
action = "pause"
duration = "2s"
direction = "s2c"
"#,
        )
        .unwrap();
        let names: Vec<_> = set.rules.iter().map(|r| r.action.name()).collect();
        assert_eq!(
            names,
            [
                "delay",
                "drop",
                "replace",
                "replace",
                "inject",
                "inject",
                "close",
                "reset",
                "throttle",
                "idle-timeout",
                "pause"
            ]
        );
        assert_eq!(set.rules[1].after, Some(After::Matches(2)));
        assert_eq!(
            set.rules[6].after,
            Some(After::Time(Duration::from_secs(30)))
        );
        assert_eq!(set.rules[10].label, "rule \"stall replies\" (line 53)");
        match &set.rules[4].action {
            Action::Inject {
                message: Injected::Text(text),
                ..
            } => assert_eq!(text, r#"{"type":"hello","n":1}"#),
            other => panic!("{other:?}"),
        }
        match &set.rules[5].action {
            Action::Inject {
                message: Injected::Binary(data),
                ..
            } => assert_eq!(data, &[0x00, 0xff, 0x10]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mistakes_name_their_line() {
        let e = error("[[rule]]\naction = \"explode\"\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("unknown action \"explode\""), "{e}");

        let e = error(
            "[[rule]]\naction = \"drop\"\n\n[[rule]]\naction = \"delay\"\ndelay = \"soon\"\n",
        );
        assert_eq!(e.line, 6);
        assert!(e.reason.contains("not a duration"), "{e}");

        let e = error("[[rule]]\naction = \"drop\"\ncode = 1000\n");
        assert_eq!(e.line, 3);
        assert!(
            e.reason.contains("`code` does not apply to a drop rule"),
            "{e}"
        );

        let e = error("[[rule]]\nmatch = 'dir = c2s'\naction = \"drop\"\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("not a valid filter"), "{e}");
        assert!(e.reason.contains('^'), "{e}");

        let e = error("[[rule]]\naction = \"close\"\ncode = 1006\n");
        assert_eq!(e.line, 3);

        let e = error("[[rule]]\naction = \"drop\"\nprobablity = 0.5\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("probablity"), "{e}");

        let e = error("[[rule]]\naction = \"drop\"\nafter = [1]\n");
        assert_eq!(e.line, 3);

        let e = error("[[rule]\naction = \"drop\"\n");
        assert_eq!(e.line, 1, "{e}");

        let e = error("[[rule]]\naction = \"inject\"\ntext = \"a\"\njson = 1\n");
        assert!(e.reason.contains("exactly one"), "{e}");
    }

    #[test]
    fn an_empty_file_is_no_rules() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# nothing yet\n").unwrap().is_empty());
    }
}

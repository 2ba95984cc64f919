//! The filter language: one expression syntax for `read --filter`, what
//! `connect` and `proxy` print, rule matching and the web UI's filter box.
//! Wireshark-like and small; docs/FILTER.md is its manual.
//!
//! ```text
//! dir == c2s && opcode == text && json.type == "subscribe"
//! close.code in {1006, 1011} || violation exists
//! "error"                      (a bare string: payload contains "error")
//! ```
//!
//! An expression is parsed once into an [`Expr`] whose fields are already
//! resolved and whose regular expressions are compiled; evaluating it
//! against an event allocates nothing on the common paths, and parses a
//! JSON payload at most once, only when a `json.` field asks for it.
//! Printing an `Expr` gives back an expression that parses to the same
//! `Expr`.

mod eval;
mod parse;

use std::fmt;

pub use parse::{ParseError, parse};

/// A compiled filter expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `field op value`.
    Compare(Field, Op, Value),
    /// `field in {a, b}`.
    In(Field, Vec<Value>),
    /// `field exists`.
    Exists(Field),
    /// A boolean field alone (`fin`, `rsv1`, `masked`).
    Flag(Field),
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        // Regexes compare by their source.
        self.to_string() == other.to_string()
    }
}

/// What an expression can look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Dir,
    Opcode,
    Fin,
    Rsv(u8),
    Masked,
    Len,
    Conn,
    Text,
    Payload,
    CloseCode,
    CloseReason,
    Time,
    Event,
    Violation,
    /// `json.a.b[0].c`: a path into a JSON text payload.
    Json(Vec<PathStep>),
}

/// One step of a `json.` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Matches,
}

/// A literal on the right-hand side.
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    /// A bare word (`c2s`, `text`), kept as written.
    Word(String),
    /// A compiled `matches` pattern.
    Regex(regex::Regex),
}

impl Expr {
    /// Whether evaluating the expression may look at a payload's content
    /// (`text`, `payload`, `json.`, or a bare string). A source that keeps
    /// no payload bytes for its other sinks must keep them for such a
    /// filter, or it would never match.
    pub fn reads_payload(&self) -> bool {
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => a.reads_payload() || b.reads_payload(),
            Expr::Not(a) => a.reads_payload(),
            Expr::Compare(field, ..)
            | Expr::In(field, _)
            | Expr::Exists(field)
            | Expr::Flag(field) => {
                matches!(field, Field::Text | Field::Payload | Field::Json(_))
            }
        }
    }

    /// Whether evaluating the expression may look at a binary payload's
    /// bytes: only `payload` (and a bare string) does; `text` and `json.`
    /// read text payloads alone. A relay that must build a message's event
    /// for filters skips encoding a binary payload no filter reads.
    pub fn reads_binary(&self) -> bool {
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => a.reads_binary() || b.reads_binary(),
            Expr::Not(a) => a.reads_binary(),
            Expr::Compare(field, ..)
            | Expr::In(field, _)
            | Expr::Exists(field)
            | Expr::Flag(field) => matches!(field, Field::Payload),
        }
    }
}

/// Parses a lone `json.` path (`json.user.ids[0]`), as `--ignore` and
/// `--extract` take it: the filter language's path syntax, nothing else.
pub fn parse_json_path(source: &str) -> Result<Vec<PathStep>, String> {
    let trimmed = source.trim();
    if !trimmed.starts_with("json.") && !trimmed.starts_with("json[") {
        return Err(format!(
            "{source:?} is not a JSON path; write it as json.field or json.list[0].field"
        ));
    }
    match parse(&format!("{trimmed} exists")) {
        Ok(Expr::Exists(Field::Json(path))) if !path.is_empty() => Ok(path),
        Ok(_) => Err(format!("{source:?} is not a single JSON path")),
        Err(err) => Err(format!("{source:?}: {err}")),
    }
}

/// A path written the way the filter language reads it back.
pub fn json_path_string(path: &[PathStep]) -> String {
    Field::Json(path.to_vec()).to_string()
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

impl Field {
    /// The field's name as written.
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Dir => f.write_str("dir"),
            Field::Opcode => f.write_str("opcode"),
            Field::Fin => f.write_str("fin"),
            Field::Rsv(n) => write!(f, "rsv{n}"),
            Field::Masked => f.write_str("masked"),
            Field::Len => f.write_str("len"),
            Field::Conn => f.write_str("conn"),
            Field::Text => f.write_str("text"),
            Field::Payload => f.write_str("payload"),
            Field::CloseCode => f.write_str("close.code"),
            Field::CloseReason => f.write_str("close.reason"),
            Field::Time => f.write_str("time"),
            Field::Event => f.write_str("event"),
            Field::Violation => f.write_str("violation"),
            Field::Json(path) => {
                f.write_str("json")?;
                for step in path {
                    match step {
                        PathStep::Key(key) if is_plain_key(key) => write!(f, ".{key}")?,
                        PathStep::Key(key) => write!(f, "[{}]", quote(key))?,
                        PathStep::Index(i) => write!(f, "[{i}]")?,
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether the field is true or false rather than a value.
    fn is_flag(&self) -> bool {
        matches!(self, Field::Fin | Field::Rsv(_) | Field::Masked)
    }
}

fn is_plain_key(key: &str) -> bool {
    !matches!(key, "and" | "or" | "not" | "contains" | "matches")
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::Matches => "matches",
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(text) => f.write_str(&quote(text)),
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Word(word) => f.write_str(word),
            Value::Regex(re) => f.write_str(&quote(re.as_str())),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fully parenthesised binary operators: printing never has to know
        // precedence, and the result parses back to the same tree.
        match self {
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Not(a) => write!(f, "!{a}"),
            Expr::Compare(field, op, value) => {
                field.write(f)?;
                write!(f, " {op} {value}")
            }
            Expr::In(field, values) => {
                field.write(f)?;
                f.write_str(" in {")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str("}")
            }
            Expr::Exists(field) => {
                field.write(f)?;
                f.write_str(" exists")
            }
            Expr::Flag(field) => field.write(f),
        }
    }
}

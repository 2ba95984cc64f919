//! Secret fields of JSON text messages (`{"password": "..."}`).
//!
//! Only the secret values change: the message keeps its key order,
//! spacing and every other byte, so what is recorded still reads as what
//! was sent. The text is first checked to be whole, valid JSON (serde_json,
//! which also bounds the nesting depth); then a walker finds where each
//! value starts and ends and the spans of the secret ones are replaced by
//! a marker string. A message cut by `--max-payload`, or any text that is
//! not JSON, is left as it is.

use std::borrow::Cow;

use crate::filter::PathStep;

/// Which fields are secret: by name at any depth, or by exact path.
pub(crate) struct JsonRules<'a> {
    /// Key names, matched ASCII case-insensitively at any depth.
    pub names: &'a [String],
    /// Paths from the root (`json.user.pin`), keys matched exactly.
    pub paths: &'a [Vec<PathStep>],
    /// Finds any of `names` in a text (see [`names_pattern`]).
    pub prefilter: Option<&'a regex::bytes::Regex>,
}

/// A pattern that finds any of `names` (ASCII case-insensitively) in a
/// text: the test every text message passes before any parsing, so it
/// must be fast (the regex crate searches for several literals at once).
pub(crate) fn names_pattern(names: &[String]) -> Option<regex::bytes::Regex> {
    if names.is_empty() {
        return None;
    }
    let mut alternatives: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
    // A `\u` escape could spell a name in a key (`pass\u0077ord`):
    // such a text is parsed whatever it holds.
    alternatives.push(regex::escape("\\u"));
    regex::bytes::Regex::new(&format!("(?i-u){}", alternatives.join("|"))).ok()
}

impl JsonRules<'_> {
    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.paths.is_empty()
    }

    /// Whether the value at `path` is secret.
    fn wants(&self, path: &[Step]) -> bool {
        if let Some(Step::Key(key)) = path.last()
            && self.names.iter().any(|n| n.eq_ignore_ascii_case(key))
        {
            return true;
        }
        self.paths.iter().any(|rule| {
            rule.len() == path.len()
                && rule.iter().zip(path).all(|(want, got)| match (want, got) {
                    (PathStep::Key(want), Step::Key(got)) => want == got,
                    (PathStep::Index(want), Step::Index(got)) => want == got,
                    _ => false,
                })
        })
    }

    /// Cheap test before parsing: a secret name must appear in the text
    /// (any case). Path rules need a parse whatever the text says.
    fn may_match(&self, text: &str) -> bool {
        !self.paths.is_empty()
            || self
                .prefilter
                .is_some_and(|pattern| pattern.is_match(text.as_bytes()))
    }
}

/// One step of the path to the value being walked.
#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// `text` with its secret values replaced by `marker(value)` as JSON
/// strings (a string value is hashed as its decoded text, so a token in a
/// message and in a URL get the same marker; any other value as written);
/// borrowed when the text is not JSON or holds nothing secret.
pub(crate) fn redact_json<'a>(
    text: &'a str,
    rules: &JsonRules<'_>,
    marker: &dyn Fn(&str) -> String,
) -> Cow<'a, str> {
    let first = text.trim_start().as_bytes().first();
    if rules.is_empty() || !matches!(first, Some(b'{' | b'[')) || !rules.may_match(text) {
        return Cow::Borrowed(text);
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Cow::Borrowed(text);
    }
    let mut walker = Walker {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        path: Vec::new(),
        rules,
        spans: Vec::new(),
    };
    if walker.value().is_none() || walker.spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in walker.spans {
        out.push_str(&text[copied..start]);
        let raw = &text[start..end];
        let secret = match serde_json::from_str::<String>(raw) {
            Ok(decoded) => Cow::Owned(decoded),
            Err(_) => Cow::Borrowed(raw),
        };
        if super::is_redacted(&secret) {
            out.push_str(raw);
        } else {
            // A marker is plain ASCII: no escaping needed.
            out.push('"');
            out.push_str(&marker(&secret));
            out.push('"');
        }
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Walks a document already known to be valid JSON, recording the byte
/// spans of secret values in order. Every step is bounds-checked anyway
/// (`None` gives up), so any input is safe to walk.
struct Walker<'t, 'r> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    path: Vec<Step>,
    rules: &'r JsonRules<'r>,
    spans: Vec<(usize, usize)>,
}

/// Deeper than serde_json accepts: never reached after its check, but the
/// walker does not rely on that.
const MAX_DEPTH: usize = 256;

impl Walker<'_, '_> {
    fn skip_space(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// One value at `pos`; `pos` ends just after it.
    fn value(&mut self) -> Option<()> {
        if self.path.len() > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(|_| ()),
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }

    /// A string at `pos`: its span including the quotes.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        Some((start, self.pos))
    }

    fn object(&mut self) -> Option<()> {
        self.pos += 1;
        self.skip_space();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            let (start, end) = self.string()?;
            let raw = self.text.get(start..end)?;
            let key = if raw.contains('\\') {
                serde_json::from_str::<String>(raw).ok()?
            } else {
                raw.get(1..raw.len() - 1)?.to_owned()
            };
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            self.path.push(Step::Key(key));
            self.member()?;
            self.path.pop();
            self.skip_space();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self) -> Option<()> {
        self.pos += 1;
        self.skip_space();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        let mut index = 0;
        loop {
            self.path.push(Step::Index(index));
            self.member()?;
            self.path.pop();
            self.skip_space();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
            index += 1;
        }
    }

    /// The value at the current path: walked, and its span kept when it
    /// is secret (in place of any spans found inside it).
    fn member(&mut self) -> Option<()> {
        self.skip_space();
        let start = self.pos;
        let inner = self.spans.len();
        self.value()?;
        if self.rules.wants(&self.path) {
            self.spans.truncate(inner);
            self.spans.push((start, self.pos));
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_json_path;

    fn mark(value: &str) -> String {
        format!("<redacted:{value}>")
    }

    fn names() -> Vec<String> {
        ["password", "token", "secret", "authorization"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn redact(text: &str) -> String {
        let names = names();
        let prefilter = names_pattern(&names);
        let rules = JsonRules {
            names: &names,
            paths: &[],
            prefilter: prefilter.as_ref(),
        };
        redact_json(text, &rules, &mark).into_owned()
    }

    #[test]
    fn secret_fields_at_any_depth_and_nothing_else() {
        assert_eq!(
            redact(r#"{"user":"ann", "Password" : "hunter2"}"#),
            r#"{"user":"ann", "Password" : "<redacted:hunter2>"}"#
        );
        assert_eq!(
            redact(r#"[{"auth":{"token":"t\"1","n":[1,{"SECRET":42}]}}]"#),
            r#"[{"auth":{"token":"<redacted:t"1>","n":[1,{"SECRET":"<redacted:42>"}]}}]"#
        );
        // A secret object goes whole.
        assert_eq!(
            redact(r#"{"authorization":{"scheme":"bearer","token":"x"},"id":1}"#),
            r#"{"authorization":"<redacted:{"scheme":"bearer","token":"x"}>","id":1}"#
        );
    }

    #[test]
    fn what_is_not_whole_json_is_untouched() {
        for text in [
            r#"password: hunter2"#,
            r#"{"password":"hunter2""#,
            r#"{"password":"hunter2"} trailing"#,
            r#""password""#,
            r#"{"user":"ann"}"#,
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn paths_pick_one_field() {
        let paths = vec![
            parse_json_path("json.user.pin").unwrap(),
            parse_json_path("json.keys[1]").unwrap(),
        ];
        let rules = JsonRules {
            names: &[],
            paths: &paths,
            prefilter: None,
        };
        let text = r#"{"user":{"pin":1234,"name":"x"},"pin":5,"keys":["a","b"]}"#;
        assert_eq!(
            redact_json(text, &rules, &mark),
            r#"{"user":{"pin":"<redacted:1234>","name":"x"},"pin":5,"keys":["a","<redacted:b>"]}"#
        );
    }

    #[test]
    fn a_marker_is_kept() {
        let once = redact(r#"{"token":"abc"}"#);
        assert_eq!(redact(&once), once);
    }

    #[test]
    fn escaped_keys_are_read_as_keys() {
        assert_eq!(
            redact(r#"{"pass\u0077ord":"x"}"#),
            r#"{"pass\u0077ord":"<redacted:x>"}"#
        );
    }
}

//! The Sec-WebSocket-Extensions header (RFC 6455 section 9.1).
//!
//! ```text
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! Whitespace around separators is allowed (RFC 7230 section 3.2.3); a
//! quoted value is unquoted, and when unquoted must still be a token (RFC
//! 6455 section 9.1). Errors name the byte where parsing stopped.

use std::fmt;

use crate::Error;

/// One offered or accepted extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub params: Vec<ExtensionParam>,
}

/// A parameter of an extension: `name` or `name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParam {
    pub name: String,
    /// Unquoted when it was a quoted-string.
    pub value: Option<String>,
}

impl Extension {
    /// An extension with no parameters.
    pub fn new(name: &str) -> Self {
        Extension {
            name: name.to_owned(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter (builder style).
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        self.params.push(ExtensionParam {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
        self
    }

    /// The first parameter called `name` (ASCII case-insensitive).
    pub fn param(&self, name: &str) -> Option<&ExtensionParam> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for param in &self.params {
            write!(f, "; {}", param.name)?;
            match &param.value {
                Some(value) if !value.is_empty() && value.bytes().all(is_tchar) => {
                    write!(f, "={value}")?
                }
                Some(value) => {
                    write!(f, "=\"")?;
                    for c in value.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Every extension the `Sec-WebSocket-Extensions` headers among `headers`
/// name, in order; a value that does not parse is left out (negotiation
/// judges what is left).
pub fn extensions_in(headers: &[(String, String)]) -> Vec<Extension> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .filter_map(|(_, value)| parse_extensions(value).ok())
        .flatten()
        .collect()
}

/// Parses one header value: a comma-separated list of extensions. A request
/// may carry several such headers; callers parse each and concatenate.
pub fn parse_extensions(header_value: &str) -> Result<Vec<Extension>, Error> {
    let mut cursor = Cursor {
        text: header_value,
        pos: 0,
    };
    let mut extensions = Vec::new();
    loop {
        cursor.skip_ws();
        let name = cursor.token("an extension name")?;
        let mut extension = Extension::new(name);
        loop {
            cursor.skip_ws();
            match cursor.peek() {
                Some(b';') => {
                    cursor.pos += 1;
                    cursor.skip_ws();
                    let name = cursor.token("a parameter name after ';'")?;
                    cursor.skip_ws();
                    let value = if cursor.peek() == Some(b'=') {
                        cursor.pos += 1;
                        cursor.skip_ws();
                        Some(cursor.value()?)
                    } else {
                        None
                    };
                    extension.params.push(ExtensionParam {
                        name: name.to_owned(),
                        value,
                    });
                }
                Some(b',') | None => break,
                Some(_) => return Err(cursor.error("';' or ','")),
            }
        }
        extensions.push(extension);
        match cursor.peek() {
            None => return Ok(extensions),
            Some(_) => cursor.pos += 1, // the ','
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn error(&self, expected: &str) -> Error {
        let found = match self.peek() {
            Some(b) if b.is_ascii_graphic() => format!("'{}'", b as char),
            Some(b) => format!("byte 0x{b:02x}"),
            None => "the end".to_owned(),
        };
        Error::Extension(format!(
            "expected {expected} at byte {} of {:?}, found {found}",
            self.pos, self.text
        ))
    }

    fn token(&mut self, what: &str) -> Result<&'a str, Error> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error(what));
        }
        Ok(&self.text[start..self.pos])
    }

    fn value(&mut self) -> Result<String, Error> {
        if self.peek() != Some(b'"') {
            return self.token("a parameter value after '='").map(str::to_owned);
        }
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = open;
                    return Err(self.error("a closing '\"' for the quoted value starting"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(c) = self.text[self.pos..].chars().next() else {
                        return Err(self.error("a character after '\\'"));
                    };
                    value.push(c);
                    self.pos += c.len_utf8();
                }
                Some(_) => {
                    let c = self.text[self.pos..]
                        .chars()
                        .next()
                        .expect("peek saw a byte, so a char starts here");
                    value.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        // Section 9.1: a quoted value must still be a token once unquoted.
        if value.is_empty() || !value.bytes().all(is_tchar) {
            return Err(Error::Extension(format!(
                "quoted parameter value {value:?} is not a token (byte {open} of {:?})",
                self.text
            )));
        }
        Ok(value)
    }
}

/// RFC 7230 section 3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_in_gathers_every_extensions_header_and_skips_bad_ones() {
        let headers = [
            (
                "Sec-WebSocket-Extensions".to_owned(),
                "a; x=1, b".to_owned(),
            ),
            ("Host".to_owned(), "c".to_owned()),
            ("sec-websocket-extensions".to_owned(), ";;".to_owned()),
            ("SEC-WEBSOCKET-EXTENSIONS".to_owned(), "d".to_owned()),
        ];
        let names: Vec<_> = extensions_in(&headers)
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a", "b", "d"]);
    }

    #[test]
    fn browsers_offer() {
        let exts = parse_extensions("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(exts.len(), 1);
        assert_eq!(exts[0].name, "permessage-deflate");
        assert_eq!(exts[0].param("CLIENT_MAX_WINDOW_BITS").unwrap().value, None);
    }

    #[test]
    fn several_with_values_and_quotes() {
        let exts = parse_extensions(
            "permessage-deflate;server_max_window_bits=10 ; client_no_context_takeover, permessage-deflate; server_max_window_bits=\"12\",x-foo",
        )
        .unwrap();
        assert_eq!(exts.len(), 3);
        assert_eq!(exts[0].params.len(), 2);
        assert_eq!(exts[0].params[0].value.as_deref(), Some("10"));
        assert_eq!(exts[1].params[0].value.as_deref(), Some("12"));
        assert_eq!(exts[2].name, "x-foo");
    }

    #[test]
    fn display_round_trips() {
        let text = "permessage-deflate; server_no_context_takeover; client_max_window_bits=9";
        let exts = parse_extensions(text).unwrap();
        assert_eq!(exts[0].to_string(), text);
        assert_eq!(parse_extensions(&exts[0].to_string()).unwrap(), exts);
    }

    #[test]
    fn errors_point_at_the_byte() {
        for bad in [
            "",
            "a;;b",
            "a,",
            ",a",
            "a; x=\"9",
            "a; =1",
            "a b",
            "a; x=\"\"",
            "a; x=\"1 2\"",
        ] {
            let err = parse_extensions(bad).unwrap_err().to_string();
            assert!(err.contains("byte"), "{bad:?}: {err}");
        }
    }
}

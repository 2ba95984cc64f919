//! Filter expressions: tokens, then a recursive-descent parser with one
//! function per precedence level (`||`, then `&&`, then `!` and the rest).
//! Every error carries the column it was found at.

use std::fmt;

use super::{Expr, Field, Op, PathStep, Value};

/// What was wrong with an expression, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Character offset in the expression (0-based).
    pub column: usize,
    pub message: String,
}

impl ParseError {
    /// The expression, a caret under the column, and the message.
    pub fn render(&self, source: &str) -> String {
        format!(
            "{source}\n{}^ {}",
            " ".repeat(self.column.min(source.chars().count())),
            self.message
        )
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column + 1, self.message)
    }
}

impl std::error::Error for ParseError {}

const FIELDS: &str = "dir, opcode, fin, rsv1, rsv2, rsv3, masked, len, conn, text, payload, close.code, close.reason, json.PATH, time, event, violation";
const OPCODES: &[&str] = &["text", "binary", "close", "ping", "pong", "cont"];
const DIRS: &[&str] = &["c2s", "s2c", "client", "server"];
const EVENTS: &[&str] = &[
    "open",
    "handshake_failed",
    "frame",
    "message",
    "close",
    "closed",
    "error",
    "note",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Dot,
    And,
    Or,
    Not,
    Op(Op),
    Str(String),
    Num(f64),
    Ident(String),
    End,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Num(n) => format!("the number {n}"),
        Tok::Ident(w) => format!("{w:?}"),
        Tok::End => "the end of the expression".into(),
        Tok::Op(op) => format!("{:?}", op.to_string()),
        other => format!(
            "{:?}",
            match other {
                Tok::LParen => "(",
                Tok::RParen => ")",
                Tok::LBrace => "{",
                Tok::RBrace => "}",
                Tok::LBracket => "[",
                Tok::RBracket => "]",
                Tok::Comma => ",",
                Tok::Dot => ".",
                Tok::And => "&&",
                Tok::Or => "||",
                _ => "!",
            }
        ),
    }
}

fn tokenize(source: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| ParseError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two = |next: char| chars.get(i + 1) == Some(&next);
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '.' if !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => Tok::Dot,
            '&' if two('&') => {
                i += 1;
                Tok::And
            }
            '|' if two('|') => {
                i += 1;
                Tok::Or
            }
            '=' if two('=') => {
                i += 1;
                Tok::Op(Op::Eq)
            }
            '!' if two('=') => {
                i += 1;
                Tok::Op(Op::Ne)
            }
            '!' => Tok::Not,
            '<' if two('=') => {
                i += 1;
                Tok::Op(Op::Le)
            }
            '<' => Tok::Op(Op::Lt),
            '>' if two('=') => {
                i += 1;
                Tok::Op(Op::Ge)
            }
            '>' => Tok::Op(Op::Gt),
            '"' | '\'' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "this string has no closing quote".into())),
                        Some(&q) if q == quote => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => text.push('\n'),
                                Some('t') => text.push('\t'),
                                Some('r') => text.push('\r'),
                                Some(&other) => text.push(other),
                                None => {
                                    return Err(err(
                                        start,
                                        "this string has no closing quote".into(),
                                    ));
                                }
                            }
                        }
                        Some(&other) => text.push(other),
                    }
                    i += 1;
                }
                Tok::Str(text)
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut end = i + 1;
                while end < chars.len()
                    && (chars[end].is_ascii_digit()
                        || chars[end] == '.'
                        || chars[end] == 'e'
                        || chars[end] == 'E'
                        || ((chars[end] == '-' || chars[end] == '+')
                            && matches!(chars[end - 1], 'e' | 'E')))
                {
                    end += 1;
                }
                let text: String = chars[i..end].iter().collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| err(start, format!("{text:?} is not a number")))?;
                i = end - 1;
                Tok::Num(n)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = i + 1;
                while end < chars.len()
                    && (chars[end].is_alphanumeric() || chars[end] == '_' || chars[end] == '-')
                {
                    end += 1;
                }
                let word: String = chars[i..end].iter().collect();
                i = end - 1;
                match word.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "contains" => Tok::Op(Op::Contains),
                    "matches" => Tok::Op(Op::Matches),
                    _ => Tok::Ident(word),
                }
            }
            other => {
                return Err(err(
                    start,
                    format!("unexpected {other:?}; expected a field, a string, \"(\" or \"!\""),
                ));
            }
        };
        tokens.push((tok, start));
        i += 1;
    }
    tokens.push((Tok::End, chars.len()));
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
}

/// Parses and compiles an expression.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(source)?,
        pos: 0,
    };
    if parser.peek() == &Tok::End {
        return Err(parser.error("an empty filter; expected an expression such as dir == c2s"));
    }
    let expr = parser.or()?;
    if parser.peek() != &Tok::End {
        let found = describe(parser.peek());
        return Err(parser.error(&format!("expected && or || or the end, found {found}")));
    }
    Ok(expr)
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].0
    }

    fn column(&self) -> usize {
        self.tokens[self.pos].1
    }

    fn next(&mut self) -> Tok {
        let tok = self.tokens[self.pos].0.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn error(&self, message: &str) -> ParseError {
        ParseError {
            column: self.column(),
            message: message.to_owned(),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == &Tok::Or {
            self.next();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.peek() == &Tok::And {
            self.next();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            Tok::Not => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.next();
                let inner = self.or()?;
                if self.peek() != &Tok::RParen {
                    let found = describe(self.peek());
                    return Err(self.error(&format!("expected \")\", found {found}")));
                }
                self.next();
                Ok(inner)
            }
            Tok::Str(text) => {
                self.next();
                Ok(Expr::Compare(
                    Field::Payload,
                    Op::Contains,
                    Value::Str(text),
                ))
            }
            Tok::Ident(_) => self.comparison(),
            other => Err(self.error(&format!(
                "expected a field ({FIELDS}), a string, \"(\" or \"!\", found {}",
                describe(&other)
            ))),
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let field_column = self.column();
        let field = self.field()?;
        match self.peek().clone() {
            Tok::Op(op) => {
                self.next();
                let value = self.value(&field, op)?;
                Ok(Expr::Compare(field, op, value))
            }
            Tok::Ident(word) if word == "exists" => {
                self.next();
                Ok(Expr::Exists(field))
            }
            Tok::Ident(word) if word == "in" => {
                self.next();
                if self.peek() != &Tok::LBrace {
                    return Err(
                        self.error("expected \"{\" after in, as in opcode in {text, binary}")
                    );
                }
                self.next();
                let mut values = Vec::new();
                loop {
                    values.push(self.value(&field, Op::Eq)?);
                    match self.next() {
                        Tok::Comma => continue,
                        Tok::RBrace => break,
                        other => {
                            self.pos -= 1;
                            return Err(self.error(&format!(
                                "expected \",\" or \"}}\", found {}",
                                describe(&other)
                            )));
                        }
                    }
                }
                Ok(Expr::In(field, values))
            }
            _ if field.is_flag() => Ok(Expr::Flag(field)),
            other => Err(ParseError {
                column: self.column().max(field_column),
                message: format!(
                    "expected an operator after the field (==, !=, <, <=, >, >=, contains, matches, exists, in), found {}",
                    describe(&other)
                ),
            }),
        }
    }

    fn field(&mut self) -> Result<Field, ParseError> {
        let column = self.column();
        let Tok::Ident(name) = self.next() else {
            unreachable!("called on an identifier")
        };
        let simple = match name.as_str() {
            "dir" => Some(Field::Dir),
            "opcode" => Some(Field::Opcode),
            "fin" => Some(Field::Fin),
            "rsv1" => Some(Field::Rsv(1)),
            "rsv2" => Some(Field::Rsv(2)),
            "rsv3" => Some(Field::Rsv(3)),
            "masked" => Some(Field::Masked),
            "len" => Some(Field::Len),
            "conn" => Some(Field::Conn),
            "text" => Some(Field::Text),
            "payload" => Some(Field::Payload),
            "time" => Some(Field::Time),
            "event" => Some(Field::Event),
            "violation" => Some(Field::Violation),
            _ => None,
        };
        if let Some(field) = simple {
            return Ok(field);
        }
        match name.as_str() {
            "close" => {
                if self.next() != Tok::Dot {
                    self.pos -= 1;
                    return Err(self.error("expected close.code or close.reason"));
                }
                match self.next() {
                    Tok::Ident(sub) if sub == "code" => Ok(Field::CloseCode),
                    Tok::Ident(sub) if sub == "reason" => Ok(Field::CloseReason),
                    _ => {
                        self.pos -= 1;
                        Err(self.error("expected close.code or close.reason"))
                    }
                }
            }
            "json" => {
                let mut path = Vec::new();
                loop {
                    match self.peek().clone() {
                        Tok::Dot => {
                            self.next();
                            match self.next() {
                                Tok::Ident(key) => path.push(PathStep::Key(key)),
                                Tok::Num(n) if n.fract() == 0.0 && n >= 0.0 => {
                                    path.push(PathStep::Key(format!("{n}")))
                                }
                                _ => {
                                    self.pos -= 1;
                                    return Err(
                                        self.error("expected a key after \".\" in a json path")
                                    );
                                }
                            }
                        }
                        Tok::LBracket => {
                            self.next();
                            match self.next() {
                                Tok::Num(n) if n.fract() == 0.0 && n >= 0.0 => {
                                    path.push(PathStep::Index(n as usize))
                                }
                                Tok::Str(key) => path.push(PathStep::Key(key)),
                                _ => {
                                    self.pos -= 1;
                                    return Err(self.error("expected an index (json.items[0]) or a quoted key (json[\"a b\"])"));
                                }
                            }
                            if self.next() != Tok::RBracket {
                                self.pos -= 1;
                                return Err(self.error("expected \"]\""));
                            }
                        }
                        _ => break,
                    }
                }
                if path.is_empty() {
                    return Err(self
                        .error("expected a path after json, as in json.type or json.items[0].id"));
                }
                Ok(Field::Json(path))
            }
            _ => Err(ParseError {
                column,
                message: format!("unknown field {name:?}; the fields are {FIELDS}"),
            }),
        }
    }

    fn value(&mut self, field: &Field, op: Op) -> Result<Value, ParseError> {
        let column = self.column();
        let value = match self.next() {
            Tok::Str(text) => Value::Str(text),
            Tok::Num(n) => Value::Num(n),
            Tok::Ident(word) if word == "true" => Value::Bool(true),
            Tok::Ident(word) if word == "false" => Value::Bool(false),
            Tok::Ident(word) => Value::Word(word),
            other => {
                self.pos -= 1;
                return Err(self.error(&format!(
                    "expected a value (a string, a number or a word), found {}",
                    describe(&other)
                )));
            }
        };
        let err = |message: String| ParseError { column, message };
        if op == Op::Matches {
            let (Value::Str(pattern) | Value::Word(pattern)) = &value else {
                return Err(err("matches takes a regular expression in quotes".into()));
            };
            let regex = regex::Regex::new(pattern)
                .map_err(|e| err(format!("not a regular expression: {e}")))?;
            return Ok(Value::Regex(regex));
        }
        let text = match &value {
            Value::Str(t) | Value::Word(t) => Some(t.as_str()),
            _ => None,
        };
        match field {
            Field::Dir if !text.is_some_and(|t| DIRS.contains(&t)) => {
                return Err(err(format!(
                    "{value} is not a direction; expected c2s, s2c, client or server"
                )));
            }
            Field::Opcode => {
                let known = match &value {
                    Value::Num(n) => n.fract() == 0.0 && (0.0..16.0).contains(n),
                    _ => text.is_some_and(|t| OPCODES.contains(&t)),
                };
                if !known {
                    return Err(err(format!(
                        "{value} is not an opcode; expected text, binary, close, ping, pong, cont or a number from 0 to 15"
                    )));
                }
            }
            Field::Event if !text.is_some_and(|t| EVENTS.contains(&t)) => {
                return Err(err(format!(
                    "{value} is not an event kind; expected one of {}",
                    EVENTS.join(", ")
                )));
            }
            Field::Len | Field::CloseCode if !matches!(value, Value::Num(_)) => {
                return Err(err(format!("{value} is not a number")));
            }
            Field::Time if matches!(value, Value::Bool(_) | Value::Word(_)) => {
                return Err(err(
                    "time compares with a date such as \"2026-11-26T04:00:00Z\" or microseconds since 1970".into(),
                ));
            }
            Field::Time => {
                if let Value::Str(date) = &value
                    && super::eval::parse_time(date).is_none()
                {
                    return Err(err(format!(
                        "{date:?} is not a date; write it as 2026-11-26T04:00:00Z"
                    )));
                }
            }
            _ => {}
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_round_trip() {
        let e = parse("dir == c2s && opcode == text || !fin").unwrap();
        assert_eq!(e.to_string(), "((dir == c2s && opcode == text) || !fin)");
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        let e = parse(r#"json.user.roles[0] == "admin" and close.code in {1006, 1011}"#).unwrap();
        assert_eq!(
            e.to_string(),
            r#"(json.user.roles[0] == "admin" && close.code in {1006, 1011})"#
        );
        let e = parse("\"error\"").unwrap();
        assert_eq!(e.to_string(), r#"payload contains "error""#);
        let e = parse(r#"text matches "^\\d+$" && violation exists"#).unwrap();
        assert_eq!(parse(&e.to_string()).unwrap(), e);
    }

    #[test]
    fn errors_point_at_the_column_and_say_what_was_expected() {
        let err = parse("opcode == txt").unwrap_err();
        assert_eq!(err.column, 10);
        assert!(
            err.message.contains("expected text, binary"),
            "{}",
            err.message
        );
        assert_eq!(
            err.render("opcode == txt"),
            "opcode == txt\n          ^ txt is not an opcode; expected text, binary, close, ping, pong, cont or a number from 0 to 15"
        );
        let err = parse("colour == red").unwrap_err();
        assert_eq!(err.column, 0);
        assert!(
            err.message.contains("unknown field \"colour\""),
            "{}",
            err.message
        );
        let err = parse("dir == c2s &&").unwrap_err();
        assert_eq!(err.column, 13);
        let err = parse("len").unwrap_err();
        assert!(
            err.message.contains("expected an operator"),
            "{}",
            err.message
        );
        assert!(parse("(dir == c2s").unwrap_err().message.contains("\")\""));
        assert!(
            parse("text matches \"(\"")
                .unwrap_err()
                .message
                .contains("regular expression")
        );
        assert!(
            parse("\"open")
                .unwrap_err()
                .message
                .contains("closing quote")
        );
        assert!(parse("").is_err());
        assert!(parse("len > big").is_err());
        assert!(parse("event == opened").is_err());
        assert!(parse("time > \"yesterday\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(source in "\\PC{0,80}") {
            let _ = parse(&source);
        }

        #[test]
        fn never_panics_on_filter_like_text(
            source in "[a-z. _\\[\\]0-9{},()!&|=<>\"'-]{0,60}"
        ) {
            if let Ok(expr) = parse(&source) {
                let printed = expr.to_string();
                let again = parse(&printed);
                proptest::prop_assert!(again.is_ok(), "{printed} does not parse");
                proptest::prop_assert_eq!(again.unwrap(), expr);
            }
        }
    }
}

//! Query string parameters that carry credentials (`?token=...`), found
//! wherever a URL travels: the `open` URL, the request line, a `Referer`,
//! the text of a note or an error that quotes a URL.
//!
//! One scanner serves all of them: a parameter starts after `?` or `&`,
//! its name runs to `=`, its value to the next `&` or `#`, or to a
//! character no URL holds unescaped (whitespace, quotes, `<`, `>`), which
//! is where a URL quoted in prose ends.

use std::borrow::Cow;

/// Ends a parameter's value.
fn ends_value(byte: u8) -> bool {
    matches!(byte, b'&' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'`') || byte.is_ascii_whitespace()
}

/// Ends a parameter's name (before any `=`).
fn ends_name(byte: u8) -> bool {
    ends_value(byte) || matches!(byte, b'=' | b'?')
}

/// `text` with the value of every parameter named in `names` (ASCII case
/// insensitive, percent-escapes in the name undone) replaced by
/// `marker(value)`; borrowed when nothing was.
pub(crate) fn redact_query<'a>(
    text: &'a str,
    names: &[String],
    marker: &dyn Fn(&str) -> String,
) -> Cow<'a, str> {
    if names.is_empty() || !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    // How much of `text` is in `out` already.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'?' && bytes[i] != b'&' {
            i += 1;
            continue;
        }
        let name_start = i + 1;
        let mut j = name_start;
        while j < bytes.len() && !ends_name(bytes[j]) {
            j += 1;
        }
        if j == name_start || bytes.get(j) != Some(&b'=') {
            i = j.max(i + 1);
            continue;
        }
        let name = &text[name_start..j];
        let value_start = j + 1;
        let mut k = value_start;
        while k < bytes.len() && !ends_value(bytes[k]) {
            k += 1;
        }
        if k > value_start && names.iter().any(|n| name_is(name, n)) {
            let value = &text[value_start..k];
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..value_start]);
            out.push_str(&marker(&percent_decoded(value)));
            copied = k;
        }
        i = k;
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(text),
    }
}

/// Whether a parameter's name as written is `wanted`.
fn name_is(written: &str, wanted: &str) -> bool {
    if written.contains('%') {
        percent_decoded(written).eq_ignore_ascii_case(wanted)
    } else {
        written.eq_ignore_ascii_case(wanted)
    }
}

/// `%XX` escapes undone (and `+` as a space, as forms write it), so that
/// the same token gets the same marker in a URL and in a JSON message.
/// A bad escape is kept as written; bytes that do not make UTF-8 are
/// replaced rather than refused.
fn percent_decoded(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["token", "access_token", "sig"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn mark(value: &str) -> String {
        format!("<redacted:{value}>")
    }

    fn redact(text: &str) -> String {
        redact_query(text, &names(), &mark).into_owned()
    }

    #[test]
    fn values_of_named_parameters_only() {
        assert_eq!(
            redact("ws://h/chat?room=1&token=abc&x=2"),
            "ws://h/chat?room=1&token=<redacted:abc>&x=2"
        );
        assert_eq!(
            redact("GET /chat?Access_Token=abc#frag HTTP/1.1"),
            "GET /chat?Access_Token=<redacted:abc>#frag HTTP/1.1"
        );
        assert_eq!(
            redact("/?sig=a&sig=b"),
            "/?sig=<redacted:a>&sig=<redacted:b>"
        );
        // A name that only contains a rule's name is not it.
        assert_eq!(redact("/?mytoken=abc&token2=x"), "/?mytoken=abc&token2=x");
        // Not after ? or &: a path segment or a header, not a parameter.
        assert_eq!(redact("/token=abc"), "/token=abc");
        assert_eq!(redact("/?token="), "/?token=");
    }

    #[test]
    fn urls_quoted_in_prose_end_where_the_url_does() {
        assert_eq!(
            redact("reconnecting to ws://h/?token=abc in 2s"),
            "reconnecting to ws://h/?token=<redacted:abc> in 2s"
        );
        assert_eq!(
            redact("cannot reach \"ws://h/?token=abc\""),
            "cannot reach \"ws://h/?token=<redacted:abc>\""
        );
    }

    #[test]
    fn escapes_are_undone_for_names_and_hashed_values() {
        assert_eq!(
            redact("/?access%5Ftoken=a%2Bb"),
            "/?access%5Ftoken=<redacted:a+b>"
        );
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        assert_eq!(percent_decoded("%e2%82%ac+"), "€ ");
    }

    #[test]
    fn a_marker_is_left_alone_and_nothing_is_borrowed_twice() {
        let once = redact("/?token=abc");
        assert_eq!(redact(&once), once);
        assert!(matches!(
            redact_query("/?room=1", &names(), &mark),
            Cow::Borrowed(_)
        ));
    }
}

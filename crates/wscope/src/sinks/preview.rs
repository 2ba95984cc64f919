//! How much of a message the terminal view shows, so that a busy view
//! stays one line per message.
//!
//! On a terminal a text that does not fit the terminal's width (looked up
//! for every line, so a resized window is followed) is cut, after the
//! message's kind and size: `c1 > text 65536 B {"type":"snapshot","rows":[…`;
//! one that fits is shown as it is. In a pipe text stays whole, as
//! scripts read it. Binary is its size and its first
//! bytes in hex either way: whole payloads belong in `--json` and
//! `--record`, where they can be read back.

use std::io::Write;

use unicode_width::UnicodeWidthChar;

/// How many bytes of a binary message the one-line view shows at most.
pub const HEX_BYTES: usize = 16;

/// Fewest columns a cut preview gets, even when the line's start leaves
/// less (a narrow window, long connection ids): a line that wraps beats a
/// preview of nothing.
pub const MIN_COLUMNS: usize = 12;

/// Where a line of the terminal view ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview {
    /// Text whole, binary its first bytes (a pipe: scripts read the text).
    TextWhole,
    /// Every message whole, binary as hex on one line (`--full`).
    Full,
    /// Lines cut to this many columns (`--preview-width`).
    Columns(usize),
    /// Lines cut to the terminal's width.
    Terminal,
}

impl Preview {
    /// The columns a line may take now; `None` when nothing is cut.
    pub fn columns(self) -> Option<usize> {
        match self {
            Preview::TextWhole | Preview::Full => None,
            Preview::Columns(columns) => Some(columns),
            Preview::Terminal => Some(terminal_columns()),
        }
    }
}

/// The width of the terminal on stdout; else `COLUMNS` (what shells
/// export, and what a user sets to say how wide); else 80.
pub fn terminal_columns() -> usize {
    if let Some((terminal_size::Width(width), _)) =
        terminal_size::terminal_size_of(std::io::stdout())
        && width > 0
    {
        return width.into();
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse().ok())
        .filter(|&columns: &usize| columns > 0)
        .unwrap_or(80)
}

/// The columns `line` takes on a terminal: ANSI colour sequences take none,
/// wide characters two.
pub fn visible_width(line: &[u8]) -> usize {
    let text = String::from_utf8_lossy(line);
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then a final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
            continue;
        }
        width += c.width().unwrap_or(0);
    }
    width
}

/// Appends as much of `text` as fits in `columns` (a cut one ends in `…`),
/// with line breaks, tabs and other control characters escaped, so the
/// message stays on its line and cannot steer the terminal. Returns whether
/// it was cut.
pub fn fit_text(text: &str, columns: usize, out: &mut Vec<u8>) -> bool {
    let columns = columns.max(1);
    let start = out.len();
    let mut used = 0;
    // Where the line would end if it had to be cut here: one column kept
    // for the ellipsis.
    let mut cut_at = start;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let mut escape = [0u8; 10];
        let shown: &[u8] = match c {
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            c if c.is_control() => {
                let mut cursor = std::io::Cursor::new(&mut escape[..]);
                let _ = write!(cursor, "\\u{{{:x}}}", c as u32);
                let n = cursor.position() as usize;
                &escape[..n]
            }
            c => c.encode_utf8(&mut buf).as_bytes(),
        };
        let width = if c.is_control() {
            shown.len()
        } else {
            c.width().unwrap_or(0)
        };
        if used + width > columns {
            out.truncate(cut_at);
            out.extend_from_slice("…".as_bytes());
            return true;
        }
        out.extend_from_slice(shown);
        used += width;
        if used < columns {
            cut_at = out.len();
        }
    }
    false
}

/// Appends up to [`HEX_BYTES`] of `bytes` as spaced hex, fewer when
/// `columns` is narrower, and `…` when the message (of `len` bytes) has
/// more.
pub fn hex_preview(bytes: &[u8], len: u64, columns: Option<usize>, out: &mut Vec<u8>) {
    // Three columns a byte ("ab "), and room for the ellipsis.
    let fits = columns.map_or(HEX_BYTES, |columns| columns.saturating_sub(1) / 3);
    let shown = bytes.len().min(HEX_BYTES).min(fits.max(1));
    hex_spaced(&bytes[..shown], out);
    if (shown as u64) < len {
        if shown > 0 {
            out.push(b' ');
        }
        out.extend_from_slice("…".as_bytes());
    }
}

/// `00 01 02`: every byte.
pub fn hex_spaced(bytes: &[u8], out: &mut Vec<u8>) {
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(text: &str, columns: usize) -> (String, bool) {
        let mut out = Vec::new();
        let cut = fit_text(text, columns, &mut out);
        (String::from_utf8(out).unwrap(), cut)
    }

    #[test]
    fn text_is_cut_to_the_columns_with_an_ellipsis() {
        assert_eq!(fit("hello", 5), ("hello".into(), false));
        assert_eq!(fit("hello!", 5), ("hell…".into(), true));
        assert_eq!(fit("", 5), (String::new(), false));
        // Wide characters take two columns; the line never passes the limit.
        let (shown, cut) = fit("日本語のテキスト", 7);
        assert!(cut);
        assert_eq!(shown, "日本語…");
        assert!(visible_width(shown.as_bytes()) <= 7);
    }

    #[test]
    fn control_characters_cannot_break_the_line_or_steer_the_terminal() {
        let (shown, _) = fit("a\nb\tc\x1b[2Jd", 80);
        assert_eq!(shown, "a\\nb\\tc\\u{1b}[2Jd");
        let (shown, cut) = fit("ab\ncd", 4);
        assert_eq!((shown.as_str(), cut), ("ab…", true));
    }

    #[test]
    fn widths_skip_colour_sequences() {
        assert_eq!(visible_width(b"\x1b[34m>\x1b[0m c1 "), 5);
        assert_eq!(visible_width("é…".as_bytes()), 2);
    }

    #[test]
    fn binary_shows_its_first_bytes() {
        let mut out = Vec::new();
        hex_preview(&[0, 1, 2], 3, None, &mut out);
        assert_eq!(out, b"00 01 02");
        let bytes: Vec<u8> = (0..64).collect();
        let mut out = Vec::new();
        hex_preview(&bytes, 65536, None, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("00 01 02 ") && text.ends_with("0f …"),
            "{text}"
        );
        let mut out = Vec::new();
        hex_preview(&bytes, 64, Some(10), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "00 01 02 …");
    }
}

//! Appending escaped XML text to one growing `String`.
//!
//! Replies are built in a single pre-sized buffer: a 13 KB `uint8[]` becomes ~13,000
//! elements, so nothing here allocates per element.

use std::fmt::Write as _;

/// Appends `s` as XML character data (also safe inside double-quoted attributes).
///
/// Carriage returns are written as `&#xD;` so a parser does not normalize them away;
/// other characters XML 1.0 cannot carry (C0 controls but tab and newline, U+FFFE, U+FFFF)
/// become U+FFFD, since no escape can represent them.
pub fn text(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let replacement = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\r' => "&#xD;",
            '\t' | '\n' => continue,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => "\u{FFFD}",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(replacement);
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
}

/// Appends an unsigned integer in decimal without allocating.
pub fn uint(out: &mut String, v: u64) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

/// Appends a signed integer in decimal without allocating.
pub fn int(out: &mut String, v: i64) {
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        text(&mut out, s);
        out
    }

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            esc(r#"<a b="c">&</a>"#),
            "&lt;a b=&quot;c&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn carriage_return_survives_and_unrepresentable_controls_are_replaced() {
        assert_eq!(esc("a\r\nb\tc\u{1}d"), "a&#xD;\nb\tc\u{FFFD}d");
    }

    #[test]
    fn non_ascii_text_is_kept_verbatim() {
        assert_eq!(esc("Grüße ✓"), "Grüße ✓");
    }
}

//! Appending escaped XML text to one growing `String`.
//!
//! Replies are built in a single pre-sized buffer: a 13 KB `uint8[]` becomes ~13,000
//! elements, so nothing here allocates per element.

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
pub fn uint(out: &mut String, mut v: u64) {
    // Not `write!`: a key protector is ~14,000 uint8 elements per reply, and the formatting
    // machinery was a fifth of GetKeyProtector's CPU time.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends a signed integer in decimal without allocating.
pub fn int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    uint(out, v.unsigned_abs());
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
    fn integers_are_written_in_plain_decimal_at_their_extremes() {
        let mut out = String::new();
        for v in [0, 7, 10, 255, u64::MAX] {
            uint(&mut out, v);
            out.push(' ');
        }
        for v in [0, -1, 42, i64::MIN, i64::MAX] {
            int(&mut out, v);
            out.push(' ');
        }
        assert_eq!(
            out,
            "0 7 10 255 18446744073709551615 0 -1 42 -9223372036854775808 9223372036854775807 "
        );
    }

    #[test]
    fn non_ascii_text_is_kept_verbatim() {
        assert_eq!(esc("Grüße ✓"), "Grüße ✓");
    }
}

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
    // By bytes, not chars: every character written otherwise is ASCII but U+FFFE/U+FFFF
    // (EF BF BE/BF), so each cut falls on a character boundary, and the common case (nothing
    // to escape) costs a compare per byte instead of a UTF-8 decode per character.
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let (replacement, len) = match b[i] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' => ("&quot;", 1),
            b'\r' => ("&#xD;", 1),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0..=0x1f => ("\u{FFFD}", 1),
            0xef if matches!(b.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])) => ("\u{FFFD}", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        out.push_str(replacement);
        i += len;
        start = i;
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

    /// What `text` writes, said character by character.
    fn by_chars(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '&' => "&amp;".to_owned(),
                '<' => "&lt;".to_owned(),
                '>' => "&gt;".to_owned(),
                '"' => "&quot;".to_owned(),
                '\r' => "&#xD;".to_owned(),
                '\t' | '\n' => c.to_string(),
                c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => "\u{FFFD}".into(),
                c => c.to_string(),
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn escaping_by_bytes_writes_what_escaping_by_characters_would(s in "[\\x00-\\x7f\\x{FFF0}-\\x{FFFF}\\x{EFBF}é✓]{0,40}") {
            proptest::prop_assert_eq!(esc(&s), by_chars(&s));
        }
    }

    #[test]
    fn the_two_noncharacters_are_replaced_and_their_neighbours_in_utf8_kept() {
        // U+FFFD..U+FFFF share their first two bytes; only the last two are not characters.
        assert_eq!(
            esc("a\u{FFFE}b\u{FFFF}c\u{FFFD}\u{FFEE}\u{EFBF}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}\u{FFEE}\u{EFBF}"
        );
    }
}

//! Limits applied to hostile input. Every codec enforces all of them.

/// Largest accepted embedded instance, in bytes of UTF-8 (UTF-16 input is measured after decoding).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Deepest accepted element nesting (XML) or brace/reference nesting (MOF).
/// A GetText_(1) instance with a reference property nests 8 deep; 32 leaves room.
pub const MAX_DEPTH: usize = 32;

/// Most properties (ordinary plus system) in one instance.
pub const MAX_PROPERTIES: usize = 1024;

/// Longest array. A key protector carried as uint8[] is ~16 KiB; 65536 leaves room.
pub const MAX_ARRAY_LEN: usize = 65536;

/// Longest string value, in bytes of UTF-8.
pub const MAX_STRING_BYTES: usize = 256 * 1024;

/// Most key bindings in one object path.
pub const MAX_KEYS: usize = 64;

/// Most XML nodes roxmltree may build; bounds memory before our own checks run.
pub(crate) const MAX_XML_NODES: u32 = 400_000;

/// Most attributes on one element of any XML vmsec reads (CIM-XML needs 3 per element,
/// a key protector 2).
pub const MAX_XML_ATTRIBUTES: usize = 64;

/// Whether some start tag in `text` has more than `max` attributes, found in one linear pass
/// meant to run before the real parse: the XML parser checks attributes for duplicates
/// pairwise, so a 700 KB element of 100,000 attributes kept a thread busy for minutes.
/// Counts `=` outside quotes inside tags; comments, CDATA sections, processing instructions
/// and declarations are skipped, so text that merely contains `=` is never counted.
pub fn too_many_attributes(text: &str, max: usize) -> bool {
    let b = text.as_bytes();
    let skip_to = |end: &str, from: usize| {
        text.get(from..)
            .and_then(|t| t.find(end))
            .map_or(b.len(), |e| from + e + end.len())
    };
    let mut i = 0;
    while let Some(lt) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'<')) {
        i += lt;
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_to("-->", i + 4);
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to("]]>", i + 9);
        } else if rest.starts_with(b"<?") || rest.starts_with(b"<!") {
            i = skip_to(">", i + 2);
        } else {
            let (mut count, mut quote) = (0usize, None);
            i += 1;
            while let Some(&c) = b.get(i) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'=' => {
                        count += 1;
                        if count > max {
                            return true;
                        }
                    }
                    None if c == b'>' => break,
                    None => {}
                }
                i += 1;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_counted_per_tag_and_only_inside_tags() {
        let many: String = (0..65).map(|i| format!(" a{i}=\"=\"")).collect();
        assert!(too_many_attributes(&format!("<x{many}/>"), 64));
        assert!(!too_many_attributes(&format!("<x{many}/>"), 65));
        let text_with_equals = format!("<x>{}</x>", "a=b ".repeat(1000));
        assert!(!too_many_attributes(&text_with_equals, 64));
        let hidden = format!("<x><!-- <y{many}/> --><![CDATA[<z{many}/>]]><?pi {many}?></x>");
        assert!(!too_many_attributes(&hidden, 64));
        let spread: String = (0..100)
            .map(|i| format!("<e a{i}=\"1\" b=\"2\"/>"))
            .collect();
        assert!(!too_many_attributes(&spread, 64));
        assert!(!too_many_attributes("<unterminated a=\"1", 64));
        assert!(!too_many_attributes("<!-- never closed", 64));
    }
}

//! Codec detection and byte decoding for embedded instances.

use crate::codec::{cimxml, mof, wmixml};
use crate::error::{Error, ErrorKind, Position};
use crate::instance::Instance;
use crate::limits::MAX_INPUT_BYTES;

/// The text formats an embedded instance may arrive in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// DSP0201 CIM-XML (`GetText_(1)`).
    CimXml,
    /// WMI DTD 2.0 (`GetText_(2)`).
    WmiXml,
    /// MOF `instance of` text.
    Mof,
}

/// Which codec `text` is written in. After whitespace and comments: `instance of`, or a
/// `#pragma` or `[qualifier]` that only MOF begins with → MOF; `<` and any WMI-only element
/// → WMI-XML; other XML → CIM-XML. Anything else is [`ErrorKind::UnknownCodec`].
pub fn detect_format(text: &str) -> Result<Format, Error> {
    let body = skip_mof_trivia(text.trim_start_matches('\u{feff}'));
    if starts_with_keyword(body, "instance") || body.starts_with("#pragma") || body.starts_with('[')
    {
        return Ok(Format::Mof);
    }
    if body.starts_with('<') {
        let wmi = crate::codec::read_xml_markers(text);
        return Ok(if wmi { Format::WmiXml } else { Format::CimXml });
    }
    let pos = Position::of_offset(text, text.len() - body.len());
    Err(Error::new(
        ErrorKind::UnknownCodec,
        "neither XML (`<INSTANCE`) nor MOF (`instance of`)",
    )
    .at(pos))
}

/// Parses an embedded instance in any supported format (see [`detect_format`]).
pub fn parse_embedded_instance(text: &str) -> Result<Instance, Error> {
    crate::codec::check_size(text)?;
    // A BOM that survived decoding (e.g. a .NET string) is not part of either grammar; two
    // are not an encoding signature but a damaged text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with('\u{feff}') {
        return Err(two_byte_order_marks());
    }
    match detect_format(text)? {
        Format::Mof => mof::parse(text),
        Format::WmiXml => wmixml::parse(text),
        Format::CimXml => cimxml::parse(text),
    }
}

/// Decodes `bytes` and parses them. Encodings: UTF-8 with or without BOM; UTF-16LE/BE with BOM;
/// UTF-16 without BOM when the first character is ASCII (a NUL in byte 0 or 1 gives the byte
/// order away, as in XML 1.0 Appendix F). Anything else is read as UTF-8.
pub fn parse_embedded_instance_bytes(bytes: &[u8]) -> Result<Instance, Error> {
    let text = decode(bytes)?;
    parse_embedded_instance(&text)
}

/// Text from bytes (see [`parse_embedded_instance_bytes`] for the encodings recognised).
pub(crate) fn decode(bytes: &[u8]) -> Result<String, Error> {
    let too_large = || {
        Error::new(
            ErrorKind::TooLarge,
            format!("more than {MAX_INPUT_BYTES} bytes"),
        )
    };
    // UTF-16 of N bytes decodes to at most 1.5·N bytes of UTF-8; bound the raw input generously.
    if bytes.len() > MAX_INPUT_BYTES.saturating_mul(2) {
        return Err(too_large());
    }
    let utf16 = |rest: &[u8], big_endian: bool| -> Result<String, Error> {
        if !rest.len().is_multiple_of(2) {
            return Err(Error::new(
                ErrorKind::Encoding,
                "UTF-16 text with an odd number of bytes",
            ));
        }
        let units = rest.chunks_exact(2).map(|c| match c {
            [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
            [a, b] => u16::from_le_bytes([*a, *b]),
            _ => 0,
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Encoding,
                    format!(
                        "invalid UTF-16: unpaired surrogate {:#06x}",
                        e.unpaired_surrogate()
                    ),
                )
            })
    };
    let (text, had_bom) = match bytes {
        [0xFF, 0xFE, rest @ ..] => (utf16(rest, false)?, true),
        [0xFE, 0xFF, rest @ ..] => (utf16(rest, true)?, true),
        [0xEF, 0xBB, 0xBF, rest @ ..] => (utf8(rest)?, true),
        [first, 0, ..] if *first != 0 => (utf16(bytes, false)?, false),
        [0, second, ..] if *second != 0 => (utf16(bytes, true)?, false),
        _ => (utf8(bytes)?, false),
    };
    if had_bom && text.starts_with('\u{feff}') {
        return Err(two_byte_order_marks());
    }
    if text.len() > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

fn two_byte_order_marks() -> Error {
    Error::new(
        ErrorKind::Encoding,
        "two byte-order marks (U+FEFF); at most one is accepted",
    )
}

fn utf8(bytes: &[u8]) -> Result<String, Error> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| {
        let valid = bytes
            .get(..e.valid_up_to())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        Error::new(
            ErrorKind::Encoding,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
        .at(Position::of_offset(valid, valid.len()))
    })
}

/// Skips whitespace and MOF comments (`//...`, `/* ... */`).
pub(crate) fn skip_mof_trivia(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        if let Some(rest) = t.strip_prefix("//") {
            s = rest
                .find('\n')
                .and_then(|i| rest.get(i + 1..))
                .unwrap_or_default();
        } else if let Some(rest) = t.strip_prefix("/*") {
            s = rest
                .find("*/")
                .and_then(|i| rest.get(i + 2..))
                .unwrap_or_default();
        } else {
            return t;
        }
    }
}

/// Whether `s` starts with `kw` (ASCII case-insensitive) followed by a non-identifier character.
pub(crate) fn starts_with_keyword(s: &str, kw: &str) -> bool {
    s.get(..kw.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(kw))
        && s.get(kw.len()..)
            .and_then(|r| r.chars().next())
            .is_some_and(|c| !(c.is_alphanumeric() || c == '_'))
}

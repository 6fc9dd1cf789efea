//! The embedded-instance text formats. Each submodule parses and serializes one of them.

mod dialect;
mod read_xml;
mod write_xml;
mod xml;

pub mod cimxml;
pub mod mof;
pub mod wmixml;

pub(crate) use xml::check_size;

/// Whether XML `text` uses any WMI-only element. A cheap textual scan: detection must not
/// parse twice, and the real parse reports errors with positions.
pub(crate) fn read_xml_markers(text: &str) -> bool {
    read_xml::WMI_ONLY_ELEMENTS.iter().any(|tag| {
        text.match_indices(tag).any(|(i, _)| {
            let before = text.get(..i).and_then(|b| b.chars().next_back());
            let after = text.get(i + tag.len()..).and_then(|a| a.chars().next());
            matches!(before, Some('<'))
                && matches!(after, Some(' ' | '>' | '/' | '\t' | '\n' | '\r'))
        })
    })
}

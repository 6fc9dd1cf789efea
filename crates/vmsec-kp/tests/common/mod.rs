//! Shared fixtures: RSA key generation is the slow part, so each test binary
//! makes one pool of guardians and draws from it.
#![allow(dead_code)]

use std::sync::OnceLock;

use vmsec_kp::{Guardian, KeySize};

/// Five guardians with private keys; index 0 is used as the owner.
pub fn pool() -> &'static [Guardian] {
    static POOL: OnceLock<Vec<Guardian>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..5)
            .map(|i| Guardian::generate(&format!("g{i}"), KeySize::Rsa2048).expect("keygen"))
            .collect()
    })
}

/// A one-element slice, for the `identities` parameters.
pub fn only(g: &Guardian) -> &[Guardian] {
    std::slice::from_ref(g)
}

/// The text of the `Wrapping` element whose `<Id>` is `id`, edited by `f`.
pub fn edit_wrapping(xml: &str, id: u32, f: impl Fn(&str) -> String) -> String {
    let marker = format!("<Id>{id}</Id>");
    let at = xml.find(&marker).expect("wrapping present");
    let start = xml[..at].rfind("<Wrapping>").expect("wrapping start");
    let end = at + xml[at..].find("</Wrapping>").expect("wrapping end");
    format!("{}{}{}", &xml[..start], f(&xml[start..end]), &xml[end..])
}

/// Flips one bit in the base64 content of the `n`-th `<tag>` element of `text`.
pub fn flip_in_element(text: &str, tag: &str, n: usize) -> String {
    use base64::Engine;
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut from = 0;
    for _ in 0..n {
        from += text[from..].find(&open).expect("element present") + open.len();
    }
    let start = from + text[from..].find(&open).expect("element present") + open.len();
    let end = start + text[start..].find(&close).expect("element closed");
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = engine.decode(&text[start..end]).expect("base64");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    format!("{}{}{}", &text[..start], engine.encode(bytes), &text[end..])
}

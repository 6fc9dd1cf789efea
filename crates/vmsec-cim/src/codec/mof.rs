//! MOF instance text (DSP0221): `instance of Msvm_SecuritySettingData { TpmEnabled = TRUE; };`.
//!
//! Accepted: `//` and `/* */` comments; leading `#pragma` lines (ignored); qualifier lists before
//! the instance and before properties (ignored, except `CIMTYPE`); `as $Alias` (ignored); string
//! escapes `\b \t \n \f \r \" \' \\ \xHHHH`; adjacent string literals (joined); decimal, hex
//! (`0x1F`), octal (`017`), binary (`101b`) and real literals; arrays `{1, 2}`; `TRUE`/`FALSE`/`NULL`
//! in any casing.
//!
//! Typing, since MOF literals are untyped: a `CIMTYPE("uint8")` qualifier wins (this crate's writer
//! emits one, with `[]` for arrays, whenever the schema would not restore the type); else the
//! schema's type when the class and property are known; else inferred: `TRUE`/`FALSE` → boolean,
//! integers → sint64 (uint64 above `i64::MAX`), reals → real64, strings → string, `'c'` → char16,
//! `NULL` → string.
//!
//! Not supported: alias references as values (`Prop = $Other;`), several instances in one text,
//! class declarations, and WMI system properties (MOF cannot carry them; the writer omits them).

mod lexer;
mod parser;
mod writer;

use crate::error::Error;
use crate::instance::Instance;

/// Parses one `instance of` declaration.
pub fn parse(s: &str) -> Result<Instance, Error> {
    super::check_size(s)?;
    parser::parse(s)
}

/// Serializes as MOF; system properties are omitted.
pub fn serialize(i: &Instance) -> String {
    writer::serialize(i)
}

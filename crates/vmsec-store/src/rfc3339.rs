//! Times as every vmsec output writes them: RFC 3339 in UTC with exactly six fractional
//! digits (the store keeps microseconds), so that scripts can compare them as text. Read back
//! with any RFC 3339 precision. For `#[serde(with = "vmsec_store::rfc3339")]`.

use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// `t` in the fixed form: `2026-12-01T13:20:27.765466Z`.
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let text = String::deserialize(d)?;
    OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
}

/// For `Option<OffsetDateTime>`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::format(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_six_fractional_digits_whatever_their_value_and_read_back() {
        let whole = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(format(whole), "2027-01-15T08:00:00.000000Z");
        let t = whole + time::Duration::microseconds(765_466);
        assert_eq!(format(t), "2027-01-15T08:00:00.765466Z");
        assert_eq!(OffsetDateTime::parse(&format(t), &Rfc3339).unwrap(), t);
    }
}

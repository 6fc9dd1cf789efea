//! How values cross into SQLite and back: times as microseconds, GUIDs as text, and SQLite's
//! errors as [`StoreError`].

use rusqlite::types::Type;
use rusqlite::{Row, ffi};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;

pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            DatabaseBusy | DatabaseLocked => StoreError::Busy(e.to_string()),
            ConstraintViolation => match f.extended_code {
                // ROWID is the unique key of a table without an INTEGER PRIMARY KEY.
                ffi::SQLITE_CONSTRAINT_UNIQUE
                | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                | ffi::SQLITE_CONSTRAINT_ROWID => StoreError::AlreadyExists(e.to_string()),
                _ => StoreError::Constraint(e.to_string()),
            },
            DatabaseCorrupt | NotADatabase => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        },
        // A row mapper's own verdict keeps its message: it names the record and the field.
        rusqlite::Error::FromSqlConversionFailure(_, _, inner) if inner.is::<Invalid>() => {
            StoreError::Corrupt(inner.to_string())
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// A stored value this version of vmsec does not understand, found by a row mapper. Row
/// mappers return `rusqlite::Result`, so it travels as a conversion failure, and
/// [`map_err`] makes it [`StoreError::Corrupt`] with this message.
#[derive(Debug)]
pub(super) struct Invalid(pub(super) String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The error of a row mapper that found column `idx` (of type `ty`) invalid.
pub(super) fn invalid(idx: usize, ty: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(Invalid(message)))
}

pub(super) fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn from_us(idx: usize, us: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| invalid(idx, Type::Integer, format!("timestamp {us}: {e}")))
}

fn parse_guid(idx: usize, s: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| invalid(idx, Type::Text, format!("GUID {s:?}: {e}")))
}

/// The time in column `idx`, stored as microseconds since the epoch.
pub(super) fn time_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<OffsetDateTime> {
    from_us(idx, r.get(idx)?)
}

pub(super) fn opt_time_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<OffsetDateTime>> {
    r.get::<_, Option<i64>>(idx)?
        .map(|us| from_us(idx, us))
        .transpose()
}

/// The GUID in column `idx`, stored as text.
pub(super) fn guid_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    parse_guid(idx, &r.get::<_, String>(idx)?)
}

pub(super) fn opt_guid_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    r.get::<_, Option<String>>(idx)?
        .map(|s| parse_guid(idx, &s))
        .transpose()
}

/// A [`Provenance`](crate::Provenance) stored as two nullable columns, `by` at `idx` and
/// the time at `idx + 1`; `None` unless both are set.
pub(super) fn provenance_at(
    r: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<crate::Provenance>> {
    let by: Option<String> = r.get(idx)?;
    let us: Option<i64> = r.get(idx + 1)?;
    Ok(match (by, us) {
        (Some(by), Some(us)) => Some(crate::Provenance {
            by,
            at: from_us(idx + 1, us)?,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sql` fails with, as [`map_err`] reports it, on a fresh store's schema.
    fn refusal(sql: &str) -> StoreError {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        super::super::schema::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO users VALUES ('u', 'admin', 'h', 0); \
             INSERT INTO vms (guid, name, created_us) VALUES ('g', 'vm', 0); \
             INSERT INTO audit VALUES (1, 0, 'a', 'op', NULL, 'Succeeded', '');",
        )
        .unwrap();
        map_err(c.execute_batch(sql).unwrap_err())
    }

    #[test]
    fn only_a_broken_unique_key_is_already_exists() {
        for dup in [
            "INSERT INTO users VALUES ('u', 'reader', 'h', 0)",
            "INSERT INTO vms (guid, name, created_us) VALUES ('g2', 'vm', 0)",
            "INSERT INTO audit VALUES (1, 0, 'a', 'op', NULL, 'Succeeded', '')",
        ] {
            assert!(
                matches!(refusal(dup), StoreError::AlreadyExists(_)),
                "{dup}"
            );
        }
    }

    #[test]
    fn any_other_broken_rule_of_the_schema_is_constraint() {
        for (rule, sql) in [
            ("CHECK", "INSERT INTO users VALUES ('v', 'root', 'h', 0)"),
            (
                "NOT NULL",
                "INSERT INTO users VALUES ('v', 'admin', NULL, 0)",
            ),
            (
                "FOREIGN KEY",
                "INSERT INTO kp_history (vm_guid, key_protector, replaced_by, replaced_us) \
                 VALUES ('no-such-vm', x'00', 'a', 0)",
            ),
            (
                "trigger",
                "CREATE TRIGGER t BEFORE DELETE ON users BEGIN SELECT RAISE(ABORT, 'no'); END; \
                 DELETE FROM users",
            ),
        ] {
            assert!(matches!(refusal(sql), StoreError::Constraint(_)), "{rule}");
        }
    }
}

//! The audit log: reading it, pruning it to its retention, and bounding what goes into its
//! records from outside (user names tried at login).

use std::borrow::Cow;

use time::OffsetDateTime;
use vmsec_store::{AuditQuery, AuditRecord, Role};

use crate::{Caller, ServiceError};

/// Longest user name, in bytes. `user add` refuses longer ones, so no user can have one: a
/// longer name tried at login can be refused before any lookup or hashing, and is recorded
/// truncated (see [`audit_name`]).
pub const MAX_USER_NAME: usize = 64;

/// `name` as an audit record holds it: whole if at most [`MAX_USER_NAME`] bytes, else its
/// first [`MAX_USER_NAME`] bytes (cut at a character boundary) followed by a marker with the
/// length tried, so that a client cannot fill the log with names of any size and the record
/// still says what happened.
pub fn audit_name(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_USER_NAME {
        return Cow::Borrowed(name);
    }
    let mut end = MAX_USER_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}\u{2026}[truncated: {} bytes]",
        &name[..end],
        name.len()
    ))
}

/// Records removed per transaction when pruning the audit log: small enough that a prune
/// holds the store's writer for milliseconds, not seconds.
pub const PRUNE_BATCH: usize = 10_000;

impl crate::Service {
    pub fn audit_log(
        &self,
        who: &Caller,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, ServiceError> {
        who.require(Role::Admin, "reading the audit log")?;
        Ok(self.store.audit(after, limit)?)
    }

    /// The audit records `query` selects, filtered by the store (no more than
    /// `query.limit` are read into memory, whatever the size of the log).
    pub fn audit_query(
        &self,
        who: &Caller,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, ServiceError> {
        who.require(Role::Admin, "reading the audit log")?;
        Ok(self.store.audit_query(query)?)
    }

    /// Removes the audit records `retention` no longer keeps, in batches of
    /// [`audit::PRUNE_BATCH`], each with the record of its range (docs/audit.md). Run by
    /// `vmsec serve` now and then; needs no caller, as it only applies the configuration.
    pub fn prune_audit(
        &self,
        retention: &vmsec_store::AuditRetention,
    ) -> Result<Vec<vmsec_store::AuditPruned>, ServiceError> {
        let pruned =
            self.store
                .prune_audit(retention, OffsetDateTime::now_utc(), PRUNE_BATCH, "vmsec")?;
        if let (Some(first), Some(last)) = (pruned.first(), pruned.last()) {
            tracing::info!(
                "audit log: records {}\u{2013}{} pruned by the retention",
                first.first,
                last.last
            );
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_cut_at_a_character_with_their_length() {
        let ok = "a".repeat(MAX_USER_NAME);
        assert!(matches!(audit_name(&ok), Cow::Borrowed(n) if n == ok));
        let long = "x".repeat(300_000);
        let cut = audit_name(&long);
        assert_eq!(
            cut,
            format!(
                "{}\u{2026}[truncated: 300000 bytes]",
                "x".repeat(MAX_USER_NAME)
            )
        );
        // A three-byte character straddling the limit is dropped whole, not split.
        let wide = format!("{}\u{20AC}tail", "a".repeat(MAX_USER_NAME - 1));
        let cut = audit_name(&wide);
        assert!(cut.starts_with(&"a".repeat(MAX_USER_NAME - 1)));
        assert!(cut.contains(&format!("[truncated: {} bytes]", wide.len())));
        assert!(!cut.contains('\u{20AC}'));
    }
}

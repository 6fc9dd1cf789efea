//! What a run of audit pruning removes, fixed before its first write: the same rule on every
//! backend (docs/audit.md, "Retention").

use time::OffsetDateTime;

use crate::AuditRetention;

pub(crate) struct Cut {
    /// Records before this sequence number are beyond the newest `max_records`.
    keep_from: Option<i64>,
    /// Records written before this time are older than `max_age`.
    older_than: Option<OffsetDateTime>,
    /// Why, for the range records.
    pub(crate) why: String,
}

impl Cut {
    /// `nth_newest` is the sequence number of the `max_records`-th newest record (`None`
    /// when the log holds fewer), which only the backend can look up. Both bounds are fixed
    /// before the first write: records written meanwhile, the run's own range records among
    /// them, are newer than either, so a run ends and never prunes more than asked.
    pub(crate) fn new(
        retention: &AuditRetention,
        nth_newest: Option<i64>,
        now: OffsetDateTime,
    ) -> Cut {
        let keep_from = match retention.max_records {
            None => None,
            Some(0) => Some(i64::MAX),
            Some(_) => nth_newest,
        };
        let older_than = retention.max_age.map(|age| now - age);
        let mut why = Vec::new();
        if let Some(n) = retention.max_records {
            why.push(format!("beyond the newest {n}"));
        }
        if let Some(t) = older_than {
            why.push(format!("older than {}", crate::rfc3339::format(t)));
        }
        Cut {
            keep_from,
            older_than,
            why: why.join(" or "),
        }
    }

    pub(crate) fn prunes(&self, seq: i64, at: OffsetDateTime) -> bool {
        self.keep_from.is_some_and(|k| seq < k) || self.older_than.is_some_and(|c| at < c)
    }

    /// How many of `oldest` (the log's oldest records, in order) go: a prefix only, so what
    /// remains of the log has no gap.
    pub(crate) fn prefix(&self, oldest: &[(i64, OffsetDateTime)]) -> usize {
        oldest
            .iter()
            .take_while(|&&(seq, at)| self.prunes(seq, at))
            .count()
    }

    /// Runs the prune: `batch_tx` removes what this cut prunes of the oldest `batch` records
    /// in one transaction and returns the range with how many it removed, or `None` when
    /// nothing is left; batches go on until one removes fewer than `batch`.
    pub(crate) fn run<E>(
        &self,
        batch: usize,
        mut batch_tx: impl FnMut(&Cut, usize) -> Result<Option<(crate::AuditPruned, usize)>, E>,
    ) -> Result<Vec<crate::AuditPruned>, E> {
        let batch = batch.max(1);
        let mut out = Vec::new();
        while let Some((p, count)) = batch_tx(self, batch)? {
            out.push(p);
            if count < batch {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) fn detail(&self, first: i64, last: i64, count: usize) -> String {
        format!(
            "records {first}\u{2013}{last} pruned ({count} records): {}",
            self.why
        )
    }
}

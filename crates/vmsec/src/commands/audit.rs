//! `vmsec audit`: the audit log.

use serde_json::json;

use super::Ctx;
use crate::CliError;
use crate::output;

impl Ctx<'_> {
    pub(super) fn audit(&self, after: i64, limit: usize) -> Result<(), CliError> {
        let records = self.service.audit_log(self.me, after, limit)?;
        self.out.either(
            || {
                records
                    .iter()
                    .map(|r| {
                        format!(
                            "{:>6} {} {} {} {}{} {}\n",
                            r.seq,
                            r.at.format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                            output::text(&r.actor),
                            output::text(&r.operation),
                            r.vm.map(|v| format!("vm={v} ")).unwrap_or_default(),
                            r.outcome.as_str(),
                            output::text(&r.detail)
                        )
                    })
                    .collect()
            },
            || json!(records),
        )
    }
}

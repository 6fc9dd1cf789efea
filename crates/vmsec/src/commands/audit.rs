//! `vmsec audit`: the audit log.

use time::OffsetDateTime;
use vmsec_store::{AuditQuery, AuditRecord};

use super::Ctx;
use crate::CliError;
use crate::output;

/// Records read per query: what the command holds in memory at once, whatever `--limit`.
const PAGE: usize = 500;

/// What `vmsec audit` was asked for.
pub(super) struct Filter {
    pub after: Option<i64>,
    pub limit: usize,
    pub since: Option<OffsetDateTime>,
    pub vm: Option<String>,
    pub user: Option<String>,
    /// Go on printing records as they are written.
    pub follow: bool,
}

/// How often `--follow` looks for new records.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Ctx<'_> {
    pub(super) fn audit(&self, f: Filter) -> Result<(), CliError> {
        let vm = f.vm.as_deref().map(|v| self.audit_vm(v)).transpose()?;
        let mut query = AuditQuery {
            after: f.after.unwrap_or(0),
            before: None,
            since: f.since,
            vm,
            actor: f.user,
            // Reading on from a record (`--after`, as a script that polls does) goes
            // forward; otherwise what happened last matters most.
            newest_first: f.after.is_none(),
            limit: 0,
        };
        let mut left = f.limit;
        let mut printed = 0usize;
        let mut newest = 0i64;
        // Followed, JSON is one object per line: an array would never end.
        let lines = f.follow && self.out.json;
        if self.out.json && !lines {
            output::write_stdout(b"[")?;
        }
        while left > 0 {
            query.limit = left.min(PAGE);
            let page = self.service.audit_query(self.me, &query)?;
            for r in &page {
                newest = newest.max(r.seq);
                if lines {
                    self.print_json_line(r)?;
                } else {
                    self.print_record(r, printed)?;
                }
                printed += 1;
            }
            let Some(last) = page.last() else { break };
            if page.len() < query.limit {
                break;
            }
            left -= page.len();
            if query.newest_first {
                query.before = Some(last.seq);
            } else {
                query.after = last.seq;
            }
        }
        if self.out.json && !lines {
            // The same bytes serde_json's pretty printer gives for the whole array.
            output::write_stdout(if printed == 0 { b"]\n" } else { b"\n]\n" })?;
        }
        if !f.follow {
            return Ok(());
        }
        // From the newest record seen (or the newest there is), oldest first, as written. A
        // closed stdout (`| head`) ends it quietly, an interrupt ends the process.
        if newest == 0 {
            let last = AuditQuery {
                newest_first: true,
                limit: 1,
                ..query.clone()
            };
            newest = self
                .service
                .audit_query(
                    self.me,
                    &AuditQuery {
                        after: 0,
                        before: None,
                        ..last
                    },
                )?
                .first()
                .map_or(0, |r| r.seq);
        }
        loop {
            std::thread::sleep(FOLLOW_EVERY);
            let page = self.service.audit_query(
                self.me,
                &AuditQuery {
                    after: newest,
                    before: None,
                    newest_first: false,
                    limit: PAGE,
                    ..query.clone()
                },
            )?;
            for r in &page {
                newest = newest.max(r.seq);
                if self.out.json {
                    self.print_json_line(r)?;
                } else {
                    self.print_record(r, 1)?;
                }
            }
        }
    }

    fn print_json_line(&self, r: &AuditRecord) -> Result<(), CliError> {
        let line = serde_json::to_string(
            &serde_json::to_value(r).map_err(|e| CliError::new(e.to_string()))?,
        )
        .map_err(|e| CliError::new(format!("JSON output: {e}")))?;
        output::write_stdout(format!("{line}\n").as_bytes())
    }

    /// The GUID `--vm` names: a VM's name or GUID, or the GUID of one removed since (its
    /// records outlive it).
    fn audit_vm(&self, vm: &str) -> Result<uuid::Uuid, CliError> {
        match self.service.find_vm(self.me, vm) {
            Ok(found) => Ok(found.id),
            Err(e) => uuid::Uuid::parse_str(vm.trim_matches(|c| c == '{' || c == '}'))
                .map_err(|_| CliError::from(e)),
        }
    }

    /// Prints record number `n` of the output, as text or as an element of the JSON array.
    fn print_record(&self, r: &AuditRecord, n: usize) -> Result<(), CliError> {
        if self.out.json {
            // Through a `Value`, whose keys are sorted, as the whole array's always were.
            let json = serde_json::to_value(r)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .map_err(|e| CliError::new(format!("JSON output: {e}")))?;
            let mut item = String::from(if n == 0 { "\n" } else { ",\n" });
            for (i, line) in json.lines().enumerate() {
                if i > 0 {
                    item.push('\n');
                }
                item.push_str("  ");
                item.push_str(line);
            }
            return output::write_stdout(item.as_bytes());
        }
        let mut line = format!(
            "{:>6} {} {} {} {}{}",
            r.seq,
            vmsec_store::rfc3339::format(r.at),
            output::text(&r.actor),
            output::text(&r.operation),
            r.vm.map(|v| format!("vm={v} ")).unwrap_or_default(),
            r.outcome.as_str(),
        );
        if !r.detail.is_empty() {
            line.push(' ');
            line.push_str(&output::text(&r.detail));
        }
        line.push('\n');
        output::write_stdout(line.as_bytes())
    }
}

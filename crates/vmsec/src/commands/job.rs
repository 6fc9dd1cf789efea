//! `vmsec job …`: the jobs of mutating methods.

use serde_json::json;

use super::Ctx;
use crate::CliError;
use crate::cli::JobCmd;
use crate::output;

impl Ctx<'_> {
    pub(super) fn job(&self, c: JobCmd) -> Result<(), CliError> {
        match c {
            JobCmd::List => {
                let jobs = self.service.jobs(self.me)?;
                self.out.either(
                    || jobs.iter().map(|j| output::job_text(j) + "\n").collect(),
                    || json!(jobs.iter().map(output::job_json).collect::<Vec<_>>()),
                )
            }
            JobCmd::Show { id } => {
                let job = self.service.job(self.me, &id)?;
                self.out
                    .either(|| output::job_text(&job), || output::job_json(&job))
            }
        }
    }
}

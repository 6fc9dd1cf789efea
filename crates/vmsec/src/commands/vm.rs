//! `vmsec vm …`: VMs, and through `security`, `kp` and `policy` the methods of
//! Msvm_SecurityService on one VM, called as a WS-Management client would call them.

mod kp;
mod policy;
mod security;

use std::time::Duration;

use serde_json::json;
use vmsec_service::{JobStarted, Method, ServiceError};
use vmsec_store::JobState;

use super::Ctx;
use crate::CliError;
use crate::cli::VmCmd;
use crate::output;

/// How long the CLI waits for a job it started.
const JOB_WAIT: Duration = Duration::from_secs(120);

impl Ctx<'_> {
    pub(super) fn vm(&self, c: VmCmd) -> Result<(), CliError> {
        match c {
            VmCmd::Add { name, id } => {
                let vm = self.service.add_vm(self.me, &name, id)?;
                self.out.either(
                    || format!("added VM {} {}", output::text(&vm.name), vm.id),
                    || output::vm_json(&vm),
                )
            }
            VmCmd::List => {
                let vms = self.service.vms(self.me)?;
                self.out.either(
                    || {
                        vms.iter()
                            .map(|v| format!("{}  {}\n", v.id, output::text(&v.name)))
                            .collect()
                    },
                    || json!(vms.iter().map(output::vm_json).collect::<Vec<_>>()),
                )
            }
            VmCmd::Show { vm } => {
                let vm = self.find_vm(&vm)?;
                let sec = self.service.vm_security(self.me, vm.id)?;
                let state = vmsec_service::vtpm::VtpmLocation::of(&self.data.vtpm_root(), vm.id)
                    .paths
                    .state_dir;
                let state = std::path::absolute(&state).unwrap_or(state);
                let grants = match &sec.key_protector {
                    Some(kp) => Some(self.service.inspect(self.me, kp)?),
                    None => None,
                };
                self.out.either(
                    || {
                        let mut t = output::security_text(&vm, &sec);
                        t.push_str(&format!("vTPM state                 {}\n", state.display()));
                        if let Some(i) = &grants {
                            t.push('\n');
                            t.push_str(&output::grants_text(i));
                        }
                        t
                    },
                    || {
                        let mut v = output::security_json(&vm, &sec);
                        v["vtpm_state_dir"] = json!(state);
                        if let (Some(i), Some(o)) = (&grants, v["key_protector"].as_object_mut()) {
                            o.insert("granted_to".into(), output::grants_json(i));
                        }
                        v
                    },
                )
            }
            VmCmd::Grant { vm, guardian } => self.vm_grant_or_revoke(&vm, &guardian, true),
            VmCmd::Revoke { vm, guardian } => self.vm_grant_or_revoke(&vm, &guardian, false),
            VmCmd::Remove { vm, force } => {
                let vm = self.find_vm(&vm)?;
                self.service
                    .remove_vm_and_vtpm(self.me, &vm, force, &self.data.vtpm_root())?;
                self.out.either(
                    || format!("removed VM {} {}", output::text(&vm.name), vm.id),
                    || json!({ "ok": true }),
                )
            }
            VmCmd::Export { vm, out, move_away } => {
                let vm = self.find_vm(&vm)?;
                self.service
                    .export_vm(self.me, &vm, &self.data.vtpm_root(), &out)?;
                if move_away {
                    self.service
                        .mark_moved(self.me, &vm, &self.data.vtpm_root(), &out)?;
                }
                self.out.either(
                    || format!("exported {} to {}", vm.name, out.display()),
                    || json!({ "ok": true, "dir": crate::commands::files::absolute(&out) }),
                )
            }
            VmCmd::Import { dir } => {
                let vm = self
                    .service
                    .import_vm(self.me, &self.data.vtpm_root(), &dir)?;
                self.out.either(
                    || format!("imported VM {} {}", output::text(&vm.name), vm.id),
                    || output::vm_json(&vm),
                )
            }
            VmCmd::Security(c) => self.security(c),
            VmCmd::Kp(c) => self.kp(c),
            VmCmd::Policy(c) => self.policy(c),
        }
    }

    /// `vm grant|revoke VM --guardian G`: the VM's key protector, with G granted or revoked by
    /// the owner (whose keys must be here), set through SetKeyProtector, in one step
    /// (Hyper-V's Grant-HgsKeyProtectorAccess / Revoke-HgsKeyProtectorAccess).
    fn vm_grant_or_revoke(&self, vm: &str, guardian: &str, grant: bool) -> Result<(), CliError> {
        let vm = self.find_vm(vm)?;
        let Some(kp) = self.service.vm_security(self.me, vm.id)?.key_protector else {
            return Err(CliError::new(format!(
                "VM {} has no key protector",
                vm.name
            )));
        };
        let changed = if grant {
            self.service.grant(self.me, &kp, guardian)?
        } else {
            self.service.revoke(self.me, &kp, guardian)?
        };
        self.method_job(
            Method::SetKeyProtector,
            self.service
                .set_key_protector(self.me, vm.id.into(), changed),
            &format!(
                "{} {} {guardian} in the key protector of {}",
                if grant { "granted" } else { "revoked" },
                if grant { "to" } else { "from" },
                vm.name
            ),
        )
    }

    /// The outcome of a method that starts a job: waits for the job and turns its outcome
    /// into the CLI's, printing `done` when it completed.
    fn method_job(
        &self,
        method: Method,
        started: Result<JobStarted, ServiceError>,
        done: &str,
    ) -> Result<(), CliError> {
        let started = started.map_err(|e| method_error(method, e))?;
        let job = self
            .service
            .wait_job(self.me, &started.instance_id, JOB_WAIT)
            .map_err(|e| method_error(method, e))?;
        if job.state == JobState::Completed {
            self.out.either(
                || done.to_string(),
                || json!({ "ok": true, "job": output::job_json(&job) }),
            )
        } else {
            Err(CliError::new(format!(
                "{} (job {} failed with {} return code {}: {})",
                job.error_description,
                job.instance_id,
                method.name(),
                job.error_code,
                vmsec_service::describe(method, job.error_code)
            )))
        }
    }
}

/// A service error of a method call, with the return code a WS-Man client would have seen.
fn method_error(method: Method, e: ServiceError) -> CliError {
    let code = method.return_code(&e);
    let base = CliError::from(e);
    CliError {
        message: format!(
            "{} ({} return code {code}: {})",
            base.message,
            method.name(),
            vmsec_service::describe(method, code)
        ),
        ..base
    }
}

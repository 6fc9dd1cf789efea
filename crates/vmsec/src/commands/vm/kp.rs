//! `vmsec vm kp …`: the VM's key protector, through GetKeyProtector, SetKeyProtector and
//! RestoreLastKnownGoodKeyProtector.

use serde_json::json;
use vmsec_service::Method;

use super::method_error;
use crate::CliError;
use crate::cli::KpCmd;
use crate::commands::Ctx;
use crate::commands::files::{read_input, write_output_or_json};
use crate::output;

impl Ctx<'_> {
    pub(super) fn kp(&self, c: KpCmd) -> Result<(), CliError> {
        match c {
            KpCmd::Get { vm, out } => {
                let vm = self.find_vm(&vm)?;
                let kp = self
                    .service
                    .get_key_protector(self.me, vm.id.into())
                    .map_err(|e| method_error(Method::GetKeyProtector, e))?;
                // The 4 bytes of "none" are what a WS-Man client gets; the record says for sure.
                if kp == vmsec_service::NO_KEY_PROTECTOR
                    && self
                        .service
                        .vm_security(self.me, vm.id)?
                        .key_protector
                        .is_none()
                {
                    return Err(CliError::new(format!(
                        "VM {} has no key protector",
                        vm.name
                    )));
                }
                write_output_or_json(self.out.json, out.as_deref(), &kp)
            }
            KpCmd::Set { vm, file } => {
                let vm = self.find_vm(&vm)?;
                let kp = read_input(&file)?;
                self.method_job(
                    Method::SetKeyProtector,
                    self.service.set_key_protector(self.me, vm.id.into(), kp),
                    &format!("key protector of {} set", vm.name),
                )
            }
            KpCmd::Restore { vm } => {
                let vm = self.find_vm(&vm)?;
                self.method_job(
                    Method::RestoreLastKnownGoodKeyProtector,
                    self.service
                        .restore_last_known_good_key_protector(self.me, vm.id.into()),
                    &format!("last known good key protector of {} restored", vm.name),
                )
            }
            KpCmd::NewLocal { vm } => {
                let vm = self.find_vm(&vm)?;
                self.method_job(
                    Method::SetKeyProtector,
                    self.service.new_local_key_protector(self.me, vm.id),
                    &format!(
                        "{} has a new key protector owned by {}",
                        vm.name,
                        vmsec_service::UNTRUSTED_GUARDIAN
                    ),
                )
            }
            KpCmd::History { vm } => self.kp_history(&vm),
        }
    }

    fn kp_history(&self, vm: &str) -> Result<(), CliError> {
        let vm = self.find_vm(vm)?;
        let history = self.service.kp_history(self.me, vm.id)?;
        self.out.either(
            || {
                history
                    .iter()
                    .map(|h| {
                        let v = output::history_json(h);
                        format!(
                            "{} bytes  set by {} at {}  replaced by {} at {}\n",
                            h.key_protector.len(),
                            output::text(v["set_by"].as_str().unwrap_or("-")),
                            v["set_at"].as_str().unwrap_or("-"),
                            output::text(&h.replaced.by),
                            v["replaced_at"].as_str().unwrap_or("-"),
                        )
                    })
                    .collect()
            },
            || json!(history.iter().map(output::history_json).collect::<Vec<_>>()),
        )
    }
}

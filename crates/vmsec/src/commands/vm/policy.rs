//! `vmsec vm policy …`: the VM's security policy blob (SetSecurityPolicy).

use vmsec_service::Method;

use crate::CliError;
use crate::cli::PolicyCmd;
use crate::commands::Ctx;
use crate::commands::files::{read_input, write_output_or_json};

impl Ctx<'_> {
    pub(super) fn policy(&self, c: PolicyCmd) -> Result<(), CliError> {
        match c {
            PolicyCmd::Get { vm, out } => {
                let vm = self.find_vm(&vm)?;
                let sec = self.service.vm_security(self.me, vm.id)?;
                match sec.security_policy {
                    Some(p) => write_output_or_json(self.out.json, out.as_deref(), &p),
                    None => Err(CliError::new(format!(
                        "VM {} has no security policy",
                        vm.name
                    ))),
                }
            }
            PolicyCmd::Set { vm, file } => {
                let vm = self.find_vm(&vm)?;
                let policy = read_input(&file)?;
                self.method_job(
                    Method::SetSecurityPolicy,
                    self.service
                        .set_security_policy(self.me, vm.id.into(), policy),
                    &format!("security policy of {} set", vm.name),
                )
            }
        }
    }
}

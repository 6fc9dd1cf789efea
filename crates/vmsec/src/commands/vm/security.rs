//! `vmsec vm security …`: Msvm_SecuritySettingData, changed through ModifySecuritySettings.

use vmsec_service::Method;

use crate::CliError;
use crate::cli::{SecurityCmd, SecuritySet};
use crate::commands::Ctx;
use crate::output;
use vmsec_service::{Setting, SettingsPatch};

impl Ctx<'_> {
    pub(super) fn security(&self, c: SecurityCmd) -> Result<(), CliError> {
        match c {
            SecurityCmd::Get { vm } => {
                let vm = self.find_vm(&vm)?;
                let sec = self.service.vm_security(self.me, vm.id)?;
                self.out.either(
                    || output::settings_text(&sec.settings),
                    || output::settings_json(&sec.settings),
                )
            }
            SecurityCmd::Set(s) => self.security_set(s),
        }
    }

    fn security_set(&self, s: SecuritySet) -> Result<(), CliError> {
        let vm = self.find_vm(&s.vm)?;
        let wanted = [
            (Setting::TpmEnabled, s.tpm),
            (Setting::ShieldingRequested, s.shielded),
            (Setting::EncryptStateAndVmMigrationTraffic, s.encrypt_state),
            (Setting::KsdEnabled, s.ksd),
            (Setting::DataProtectionRequested, s.data_protection),
            (Setting::VirtualizationBasedSecurityOptOut, s.vbs_opt_out),
            (Setting::BindToHostTpm, s.bind_to_host_tpm),
            (
                Setting::AppContainerLaunchOptOut,
                s.app_container_launch_opt_out,
            ),
        ]
        .into_iter()
        .filter_map(|(setting, v)| v.map(|v| (setting, v.is_on())))
        .fold(SettingsPatch::default(), |p, (setting, on)| {
            p.with(setting, on)
        });
        if wanted == SettingsPatch::default() {
            return Err(CliError::new(
                "nothing to set: give at least one of --tpm, --shielded, --encrypt-state, --ksd, \
                 --data-protection, --vbs-opt-out, --bind-to-host-tpm, --app-container-launch-opt-out",
            ));
        }
        self.method_job(
            Method::ModifySecuritySettings,
            self.service
                .modify_security_settings(self.me, vm.id.into(), wanted),
            &format!("security settings of {} changed", vm.name),
        )
    }
}

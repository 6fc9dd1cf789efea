//! `vmsec tpm …`: the VMs' vTPMs (swtpm), run under their key protectors.

use std::path::PathBuf;

use serde_json::json;
use vmsec_service::vtpm::{TpmStart, Unlock, VtpmLocation};
use vmsec_tpm::{Endpoint, Status};

use super::Ctx;
use crate::CliError;
use crate::cli::TpmCmd;
use crate::output;

impl Ctx<'_> {
    pub(super) fn tpm(&self, c: TpmCmd) -> Result<(), CliError> {
        match c {
            TpmCmd::Start {
                vm,
                state,
                socket,
                tcp,
                reset,
            } => self.tpm_start(&vm, state, socket, tcp, reset),
            TpmCmd::Stop { vm } => {
                let vm = self.find_vm(&vm)?;
                let outcome = self.service.tpm_stop(
                    self.me,
                    &vm,
                    &VtpmLocation::of(&self.data.vtpm_root(), vm.id),
                )?;
                self.out.either(
                    || {
                        format!(
                            "vTPM of {}: {}",
                            vm.name,
                            json!(outcome).as_str().unwrap_or("stopped")
                        )
                    },
                    || json!({ "vm": vm.id, "outcome": outcome }),
                )
            }
            TpmCmd::Status { vm } => self.tpm_status(vm),
        }
    }

    pub(super) fn tpm_start(
        &self,
        vm: &str,
        state: Option<PathBuf>,
        socket: Option<PathBuf>,
        tcp: Option<u16>,
        reset: bool,
    ) -> Result<(), CliError> {
        let vm = self.find_vm(vm)?;
        let location = VtpmLocation::of(&self.data.vtpm_root(), vm.id);
        let endpoint = match (socket, tcp) {
            (_, Some(port)) => Endpoint::Tcp { port },
            (Some(path), None) => Endpoint::Unix {
                path: std::path::absolute(&path)
                    .map_err(|e| CliError::new(format!("--socket {}: {e}", path.display())))?,
            },
            (None, None) => Endpoint::Unix {
                path: std::path::absolute(location.dir.join("swtpm.sock"))
                    .map_err(|e| CliError::new(e.to_string()))?,
            },
        };
        // HGS mode: the fabric's KPS rolls the key protector for this attested host.
        let fabric = crate::hgs_client::HgsClient::open(self.data.hgs(), &self.data.master_key())?;
        let unlock = match &fabric {
            Some(client) => Unlock::Fabric(client),
            None => Unlock::Local,
        };
        let ca_dir = self.data.path.join("vtpm-ca");
        let started = self.service.tpm_start(
            self.me,
            &vm,
            TpmStart {
                location,
                state_dir: state.as_deref(),
                ca_dir: &ca_dir,
                endpoint,
                unlock,
                reset,
            },
        )?;
        self.out.either(
            || {
                format!(
                    "vTPM of {} running (pid {}{})\n  tpm2-tools:  export TPM2TOOLS_TCTI='{}'\n  QEMU:        {}\n  took {} ms",
                    vm.name,
                    started.pid,
                    if started.manufactured { ", newly manufactured" } else { "" },
                    started.tcti,
                    started
                        .qemu_args
                        .as_ref()
                        .map(|a| a.join(" "))
                        .unwrap_or_else(|| "attach needs --socket: QEMU passes the data channel over a unix socket".into()),
                    started.timings.total_ms
                )
            },
            || json!(started),
        )
    }

    fn tpm_status(&self, vm: Option<String>) -> Result<(), CliError> {
        let vms = match vm {
            Some(v) => vec![self.find_vm(&v)?],
            None => self.service.vms(self.me)?,
        };
        let mut rows = Vec::new();
        for vm in vms {
            let location = VtpmLocation::of(&self.data.vtpm_root(), vm.id);
            let st = self.service.tpm_status(self.me, &location)?;
            let state = location.paths.state_dir;
            rows.push((vm, st, std::path::absolute(&state).unwrap_or(state)));
        }
        self.out.either(
            || {
                rows.iter()
                    .map(|(vm, st, state)| {
                        let what = match st {
                            Status::Running { pid, endpoint } => format!(
                                "running (pid {pid}){}",
                                endpoint
                                    .as_ref()
                                    .map(|e| format!(" {}", e.tcti()))
                                    .unwrap_or_default()
                            ),
                            Status::Stopped { .. } => "stopped".to_owned(),
                        };
                        format!(
                            "{}  {}  {what}  state {}\n",
                            vm.id,
                            output::text(&vm.name),
                            state.display()
                        )
                    })
                    .collect()
            },
            || {
                json!(
                    rows.iter()
                        .map(|(vm, st, state)| {
                            json!({ "vm": vm.id, "name": vm.name, "status": st, "state_dir": state })
                        })
                        .collect::<Vec<_>>()
                )
            },
        )
    }
}

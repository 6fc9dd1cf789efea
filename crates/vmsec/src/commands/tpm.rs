//! `vmsec tpm …`: the VMs' vTPMs (swtpm), run under their key protectors.

use std::path::PathBuf;

use serde_json::json;
use vmsec_service::vtpm::{TpmStart, Unlock, VtpmLocation};
use vmsec_tpm::{Endpoint, Status};

use super::Ctx;
use crate::CliError;
use crate::cli::TpmCmd;
use crate::{control, output};

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
            TpmCmd::KeepLease { vm, token } => self.keep_lease(&vm, token),
        }
    }

    /// The lease keeper's process: runs until the vTPM stops or the lease is lost.
    fn keep_lease(&self, vm: &str, token: i64) -> Result<(), CliError> {
        let vm = self.find_vm(vm)?;
        let location = VtpmLocation::of(&self.data.vtpm_root(), vm.id);
        let lease = vmsec_store::VmLease {
            vm: vm.id,
            host: self.service.host().guid,
            token,
            // Not used to renew: the store keeps the expiry.
            expires: time::OffsetDateTime::now_utc(),
        };
        // The deadline counts from now, later than when `tpm start` took the lease: the
        // first renewal is due a third of the lease after this, well before the lease's end.
        let end = self.service.keep_lease(
            &vm,
            &location,
            lease,
            vmsec_service::vtpm::lease_ttl(),
            std::time::Instant::now() - vmsec_service::vtpm::lease_ttl() / 3,
        );
        match end {
            vmsec_service::vtpm::LeaseEnd::VtpmStopped
            | vmsec_service::vtpm::LeaseEnd::Superseded => Ok(()),
            other => Err(CliError::new(format!(
                "the vTPM of {} was stopped: {other:?}",
                vm.name
            ))),
        }
    }

    /// On a shared store, starts the process that keeps `started`'s lease alive while the
    /// vTPM runs, detached from this one (its own process group: a ^C of `tpm start` does
    /// not reach it), writing to `lease.log` beside the vTPM.
    fn spawn_lease_keeper(
        &self,
        vm: &vmsec_store::Vm,
        started: &vmsec_service::vtpm::TpmStarted,
    ) -> Result<(), CliError> {
        use std::os::unix::process::CommandExt;
        let dir = VtpmLocation::of(&self.data.vtpm_root(), vm.id).dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("lease.log"))
            .map_err(|e| {
                CliError::new(format!(
                    "cannot open {}: {e}",
                    dir.join("lease.log").display()
                ))
            })?;
        let exe = std::env::current_exe()
            .map_err(|e| CliError::new(format!("cannot find the vmsec executable: {e}")))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--data")
            .arg(&self.data.path)
            .args(["tpm", "keep-lease"])
            .arg(vm.id.to_string())
            .arg("--token")
            .arg(started.lease.token.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .process_group(0);
        // The URL travels in the environment, never on a command line others can read.
        if let Some(url) = &self.data.store {
            cmd.env("VMSEC_STORE", url);
        }
        let child = cmd.spawn().map_err(|e| {
            let _ = vmsec_tpm::stop(&VtpmLocation::of(&self.data.vtpm_root(), vm.id).paths);
            CliError::new(format!(
                "cannot start the lease keeper (the vTPM was stopped): {e}"
            ))
        })?;
        tracing::debug!("lease keeper of {} is pid {}", vm.name, child.id());
        Ok(())
    }

    /// `tpm start`: by the running `vmsec serve` of this data directory when one listens
    /// (its random generator is seeded already, see [`crate::control`]), else here.
    pub(super) fn tpm_start(
        &self,
        vm: &str,
        state: Option<PathBuf>,
        socket: Option<PathBuf>,
        tcp: Option<u16>,
        reset: bool,
    ) -> Result<(), CliError> {
        let absolute = |p: PathBuf, what: &str| {
            std::path::absolute(&p)
                .map_err(|e| CliError::new(format!("{what} {}: {e}", p.display())))
        };
        let request = control::TpmStartRequest {
            vm: vm.to_owned(),
            state: state.map(|p| absolute(p, "--state")).transpose()?,
            socket: socket.map(|p| absolute(p, "--socket")).transpose()?,
            tcp,
            reset,
            json: self.out.json,
            store: control::store_identity(
                self.data.store.as_deref(),
                &crate::data_dir::host_name(),
            ),
        };
        let stdout = match control::ask(self.data, &request) {
            Some(answered) => answered?,
            None => self.start_vtpm(&request, "cli")?,
        };
        output::write_stdout(stdout.as_bytes())
    }

    /// Starts the vTPM `request` names, in this process; returns what the CLI prints.
    /// `via` says which process did it (`cli`, or `serve` for a request it was sent).
    fn start_vtpm(
        &self,
        request: &control::TpmStartRequest,
        via: &str,
    ) -> Result<String, CliError> {
        let vm = self.find_vm(&request.vm)?;
        let location = VtpmLocation::of(&self.data.vtpm_root(), vm.id);
        let endpoint = match (&request.socket, request.tcp) {
            (_, Some(port)) => Endpoint::Tcp { port },
            (Some(path), None) => Endpoint::Unix { path: path.clone() },
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
                state_dir: request.state.as_deref(),
                ca_dir: &ca_dir,
                endpoint,
                unlock,
                reset: request.reset,
            },
        )?;
        if self.service.store_is_shared() {
            self.spawn_lease_keeper(&vm, &started)?;
        }
        self.out.render(
            || {
                format!(
                    "vTPM of {} running (pid {}{})\n  tpm2-tools:  export TPM2TOOLS_TCTI='{}'\n  QEMU:        {}\n  took {} ms{}",
                    vm.name,
                    started.pid,
                    if started.manufactured { ", newly manufactured" } else { "" },
                    started.tcti,
                    started
                        .qemu_args
                        .as_ref()
                        .map(|a| a.join(" "))
                        .unwrap_or_else(|| "attach needs --socket: QEMU passes the data channel over a unix socket".into()),
                    started.timings.total_ms,
                    if via == "serve" { ", by the running vmsec serve" } else { "" },
                )
            },
            || {
                let mut v = json!(started);
                v["via"] = json!(via);
                v
            },
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
            let lease = self.service.vm_lease(self.me, &vm)?;
            let state = location.paths.state_dir;
            rows.push((vm, st, std::path::absolute(&state).unwrap_or(state), lease));
        }
        self.out.either(
            || {
                rows.iter()
                    .map(|(vm, st, state, lease)| {
                        let mine = self.service.host().guid;
                        let what = match (st, lease) {
                            (Status::Stopped { .. }, Some(l)) if l.lease.host != mine && !l.expired => {
                                format!("running on host {}", output::text(&l.host_name))
                            }
                            (st, _) => match st {
                            Status::Running { pid, endpoint } => format!(
                                "running (pid {pid}){}",
                                endpoint
                                    .as_ref()
                                    .map(|e| format!(" {}", e.tcti()))
                                    .unwrap_or_default()
                            ),
                            Status::Stopped { .. } => "stopped".to_owned(),
                            },
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
                        .map(|(vm, st, state, lease)| {
                            json!({ "vm": vm.id, "name": vm.name, "status": st, "state_dir": state, "lease": lease })
                        })
                        .collect::<Vec<_>>()
                )
            },
        )
    }
}

/// A `tpm start` sent to this `vmsec serve` over its control socket: run as the CLI would,
/// as the local administrator, on the server's own store, whose [`control::store_identity`]
/// is `identity`.
pub(crate) fn start_for_a_client(
    service: &vmsec_service::Service,
    data: &crate::data_dir::DataDir,
    identity: &str,
    request: &control::TpmStartRequest,
) -> control::Answer {
    if request.store != identity {
        return control::Answer::Declined {
            why: "the CLI acts on another store, or as another host, than this server".into(),
        };
    }
    let me = vmsec_service::Caller::local_admin();
    let out = output::Out { json: request.json };
    let ctx = Ctx {
        service,
        me: &me,
        out: &out,
        data,
    };
    match ctx.start_vtpm(request, "serve") {
        Ok(stdout) => control::Answer::Done { stdout },
        Err(e) => control::Answer::Failed {
            message: e.message,
            code: e.code.as_str().to_owned(),
        },
    }
}

//! What each CLI verb does: parse arguments, call the service, print.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vmsec_cim::{CimType, Instance, Value};
use vmsec_service::vtpm::VtpmLocation;
use vmsec_service::{
    Caller, JobStarted, KeySize, Method, PrivateKeyPems, Service, ServiceError, setting_data,
};
use vmsec_store::{JobState, Role, Vm};
use vmsec_tpm::Endpoint;
use zeroize::Zeroizing;

use crate::CliError;
use crate::cli::*;
use crate::data_dir::DataDir;
use crate::output::{self, Out};

/// How long the CLI waits for a job it started.
const JOB_WAIT: Duration = Duration::from_secs(120);
/// Largest file `kp set` and `policy set` read (the service refuses smaller limits itself).
const MAX_INPUT: u64 = 16 * 1024 * 1024;

pub fn run(cli: Cli) -> Result<(), CliError> {
    let data = DataDir::open_or_create(&cli.data)?;
    if let Command::Serve {
        listen,
        http_listen,
        config,
    } = cli.command
    {
        return crate::serve::run(
            &data,
            crate::serve::ServeArgs {
                listen,
                http_listen,
                config,
            },
        );
    }
    let service = data.open_service()?;
    let me = Caller::local_admin();
    let out = Out { json: cli.json };
    let ctx = Ctx {
        service: &service,
        me: &me,
        out: &out,
        vtpm_root: data.vtpm_root(),
    };
    let result = match cli.command {
        Command::User(c) => ctx.user(c),
        Command::Vm(c) => ctx.vm(c),
        Command::Job(c) => ctx.job(c),
        Command::Guardian(c) => ctx.guardian(c),
        Command::Tpm(c) => ctx.tpm(c, &data),
        Command::Kp(c) => ctx.kp_file(c),
        Command::Audit { after, limit } => ctx.audit(after, limit),
        Command::Serve { .. } => unreachable!("handled above"),
    };
    service.shutdown();
    result
}

struct Ctx<'a> {
    service: &'a Service,
    me: &'a Caller,
    out: &'a Out,
    vtpm_root: std::path::PathBuf,
}

/// A service error of a method call, with the return code a WS-Man client would have seen.
fn method_error(method: Method, e: ServiceError) -> CliError {
    let code = method.return_code(&e);
    CliError::new(format!(
        "{e} ({} return code {code}: {})",
        method.name(),
        vmsec_service::describe(method, code)
    ))
}

fn read_input(file: &Path) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    let name = file.display();
    if file == Path::new("-") {
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut buf))
            .map_err(|e| CliError::new(format!("cannot read {name}: {e}")))?;
    }
    if buf.len() as u64 > MAX_INPUT {
        return Err(CliError::new(format!(
            "{name} is larger than {MAX_INPUT} bytes"
        )));
    }
    Ok(buf)
}

/// Replaces `path` whole or not at all: a crash never leaves half a key protector.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let fail = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

const ENCRYPTION_KEY_FILE: &str = "encryption.key.pem";
const SIGNING_KEY_FILE: &str = "signing.key.pem";

fn read_private_keys(dir: &Path) -> Result<PrivateKeyPems, CliError> {
    let read = |name: &str| {
        let p = dir.join(name);
        crate::data_dir::make_private(&p, "the guardian private key")?;
        std::fs::read_to_string(&p)
            .map(Zeroizing::new)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", p.display())))
    };
    Ok((read(ENCRYPTION_KEY_FILE)?, read(SIGNING_KEY_FILE)?))
}

fn write_private_keys(dir: &Path, enc: &str, sign: &str) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
    crate::data_dir::write_private(&dir.join(ENCRYPTION_KEY_FILE), enc.as_bytes())?;
    crate::data_dir::write_private(&dir.join(SIGNING_KEY_FILE), sign.as_bytes())
}

fn write_output(out: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match out {
        Some(p) => std::fs::write(p, bytes)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", p.display()))),
        None => output::write_stdout(bytes),
    }
}

/// The embedded instance that names a VM, as a Hyper-V client sends it (CIM-XML DTD 2.0).
fn setting_data_for(vm: &Vm, settings: &[(&str, bool)]) -> String {
    let mut i = Instance::new(setting_data::CLASS).with(
        "InstanceID",
        CimType::String,
        Value::String(setting_data::instance_id(vm.id)),
    );
    for (name, on) in settings {
        i = i.with(name, CimType::Boolean, Value::Boolean(*on));
    }
    vmsec_cim::codec::cimxml::serialize(&i)
}

impl Ctx<'_> {
    fn find_vm(&self, vm: &str) -> Result<Vm, CliError> {
        Ok(self.service.find_vm(self.me, vm)?)
    }

    /// Waits for a job the CLI started and turns its outcome into the CLI's.
    fn finish_job(&self, method: Method, started: JobStarted, done: &str) -> Result<(), CliError> {
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

    fn user(&self, c: UserCmd) -> Result<(), CliError> {
        match c {
            UserCmd::Add { name, role, .. } => {
                let password = password_from_stdin()?;
                let role = role_of(role);
                self.service.add_user(self.me, &name, role, &password)?;
                self.out.either(
                    || format!("added user {name} ({role})"),
                    || json!({ "ok": true, "user": { "name": name, "role": role } }),
                )
            }
            UserCmd::Passwd { name, .. } => {
                let password = password_from_stdin()?;
                self.service.set_user_password(self.me, &name, &password)?;
                self.out.either(
                    || format!("changed the password of user {name}"),
                    || json!({ "ok": true }),
                )
            }
            UserCmd::Role { name, role } => {
                let role = role_of(role);
                self.service.set_user_role(self.me, &name, role)?;
                self.out.either(
                    || format!("user {name} is now {role}"),
                    || json!({ "ok": true, "user": { "name": name, "role": role } }),
                )
            }
            UserCmd::List => {
                let users = self.service.users(self.me)?;
                self.out.either(
                    || {
                        users
                            .iter()
                            .map(|u| format!("{:<24} {}\n", output::text(&u.name), u.role))
                            .collect()
                    },
                    || json!(users.iter().map(output::user_json).collect::<Vec<_>>()),
                )
            }
            UserCmd::Remove { name } => {
                self.service.remove_user(self.me, &name)?;
                self.out
                    .either(|| format!("removed user {name}"), || json!({ "ok": true }))
            }
        }
    }

    fn vm(&self, c: VmCmd) -> Result<(), CliError> {
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
                self.out.either(
                    || output::security_text(&vm, &sec),
                    || output::security_json(&vm, &sec),
                )
            }
            VmCmd::Remove { vm, force } => {
                let vm = self.find_vm(&vm)?;
                self.service
                    .remove_vm_and_vtpm(self.me, &vm, force, &self.vtpm_root)?;
                self.out.either(
                    || format!("removed VM {} {}", output::text(&vm.name), vm.id),
                    || json!({ "ok": true }),
                )
            }
            VmCmd::Export { vm, out } => {
                let vm = self.find_vm(&vm)?;
                self.service
                    .export_vm(self.me, &vm, &self.vtpm_root, &out)?;
                self.out.either(
                    || format!("exported {} to {}", vm.name, out.display()),
                    || json!({ "ok": true, "dir": out }),
                )
            }
            VmCmd::Import { dir } => {
                let vm = self.service.import_vm(self.me, &self.vtpm_root, &dir)?;
                self.out.either(
                    || format!("imported VM {} {}", output::text(&vm.name), vm.id),
                    || output::vm_json(&vm),
                )
            }
            VmCmd::Security(SecurityCmd::Get { vm }) => {
                let vm = self.find_vm(&vm)?;
                let sec = self.service.vm_security(self.me, vm.id)?;
                self.out.either(
                    || output::settings_text(&sec.settings),
                    || output::settings_json(&sec.settings),
                )
            }
            VmCmd::Security(SecurityCmd::Set(s)) => self.security_set(s),
            VmCmd::Kp(c) => self.kp(c),
            VmCmd::Policy(c) => self.policy(c),
        }
    }

    fn security_set(&self, s: SecuritySet) -> Result<(), CliError> {
        let vm = self.find_vm(&s.vm)?;
        let wanted: Vec<(&str, bool)> = [
            ("TpmEnabled", s.tpm),
            ("ShieldingRequested", s.shielded),
            ("EncryptStateAndVmMigrationTraffic", s.encrypt_state),
            ("KsdEnabled", s.ksd),
            ("DataProtectionRequested", s.data_protection),
            ("VirtualizationBasedSecurityOptOut", s.vbs_opt_out),
            ("BindToHostTpm", s.bind_to_host_tpm),
            ("AppContainerLaunchOptOut", s.app_container_launch_opt_out),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v.is_on())))
        .collect();
        if wanted.is_empty() {
            return Err(CliError::new(
                "nothing to set: give at least one of --tpm, --shielded, --encrypt-state, --ksd, \
                 --data-protection, --vbs-opt-out, --bind-to-host-tpm, --app-container-launch-opt-out",
            ));
        }
        let method = Method::ModifySecuritySettings;
        let started = self
            .service
            .modify_security_settings(self.me, &setting_data_for(&vm, &wanted))
            .map_err(|e| method_error(method, e))?;
        self.finish_job(
            method,
            started,
            &format!("security settings of {} changed", vm.name),
        )
    }

    fn kp(&self, c: KpCmd) -> Result<(), CliError> {
        match c {
            KpCmd::Get { vm, out } => {
                let vm = self.find_vm(&vm)?;
                let method = Method::GetKeyProtector;
                let kp = self
                    .service
                    .get_key_protector(self.me, &setting_data_for(&vm, &[]))
                    .map_err(|e| method_error(method, e))?;
                if kp.is_empty() {
                    return Err(CliError::new(format!(
                        "VM {} has no key protector",
                        vm.name
                    )));
                }
                write_output(out.as_deref(), &kp)
            }
            KpCmd::Set { vm, file } => {
                let vm = self.find_vm(&vm)?;
                let kp = read_input(&file)?;
                let method = Method::SetKeyProtector;
                let started = self
                    .service
                    .set_key_protector(self.me, &setting_data_for(&vm, &[]), kp)
                    .map_err(|e| method_error(method, e))?;
                self.finish_job(
                    method,
                    started,
                    &format!("key protector of {} set", vm.name),
                )
            }
            KpCmd::Restore { vm } => {
                let vm = self.find_vm(&vm)?;
                let method = Method::RestoreLastKnownGoodKeyProtector;
                let started = self
                    .service
                    .restore_last_known_good_key_protector(self.me, &setting_data_for(&vm, &[]))
                    .map_err(|e| method_error(method, e))?;
                self.finish_job(
                    method,
                    started,
                    &format!("last known good key protector of {} restored", vm.name),
                )
            }
            KpCmd::NewLocal { vm } => {
                let vm = self.find_vm(&vm)?;
                let method = Method::SetKeyProtector;
                let started = self
                    .service
                    .new_local_key_protector(self.me, vm.id)
                    .map_err(|e| method_error(method, e))?;
                self.finish_job(
                    method,
                    started,
                    &format!(
                        "{} has a new key protector owned by {}",
                        vm.name,
                        vmsec_service::UNTRUSTED_GUARDIAN
                    ),
                )
            }
            KpCmd::History { vm } => {
                let vm = self.find_vm(&vm)?;
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
    }

    fn policy(&self, c: PolicyCmd) -> Result<(), CliError> {
        match c {
            PolicyCmd::Get { vm, out } => {
                let vm = self.find_vm(&vm)?;
                let sec = self.service.vm_security(self.me, vm.id)?;
                match sec.security_policy {
                    Some(p) => write_output(out.as_deref(), &p),
                    None => Err(CliError::new(format!(
                        "VM {} has no security policy",
                        vm.name
                    ))),
                }
            }
            PolicyCmd::Set { vm, file } => {
                let vm = self.find_vm(&vm)?;
                let policy = read_input(&file)?;
                let method = Method::SetSecurityPolicy;
                let started = self
                    .service
                    .set_security_policy(self.me, &setting_data_for(&vm, &[]), policy)
                    .map_err(|e| method_error(method, e))?;
                self.finish_job(
                    method,
                    started,
                    &format!("security policy of {} set", vm.name),
                )
            }
        }
    }

    fn guardian(&self, c: GuardianCmd) -> Result<(), CliError> {
        match c {
            GuardianCmd::New { name, key_size } => {
                let size = match key_size {
                    KeySizeArg::Rsa2048 => KeySize::Rsa2048,
                    KeySizeArg::Rsa3072 => KeySize::Rsa3072,
                    KeySizeArg::Rsa4096 => KeySize::Rsa4096,
                };
                let g = self.service.new_guardian(self.me, &name, size)?;
                self.out.either(|| output::guardian_text(&g), || json!(g))
            }
            GuardianCmd::Import {
                name,
                metadata,
                private,
            } => {
                let xml = read_input(&metadata)?;
                let keys = private.as_deref().map(read_private_keys).transpose()?;
                let g = self.service.import_guardian(self.me, &name, &xml, keys)?;
                self.out.either(|| output::guardian_text(&g), || json!(g))
            }
            GuardianCmd::Export { name, out, private } => {
                let (xml, keys) =
                    self.service
                        .export_guardian(self.me, &name, private.is_some())?;
                write_atomic(&out, &xml)?;
                if let (Some(dir), Some((enc, sign))) = (private.as_deref(), keys) {
                    write_private_keys(dir, &enc, &sign)?;
                }
                self.out.either(
                    || format!("wrote {}", out.display()),
                    || json!({ "ok": true, "metadata": out, "private": private }),
                )
            }
            GuardianCmd::List => {
                let gs = self.service.guardians(self.me)?;
                self.out.either(
                    || gs.iter().map(|g| output::guardian_text(g) + "\n").collect(),
                    || json!(gs),
                )
            }
            GuardianCmd::Remove { name, force } => {
                self.service.remove_guardian(self.me, &name, force)?;
                self.out.either(
                    || format!("removed guardian {name}"),
                    || json!({ "ok": true }),
                )
            }
        }
    }

    fn kp_file(&self, c: KpFileCmd) -> Result<(), CliError> {
        match c {
            KpFileCmd::New {
                owner,
                guardians,
                out,
            } => {
                let kp = self.service.new_protector(self.me, &owner, &guardians)?;
                write_atomic(&out, &kp)?;
                self.out.either(
                    || {
                        format!(
                            "wrote {} (owner {owner}, {} guardian(s))",
                            out.display(),
                            guardians.len()
                        )
                    },
                    || json!({ "ok": true, "file": out }),
                )
            }
            KpFileCmd::Grant { file, guardian } => {
                let kp = self
                    .service
                    .grant(self.me, &read_input(&file)?, &guardian)?;
                write_atomic(&file, &kp)?;
                self.out.either(
                    || format!("granted {guardian} in {}", file.display()),
                    || json!({ "ok": true }),
                )
            }
            KpFileCmd::Revoke { file, guardian } => {
                let kp = self
                    .service
                    .revoke(self.me, &read_input(&file)?, &guardian)?;
                write_atomic(&file, &kp)?;
                self.out.either(
                    || format!("revoked {guardian} in {}", file.display()),
                    || json!({ "ok": true }),
                )
            }
            KpFileCmd::Show { file } => {
                let i = self.service.inspect(self.me, &read_input(&file)?)?;
                self.out.either(
                    || output::inspection_text(&i),
                    || output::inspection_json(&i),
                )
            }
            KpFileCmd::Verify { file } => {
                let i = self.service.inspect(self.me, &read_input(&file)?)?;
                match (&i.verified, &i.unwrapped_here) {
                    (Err(e), _) => Err(CliError::new(format!(
                        "{}: does not verify: {e}",
                        file.display()
                    ))),
                    (Ok(()), Some(Err(e))) => Err(CliError::new(format!(
                        "{}: verifies, but unwrapping with this host's guardian fails: {e}",
                        file.display()
                    ))),
                    (Ok(()), _) => self.out.either(
                        || format!("{}: verified", file.display()),
                        || output::inspection_json(&i),
                    ),
                }
            }
        }
    }

    fn tpm(&self, c: TpmCmd, data: &DataDir) -> Result<(), CliError> {
        match c {
            TpmCmd::Start {
                vm,
                state,
                socket,
                tcp,
            } => {
                let vm = self.find_vm(&vm)?;
                let location = VtpmLocation::of(&data.vtpm_root(), vm.id);
                let endpoint = match (socket, tcp) {
                    (_, Some(port)) => Endpoint::Tcp { port },
                    (Some(path), None) => Endpoint::Unix {
                        path: std::path::absolute(&path).map_err(|e| {
                            CliError::new(format!("--socket {}: {e}", path.display()))
                        })?,
                    },
                    (None, None) => Endpoint::Unix {
                        path: std::path::absolute(location.dir.join("swtpm.sock"))
                            .map_err(|e| CliError::new(e.to_string()))?,
                    },
                };
                let started = self.service.tpm_start(
                    self.me,
                    &vm,
                    location,
                    state.as_deref(),
                    &data.path.join("vtpm-ca"),
                    endpoint,
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
            TpmCmd::Stop { vm } => {
                let vm = self.find_vm(&vm)?;
                let outcome = self.service.tpm_stop(
                    self.me,
                    &vm,
                    &VtpmLocation::of(&data.vtpm_root(), vm.id),
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
            TpmCmd::Status { vm } => {
                let vms = match vm {
                    Some(v) => vec![self.find_vm(&v)?],
                    None => self.service.vms(self.me)?,
                };
                let mut rows = Vec::new();
                for vm in vms {
                    let st = self
                        .service
                        .tpm_status(self.me, &VtpmLocation::of(&data.vtpm_root(), vm.id))?;
                    rows.push((vm, st));
                }
                self.out.either(
                    || {
                        rows.iter()
                            .map(|(vm, st)| match st {
                                vmsec_tpm::Status::Running { pid, endpoint } => format!(
                                    "{}  {}  running (pid {pid}){}\n",
                                    vm.id,
                                    output::text(&vm.name),
                                    endpoint
                                        .as_ref()
                                        .map(|e| format!(" {}", e.tcti()))
                                        .unwrap_or_default()
                                ),
                                vmsec_tpm::Status::Stopped { .. } => {
                                    format!("{}  {}  stopped\n", vm.id, output::text(&vm.name))
                                }
                            })
                            .collect()
                    },
                    || {
                        json!(
                            rows.iter()
                                .map(
                                    |(vm, st)| json!({ "vm": vm.id, "name": vm.name, "status": st })
                                )
                                .collect::<Vec<_>>()
                        )
                    },
                )
            }
        }
    }

    fn job(&self, c: JobCmd) -> Result<(), CliError> {
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

    fn audit(&self, after: i64, limit: usize) -> Result<(), CliError> {
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

/// A password from standard input (at most 4 KiB), without its final line ending.
fn password_from_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut password = Zeroizing::new(String::new());
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut password)
        .map_err(|e| CliError::new(format!("cannot read the password from standard input: {e}")))?;
    let line = password.strip_suffix('\n').unwrap_or(&password);
    let end = line.strip_suffix('\r').unwrap_or(line).len();
    password.truncate(end);
    Ok(password)
}

fn role_of(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Admin => Role::Admin,
        RoleArg::Operator => Role::Operator,
        RoleArg::Reader => Role::Reader,
    }
}

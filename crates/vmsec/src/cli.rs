//! The command line: names and options are a contract with scripts (docs/design.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod defaults;
mod fabric;

pub use defaults::{default_data_dir, default_serve_config};
pub use fabric::*;

#[derive(Parser, Debug)]
#[command(
    name = "vmsec",
    version,
    about = "Hyper-V Msvm_SecurityService key protection for Linux hosts",
    long_about = "vmsec keeps each VM's security settings and key protector, serves Hyper-V's \
                  Msvm_SecurityService API over WS-Management, and administers it from this command line."
)]
pub struct Cli {
    /// Data directory (default $VMSEC_DATA, else /var/lib/vmsec for root, else
    /// ~/.local/share/vmsec; kps: $VMSEC_KPS_DATA, /var/lib/vmsec-kps, …/vmsec-kps).
    ///
    /// It holds the store, the keys and the TLS certificate. The default does not depend on the
    /// working directory ($XDG_DATA_HOME is honoured); a Key Protection Service has one of its
    /// own, so that it never shares a host's directory by accident.
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// The store: a PostgreSQL URL (postgres://user:password@host:port/db, `?sslmode=require`
    /// for TLS) shared by several hosts, else the SQLite file in the data directory.
    ///
    /// Default: $VMSEC_STORE, else the `store` key of serve's config file
    /// (/etc/vmsec/vmsec.toml for root, or `serve --config`). A URL holds a password: prefer
    /// the variable or the config file (mode 0600) to the command line, which others can see.
    #[arg(long, global = true, env = "VMSEC_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The data directory this command works in: `--data`, else `$VMSEC_DATA` (`kps`:
    /// `$VMSEC_KPS_DATA`), else the default for this user ([`default_data_dir`]).
    pub fn data_dir(&self) -> PathBuf {
        let kps = matches!(self.command, Command::Kps(_));
        let var = if kps { "VMSEC_KPS_DATA" } else { "VMSEC_DATA" };
        self.data
            .clone()
            .or_else(|| std::env::var_os(var).map(PathBuf::from))
            .unwrap_or_else(|| default_data_dir(kps))
    }

    /// Whether the data directory is the default one (no `--data`, no variable): then a new
    /// one is announced, since it may not be the store the user meant.
    pub fn data_dir_is_default(&self) -> bool {
        let var = if matches!(self.command, Command::Kps(_)) {
            "VMSEC_KPS_DATA"
        } else {
            "VMSEC_DATA"
        };
        self.data.is_none() && std::env::var_os(var).is_none()
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the WS-Management endpoint (HTTPS on 127.0.0.1:5986 by default).
    ///
    /// Example: `vmsec serve --listen 0.0.0.0:5986 --config /etc/vmsec/vmsec.toml`.
    Serve {
        /// HTTPS listen address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also listen with plain HTTP here (loopback only, unless you accept the risk).
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
        /// TOML configuration file (default for root: /etc/vmsec/vmsec.toml, if it exists).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage the users who may call the WS-Management endpoint.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage VMs and their security.
    #[command(subcommand)]
    Vm(VmCmd),
    /// Manage guardians: the hosts and services a key protector can be granted to.
    #[command(subcommand)]
    Guardian(GuardianCmd),
    /// Make, change and inspect key protector files.
    #[command(subcommand)]
    Kp(KpFileCmd),
    /// Run VMs' vTPMs (swtpm) under their key protectors.
    #[command(subcommand)]
    Tpm(TpmCmd),
    /// Inspect the jobs of mutating methods.
    #[command(subcommand)]
    Job(JobCmd),
    /// The HTTPS certificate `serve` presents.
    #[command(subcommand)]
    Tls(TlsCmd),
    /// The guarded fabric's Key Protection Service and Attestation Service (own data
    /// directory: $VMSEC_KPS_DATA, else /var/lib/vmsec-kps or ~/.local/share/vmsec-kps).
    #[command(subcommand)]
    Kps(KpsCmd),
    /// This host's guarded-fabric client: its host key and HGS mode.
    #[command(subcommand)]
    Hgs(HgsCmd),
    /// libvirt's QEMU hook: starts a vmsec VM's vTPM at the domain's prepare, stops it at
    /// release (the domain's UUID is the VM's GUID; its TPM is `<backend type='external'>` on
    /// vmsec's control socket). Installed as /etc/libvirt/hooks/qemu.d/vmsec (contrib/libvirt).
    ///
    /// Example: run by libvirt as `/etc/libvirt/hooks/qemu.d/vmsec web1 prepare begin -`.
    LibvirtHook {
        /// The domain's name (libvirt's first argument).
        domain: String,
        /// prepare, start, started, stopped, release, …
        op: String,
        /// begin or end.
        sub_op: String,
        /// libvirt's fourth argument ("-").
        extra: Option<String>,
    },
    /// Print a shell completion script.
    ///
    /// For example: `vmsec completions bash > /etc/bash_completion.d/vmsec`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, or write one per command into a directory.
    ///
    /// For example: `vmsec man --out /usr/local/share/man/man1`.
    Man {
        /// Write vmsec.1, vmsec-user.1, vmsec-user-add.1, … here instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// The hosts that share this store, and when each was last seen (one host on SQLite).
    ///
    /// Example: `vmsec --store postgres://vmsec@db.example/vmsec hosts`.
    Hosts,
    /// Print the audit log, newest first.
    ///
    /// Example: `vmsec audit --since 2026-12-01T00:00:00Z --vm web1`.
    Audit {
        /// Only records after this sequence number, oldest first (to read on from a record).
        #[arg(long)]
        after: Option<i64>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only records written at or after this time (RFC 3339, e.g. 2026-01-31T08:00:00Z).
        #[arg(long, value_parser = parse_rfc3339)]
        since: Option<time::OffsetDateTime>,
        /// Only records about this VM (name or GUID; the GUID of a removed VM works too).
        #[arg(long)]
        vm: Option<String>,
        /// Only records of this user, named as the log names it (a WS-Man user's name, or
        /// "local:" and the Unix user's for the CLI).
        #[arg(long)]
        user: Option<String>,
        /// After printing, wait for new records and print them as they are written, until
        /// interrupted (with --json: one object per line). Example: `vmsec audit --follow`.
        #[arg(long)]
        follow: bool,
    },
}

fn parse_rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{e} (use RFC 3339, e.g. 2026-01-31T08:00:00Z)"))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Admin,
    Operator,
    Reader,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user; the password is read from standard input, never from the command line.
    ///
    /// Example: `echo 'a long password' | vmsec user add ops --role operator --password-stdin`.
    Add {
        /// The user's name.
        name: String,
        /// The role: admin, operator or reader.
        #[arg(long, value_enum, default_value = "reader")]
        role: RoleArg,
        /// Read the password from standard input (the only way; required so scripts say so).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    ///
    /// Example: `vmsec user list --json`.
    List,
    /// Remove a user.
    ///
    /// Example: `vmsec user remove ops`.
    Remove {
        /// The user's name.
        name: String,
    },
    /// Give a user a new password, read from standard input; the old one stops working at once.
    ///
    /// Example: `vmsec user passwd ops --password-stdin`.
    Passwd {
        /// The user's name.
        name: String,
        /// Read the password from standard input (the only way; required so scripts say so).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Give a user another role.
    ///
    /// Example: `vmsec user role ops reader`.
    Role {
        /// The user's name.
        name: String,
        /// The role: admin, operator or reader.
        #[arg(value_enum)]
        role: RoleArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum VmCmd {
    /// Register a VM.
    ///
    /// Example: `vmsec vm add web1 --id b5314955-3924-42ba-abf9-793993d340a0`.
    Add {
        /// Its name.
        name: String,
        /// The VM's GUID (Hyper-V's VM ID); a new one when absent.
        #[arg(long)]
        id: Option<uuid::Uuid>,
    },
    /// List VMs.
    ///
    /// Example: `vmsec vm list`.
    List,
    /// Show a VM: identity, security settings, key protector state and who it is granted
    /// to, policy. Example: `vmsec vm show web1`.
    Show {
        /// The VM: its name or GUID.
        vm: String,
    },
    /// Grant a guardian in the VM's key protector and set it, in one step (the owner's keys
    /// must be here). Example: `vmsec vm grant web1 --guardian hostB`.
    Grant {
        /// The VM: its name or GUID.
        vm: String,
        /// The guardian (this host's name for it).
        #[arg(long)]
        guardian: String,
    },
    /// Revoke a guardian from the VM's key protector and set it; it loses access at the next
    /// roll. Example: `vmsec vm revoke web1 --guardian hostB`.
    Revoke {
        /// The VM: its name or GUID.
        vm: String,
        /// The guardian (this host's name for it).
        #[arg(long)]
        guardian: String,
    },
    /// Remove a VM and its key protectors.
    ///
    /// Example: `vmsec vm remove web1 --force`.
    Remove {
        /// The VM: its name or GUID.
        vm: String,
        /// Remove even though the VM has a key protector (its vTPM state becomes unreadable).
        #[arg(long)]
        force: bool,
    },
    /// Write the VM's settings, key protectors, sealed state key and (encrypted) vTPM state to
    /// DIR, to move it to another host.
    ///
    /// Example: `vmsec vm export web1 --out web1-export`.
    Export {
        /// The VM: its name or GUID.
        vm: String,
        /// The directory to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Hand the VM over: this host refuses to start its vTPM afterwards, so the two
        /// hosts' vTPM states cannot fork. Example: `vmsec vm export web1 --out dir --move`.
        #[arg(long = "move")]
        move_away: bool,
    },
    /// Register a VM exported from another host.
    ///
    /// Example: `vmsec vm import web1-export`.
    Import {
        /// The directory `vm export` wrote.
        dir: PathBuf,
    },
    /// Security settings (Msvm_SecuritySettingData).
    #[command(subcommand)]
    Security(SecurityCmd),
    /// The VM's key protector.
    #[command(subcommand)]
    Kp(KpCmd),
    /// The VM's security policy blob.
    #[command(subcommand)]
    Policy(PolicyCmd),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn is_on(self) -> bool {
        self == OnOff::On
    }
}

#[derive(Subcommand, Debug)]
pub enum SecurityCmd {
    /// Print the VM's security settings.
    ///
    /// Example: `vmsec vm security get web1`.
    Get {
        /// The VM: its name or GUID.
        vm: String,
    },
    /// Change security settings through ModifySecuritySettings; options not given stay as they are.
    ///
    /// Example: `vmsec vm security set web1 --tpm on --shielded on`.
    Set(SecuritySet),
}

#[derive(Args, Debug)]
pub struct SecuritySet {
    /// The VM: its name or GUID.
    pub vm: String,
    /// TpmEnabled.
    #[arg(long)]
    pub tpm: Option<OnOff>,
    /// ShieldingRequested.
    #[arg(long)]
    pub shielded: Option<OnOff>,
    /// EncryptStateAndVmMigrationTraffic.
    #[arg(long)]
    pub encrypt_state: Option<OnOff>,
    /// KsdEnabled (key storage drive).
    #[arg(long)]
    pub ksd: Option<OnOff>,
    /// DataProtectionRequested.
    #[arg(long)]
    pub data_protection: Option<OnOff>,
    /// VirtualizationBasedSecurityOptOut.
    #[arg(long)]
    pub vbs_opt_out: Option<OnOff>,
    /// BindToHostTpm.
    #[arg(long)]
    pub bind_to_host_tpm: Option<OnOff>,
    /// AppContainerLaunchOptOut.
    #[arg(long)]
    pub app_container_launch_opt_out: Option<OnOff>,
}

#[derive(Subcommand, Debug)]
pub enum KpCmd {
    /// Write the VM's current key protector (GetKeyProtector).
    ///
    /// Example: `vmsec vm kp get web1 --out web1-kp.xml`.
    Get {
        /// The VM: its name or GUID.
        vm: String,
        /// Write to FILE instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Set the VM's key protector from FILE ("-" for standard input) (SetKeyProtector).
    ///
    /// Example: `vmsec vm kp set web1 web1-kp.xml`.
    Set {
        /// The VM: its name or GUID.
        vm: String,
        /// The key protector file ("-" for standard input).
        file: PathBuf,
    },
    /// Make the last known good key protector current (RestoreLastKnownGoodKeyProtector).
    ///
    /// Example: `vmsec vm kp restore web1`.
    Restore {
        /// The VM: its name or GUID.
        vm: String,
    },
    /// List the VM's earlier key protectors.
    ///
    /// Example: `vmsec vm kp history web1`.
    History {
        /// The VM: its name or GUID.
        vm: String,
    },
    /// Give the VM a new key protector owned by this host's UntrustedGuardian
    /// (Set-VMKeyProtector -NewLocalKeyProtector).
    ///
    /// Example: `vmsec vm kp new-local web1`.
    NewLocal {
        /// The VM: its name or GUID.
        vm: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeySizeArg {
    #[value(name = "2048")]
    Rsa2048,
    #[value(name = "3072")]
    Rsa3072,
    #[value(name = "4096")]
    Rsa4096,
}

#[derive(Subcommand, Debug)]
pub enum GuardianCmd {
    /// Create a guardian with new keys, kept here (private keys sealed under DATA/master.key).
    ///
    /// Example: `vmsec guardian new owner --key-size 3072`.
    New {
        /// The guardian's name (this host's name for it).
        name: String,
        /// RSA key size.
        #[arg(long, value_enum, default_value = "2048")]
        key_size: KeySizeArg,
    },
    /// Import a guardian from an MS-KPS metadata.xml (from vmsec or a Windows HGS).
    ///
    /// Example: `vmsec guardian import hostB --metadata hostB.xml`.
    Import {
        /// The guardian's name (this host's name for it).
        name: String,
        /// The guardian's metadata.xml (from `guardian export` or `kps guardian export`).
        #[arg(long, required_unless_present_any = ["url", "pfx"], conflicts_with_all = ["url", "pfx"])]
        metadata: Option<PathBuf>,
        /// PKCS#12 (.pfx) files with the guardian's two certificates and private keys, as a
        /// Windows host exports them from "Shielded VM Local Certificates" (one file each, or
        /// both in one); the password is read with --password-stdin. Example:
        /// `vmsec guardian import hostW --pfx enc.pfx --pfx sign.pfx --password-stdin`.
        #[arg(long, conflicts_with = "url", requires = "password_stdin")]
        pfx: Vec<PathBuf>,
        /// With --pfx: read the PKCS#12 password from standard input (asked without echo on
        /// a terminal).
        #[arg(long)]
        password_stdin: bool,
        /// Fetch metadata.xml from a Key Protection Service, e.g.
        /// https://kps.example:8443/KeyProtection (its /service/metadata/2014-07/metadata.xml).
        #[arg(long)]
        url: Option<String>,
        /// With --url: PEM certificates the service's TLS certificate must chain to.
        #[arg(long, requires = "url")]
        ca: Option<PathBuf>,
        /// Also import its private keys from DIR (encryption.key.pem, signing.key.pem).
        #[arg(long)]
        private: Option<PathBuf>,
    },
    /// Export a guardian as a signed metadata.xml.
    ///
    /// Example: `vmsec guardian export hostB --out hostB.xml`.
    Export {
        /// The guardian's name (this host's name for it).
        name: String,
        /// The metadata.xml to write (an existing file needs --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Also write its private keys into DIR (mode 0600): for backup or moving an owner.
        #[arg(long)]
        private: Option<PathBuf>,
    },
    /// List guardians.
    ///
    /// Example: `vmsec guardian list`.
    List,
    /// Remove a guardian.
    ///
    /// Example: `vmsec guardian remove hostB`.
    Remove {
        /// The guardian's name (this host's name for it).
        name: String,
        /// Remove even if it owns stored key protectors.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KpFileCmd {
    /// Make a new key protector owned by OWNER (whose keys are here) for the guardians.
    ///
    /// Example: `vmsec kp new --owner owner --guardian fabric --out web1-kp.xml`.
    New {
        /// The guardian that owns the new key protector (its keys must be here).
        #[arg(long)]
        owner: String,
        /// A guardian to grant (repeat for more).
        #[arg(long = "guardian")]
        guardians: Vec<String>,
        /// The key protector file to write (an existing file needs --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Grant a guardian (the owner's keys must be here); FILE is rewritten.
    ///
    /// Example: `vmsec kp grant web1-kp.xml --guardian hostB`.
    Grant {
        /// The key protector file ("-" for standard input).
        file: PathBuf,
        /// The guardian (this host's name for it).
        #[arg(long)]
        guardian: String,
    },
    /// Revoke a guardian (the owner's keys must be here); FILE is rewritten. The transport key
    /// changes at the next roll (vTPM start).
    ///
    /// Example: `vmsec kp revoke web1-kp.xml --guardian hostB`.
    Revoke {
        /// The key protector file ("-" for standard input).
        file: PathBuf,
        /// The guardian (this host's name for it).
        #[arg(long)]
        guardian: String,
    },
    /// Show the owner and guardians, their certificates, and the signature checks.
    ///
    /// Example: `vmsec kp show web1-kp.xml`.
    Show {
        /// The key protector file ("-" for standard input).
        file: PathBuf,
    },
    /// Verify every signature and rule; exit 1 naming the first that fails.
    ///
    /// Example: `vmsec kp verify web1-kp.xml`.
    Verify {
        /// The key protector file ("-" for standard input).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Write the VM's security policy blob.
    ///
    /// Example: `vmsec vm policy get web1 --out policy.bin`.
    Get {
        /// The VM: its name or GUID.
        vm: String,
        /// Write to FILE instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Set the VM's security policy from FILE ("-" for standard input; an empty file clears it).
    ///
    /// Example: `vmsec vm policy set web1 policy.bin`.
    Set {
        /// The VM: its name or GUID.
        vm: String,
        /// The policy file ("-" for standard input; an empty file clears it).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// List jobs that have not been removed yet.
    ///
    /// Example: `vmsec job list --json`.
    List,
    /// Show one job.
    ///
    /// Example: `vmsec job show Microsoft:2B5B5A3A-…`.
    Show {
        /// The job's InstanceID (`job list`).
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Show the certificate's SHA-256 fingerprint (to pin or compare it on a client), names
    /// and validity. Example: `vmsec tls show`.
    Show {
        /// Another certificate (PEM) than DATA/tls/cert.pem, e.g. the config's `tls_cert`.
        #[arg(long)]
        cert: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TpmCmd {
    /// Start the VM's vTPM: unwrap and roll its key protector, start swtpm with the state key.
    ///
    /// Example: `vmsec tpm start web1 --socket /run/vmsec/web1/swtpm.sock`.
    Start {
        /// The VM: its name or GUID.
        vm: String,
        /// Keep the vTPM state in DIR instead of DATA/vtpm/<VM GUID>/state.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Unix socket for the data channel (the control channel is PATH.ctrl).
        #[arg(long, conflicts_with = "tcp")]
        socket: Option<PathBuf>,
        /// TCP port on 127.0.0.1 for the data channel (control on PORT+1).
        #[arg(long)]
        tcp: Option<u16>,
        /// Manufacture a new vTPM although this VM had one whose state is not found (its keys
        /// and NV data are lost). Without it such a start is refused.
        #[arg(long)]
        reset: bool,
    },
    /// Stop the VM's vTPM gracefully.
    ///
    /// Example: `vmsec tpm stop web1`.
    Stop {
        /// The VM: its name or GUID.
        vm: String,
    },
    /// Whether the vTPM of VM (or of every VM) runs, and which host holds it.
    ///
    /// Example: `vmsec tpm status --json`.
    Status {
        /// The VM: its name or GUID.
        vm: Option<String>,
    },
    /// Keep this host's lease on VM's vTPM alive while it runs (started by `tpm start` on a
    /// shared store; not for use by hand).
    ///
    /// Example: `vmsec tpm keep-lease vm1 --token 42`.
    #[command(hide = true)]
    KeepLease {
        /// The VM: its name or GUID.
        vm: String,
        /// The lease's fencing token, as `tpm start` took it.
        #[arg(long)]
        token: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verb shows an example in its help, and every argument says what it is.
    #[test]
    fn every_verb_has_an_example_and_every_argument_a_help_text() {
        use clap::CommandFactory;
        fn walk(c: &clap::Command, path: String, missing: &mut Vec<String>) {
            let subs: Vec<&clap::Command> = c
                .get_subcommands()
                .filter(|s| s.get_name() != "help")
                .collect();
            if subs.is_empty() {
                let about = format!(
                    "{} {}",
                    c.get_about().map(|s| s.to_string()).unwrap_or_default(),
                    c.get_long_about()
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                );
                if !about.contains("xample") {
                    missing.push(format!("{path}: no example"));
                }
            }
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_global_set() || id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>: no help"));
                }
            }
            for sub in subs {
                walk(sub, format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "vmsec".into(), &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }
}

//! What each CLI verb does: parse arguments, call the service, print. One file per group of
//! `cli.rs`'s command tree; the rules are in `vmsec-service`, never here.

mod audit;
mod files;
mod guardian;
mod hgs;
mod job;
mod kp;
mod kps;
mod libvirt;
pub(crate) mod tls;
mod tpm;
pub(crate) use tpm::start_for_a_client;
mod user;
mod vm;

use vmsec_service::{Caller, Service};
use vmsec_store::Vm;

use crate::CliError;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::data_dir::DataDir;
use crate::output::{self, Out};

pub fn run(cli: Cli) -> Result<(), CliError> {
    // Made from the command definitions alone: no data directory is opened or created.
    match &cli.command {
        Command::Completions { shell } => return completions(*shell),
        Command::Man { out } => return man(out.as_deref()),
        // Reads one file: opens no store, creates no data directory.
        Command::Tls(crate::cli::TlsCmd::Show { cert }) => {
            let path = cert
                .clone()
                .unwrap_or_else(|| cli.data_dir().join("tls/cert.pem"));
            return tls::show(&path, &Out { json: cli.json });
        }
        _ => {}
    }
    let path = cli.data_dir();
    let announce = cli.data_dir_is_default() && !path.exists();
    let mut data = DataDir::open_or_create(&path)?;
    // An empty VMSEC_STORE is as good as none. A KPS never takes a host's store from serve's
    // config file: only --store / VMSEC_STORE.
    let given = cli.store.clone().filter(|s| !s.is_empty());
    data.store = match cli.command {
        Command::Kps(_) => given.clone(),
        _ => given.clone().or_else(crate::serve::configured_store),
    };
    if announce {
        eprintln!(
            "vmsec: created the data directory {} (a new, empty store; --data or VMSEC_DATA choose another)",
            path.display()
        );
    }
    if let Command::Kps(c) = cli.command {
        return kps::run(&data, c, &Out { json: cli.json });
    }
    if let Command::Serve {
        listen,
        http_listen,
        config,
    } = cli.command
    {
        // The command line and VMSEC_STORE win over the config file's `store`.
        data.store = given;
        return crate::serve::run(
            &data,
            crate::serve::ServeArgs {
                listen,
                http_listen,
                config: config.or_else(crate::cli::default_serve_config),
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
        data: &data,
    };
    let result = match cli.command {
        Command::User(c) => ctx.user(c),
        Command::Vm(c) => ctx.vm(c),
        Command::Job(c) => ctx.job(c),
        Command::Guardian(c) => ctx.guardian(c),
        Command::Tpm(c) => ctx.tpm(c),
        Command::Hgs(c) => ctx.hgs(c),
        Command::LibvirtHook {
            domain, op, sub_op, ..
        } => ctx.libvirt_hook(&domain, &op, &sub_op),
        Command::Kp(c) => ctx.kp_file(c),
        Command::Hosts => ctx.hosts(),
        Command::Audit {
            after,
            limit,
            since,
            vm,
            user,
            follow,
        } => ctx.audit(audit::Filter {
            after,
            limit,
            since,
            vm,
            user,
            follow,
        }),
        Command::Serve { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Tls(_)
        | Command::Kps(_) => {
            unreachable!("handled above")
        }
    };
    service.shutdown();
    result
}

/// What every verb works with: the service, as the local administrator, and how to print.
struct Ctx<'a> {
    service: &'a Service,
    me: &'a Caller,
    out: &'a Out,
    data: &'a DataDir,
}

impl Ctx<'_> {
    fn hosts(&self) -> Result<(), CliError> {
        let hosts = self.service.hosts(self.me)?;
        let me = self.service.host().guid;
        self.out.either(
            || {
                hosts
                    .iter()
                    .map(|h| {
                        format!(
                            "{}  {}  last seen {}{}\n",
                            h.guid,
                            output::text(&h.name),
                            vmsec_store::rfc3339::format(h.last_seen),
                            if h.guid == me { "  (this host)" } else { "" }
                        )
                    })
                    .collect()
            },
            || serde_json::json!(hosts),
        )
    }

    fn find_vm(&self, vm: &str) -> Result<Vm, CliError> {
        Ok(self.service.find_vm(self.me, vm)?)
    }
}

fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vmsec", &mut script);
    output::write_stdout(&script)
}

fn man(out: Option<&std::path::Path>) -> Result<(), CliError> {
    let cmd = Cli::command();
    match out {
        Some(dir) => clap_mangen::generate_to(cmd, dir).map_err(|e| {
            CliError::new(format!(
                "cannot write manual pages to {}: {e}",
                dir.display()
            ))
        }),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| CliError::new(format!("cannot render the manual page: {e}")))?;
            output::write_stdout(&page)
        }
    }
}

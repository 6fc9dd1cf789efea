#![forbid(unsafe_code)]
//! `vmsec`: the service and its administration command line. Thin: every operation goes
//! through `vmsec-service`, with the same rules and audit as calls over WS-Management.

mod cli;
mod commands;
mod data_dir;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// A failure the CLI reports: the message names the problem; exit code 1.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
        }
    }
}

impl From<vmsec_service::ServiceError> for CliError {
    fn from(e: vmsec_service::ServiceError) -> Self {
        CliError::new(e.to_string())
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version.
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMSEC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsec: error: {}", e.message);
            ExitCode::from(1)
        }
    }
}

#![forbid(unsafe_code)]
//! `vmsec`: the service and its administration command line. Thin: every operation goes
//! through `vmsec-service`, with the same rules and audit as calls over WS-Management.

mod cli;
mod commands;
mod control;
mod data_dir;
mod hgs_client;
mod hgs_tpm;
mod https_client;
mod kps;
mod output;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// A failure the CLI reports: the message names the problem; exit code 1.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    /// The kind of failure, by a stable name in `--json` output (`Failed` unless known).
    pub code: ErrorCode,
    /// Standard output was closed by its reader: the command stops, quietly and with
    /// success, as `cat` does for `cat big | head -1`.
    pub closed_stdout: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: ErrorCode::Failed,
            closed_stdout: false,
        }
    }

    pub fn closed_stdout() -> Self {
        CliError {
            message: String::new(),
            code: ErrorCode::Failed,
            closed_stdout: true,
        }
    }
}

/// Declares [`ErrorCode`] and [`ErrorCode::ALL`] from one list, so that no code can be given
/// that the list lacks (a code another process reports is read back through the list).
macro_rules! error_codes {
    ($($name:ident),* $(,)?) => {
        /// The kind of a failure, as `--json` output and the control socket name it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $($name,)*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// Its stable name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)*
                }
            }
        }
    };
}

error_codes! {
    AccessDenied,
    InvalidParameter,
    NotFound,
    InvalidKeyProtector,
    InvalidState,
    NotSupported,
    AlreadyExists,
    Timeout,
    Failed,
}

impl ErrorCode {
    /// The code of that name (one another process reported); `Failed` for one unknown.
    pub fn named(name: &str) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == name)
            .unwrap_or(ErrorCode::Failed)
    }
}

impl From<vmsec_service::ServiceError> for CliError {
    fn from(e: vmsec_service::ServiceError) -> Self {
        use ErrorCode as C;
        use vmsec_service::ServiceError as E;
        let code = match &e {
            E::AccessDenied(_) | E::AuthenticationFailed => C::AccessDenied,
            E::MalformedInstance(_) | E::IncorrectType(_) | E::InvalidParameter(_) => {
                C::InvalidParameter
            }
            E::UnknownVm(_) | E::NoSuchVm(_) | E::NotFound(_) => C::NotFound,
            E::InvalidKeyProtector(_) => C::InvalidKeyProtector,
            E::InvalidState(_) | E::IncompatibleSettings(_) => C::InvalidState,
            E::NotSupported(_) => C::NotSupported,
            E::AlreadyExists(_) => C::AlreadyExists,
            E::Timeout(_) => C::Timeout,
            _ => C::Failed,
        };
        CliError {
            code,
            ..CliError::new(e.to_string())
        }
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version.
    let cli = cli::Cli::parse();
    // `serve` logs at info by default (its config may say otherwise); the CLI only warns.
    let filter = match &cli.command {
        cli::Command::Serve {
            listen,
            http_listen,
            config,
        } => serve::log_filter(&serve::ServeArgs {
            listen: *listen,
            http_listen: *http_listen,
            config: config.clone().or_else(cli::default_serve_config),
        }),
        cli::Command::Kps(cli::KpsCmd::Serve { config, .. }) => kps::log_filter(config.as_deref()),
        _ => Ok(std::env::var("VMSEC_LOG").unwrap_or_else(|_| "warn".into())),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vmsec: error: {}", e.message);
            return ExitCode::from(1);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.closed_stdout => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmsec: error: {}", e.message);
            if json {
                // Scripts read stdout: the same failure as one JSON object, the exit code 1.
                let _ = output::write_stdout(
                    format!(
                        "{}\n",
                        serde_json::json!({ "error": { "code": e.code.as_str(), "message": e.message } })
                    )
                    .as_bytes(),
                );
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_error_code_is_read_back_from_its_name_and_an_unknown_name_is_failed() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::named(c.as_str()), c);
        }
        assert_eq!(ErrorCode::named("NoSuchCode"), ErrorCode::Failed);
        assert_eq!(
            ErrorCode::named("notfound"),
            ErrorCode::Failed,
            "names are exact"
        );
    }
}

//! Where a running swtpm listens, and how QEMU and tpm2-tools reach it.
//!
//! swtpm has two channels: the data channel carries TPM commands, the control
//! channel carries swtpm's own commands (init, shutdown, ...). QEMU's
//! `tpm-emulator` backend only needs the control channel; the data channel is
//! passed to it over the control channel. tpm2-tss's `swtpm` TCTI uses both,
//! finding the control channel by convention: TCP port + 1, or the socket path
//! + `.ctrl`. We follow the same convention so one value describes both.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TpmError;

/// Longest socket path Linux accepts (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The suffix of the control socket next to a unix data socket.
pub const CTRL_SUFFIX: &str = ".ctrl";

/// Where swtpm listens. Both channels bind to loopback or a local socket only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    /// Data channel on `127.0.0.1:port`, control channel on `port + 1`.
    Tcp {
        /// The data channel's port; must leave room for `port + 1`.
        port: u16,
    },
    /// Data channel on the unix socket `path`, control channel on `path.ctrl`.
    Unix {
        /// The data socket's path; absolute so the daemonized swtpm finds it.
        path: PathBuf,
    },
}

/// The address of one channel, ready to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChannelAddr {
    Tcp(u16),
    Unix(PathBuf),
}

impl Endpoint {
    /// Checks what swtpm, QEMU and the kernel will accept, so a bad endpoint
    /// fails here with a precise reason instead of inside a daemon.
    pub fn validate(&self) -> Result<(), TpmError> {
        match self {
            Endpoint::Tcp { port } => {
                if *port == 0 || *port == u16::MAX {
                    return Err(TpmError::InvalidEndpoint(format!(
                        "TCP port {port} unusable: need 1..=65534 so that the control channel can use port + 1"
                    )));
                }
                Ok(())
            }
            Endpoint::Unix { path } => {
                check_option_path("unix socket", path)?;
                if !path.is_absolute() {
                    return Err(TpmError::InvalidEndpoint(format!(
                        "unix socket path {} must be absolute",
                        path.display()
                    )));
                }
                let ctrl_len = path.as_os_str().len() + CTRL_SUFFIX.len();
                if ctrl_len > MAX_SOCKET_PATH {
                    return Err(TpmError::InvalidEndpoint(format!(
                        "unix socket path {} too long: its control socket would be {ctrl_len} bytes, the limit is {MAX_SOCKET_PATH}",
                        path.display()
                    )));
                }
                Ok(())
            }
        }
    }

    /// The control channel's address.
    pub(crate) fn ctrl(&self) -> ChannelAddr {
        match self {
            Endpoint::Tcp { port } => ChannelAddr::Tcp(port.saturating_add(1)),
            Endpoint::Unix { path } => ChannelAddr::Unix(ctrl_path(path)),
        }
    }

    /// The data channel's address.
    pub(crate) fn data(&self) -> ChannelAddr {
        match self {
            Endpoint::Tcp { port } => ChannelAddr::Tcp(*port),
            Endpoint::Unix { path } => ChannelAddr::Unix(path.clone()),
        }
    }

    /// swtpm's `--server` and `--ctrl` option values.
    pub(crate) fn swtpm_args(&self) -> [String; 4] {
        match self {
            Endpoint::Tcp { port } => [
                "--server".into(),
                format!("type=tcp,bindaddr=127.0.0.1,port={port}"),
                "--ctrl".into(),
                format!(
                    "type=tcp,bindaddr=127.0.0.1,port={}",
                    port.saturating_add(1)
                ),
            ],
            Endpoint::Unix { path } => [
                "--server".into(),
                format!("type=unixio,path={}", path.display()),
                "--ctrl".into(),
                format!("type=unixio,path={}", ctrl_path(path).display()),
            ],
        }
    }

    /// QEMU arguments that attach this vTPM as a TPM 2.0 CRB device, or `None` for a TCP
    /// endpoint: QEMU's `tpm-emulator` hands swtpm the data channel as a file descriptor over
    /// the control socket (CMD_SET_DATAFD), which only a unix socket can carry. TCP serves
    /// tpm2-tools and other TCTI clients.
    ///
    /// Commas in a path are doubled, QEMU's escape for option values.
    pub fn qemu_args(&self) -> Option<Vec<String>> {
        let chardev = match self {
            Endpoint::Tcp { .. } => return None,
            Endpoint::Unix { path } => format!(
                "socket,id=chrtpm,path={}",
                ctrl_path(path).display().to_string().replace(',', ",,")
            ),
        };
        Some(vec![
            "-chardev".into(),
            chardev,
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-crb,tpmdev=tpm0".into(),
        ])
    }

    /// The tpm2-tss TCTI string (`TPM2TOOLS_TCTI`, `-T`) for tpm2-tools 5.x.
    pub fn tcti(&self) -> String {
        match self {
            Endpoint::Tcp { port } => format!("swtpm:host=127.0.0.1,port={port}"),
            Endpoint::Unix { path } => format!("swtpm:path={}", path.display()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { port } => write!(f, "tcp 127.0.0.1:{port} (control {})", {
                port.saturating_add(1)
            }),
            Endpoint::Unix { path } => {
                write!(
                    f,
                    "unix {} (control {})",
                    path.display(),
                    ctrl_path(path).display()
                )
            }
        }
    }
}

fn ctrl_path(path: &Path) -> PathBuf {
    let mut ctrl = path.as_os_str().to_owned();
    ctrl.push(CTRL_SUFFIX);
    PathBuf::from(ctrl)
}

/// swtpm splits option values on `,` and has no escape, and paths also go
/// into line-based config files: refuse what would be misparsed.
pub(crate) fn check_option_path(what: &str, path: &Path) -> Result<(), TpmError> {
    let Some(text) = path.to_str() else {
        return Err(TpmError::InvalidPath {
            what: what.into(),
            path: path.to_path_buf(),
            reason: "not valid UTF-8",
        });
    };
    if text.is_empty() {
        return Err(TpmError::InvalidPath {
            what: what.into(),
            path: path.to_path_buf(),
            reason: "empty",
        });
    }
    if text.contains(',') {
        return Err(TpmError::InvalidPath {
            what: what.into(),
            path: path.to_path_buf(),
            reason: "contains ',' which swtpm cannot escape",
        });
    }
    if text.chars().any(char::is_control) {
        return Err(TpmError::InvalidPath {
            what: what.into(),
            path: path.to_path_buf(),
            reason: "contains a control character",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_endpoint_puts_control_on_the_next_port() {
        let ep = Endpoint::Tcp { port: 2321 };
        assert_eq!(ep.ctrl(), ChannelAddr::Tcp(2322));
        assert_eq!(ep.data(), ChannelAddr::Tcp(2321));
        assert_eq!(
            ep.swtpm_args(),
            [
                "--server",
                "type=tcp,bindaddr=127.0.0.1,port=2321",
                "--ctrl",
                "type=tcp,bindaddr=127.0.0.1,port=2322"
            ]
        );
    }

    #[test]
    fn unix_endpoint_puts_control_next_to_the_data_socket() {
        let ep = Endpoint::Unix {
            path: "/run/vmsec/vm1.sock".into(),
        };
        assert_eq!(
            ep.ctrl(),
            ChannelAddr::Unix("/run/vmsec/vm1.sock.ctrl".into())
        );
        assert_eq!(
            ep.swtpm_args(),
            [
                "--server",
                "type=unixio,path=/run/vmsec/vm1.sock",
                "--ctrl",
                "type=unixio,path=/run/vmsec/vm1.sock.ctrl"
            ]
        );
    }

    #[test]
    fn qemu_args_attach_the_control_channel_as_tpm_crb() {
        let unix = Endpoint::Unix {
            path: "/run/vmsec/vm1.sock".into(),
        };
        assert_eq!(
            unix.qemu_args().unwrap(),
            [
                "-chardev",
                "socket,id=chrtpm,path=/run/vmsec/vm1.sock.ctrl",
                "-tpmdev",
                "emulator,id=tpm0,chardev=chrtpm",
                "-device",
                "tpm-crb,tpmdev=tpm0"
            ]
        );
        // QEMU passes the data channel as a descriptor: only a unix socket carries it.
        assert_eq!(Endpoint::Tcp { port: 2321 }.qemu_args(), None);
    }

    #[test]
    fn qemu_args_escape_commas_in_paths() {
        let ep = Endpoint::Unix {
            path: "/run/a,b.sock".into(),
        };
        assert_eq!(
            ep.qemu_args().unwrap()[1],
            "socket,id=chrtpm,path=/run/a,,b.sock.ctrl"
        );
    }

    #[test]
    fn tcti_strings_match_tpm2_tss_swtpm_syntax() {
        assert_eq!(
            Endpoint::Tcp { port: 2321 }.tcti(),
            "swtpm:host=127.0.0.1,port=2321"
        );
        assert_eq!(
            Endpoint::Unix {
                path: "/run/t.sock".into()
            }
            .tcti(),
            "swtpm:path=/run/t.sock"
        );
    }

    #[test]
    fn ports_without_room_for_the_control_channel_are_refused() {
        for port in [0, u16::MAX] {
            assert!(matches!(
                Endpoint::Tcp { port }.validate(),
                Err(TpmError::InvalidEndpoint(_))
            ));
        }
        assert!(Endpoint::Tcp { port: 65534 }.validate().is_ok());
    }

    #[test]
    fn unix_paths_swtpm_would_misparse_are_refused() {
        for bad in ["/run/a,b.sock", "/run/a\nb.sock", ""] {
            let ep = Endpoint::Unix { path: bad.into() };
            assert!(
                matches!(ep.validate(), Err(TpmError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn relative_unix_paths_are_refused() {
        let ep = Endpoint::Unix {
            path: "vm.sock".into(),
        };
        assert!(matches!(ep.validate(), Err(TpmError::InvalidEndpoint(_))));
    }

    #[test]
    fn unix_paths_too_long_for_the_control_socket_are_refused() {
        let fits = format!("/{}", "a".repeat(MAX_SOCKET_PATH - 1 - CTRL_SUFFIX.len()));
        assert!(Endpoint::Unix { path: fits.into() }.validate().is_ok());
        let too_long = format!("/{}", "a".repeat(MAX_SOCKET_PATH - CTRL_SUFFIX.len()));
        assert!(matches!(
            Endpoint::Unix {
                path: too_long.into()
            }
            .validate(),
            Err(TpmError::InvalidEndpoint(_))
        ));
    }

    #[test]
    fn endpoint_json_names_its_type() {
        let json = serde_json::to_string(&Endpoint::Tcp { port: 2321 }).expect("json");
        assert_eq!(json, r#"{"type":"tcp","port":2321}"#);
        let back: Endpoint =
            serde_json::from_str(r#"{"type":"unix","path":"/run/t.sock"}"#).expect("json");
        assert_eq!(
            back,
            Endpoint::Unix {
                path: "/run/t.sock".into()
            }
        );
    }
}

//! swtpm's control channel: commands are a 4-byte big-endian code (plus a
//! payload for some), answers start with a 4-byte big-endian TPM result code.
//!
//! The codec is pure; [`send`] is the thin socket shell around it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::endpoint::ChannelAddr;
use crate::error::TpmError;

/// `CMD_SHUTDOWN`: save volatile state, then exit (swtpm `tpm_ioctl.h`).
pub const CMD_SHUTDOWN: u32 = 0x0000_0003;

/// Result code of a successful control command.
const TPM_SUCCESS: u32 = 0;

/// The bytes of a control command without payload.
pub(crate) fn encode(command: u32) -> [u8; 4] {
    command.to_be_bytes()
}

/// Interprets the 4-byte result of a control command.
pub(crate) fn decode_result(command: u32, answer: [u8; 4]) -> Result<(), TpmError> {
    match u32::from_be_bytes(answer) {
        TPM_SUCCESS => Ok(()),
        code => Err(TpmError::ControlRefused { command, code }),
    }
}

/// A connected stream of either kind, so callers need not care which.
pub(crate) enum Channel {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Channel {
    /// Connects within `timeout` (for TCP) and bounds every later read and
    /// write by `timeout`, so a wedged swtpm cannot hang us.
    pub(crate) fn connect(addr: &ChannelAddr, timeout: Duration) -> std::io::Result<Channel> {
        match addr {
            ChannelAddr::Tcp(port) => {
                let sock = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                let stream = TcpStream::connect_timeout(&sock, timeout)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                Ok(Channel::Tcp(stream))
            }
            ChannelAddr::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                Ok(Channel::Unix(stream))
            }
        }
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Channel::Tcp(s) => s,
            Channel::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Sends a payload-less control command and checks its result code.
pub(crate) fn send(addr: &ChannelAddr, command: u32, timeout: Duration) -> Result<(), TpmError> {
    let context = format!("swtpm control command 0x{command:08x} to {addr:?}");
    let mut channel = Channel::connect(addr, timeout).map_err(TpmError::io(context.clone()))?;
    let stream = channel.stream();
    stream
        .write_all(&encode(command))
        .map_err(TpmError::io(context.clone()))?;
    let mut answer = [0u8; 4];
    stream
        .read_exact(&mut answer)
        .map_err(TpmError::io(context))?;
    decode_result(command, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_is_sent_as_big_endian_three() {
        assert_eq!(encode(CMD_SHUTDOWN), [0, 0, 0, 3]);
    }

    #[test]
    fn zero_result_is_success() {
        assert!(decode_result(CMD_SHUTDOWN, [0, 0, 0, 0]).is_ok());
    }

    #[test]
    fn nonzero_result_names_command_and_code() {
        match decode_result(CMD_SHUTDOWN, [0, 0, 0x01, 0x01]) {
            Err(TpmError::ControlRefused { command, code }) => {
                assert_eq!(command, CMD_SHUTDOWN);
                assert_eq!(code, 0x101);
            }
            other => panic!("expected ControlRefused, got {other:?}"),
        }
    }

    #[test]
    fn shutdown_round_trip_against_a_fake_control_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sock.ctrl");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut cmd = [0u8; 4];
            conn.read_exact(&mut cmd).expect("read");
            conn.write_all(&[0, 0, 0, 9]).expect("write");
            cmd
        });
        let result = send(
            &ChannelAddr::Unix(path),
            CMD_SHUTDOWN,
            Duration::from_secs(5),
        );
        assert_eq!(server.join().expect("server"), [0, 0, 0, 3]);
        assert!(matches!(
            result,
            Err(TpmError::ControlRefused { code: 9, .. })
        ));
    }
}

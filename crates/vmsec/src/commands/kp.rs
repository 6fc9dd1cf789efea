//! `vmsec kp …`: key protector files, made, changed and inspected with the keys kept here.

use std::path::Path;

use serde_json::json;

use super::Ctx;
use super::files::{Existing, absolute, read_input, write_atomic};
use crate::CliError;
use crate::cli::KpFileCmd;
use crate::output;

impl Ctx<'_> {
    pub(super) fn kp_file(&self, c: KpFileCmd) -> Result<(), CliError> {
        match c {
            KpFileCmd::New {
                owner,
                guardians,
                out,
                force,
            } => {
                let kp = self.service.new_protector(self.me, &owner, &guardians)?;
                write_atomic(&out, &kp, Existing::when(force))?;
                self.out.either(
                    || {
                        format!(
                            "wrote {} (owner {owner}, {} guardian(s))",
                            out.display(),
                            guardians.len()
                        )
                    },
                    || json!({ "ok": true, "file": absolute(&out) }),
                )
            }
            KpFileCmd::Grant { file, guardian } => {
                let kp = self
                    .service
                    .grant(self.me, &read_input(&file)?, &guardian)?;
                write_atomic(&file, &kp, Existing::Replace)?;
                self.out.either(
                    || format!("granted {guardian} in {}", file.display()),
                    || json!({ "ok": true }),
                )
            }
            KpFileCmd::Revoke { file, guardian } => {
                let kp = self
                    .service
                    .revoke(self.me, &read_input(&file)?, &guardian)?;
                write_atomic(&file, &kp, Existing::Replace)?;
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
            KpFileCmd::Verify { file } => self.kp_verify(&file),
        }
    }

    fn kp_verify(&self, file: &Path) -> Result<(), CliError> {
        let i = self.service.inspect(self.me, &read_input(file)?)?;
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

//! `vmsec guardian …`: the hosts and services a key protector can be granted to.

use std::path::Path;

use serde_json::json;
use vmsec_service::{KeySize, PrivateKeyPems};
use zeroize::Zeroizing;

use super::Ctx;
use super::files::{Existing, absolute, read_input, write_atomic};
use crate::CliError;
use crate::cli::{GuardianCmd, KeySizeArg};
use crate::output;

/// The (certificate, PKCS#8 private key) pairs of PKCS#12 files: each private key with the
/// certificate of its public key, whatever the files' friendly names and key ids say.
fn read_pfx(
    files: &[std::path::PathBuf],
    password: &str,
) -> Result<Vec<vmsec_service::CertWithKey>, CliError> {
    use aws_lc_rs::signature::KeyPair as _;
    use x509_parser::prelude::FromDer;
    let mut pairs = Vec::new();
    for f in files {
        let data = read_input(f)?;
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, password).map_err(|e| {
            CliError::new(format!(
                "{}: not a PKCS#12 file this password opens ({e})",
                f.display()
            ))
        })?;
        for bag in &archive.keys {
            let der = Zeroizing::new(bag.key.as_der().to_vec());
            let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).map_err(|_| {
                CliError::new(format!("{}: a private key that is not RSA", f.display()))
            })?;
            let public = key.public_key().as_ref().to_vec();
            let cert = archive
                .certs
                .iter()
                .map(|c| c.cert.as_der())
                .find(|c| {
                    x509_parser::certificate::X509Certificate::from_der(c).is_ok_and(|(_, x)| {
                        x.public_key().subject_public_key.data.as_ref() == public.as_slice()
                    })
                })
                .ok_or_else(|| {
                    CliError::new(format!(
                        "{}: a private key without its certificate",
                        f.display()
                    ))
                })?;
            pairs.push((cert.to_vec(), der));
        }
    }
    Ok(pairs)
}

/// A KPS's metadata.xml, from its key protection URL (as Hyper-V's KeyProtectionServerUrl).
fn fetch_metadata(url: &str, ca: Option<&Path>) -> Result<Vec<u8>, CliError> {
    let url = format!(
        "{}/service/metadata/2014-07/metadata.xml",
        url.trim_end_matches('/')
    );
    let client = crate::https_client::HttpsClient::new(ca, crate::hgs_client::TIMEOUT)
        .map_err(CliError::new)?;
    let reply = client.get(&url).map_err(|e| CliError::new(e.to_string()))?;
    if reply.status != 200 {
        return Err(CliError::new(format!(
            "{url} answered HTTP {}",
            reply.status
        )));
    }
    Ok(reply.body)
}

const ENCRYPTION_KEY_FILE: &str = "encryption.key.pem";
const SIGNING_KEY_FILE: &str = "signing.key.pem";

impl Ctx<'_> {
    pub(super) fn guardian(&self, c: GuardianCmd) -> Result<(), CliError> {
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
            GuardianCmd::Import { name, ref pfx, .. } if !pfx.is_empty() => {
                let password = super::user::password_from_stdin()?;
                let pairs = read_pfx(pfx, &password)?;
                let g = self
                    .service
                    .import_guardian_from_keys(self.me, &name, pairs)?;
                self.out.either(|| output::guardian_text(&g), || json!(g))
            }
            GuardianCmd::Import {
                name,
                metadata,
                url,
                ca,
                private,
                ..
            } => {
                let xml = match (metadata, url) {
                    (Some(file), _) => read_input(&file)?,
                    (None, Some(url)) => fetch_metadata(&url, ca.as_deref())?,
                    (None, None) => unreachable!("clap requires --metadata or --url"),
                };
                let keys = private.as_deref().map(read_private_keys).transpose()?;
                let g = self.service.import_guardian(self.me, &name, &xml, keys)?;
                self.out.either(|| output::guardian_text(&g), || json!(g))
            }
            GuardianCmd::Export {
                name,
                out,
                force,
                private,
            } => {
                let (xml, keys) =
                    self.service
                        .export_guardian(self.me, &name, private.is_some())?;
                write_atomic(&out, &xml, Existing::when(force))?;
                if let (Some(dir), Some((enc, sign))) = (private.as_deref(), keys) {
                    write_private_keys(dir, &enc, &sign)?;
                }
                self.out.either(
                    || format!("wrote {}", out.display()),
                    || json!({ "ok": true, "metadata": absolute(&out), "private": private.as_deref().map(absolute) }),
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
}

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

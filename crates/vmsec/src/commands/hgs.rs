//! `vmsec hgs …`: this host's guarded-fabric client (Hyper-V's `*-HgsClientConfiguration`).

use serde_json::json;
use vmsec_kps::host::{HostKey, Idk};
use vmsec_service::hgs::{ClientConfig, ClientStatus, Mode, TpmConfig};

use super::Ctx;
use crate::CliError;
use crate::cli::{HgsCmd, HostKeyCmd};
use crate::hgs_client::load_keys;
use crate::output;

impl Ctx<'_> {
    pub(super) fn hgs(&self, c: HgsCmd) -> Result<(), CliError> {
        let dir = self.data.hgs();
        let master = self.data.master_key();
        match c {
            HgsCmd::HostKey(HostKeyCmd::New { force }) => {
                if dir.host_key(&master)?.is_some() && !force {
                    return Err(CliError::new(
                        "this host already has a host key; `vmsec hgs host-key show` prints it, --force replaces it",
                    ));
                }
                let key = HostKey::generate().map_err(CliError::new)?;
                let idk = Idk::generate().map_err(CliError::new)?;
                dir.set_idk(idk.pkcs8(), &master)?;
                dir.set_host_key(key.pkcs8(), &master)?;
                // Only the PEM on stdout: `vmsec hgs host-key new > h1.pem` is the file to register.
                output::write_stdout(key.public_key_pem().as_bytes())
            }
            HgsCmd::HostKey(HostKeyCmd::Show) => {
                let (key, _) = load_keys(&dir, &master)?;
                output::write_stdout(key.public_key_pem().as_bytes())
            }
            HgsCmd::Set {
                attestation_url,
                key_protection_url,
                fallback_attestation_url,
                fallback_key_protection_url,
                ca,
                local,
                tpm,
                tcti,
                event_log,
            } => {
                let config = if local {
                    ClientConfig::default()
                } else {
                    for u in [
                        &attestation_url,
                        &key_protection_url,
                        &fallback_attestation_url,
                        &fallback_key_protection_url,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        crate::https_client::check_url(u).map_err(CliError::new)?;
                    }
                    let ca = ca
                        .map(|p| {
                            std::path::absolute(&p)
                                .map_err(|e| CliError::new(format!("--ca {}: {e}", p.display())))
                        })
                        .transpose()?;
                    if let Some(p) = &ca {
                        crate::https_client::HttpsClient::new(Some(p), crate::hgs_client::TIMEOUT)
                            .map_err(CliError::new)?;
                    }
                    let tpm = if tpm {
                        let event_log = std::path::absolute(&event_log).map_err(|e| {
                            CliError::new(format!("--event-log {}: {e}", event_log.display()))
                        })?;
                        let config = TpmConfig { tcti, event_log };
                        crate::hgs_tpm::TpmIdentity::provision(&dir, config.clone())?;
                        Some(config)
                    } else {
                        None
                    };
                    if tpm.is_none() && dir.host_key(&master)?.is_none() {
                        return Err(CliError::new(
                            "this host has no host key yet: make one with `vmsec hgs host-key new` and register it at the KPS (or attest with its TPM: --tpm)",
                        ));
                    }
                    ClientConfig {
                        mode: Mode::Hgs,
                        attestation_url,
                        key_protection_url,
                        fallback_attestation_url,
                        fallback_key_protection_url,
                        ca,
                        tpm,
                    }
                };
                dir.set_config(&config)?;
                self.hgs_show()
            }
            HgsCmd::Show => self.hgs_show(),
            HgsCmd::Attest => {
                let client =
                    crate::hgs_client::HgsClient::open(dir.clone(), &master)?.ok_or_else(|| {
                        CliError::new("this host is in local mode; `vmsec hgs set` first")
                    })?;
                let outcome = client.attest_now();
                let shown = self.hgs_show();
                outcome?;
                shown
            }
            HgsCmd::Ek { tcti } => {
                let (pem, _) = crate::hgs_tpm::ek_pem(&tcti)?;
                output::write_stdout(pem.as_bytes())
            }
            HgsCmd::TpmBaseline {
                out: file,
                force,
                tcti,
                event_log,
                pcrs,
            } => {
                let b = crate::hgs_tpm::baseline(&tcti, &event_log, &pcrs)?;
                super::files::write_atomic(
                    &file,
                    b.to_json().as_bytes(),
                    super::files::Existing::when(force),
                )?;
                self.out.either(
                    || format!("wrote {} (PCRs {pcrs:?})", file.display()),
                    || json!({ "ok": true, "baseline": super::files::absolute(&file) }),
                )
            }
        }
    }

    fn hgs_show(&self) -> Result<(), CliError> {
        let dir = self.data.hgs();
        let config = dir.config()?;
        let (status, expires) = dir.attestation(&config, time::OffsetDateTime::now_utc())?;
        let host_key_hash = load_keys(&dir, &self.data.master_key())
            .ok()
            .map(|(k, _)| vmsec_kps::key_hash(k.public_key()));
        let last_failure = dir.last_attestation()?.and_then(|l| {
            l.reply_type
                .map(|t| format!("{t}: {}", l.message.unwrap_or_default()))
        });
        let s = ClientStatus {
            attestation_mode: if config.tpm.is_some() {
                "TPM"
            } else {
                "HostKey"
            },
            config,
            attestation_status: status,
            health_certificate_expires: expires,
            host_key_hash,
            last_failure,
        };
        let opt = |o: &Option<String>| {
            o.as_deref()
                .map(output::text)
                .unwrap_or_default()
                .into_owned()
        };
        self.out.either(
            || {
                format!(
                    "Mode                           : {}\nAttestationServerUrl           : {}\nKeyProtectionServerUrl         : {}\nFallbackAttestationServerUrl   : {}\nFallbackKeyProtectionServerUrl : {}\nAttestationStatus              : {}\nAttestationMode                : {}\nLastAttestationFailure         : {}\nHealthCertificateExpires       : {}\nHostKeyHash                    : {}",
                    match s.config.mode {
                        Mode::Local => "Local",
                        Mode::Hgs => "HostGuardianService",
                    },
                    opt(&s.config.attestation_url),
                    opt(&s.config.key_protection_url),
                    opt(&s.config.fallback_attestation_url),
                    opt(&s.config.fallback_key_protection_url),
                    s.attestation_status.as_str(),
                    s.attestation_mode,
                    output::text(s.last_failure.as_deref().unwrap_or_default()),
                    s.health_certificate_expires.map(vmsec_store::rfc3339::format).unwrap_or_default(),
                    s.host_key_hash.clone().unwrap_or_default(),
                )
            },
            || json!(s),
        )
    }
}

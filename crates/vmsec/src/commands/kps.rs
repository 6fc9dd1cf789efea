//! `vmsec kps …`: the fabric's Key Protection Service and Attestation Service, in their own
//! data directory. Administration goes through `vmsec_service::fabric::Kps`; `serve` through
//! `crate::kps`.

use serde_json::json;
use vmsec_service::fabric::Kps;
use vmsec_service::{Caller, KeySize};

use super::Ctx;
use super::files::{Existing, absolute, read_input, write_atomic};
use crate::CliError;
use crate::cli::{KeySizeArg, KpsBaselineCmd, KpsCmd, KpsGuardianCmd, KpsHostCmd};
use crate::data_dir::DataDir;
use crate::output::{self, Out};

fn size(k: KeySizeArg) -> KeySize {
    match k {
        KeySizeArg::Rsa2048 => KeySize::Rsa2048,
        KeySizeArg::Rsa3072 => KeySize::Rsa3072,
        KeySizeArg::Rsa4096 => KeySize::Rsa4096,
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    vmsec_store::rfc3339::format(t)
}

/// Opens the KPS of `data` and runs `c`.
pub fn run(data: &DataDir, c: KpsCmd, out: &Out) -> Result<(), CliError> {
    let store = data.open_store()?;
    let service = data.open_service_on(store.clone())?;
    let kps = Kps::new(service, store, &data.path);
    let me = Caller::local_admin();
    let result = match c {
        KpsCmd::Serve {
            listen,
            http_listen,
            config,
        } => {
            let settings = crate::kps::settings(data, listen, http_listen, config.as_deref())?;
            return crate::kps::server::run(kps, settings);
        }
        KpsCmd::Init { key_size } => {
            let status = kps.init(&me, size(key_size))?;
            let tls = crate::serve::ensure_self_signed(&data.path)?;
            if let Some(password) = kps.service().bootstrap_admin()? {
                let p = data.write_secret_new(
                    "initial-admin-password",
                    format!("{password}\n").as_bytes(),
                )?;
                tracing::warn!(
                    "created user \"admin\" (for /metrics); its password is in {} (mode 0600)",
                    p.display()
                );
            }
            let cert = match tls {
                vmsec_wsman::server::TlsSource::PemFiles { cert, .. } => cert,
                vmsec_wsman::server::TlsSource::Pem { .. } => data.path.join("tls/cert.pem"),
            };
            out.either(
                || {
                    format!(
                        "initialized the Key Protection Service in {}\n  fabric guardian: {}\n  TLS certificate for hosts' --ca: {}\n  next: `vmsec kps guardian export --out metadata.xml`, `vmsec kps host add NAME --host-key FILE`, `vmsec kps serve`",
                        data.path.display(),
                        status.primary_guardian.as_deref().unwrap_or("-"),
                        cert.display()
                    )
                },
                || json!({ "status": status, "tls_certificate": cert }),
            )
        }
        KpsCmd::Status => {
            let s = kps.status(&me)?;
            out.either(
                || {
                    format!(
                        "initialized:      {}\nmode:             {}\nprimary guardian: {}\nguardians:        {}\nhosts:            {}\ndeny before:      {}\nattestation signer (SHA-256 of its certificate): {}",
                        s.initialized,
                        s.operation_mode,
                        s.primary_guardian.as_deref().unwrap_or("-"),
                        s.guardians.join(", "),
                        s.hosts,
                        s.deny_before.map_or("-".into(), rfc3339),
                        s.attestation_signer_sha256.as_deref().unwrap_or("-"),
                    )
                },
                || json!(s),
            )
        }
        KpsCmd::Host(KpsHostCmd::Add {
            name,
            host_key: None,
            ek_cert,
            ek_pub,
        }) => {
            let (file, is_cert) = match (ek_cert, ek_pub) {
                (Some(f), _) => (f, true),
                (None, Some(f)) => (f, false),
                (None, None) => return Err(CliError::new("--host-key, --ek-cert or --ek-pub")),
            };
            let bytes = read_input(&file)?;
            let h = kps.add_tpm_host(&me, &name, &bytes, is_cert)?;
            out.either(
                || {
                    format!(
                        "registered TPM host {} (EK {})",
                        output::text(&h.name),
                        h.ek_hash
                    )
                },
                || json!(h),
            )
        }
        KpsCmd::Baseline(KpsBaselineCmd::Add { name, from }) => {
            let bytes = read_input(&from)?;
            let b = kps.add_baseline(&me, &name, &bytes)?;
            out.either(
                || format!("registered TPM baseline {}", output::text(&b.name)),
                || json!(b),
            )
        }
        KpsCmd::Baseline(KpsBaselineCmd::List) => {
            let list = kps.baselines(&me)?;
            out.either(
                || {
                    list.iter()
                        .map(|b| format!("{}  added {}", output::text(&b.name), rfc3339(b.added)))
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                || json!(list),
            )
        }
        KpsCmd::Baseline(KpsBaselineCmd::Remove { name }) => {
            kps.remove_baseline(&me, &name)?;
            out.either(
                || format!("removed TPM baseline {}", output::text(&name)),
                || json!({ "ok": true }),
            )
        }
        KpsCmd::Host(KpsHostCmd::Add {
            name,
            host_key: Some(host_key),
            ..
        }) => {
            let bytes = read_input(&host_key)?;
            let h = kps.add_host(&me, &name, &bytes)?;
            out.either(
                || {
                    format!(
                        "registered host {} (host key {})",
                        output::text(&h.name),
                        h.key_hash
                    )
                },
                || json!(h),
            )
        }
        KpsCmd::Host(KpsHostCmd::List) => {
            let hosts = kps.hosts(&me)?;
            let tpm: std::collections::BTreeSet<String> =
                kps.tpm_hosts(&me)?.into_iter().map(|h| h.name).collect();
            out.either(
                || {
                    hosts
                        .iter()
                        .map(|h| {
                            format!(
                                "{}  {}  {}  added {}",
                                output::text(&h.name),
                                if tpm.contains(&h.name) {
                                    "tpm"
                                } else {
                                    "host-key"
                                },
                                h.key_hash,
                                rfc3339(h.added)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                || json!(hosts),
            )
        }
        KpsCmd::Host(KpsHostCmd::Remove { name }) => {
            kps.remove_host(&me, &name)?;
            out.either(
                || format!("removed host {}", output::text(&name)),
                || json!({ "ok": true }),
            )
        }
        KpsCmd::DenyBefore { time } => {
            kps.deny_before(&me, time)?;
            out.either(
                || {
                    format!(
                        "health certificates issued before {} are refused",
                        rfc3339(time)
                    )
                },
                || json!({ "ok": true, "deny_before": rfc3339(time) }),
            )
        }
        KpsCmd::Guardian(KpsGuardianCmd::Export { out: file, force }) => {
            let xml = kps.metadata()?;
            write_atomic(&file, &xml, Existing::when(force))?;
            out.either(
                || format!("wrote {}", file.display()),
                || json!({ "ok": true, "metadata": absolute(&file) }),
            )
        }
        KpsCmd::Guardian(KpsGuardianCmd::Rotate { key_size }) => {
            let s = kps.rotate(&me, size(key_size))?;
            out.either(
                || {
                    format!(
                        "primary fabric guardian: {}",
                        s.primary_guardian.as_deref().unwrap_or("-")
                    )
                },
                || json!(s),
            )
        }
        KpsCmd::Guardian(KpsGuardianCmd::List) => {
            let s = kps.status(&me)?;
            out.either(
                || {
                    s.guardians
                        .iter()
                        .map(|g| {
                            if Some(g) == s.primary_guardian.as_ref() {
                                format!("{g} (primary)")
                            } else {
                                g.clone()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                || json!({ "guardians": s.guardians, "primary": s.primary_guardian }),
            )
        }
        KpsCmd::Guardian(KpsGuardianCmd::Remove { name }) => {
            kps.remove_guardian(&me, &name)?;
            out.either(
                || format!("removed fabric guardian {name}"),
                || json!({ "ok": true }),
            )
        }
        KpsCmd::Audit { after, limit } => {
            let ctx = Ctx {
                service: kps.service(),
                me: &me,
                out,
                data,
            };
            ctx.audit(super::audit::Filter {
                after,
                limit,
                since: None,
                vm: None,
                user: None,
                follow: false,
            })
        }
    };
    kps.service().shutdown();
    result
}

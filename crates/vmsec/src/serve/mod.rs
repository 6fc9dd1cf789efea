//! `vmsec serve`: the WS-Management endpoint over the service.

mod config;
mod provider;
mod setting_data;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vmsec_wsman::server::{Server, ServerConfig, TlsSource};

use crate::CliError;
use crate::data_dir::DataDir;
pub use config::FileConfig;

pub struct ServeArgs {
    pub listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub config: Option<PathBuf>,
}

/// The log filter `serve` installs: the config's `log_level`, overridden by `VMSEC_LOG`.
pub fn log_filter(args: &ServeArgs) -> Result<String, CliError> {
    if let Ok(f) = std::env::var("VMSEC_LOG") {
        return Ok(f);
    }
    Ok(match &args.config {
        Some(p) => FileConfig::load(p)?
            .log_level
            .unwrap_or_else(|| "info".into()),
        None => "info".into(),
    })
}

/// The server's settings: the defaults, then the file's, then the command line's.
fn server_config(
    data: &DataDir,
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<ServerConfig, CliError> {
    let https_listen = match (args.listen, &file.listen) {
        (Some(a), _) => vec![a],
        (None, Some(l)) => l.clone(),
        (None, None) => vec![SocketAddr::from(([127, 0, 0, 1], 5986))],
    };
    let http_listen = match (args.http_listen, &file.http_listen) {
        (Some(a), _) => vec![a],
        (None, Some(l)) => l.clone(),
        (None, None) => Vec::new(),
    };
    for a in &http_listen {
        if !a.ip().is_loopback() {
            tracing::warn!(
                "plain HTTP on {a}, which is not loopback: passwords and key protectors cross the network unencrypted"
            );
        }
    }
    let tls = match (&file.tls_cert, &file.tls_key) {
        (Some(cert), Some(key)) => TlsSource::PemFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => ensure_self_signed(&data.path)?,
    };

    let mut cfg = ServerConfig {
        https_listen,
        http_listen,
        tls: Some(tls),
        ..ServerConfig::default()
    };
    if let Some(n) = file.max_envelope_size {
        cfg.max_request_bytes = n;
    }
    if let Some(n) = file.max_reply_size {
        cfg.engine.max_reply_size = n;
    }
    if let Some(s) = file.enumeration_expiry_secs {
        cfg.engine.enumeration_expiry = Duration::from_secs(s);
    }
    if let Some(mib) = file.max_enumeration_mib {
        cfg.engine.max_enumeration_bytes = mib.saturating_mul(1024 * 1024);
        // One user may hold a quarter of it, as of the default.
        cfg.engine.max_enumeration_bytes_per_user = cfg.engine.max_enumeration_bytes / 4;
    }
    if let Some(n) = file.max_enumerations_per_user {
        cfg.engine.max_enumerations_per_user = n;
    }
    if let Some(n) = file.max_connections {
        cfg.max_connections = n;
    }
    if let Some(n) = file.max_connections_per_source {
        cfg.max_connections_per_source = n;
    }
    if let Some(mib) = file.max_body_memory_mib {
        cfg.max_body_memory = mib.saturating_mul(1024 * 1024);
        // One user may hold a quarter of it, as of the default.
        cfg.max_body_memory_per_user = cfg.max_body_memory / 4;
    }
    if let Some(s) = file.header_timeout_secs {
        cfg.header_read_timeout = Duration::from_secs(s);
    }
    if let Some(s) = file.body_timeout_secs {
        cfg.body_read_timeout = Duration::from_secs(s);
    }
    if let Some(s) = file.idle_timeout_secs {
        cfg.idle_timeout = Duration::from_secs(s);
    }
    Ok(cfg)
}

/// The `store` of serve's default config file, for the commands beside it.
pub fn configured_store() -> Option<String> {
    let path = crate::cli::default_serve_config()?;
    FileConfig::load(&path).ok()?.store.map(|u| u.0)
}

pub fn run(data: &DataDir, args: ServeArgs) -> Result<(), CliError> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    config::check(&file)?;
    let mut data = DataDir {
        path: data.path.clone(),
        store: data
            .store
            .clone()
            .or_else(|| file.store.as_ref().map(|u| u.0.clone())),
    };
    let data = &mut data;

    let service = Arc::new(data.open_service()?);
    if let Some(password) = service.bootstrap_admin()? {
        let p =
            data.write_secret_new("initial-admin-password", format!("{password}\n").as_bytes())?;
        tracing::warn!(
            "created user \"admin\"; its password is in {} (mode 0600): read it, then delete the file",
            p.display()
        );
    }
    let pruner = AuditPruner::start(service.clone(), config::audit_retention(&file))?;
    start_heartbeat(service.clone())?;
    let control = start_control(service.clone(), data)?;

    let mut cfg = server_config(data, &args, &file)?;
    cfg.engine.machine = service.host().name.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let provider = Arc::new(provider::ServiceProvider {
        service: service.clone(),
        hgs: vmsec_service::hgs::HgsDir::under(&data.path),
    });
    runtime.block_on(async move {
        let server = Server::bind(cfg, provider)
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        let (https, http) = server.local_addrs();
        for a in &https {
            tracing::info!("listening on https://{a}/wsman");
        }
        for a in &http {
            tracing::info!("listening on http://{a}/wsman");
        }
        // One machine-readable line on stdout, for scripts that start the server on port 0.
        // Serving goes on if nobody reads it.
        let _ = crate::output::write_stdout(
            format!(
                "{}\n",
                serde_json::json!({
                    "https": https.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "http": http.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                })
            )
            .as_bytes(),
        );
        server.run(vmsec_wsman::server::shutdown_signal()).await;
        Ok::<(), CliError>(())
    })?;
    // In-flight requests are done; let queued jobs finish so none is left running.
    if let Some(c) = control {
        c.stop();
    }
    pruner.stop();
    service.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Listens on the control socket ([`crate::control`]) for the CLI's `tpm start`. The random
/// generator is seeded here, once, so that the first start is as quick as the next.
fn start_control(
    service: Arc<vmsec_service::Service>,
    data: &DataDir,
) -> Result<Option<crate::control::Listener>, CliError> {
    let mut seed = [0u8; 1];
    aws_lc_rs::rand::fill(&mut seed)
        .map_err(|_| CliError::new("the random generator failed to start"))?;
    let served = data.clone();
    let identity =
        crate::control::store_identity(data.store.as_deref(), &crate::data_dir::host_name());
    crate::control::Listener::start(
        &data.path,
        Arc::new(move |request: &crate::control::TpmStartRequest| {
            crate::commands::start_for_a_client(&service, &served, &identity, request)
        }),
    )
}

/// On a shared store, starts the thread that tells the store this host is alive and
/// recovers the jobs of hosts that are not ([`vmsec_service::Service::heartbeat`]). It ends
/// with the process.
fn start_heartbeat(service: Arc<vmsec_service::Service>) -> Result<(), CliError> {
    if !service.store_is_shared() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("vmsec-heartbeat".into())
        .spawn(move || {
            loop {
                std::thread::sleep(vmsec_service::HEARTBEAT_EVERY);
                if let Err(e) = service.heartbeat() {
                    tracing::warn!("cannot tell the store this host is alive: {e}");
                }
            }
        })
        .map(drop)
        .map_err(|e| CliError::new(format!("cannot start the heartbeat: {e}")))
}

/// How often `serve` prunes the audit log (and once at start).
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The thread that applies the audit retention now and then. Pruning holds the store's
/// writer one batch at a time (`Service::prune_audit`), so requests go on meanwhile.
struct AuditPruner {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl AuditPruner {
    fn start(
        service: Arc<vmsec_service::Service>,
        retention: vmsec_store::AuditRetention,
    ) -> Result<AuditPruner, CliError> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vmsec-audit-prune".into())
            .spawn(move || {
                loop {
                    if let Err(e) = service.prune_audit(&retention) {
                        tracing::error!("cannot prune the audit log: {e}");
                    }
                    match stopped.recv_timeout(AUDIT_PRUNE_EVERY) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .map_err(|e| CliError::new(format!("cannot start the audit pruner: {e}")))?;
        Ok(AuditPruner { stop, thread })
    }

    /// Ends the thread, after the prune under way (if any) has run all its batches.
    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// A self-signed TLS certificate for `names`. Its subject is unique (host name and a random
/// suffix): a client that trusts several vmsec services (hosts, KPS nodes) with one bundle
/// finds each issuer by its subject, so two certificates must never share one.
fn self_signed_tls(
    names: Vec<String>,
) -> Result<rcgen::CertifiedKey<rcgen::KeyPair>, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names)?;
    let mut suffix = [0u8; 6];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| rcgen::Error::RingUnspecified)?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("vmsec {} {suffix}", crate::data_dir::host_name()),
    );
    let signing_key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&signing_key)?;
    Ok(rcgen::CertifiedKey { cert, signing_key })
}

/// The TLS certificate of `DATA/tls/`, created self-signed on first start.
pub(crate) fn ensure_self_signed(data: &Path) -> Result<TlsSource, CliError> {
    let dir = data.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if key.exists() {
        crate::data_dir::make_private(&key, "the TLS private key")?;
    }
    if !cert.exists() || !key.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
        let host = crate::data_dir::host_name();
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".into(),
            "::1".into(),
            host,
        ];
        let ck = self_signed_tls(names)
            .map_err(|e| CliError::new(format!("cannot create a TLS certificate: {e}")))?;
        let key_pem = zeroize::Zeroizing::new(ck.signing_key.serialize_pem());
        crate::data_dir::write_private(&key, key_pem.as_bytes())?;
        std::fs::write(&cert, ck.cert.pem())
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", cert.display())))?;
        tracing::warn!(
            "created a self-signed TLS certificate {}; SHA-256 fingerprint {} (`vmsec tls show` prints it again)",
            cert.display(),
            crate::commands::tls::fingerprint(ck.cert.der())
        );
    }
    Ok(TlsSource::PemFiles { cert, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// contrib/vmsec.toml with every `# key = value` line taken in.
    fn example_config() -> String {
        let text = include_str!("../../../../contrib/vmsec.toml");
        text.lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_example_config_names_every_key_and_each_shows_its_default() {
        let text = example_config();
        let keys = toml::from_str::<toml::Table>(&text).unwrap();
        // Unknown keys are refused by FileConfig, so each is real; and none is missing.
        assert_eq!(keys.len(), 19, "{:?}", keys.keys().collect::<Vec<_>>());
        let file: FileConfig = toml::from_str(&text).unwrap();
        config::check(&file).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open_or_create(&dir.path().join("data")).unwrap();
        let args = ServeArgs {
            listen: None,
            http_listen: None,
            config: None,
        };
        let defaults = server_config(&data, &args, &FileConfig::default()).unwrap();
        // tls_cert/tls_key name other files than the generated ones: compare without them.
        let example = FileConfig {
            tls_cert: None,
            tls_key: None,
            ..file
        };
        let from_example = server_config(&data, &args, &example).unwrap();
        assert_eq!(format!("{defaults:?}"), format!("{from_example:?}"));
        assert_eq!(
            config::audit_retention(&example),
            config::audit_retention(&FileConfig::default())
        );
    }
}

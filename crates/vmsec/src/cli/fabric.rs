//! The guarded fabric's commands: `vmsec kps …` (the KPS) and `vmsec hgs …` (a host's client).

use std::path::PathBuf;

use clap::Subcommand;

use super::{KeySizeArg, parse_rfc3339};

#[derive(Subcommand, Debug)]
pub enum KpsCmd {
    /// Create the fabric guardian, the attestation signer, the communications key that signs
    /// metadata.xml, and the TLS certificate (DATA/tls/cert.pem, for hosts' `--ca`).
    ///
    /// Example: `vmsec kps init --key-size 3072`.
    Init {
        /// RSA key size of the new keys.
        #[arg(long, value_enum, default_value_t = KeySizeArg::Rsa3072)]
        key_size: KeySizeArg,
    },
    /// Serve the Attestation Service and the Key Protection Service over HTTPS.
    ///
    /// Example: `vmsec kps serve --listen 0.0.0.0:8443`.
    Serve {
        /// HTTPS listen address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also listen with plain HTTP here (loopback only, unless you accept the risk).
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
        /// TOML configuration file (contrib/vmsec-kps.toml lists every key).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The hosts the Attestation Service vouches for.
    #[command(subcommand)]
    Host(KpsHostCmd),
    /// Refuse every health certificate issued before TIME (RFC 3339): hosts must attest anew.
    ///
    /// Example: `vmsec kps deny-before 2026-12-01T12:00:00Z`.
    DenyBefore {
        /// An RFC 3339 time, e.g. 2026-12-01T12:00:00Z.
        #[arg(value_parser = parse_rfc3339)]
        time: time::OffsetDateTime,
    },
    /// The fabric guardian.
    #[command(subcommand)]
    Guardian(KpsGuardianCmd),
    /// TPM mode's baselines: the PCRs of a known-good boot.
    #[command(subcommand)]
    Baseline(KpsBaselineCmd),
    /// Print the KPS's audit log, newest first.
    ///
    /// Example: `vmsec kps audit --limit 20`.
    Audit {
        /// Only records after this sequence number, oldest first.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Whether the KPS is initialized, its guardians, hosts and deny-before time.
    ///
    /// Example: `vmsec kps status --json`.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum KpsHostCmd {
    /// Register a host by its host key, or for TPM mode by its TPM's endorsement key.
    ///
    /// As HGS's Add-HgsAttestationHostKey and Add-HgsAttestationTpmHost.
    ///
    /// Example: `vmsec kps host add h1 --host-key h1.pem`.
    #[command(group(clap::ArgGroup::new("key").required(true).args(["host_key", "ek_cert", "ek_pub"])))]
    Add {
        /// The host's name, as registered.
        name: String,
        /// PEM public key (from `vmsec hgs host-key new`) or certificate, or DER.
        #[arg(long)]
        host_key: Option<PathBuf>,
        /// TPM mode: the EK certificate (PEM or DER; `vmsec hgs ek` prints it).
        #[arg(long)]
        ek_cert: Option<PathBuf>,
        /// TPM mode: the EK public key (PEM or DER), for a TPM without an EK certificate.
        #[arg(long)]
        ek_pub: Option<PathBuf>,
    },
    /// The registered hosts: name, host key hash, when added.
    ///
    /// Example: `vmsec kps host list --json`.
    List,
    /// Remove a host: its next RollTransportKey is refused, even with a valid health
    /// certificate.
    ///
    /// Example: `vmsec kps host remove h1`.
    Remove {
        /// The host's name, as registered.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KpsBaselineCmd {
    /// Register a baseline captured by `vmsec hgs tpm-baseline` on a reference host
    /// (Add-HgsAttestationTcgBaseline); a TPM host passes when its PCRs match one.
    ///
    /// Example: `vmsec kps baseline add golden --from golden.json`.
    Add {
        /// The baseline's name.
        name: String,
        /// The file `vmsec hgs tpm-baseline --out` wrote.
        #[arg(long)]
        from: PathBuf,
    },
    /// The registered baselines.
    ///
    /// Example: `vmsec kps baseline list`.
    List,
    /// Remove a baseline: hosts that matched only it are refused from their next attestation.
    ///
    /// Example: `vmsec kps baseline remove golden`.
    Remove {
        /// The baseline's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KpsGuardianCmd {
    /// Write the primary fabric guardian's metadata.xml, for owners to grant.
    ///
    /// Example: `vmsec kps guardian export --out metadata.xml`.
    Export {
        /// The metadata.xml to write (an existing file needs --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Make a new primary guardian; the older ones keep unwrapping until removed.
    ///
    /// Example: `vmsec kps guardian rotate`.
    Rotate {
        /// RSA key size of the new keys.
        #[arg(long, value_enum, default_value_t = KeySizeArg::Rsa3072)]
        key_size: KeySizeArg,
    },
    /// The fabric guardians this KPS holds.
    ///
    /// Example: `vmsec kps guardian list`.
    List,
    /// Stop unwrapping with an older guardian (never the primary).
    ///
    /// Example: `vmsec kps guardian remove fabric`.
    Remove {
        /// The fabric guardian's name (`kps guardian list`).
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum HgsCmd {
    /// This host's host key.
    #[command(subcommand)]
    HostKey(HostKeyCmd),
    /// Switch to HGS mode with the fabric's URLs, or back to local mode with --local.
    ///
    /// Example: `vmsec hgs set --attestation-url https://kps:8443/Attestation --key-protection-url https://kps:8443/KeyProtection --ca kps-cert.pem`.
    Set {
        /// e.g. https://kps.example:8443/Attestation
        #[arg(long, required_unless_present = "local", conflicts_with = "local")]
        attestation_url: Option<String>,
        /// e.g. https://kps.example:8443/KeyProtection
        #[arg(long, required_unless_present = "local")]
        key_protection_url: Option<String>,
        /// Tried when the attestation URL does not answer (default: the attestation URL).
        #[arg(long, requires = "attestation_url")]
        fallback_attestation_url: Option<String>,
        /// Tried when the key protection URL does not answer (default: the key protection URL).
        #[arg(long, requires = "attestation_url")]
        fallback_key_protection_url: Option<String>,
        /// PEM certificates the services' TLS certificates must chain to (else the system's).
        #[arg(long, requires = "attestation_url")]
        ca: Option<PathBuf>,
        /// Back to local mode: this host's guardians unwrap.
        #[arg(long)]
        local: bool,
        /// TPM mode: attest with this host's TPM (its AK and IDK are made in it now).
        #[arg(long, requires = "attestation_url")]
        tpm: bool,
        /// TPM mode: the TPM's TCTI.
        #[arg(long, requires = "tpm", default_value = vmsec_service::hgs::DEFAULT_TCTI)]
        tcti: String,
        /// TPM mode: the TCG event log of this boot.
        #[arg(long, requires = "tpm", default_value = vmsec_service::hgs::DEFAULT_EVENT_LOG)]
        event_log: PathBuf,
    },
    /// Attest now, whatever is cached, and report the outcome.
    ///
    /// Example: `vmsec hgs attest`.
    Attest,
    /// Print this host's TPM endorsement key (PEM), to register with `kps host add`.
    ///
    /// Its certificate when the TPM has one (`--ek-cert`), else its public key (`--ek-pub`).
    ///
    /// Example: `vmsec hgs ek > h1-ek.pem`.
    Ek {
        /// The TPM's TCTI.
        #[arg(long, default_value = vmsec_service::hgs::DEFAULT_TCTI)]
        tcti: String,
    },
    /// Capture this host's PCRs and event log digest as a TPM baseline.
    ///
    /// For `kps baseline add` (Hyper-V's Get-HgsAttestationBaselinePolicy).
    ///
    /// Example: `vmsec hgs tpm-baseline --out golden.json`.
    TpmBaseline {
        /// The baseline file to write (an existing file needs --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// The TPM's TCTI.
        #[arg(long, default_value = vmsec_service::hgs::DEFAULT_TCTI)]
        tcti: String,
        /// The TCG event log of this boot.
        #[arg(long, default_value = vmsec_service::hgs::DEFAULT_EVENT_LOG)]
        event_log: PathBuf,
        /// The PCRs of the SHA-256 bank to capture (the firmware's, by default).
        #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7")]
        pcrs: Vec<u32>,
    },
    /// Mode, URLs and attestation status (as Get-HgsClientConfiguration).
    ///
    /// Example: `vmsec hgs show`.
    Show,
}

#[derive(Subcommand, Debug)]
pub enum HostKeyCmd {
    /// Create this host's host key and print its public key (PEM) on standard output, e.g.
    /// `vmsec hgs host-key new > h1.pem`.
    ///
    /// Example: `vmsec hgs host-key new > h1.pem`.
    New {
        /// Replace an existing host key (the KPS must register the new one).
        #[arg(long)]
        force: bool,
    },
    /// Print the host key's public key (PEM).
    ///
    /// Example: `vmsec hgs host-key show`.
    Show,
}

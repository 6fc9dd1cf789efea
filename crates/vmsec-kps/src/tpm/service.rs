//! The two round trips of TPM mode, sans-IO. The first (`Begin`) checks the EK is registered
//! and answers a challenge: a nonce and a credential only the EK's TPM can activate for the
//! AK. The second (`Finish`) proves activation, checks the IDK's certification and the quote
//! over the nonce, replays the event log to the quoted PCRs and compares them with the
//! baselines; only then is the health certificate issued.
//!
//! A challenge is server state: kept in memory for [`CHALLENGE_TTL`], at most
//! [`MAX_PENDING`] in all and [`MAX_PENDING_PER_SOURCE`] per source address, and consumed by
//! its first answer, right or wrong — so a quote can never be replayed, not even within the
//! minute. (A sealed, stateless challenge would survive a restart and spread over KPS nodes,
//! but could be answered twice until it expired.) Several KPS nodes therefore need the two
//! requests of one host on the same node (sticky routing by source).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use super::credential::make_credential;
use super::eventlog::EventLog;
use super::wire::{self, Attest, Attested, RsaPublic, attr};
use crate::error::AttestError;
use crate::fabric::{Attested as Issued, RegisteredHost, Registry};
use crate::health::{self, CertifiedKey};
use crate::msgs::attestation;
use crate::msgs::tpm::{self, Begin, Challenge, Finish, TpmRequest};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::seconds(60);
/// Pending challenges in all, and per source address.
pub const MAX_PENDING: usize = 4096;
pub const MAX_PENDING_PER_SOURCE: usize = 16;
/// The PCRs asked for when no baseline is registered (the firmware's, PCRs 0 to 7).
const DEFAULT_PCRS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// A host registered by its EK (`kps host add NAME --ek-cert | --ek-pub`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmHost {
    /// The registration: its key is the EK's DER SubjectPublicKeyInfo.
    pub host: RegisteredHost,
    /// The EK certificate registered with it, if any.
    pub ek_certificate: Option<Vec<u8>>,
}

struct Pending {
    host: RegisteredHost,
    source: String,
    ak: RsaPublic,
    nonce: [u8; 32],
    secret: [u8; 32],
    pcrs: Vec<u32>,
    expires: OffsetDateTime,
}

/// The pending challenges.
#[derive(Default)]
pub struct Challenges {
    pending: HashMap<[u8; 16], Pending>,
}

impl Challenges {
    fn purge(&mut self, now: OffsetDateTime) {
        self.pending.retain(|_, p| p.expires > now);
    }

    /// How many are pending (expired ones not counted).
    pub fn len(&mut self, now: OffsetDateTime) -> usize {
        self.purge(now);
        self.pending.len()
    }

    pub fn is_empty(&mut self, now: OffsetDateTime) -> bool {
        self.len(now) == 0
    }
}

/// The Attestation Service's TPM mode.
pub struct TpmAttestation {
    /// DER certificates an EK certificate may be signed by (none: registered EKs only).
    ek_roots: Vec<Vec<u8>>,
    challenges: Mutex<Challenges>,
}

impl std::fmt::Debug for TpmAttestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmAttestation").finish_non_exhaustive()
    }
}

/// What one request of TPM mode gave.
#[derive(Debug)]
pub enum TpmOutcome {
    /// The first round trip: the `TpmReplyContinue`.
    Challenge { host: String, reply: Vec<u8> },
    /// The second: a health certificate.
    Issued(Issued),
}

type Refusal = (AttestError, Option<String>);

fn random<const N: usize>() -> Result<[u8; N], Refusal> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| (AttestError::Unavailable("no randomness".into()), None))?;
    Ok(b)
}

impl TpmAttestation {
    pub fn new(ek_roots: Vec<Vec<u8>>) -> TpmAttestation {
        TpmAttestation {
            ek_roots,
            challenges: Mutex::default(),
        }
    }

    fn challenges(&self) -> std::sync::MutexGuard<'_, Challenges> {
        self.challenges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pending challenges now.
    pub fn pending(&self, now: OffsetDateTime) -> usize {
        self.challenges().len(now)
    }

    /// `POST /Attestation/v2.0/attest`: either round trip. `source` names where the request
    /// came from (its address), for the per-source bound on pending challenges.
    pub fn attest(
        &self,
        signer: &CertifiedKey,
        validity: Duration,
        body: &[u8],
        now: OffsetDateTime,
        source: &str,
        registry: &dyn Registry,
    ) -> Result<TpmOutcome, Refusal> {
        match tpm::parse_request(body).map_err(|e| (e, None))? {
            TpmRequest::Begin(b) => self.begin(b, now, source, registry),
            TpmRequest::Finish(f) => self
                .finish(f, now, signer, validity, registry)
                .map(TpmOutcome::Issued),
        }
    }

    fn begin(
        &self,
        b: Begin,
        now: OffsetDateTime,
        source: &str,
        registry: &dyn Registry,
    ) -> Result<TpmOutcome, Refusal> {
        let payload = |m: String| (AttestError::Payload(m), None);
        let ek = RsaPublic::parse(&b.ek_public).map_err(|e| payload(format!("EK: {e}")))?;
        let ek_spki = ek.spki().map_err(|e| payload(format!("EK: {e}")))?;
        let ek_hash = health::key_hash(&ek_spki);
        if let Some(cert) = &b.ek_certificate {
            let cert_spki = health::rsa_spki_from_pem_or_der(cert)
                .map_err(|e| payload(format!("EndorsementKeyCertificate: {e}")))?;
            if cert_spki != ek_spki {
                return Err(payload(
                    "the EndorsementKeyCertificate is not the EK's".into(),
                ));
            }
        }
        let host = registry
            .tpm_host_by_ek(&ek_hash)
            .map_err(|e| (AttestError::Unavailable(e), None))?
            .ok_or_else(|| {
                (
                    AttestError::Unauthorized(format!(
                        "unknown EK: {ek_hash} is not registered with this Attestation Service (`vmsec kps host add NAME --ek-cert FILE`)"
                    )),
                    None,
                )
            })?;
        let name = Some(host.host.name.clone());
        registry.admit(&host.host).map_err(|secs| {
            (
                AttestError::RateLimited {
                    host: host.host.name.clone(),
                    retry_after_secs: secs,
                },
                name.clone(),
            )
        })?;
        if !self.ek_roots.is_empty() {
            let cert = b
                .ek_certificate
                .as_deref()
                .or(host.ek_certificate.as_deref());
            let chained =
                cert.is_some_and(|c| self.ek_roots.iter().any(|root| health::signed_by(c, root)));
            if !chained {
                return Err((
                    AttestError::Unauthorized(format!(
                        "the EK certificate of {} does not chain to a configured EK CA",
                        host.host.name
                    )),
                    name,
                ));
            }
        }
        let ak = RsaPublic::parse(&b.ak_public)
            .map_err(|e| (AttestError::Payload(format!("AK: {e}")), name.clone()))?;
        let ak_attrs = attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::RESTRICTED
            | attr::SIGN;
        if !ak.has(ak_attrs, attr::DECRYPT)
            || !matches!(ak.scheme, (wire::ALG_RSASSA, wire::ALG_SHA256))
        {
            return Err((
                AttestError::Unauthorized(
                    "the AK is not a restricted RSASSA-SHA256 signing key fixed to its TPM".into(),
                ),
                name,
            ));
        }
        let secret: [u8; 32] = random()?;
        let nonce: [u8; 32] = random()?;
        let id: [u8; 16] = random()?;
        let made = make_credential(&ek_spki, &ak.name(), &secret)
            .map_err(|e| (AttestError::Payload(format!("EK: {e}")), name.clone()))?;
        let pcrs = self
            .pcr_selection(registry)
            .map_err(|e| (e, name.clone()))?;
        {
            let mut c = self.challenges();
            c.purge(now);
            let from_source = c.pending.values().filter(|p| p.source == source).count();
            if c.pending.len() >= MAX_PENDING || from_source >= MAX_PENDING_PER_SOURCE {
                return Err((
                    AttestError::RateLimited {
                        host: host.host.name.clone(),
                        retry_after_secs: CHALLENGE_TTL.whole_seconds() as u64,
                    },
                    name,
                ));
            }
            c.pending.insert(
                id,
                Pending {
                    host: host.host.clone(),
                    source: source.to_owned(),
                    ak,
                    nonce,
                    secret,
                    pcrs: pcrs.clone(),
                    expires: now + CHALLENGE_TTL,
                },
            );
        }
        Ok(TpmOutcome::Challenge {
            host: host.host.name,
            reply: tpm::challenge_reply(&Challenge {
                id: id.to_vec(),
                nonce: nonce.to_vec(),
                credential_blob: made.credential_blob,
                encrypted_secret: made.secret,
                pcrs,
            }),
        })
    }

    /// The union of the baselines' PCRs (PCRs 0 to 7 when there is none).
    fn pcr_selection(&self, registry: &dyn Registry) -> Result<Vec<u32>, AttestError> {
        let baselines = registry.tpm_baselines().map_err(AttestError::Unavailable)?;
        let mut pcrs: Vec<u32> = baselines
            .iter()
            .flat_map(|(_, b)| b.pcrs.keys().copied())
            .collect();
        if pcrs.is_empty() {
            pcrs = DEFAULT_PCRS.to_vec();
        }
        pcrs.sort_unstable();
        pcrs.dedup();
        Ok(pcrs)
    }

    fn finish(
        &self,
        f: Finish,
        now: OffsetDateTime,
        signer: &CertifiedKey,
        validity: Duration,
        registry: &dyn Registry,
    ) -> Result<Issued, Refusal> {
        let id: [u8; 16] = f.challenge_id.as_slice().try_into().map_err(|_| {
            (
                AttestError::Payload("RtpmContext is not a 16-byte challenge id".into()),
                None,
            )
        })?;
        let pending = {
            let mut c = self.challenges();
            c.purge(now);
            c.pending.remove(&id)
        }
        .ok_or_else(|| {
            (
                AttestError::Unauthorized(
                    "stale nonce: no pending challenge has this id (unknown, already answered, or older than 60 s); attest again".into(),
                ),
                None,
            )
        })?;
        let name = Some(pending.host.name.clone());
        let refuse = |e: AttestError| (e, name.clone());
        let unauthorized = |m: String| refuse(AttestError::Unauthorized(m));

        if aws_lc_rs::constant_time::verify_slices_are_equal(
            &f.activated_credential,
            &pending.secret,
        )
        .is_err()
        {
            return Err(unauthorized(
                "credential not activated: the AK is not in the TPM of the registered EK".into(),
            ));
        }

        // The quote: signed by the AK, over this challenge's nonce, of the PCRs asked for.
        let quote = Attest::parse(&f.quote)
            .map_err(|e| refuse(AttestError::Payload(format!("Quote: {e}"))))?;
        let quote_sig = wire::rsassa_signature(&f.quote_signature)
            .map_err(|e| refuse(AttestError::Payload(format!("QuoteSignature: {e}"))))?;
        if !pending.ak.verify(&quote.bytes, &quote_sig) {
            return Err(unauthorized(
                "bad quote signature: the quote is not signed by the activated AK".into(),
            ));
        }
        if quote.extra_data != pending.nonce {
            return Err(unauthorized(
                "stale nonce: the quote is not over this challenge's nonce (replayed)".into(),
            ));
        }
        let Attested::Quote {
            selection,
            pcr_digest,
        } = &quote.attested
        else {
            return Err(refuse(AttestError::Payload(
                "Quote: not a TPM2_Quote".into(),
            )));
        };
        let quoted: Vec<u32> = match selection.as_slice() {
            [(wire::ALG_SHA256, bitmap)] => wire::selected_pcrs(bitmap),
            _ => {
                return Err(refuse(AttestError::Payload(
                    "Quote: not of the SHA-256 bank alone".into(),
                )));
            }
        };
        if quoted != pending.pcrs {
            return Err(refuse(AttestError::Payload(format!(
                "Quote: of PCRs {quoted:?}, not of {:?} as asked",
                pending.pcrs
            ))));
        }

        // The IDK: certified by the same AK over the same nonce, a decryption key fixed to
        // that TPM.
        let idk = RsaPublic::parse(&f.idk_public).map_err(|e| {
            refuse(AttestError::Payload(format!(
                "VirtualSecureModeIdentityKey: {e}"
            )))
        })?;
        let certify = Attest::parse(&f.certify_info)
            .map_err(|e| refuse(AttestError::Payload(format!("IdkCertifyInfo: {e}"))))?;
        let certify_sig = wire::rsassa_signature(&f.certify_signature)
            .map_err(|e| refuse(AttestError::Payload(format!("IdkCertifySignature: {e}"))))?;
        if !pending.ak.verify(&certify.bytes, &certify_sig) {
            return Err(unauthorized(
                "bad certification signature: the IDK's certification is not signed by the activated AK".into(),
            ));
        }
        if certify.extra_data != pending.nonce {
            return Err(unauthorized(
                "stale nonce: the IDK's certification is not over this challenge's nonce".into(),
            ));
        }
        if certify.attested != (Attested::Certify { name: idk.name() }) {
            return Err(unauthorized(
                "the certification is not of the IDK sent".into(),
            ));
        }
        let idk_attrs =
            attr::FIXED_TPM | attr::FIXED_PARENT | attr::SENSITIVE_DATA_ORIGIN | attr::DECRYPT;
        if !idk.has(idk_attrs, attr::SIGN | attr::RESTRICTED) {
            return Err(unauthorized(
                "the IDK is not an unrestricted decryption key generated in and fixed to its TPM"
                    .into(),
            ));
        }

        // The event log replays to the quoted PCRs.
        let log = EventLog::parse(&f.event_log).map_err(|e| {
            refuse(AttestError::TcgLog(format!(
                "the event log does not parse: {e}"
            )))
        })?;
        let replayed = log.replay();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for i in &quoted {
            ctx.update(&replayed[i]);
        }
        if ctx.finish().as_ref() != pcr_digest.as_slice() {
            return Err(refuse(AttestError::TcgLog(format!(
                "the event log does not replay: its PCRs {quoted:?} are not the ones the TPM quoted"
            ))));
        }

        // The replayed PCRs match a baseline.
        let baselines = registry
            .tpm_baselines()
            .map_err(|e| refuse(AttestError::Unavailable(e)))?;
        if baselines.is_empty() {
            return Err(refuse(AttestError::Policy(
                "no TPM baseline is registered (`vmsec kps baseline add NAME --from FILE`)".into(),
            )));
        }
        let mut nearest: Option<(&str, Vec<u32>)> = None;
        for (bname, b) in &baselines {
            let miss = b.mismatches(&replayed);
            if miss.is_empty() {
                nearest = None;
                break;
            }
            if nearest.as_ref().is_none_or(|(_, m)| miss.len() < m.len()) {
                nearest = Some((bname, miss));
            }
        }
        if let Some((bname, miss)) = nearest {
            let list: Vec<String> = miss.iter().map(u32::to_string).collect();
            return Err(refuse(AttestError::Policy(format!(
                "PCR mismatch: PCR {} differ from baseline {bname} (and no baseline matches)",
                list.join(", ")
            ))));
        }

        let host = pending.host;
        let idk_spki = idk.spki().map_err(|e| {
            refuse(AttestError::Payload(format!(
                "VirtualSecureModeIdentityKey: {e}"
            )))
        })?;
        let certificate = signer
            .issue(&host.name, &host.key_hash, &idk_spki, now, validity)
            .map_err(|e| refuse(AttestError::Unavailable(e)))?;
        let reply = attestation::health_certificate_reply(&certificate.der);
        Ok(Issued {
            host,
            certificate,
            reply,
        })
    }
}

/// PCR values as a map (what [`super::Baseline::mismatches`] compares with).
pub fn pcr_map(values: &[(u32, [u8; 32])]) -> BTreeMap<u32, [u8; 32]> {
    values.iter().copied().collect()
}

//! A host's own TPM in the guarded fabric's TPM mode (docs/specs/kps.md, "TPM mode"), through
//! the TPM2 Software Stack (`tss-esapi` over libtss2): the endorsement key and its
//! certificate, an attestation key (AK) and the host identity key (IDK) made under the EK,
//! credential activation, TPM2_Certify of the IDK by the AK, TPM2_Quote, PCR reads and
//! TPM2_RSA_Decrypt with the IDK.
//!
//! Every structure leaves as the TPM marshals it (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE);
//! the verifier parses them. Keys made here are kept by the caller only as the TPM wraps them
//! (TPM2B_PRIVATE, readable by this TPM alone) with their public areas.

use std::str::FromStr;

use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, ak, ek};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
/// A key loaded in the TPM.
pub use tss_esapi::handles::KeyHandle;
use tss_esapi::handles::{AuthHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, PublicAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, EncryptedSecret, HashScheme, IdObject, PcrSelectionListBuilder, PcrSlot, Private,
    Public, PublicBuilder, PublicKeyRsa, PublicRsaParametersBuilder, RsaDecryptionScheme,
    RsaExponent, RsaScheme, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

/// Why a TPM operation failed: the operation and the TSS's own message.
#[derive(Debug, thiserror::Error)]
#[error("TPM: {what}: {message}")]
pub struct HostTpmError {
    /// The operation.
    pub what: &'static str,
    /// The TSS's message (a TPM response code where the TPM refused).
    pub message: String,
}

fn fail(what: &'static str) -> impl FnOnce(tss_esapi::Error) -> HostTpmError {
    move |e| HostTpmError {
        what,
        message: e.to_string(),
    }
}

/// A key made under the EK, as the TPM wrapped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBlob {
    /// TPM2B_PRIVATE's contents: only this TPM unwraps it.
    pub private: Vec<u8>,
    /// TPMT_PUBLIC.
    pub public: Vec<u8>,
}

/// A TPMS_ATTEST and its TPMT_SIGNATURE, as the TPM made them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
}

/// An open TPM with its endorsement key loaded.
pub struct HostTpm {
    ctx: Context,
    ek: KeyHandle,
}

impl std::fmt::Debug for HostTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostTpm { .. }")
    }
}

const EK_ALG: AsymmetricAlgorithmSelection = AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048);

impl HostTpm {
    /// Opens the TPM at `tcti` (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, …) and
    /// makes its RSA 2048 EK from the TCG default template.
    pub fn open(tcti: &str) -> Result<HostTpm, HostTpmError> {
        let conf = TctiNameConf::from_str(tcti).map_err(fail("the TCTI"))?;
        let mut ctx = Context::new(conf).map_err(fail("opening the TPM"))?;
        let ek = ek::create_ek_object(&mut ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(fail("creating the EK"))?;
        Ok(HostTpm { ctx, ek })
    }

    /// The EK's TPMT_PUBLIC.
    pub fn ek_public(&mut self) -> Result<Vec<u8>, HostTpmError> {
        let (public, _, _) = self
            .ctx
            .read_public(self.ek)
            .map_err(fail("reading the EK"))?;
        public.marshall().map_err(fail("marshalling the EK"))
    }

    /// The EK certificate (DER) from its NV index, when the TPM has one.
    pub fn ek_certificate(&mut self) -> Option<Vec<u8>> {
        ek::retrieve_ek_pubcert(&mut self.ctx, EK_ALG).ok()
    }

    /// A new attestation key under the EK: RSA 2048, restricted signing, RSASSA SHA-256.
    pub fn create_ak(&mut self) -> Result<KeyBlob, HostTpmError> {
        let made = ak::create_ak(
            &mut self.ctx,
            self.ek,
            HashingAlgorithm::Sha256,
            SignatureSchemeAlgorithm::RsaSsa,
            None,
            None,
        )
        .map_err(fail("creating the AK"))?;
        Ok(KeyBlob {
            private: made.out_private.value().to_vec(),
            public: made
                .out_public
                .marshall()
                .map_err(fail("marshalling the AK"))?,
        })
    }

    /// A new IDK under the EK: RSA 2048, decryption only, not restricted (TPM2_RSA_Decrypt),
    /// fixed to this TPM, its private part generated inside it.
    pub fn create_idk(&mut self) -> Result<KeyBlob, HostTpmError> {
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_decrypt(true)
            .with_sign_encrypt(false)
            .with_restricted(false)
            .build()
            .map_err(fail("the IDK's attributes"))?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new()
                    .with_scheme(RsaScheme::Null)
                    .with_key_bits(RsaKeyBits::Rsa2048)
                    .with_exponent(RsaExponent::default())
                    .with_is_decryption_key(true)
                    .with_restricted(false)
                    .build()
                    .map_err(fail("the IDK's parameters"))?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::default())
            .build()
            .map_err(fail("the IDK's template"))?;
        let ek = self.ek;
        let made = self
            .with_ek_policy(|ctx| ctx.create(ek, public, None, None, None, None))
            .map_err(fail("creating the IDK"))?;
        Ok(KeyBlob {
            private: made.out_private.value().to_vec(),
            public: made
                .out_public
                .marshall()
                .map_err(fail("marshalling the IDK"))?,
        })
    }

    /// Runs `f` with a policy session satisfying the EK's policy (PolicySecret of the
    /// endorsement hierarchy), as every use of the EK as a parent needs.
    fn with_ek_policy<T>(
        &mut self,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> tss_esapi::Result<T> {
        let session = self.policy_session()?;
        let out = self.ctx.execute_with_session(Some(session), f);
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        out
    }

    fn policy_session(&mut self) -> tss_esapi::Result<AuthSession> {
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )?
            .ok_or(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ))?;
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .build();
        self.ctx.tr_sess_set_attributes(session, attrs, mask)?;
        self.ctx.execute_with_nullauth_session(|ctx| {
            ctx.policy_secret(
                PolicySession::try_from(session)?,
                AuthHandle::Endorsement,
                Default::default(),
                Default::default(),
                Default::default(),
                None,
            )
        })?;
        Ok(session)
    }

    /// Loads a key made under the EK.
    pub fn load(&mut self, blob: &KeyBlob) -> Result<KeyHandle, HostTpmError> {
        let private =
            Private::try_from(blob.private.clone()).map_err(fail("the key's private blob"))?;
        let public = Public::unmarshall(&blob.public).map_err(fail("the key's public area"))?;
        let ek = self.ek;
        self.with_ek_policy(|ctx| ctx.load(ek, private, public))
            .map_err(fail("loading a key under the EK"))
    }

    /// Unloads a key.
    pub fn unload(&mut self, key: KeyHandle) {
        let _ = self.ctx.flush_context(ObjectHandle::from(key));
    }

    /// TPM2_ActivateCredential: the secret a credential made for the loaded key `ak` (by its
    /// Name) and this TPM's EK carries. Fails unless both are in this TPM.
    pub fn activate_credential(
        &mut self,
        ak: KeyHandle,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HostTpmError> {
        let blob = IdObject::try_from(credential_blob.to_vec()).map_err(fail("the credential"))?;
        let secret =
            EncryptedSecret::try_from(secret.to_vec()).map_err(fail("the credential's secret"))?;
        let session = self
            .policy_session()
            .map_err(fail("the EK's policy session"))?;
        let ek = self.ek;
        let out = self
            .ctx
            .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                ctx.activate_credential(ak, ek, blob, secret)
            });
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        let digest: Digest = out.map_err(fail("activating the credential"))?;
        Ok(Zeroizing::new(digest.value().to_vec()))
    }

    /// TPM2_Certify of the loaded `object` by the loaded `ak`, over `nonce`.
    pub fn certify(
        &mut self,
        object: KeyHandle,
        ak: KeyHandle,
        nonce: &[u8],
    ) -> Result<Signed, HostTpmError> {
        let data = Data::try_from(nonce.to_vec()).map_err(fail("the nonce"))?;
        let (attest, sig) = self
            .ctx
            .execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |ctx| ctx.certify(object.into(), ak, data, SignatureScheme::Null),
            )
            .map_err(fail("certifying the IDK"))?;
        Ok(Signed {
            attest: attest
                .marshall()
                .map_err(fail("marshalling the certification"))?,
            signature: sig.marshall().map_err(fail("marshalling the signature"))?,
        })
    }

    /// TPM2_Quote by the loaded `ak` of the SHA-256 `pcrs`, over `nonce`.
    pub fn quote(
        &mut self,
        ak: KeyHandle,
        nonce: &[u8],
        pcrs: &[u32],
    ) -> Result<Signed, HostTpmError> {
        let data = Data::try_from(nonce.to_vec()).map_err(fail("the nonce"))?;
        let selection = selection(pcrs)?;
        let (attest, sig) = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.quote(ak, data, SignatureScheme::Null, selection)
            })
            .map_err(fail("quoting the PCRs"))?;
        Ok(Signed {
            attest: attest.marshall().map_err(fail("marshalling the quote"))?,
            signature: sig.marshall().map_err(fail("marshalling the signature"))?,
        })
    }

    /// The SHA-256 values of `pcrs`, in that order.
    pub fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<Vec<(u32, [u8; 32])>, HostTpmError> {
        let selection = selection(pcrs)?;
        let data = self
            .ctx
            .execute_without_session(|ctx| tss_esapi::abstraction::pcr::read_all(ctx, selection))
            .map_err(fail("reading the PCRs"))?;
        let bank = data
            .pcr_bank(HashingAlgorithm::Sha256)
            .ok_or_else(|| HostTpmError {
                what: "reading the PCRs",
                message: "the TPM has no SHA-256 bank".into(),
            })?;
        let mut out = Vec::new();
        for &i in pcrs {
            let digest = bank.get_digest(slot(i)?).ok_or_else(|| HostTpmError {
                what: "reading the PCRs",
                message: format!("PCR {i} was not read"),
            })?;
            let v: [u8; 32] = digest.value().try_into().map_err(|_| HostTpmError {
                what: "reading the PCRs",
                message: format!("PCR {i} is not 32 bytes"),
            })?;
            out.push((i, v));
        }
        Ok(out)
    }

    /// TPM2_PCR_Extend of the SHA-256 bank of `pcr` by `digest`, as firmware measures an
    /// event (tests and labs make a boot with it).
    pub fn extend_pcr(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), HostTpmError> {
        let handle = pcr_handle(pcr)?;
        let mut values = tss_esapi::structures::DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(fail("the digest"))?,
        );
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.pcr_extend(handle, values)
            })
            .map_err(fail("extending the PCR"))
    }

    /// TPM2_RSA_Decrypt with the loaded `key`: RSA-OAEP, SHA-256, no label.
    pub fn rsa_oaep_decrypt(
        &mut self,
        key: KeyHandle,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HostTpmError> {
        let ct = PublicKeyRsa::try_from(ciphertext.to_vec()).map_err(fail("the ciphertext"))?;
        let plain = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.rsa_decrypt(
                    key,
                    ct,
                    RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256)),
                    Data::default(),
                )
            })
            .map_err(fail("decrypting with the IDK"))?;
        Ok(Zeroizing::new(plain.value().to_vec()))
    }
}

fn pcr_handle(i: u32) -> Result<tss_esapi::handles::PcrHandle, HostTpmError> {
    use tss_esapi::handles::PcrHandle as P;
    const ALL: [P; 24] = [
        P::Pcr0,
        P::Pcr1,
        P::Pcr2,
        P::Pcr3,
        P::Pcr4,
        P::Pcr5,
        P::Pcr6,
        P::Pcr7,
        P::Pcr8,
        P::Pcr9,
        P::Pcr10,
        P::Pcr11,
        P::Pcr12,
        P::Pcr13,
        P::Pcr14,
        P::Pcr15,
        P::Pcr16,
        P::Pcr17,
        P::Pcr18,
        P::Pcr19,
        P::Pcr20,
        P::Pcr21,
        P::Pcr22,
        P::Pcr23,
    ];
    ALL.get(i as usize).copied().ok_or_else(|| HostTpmError {
        what: "the PCR",
        message: format!("no PCR {i}"),
    })
}

fn slot(i: u32) -> Result<PcrSlot, HostTpmError> {
    PcrSlot::try_from(1u32.checked_shl(i).unwrap_or(0)).map_err(|_| HostTpmError {
        what: "the PCR selection",
        message: format!("no PCR {i}"),
    })
}

fn selection(pcrs: &[u32]) -> Result<tss_esapi::structures::PcrSelectionList, HostTpmError> {
    let slots = pcrs
        .iter()
        .map(|&i| slot(i))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(fail("the PCR selection"))
}

/// A swtpm standing in for a host's own TPM (tests, benchmarks, labs): manufactured with an
/// EK certificate from the local CA in `DIR/ca`, listening on a free loopback port pair,
/// stopped when dropped.
pub struct SwtpmHost {
    paths: crate::VtpmPaths,
    endpoint: crate::Endpoint,
}

impl SwtpmHost {
    /// Manufactures and starts one in `dir` (created).
    pub fn start(dir: &std::path::Path) -> Result<SwtpmHost, crate::TpmError> {
        let paths = crate::VtpmPaths::under(dir);
        let dek = crate::StateKey::generate()
            .map_err(|e| crate::TpmError::io("a state key")(std::io::Error::other(e)))?;
        crate::manufacture(&paths, &dir.join("ca"), &dek)?;
        // Free ports are found by trying: another process may take any port between a probe
        // and swtpm's bind, so the bind itself is the test.
        let mut last = None;
        for _ in 0..20 {
            let mut b = [0u8; 2];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| {
                crate::TpmError::io("randomness")(std::io::Error::other("no randomness"))
            })?;
            let port = 20_000 + (u16::from_be_bytes(b) % 20_000) * 2;
            let endpoint = crate::Endpoint::Tcp { port };
            match crate::start(&paths, &endpoint, &dek) {
                Ok(_) => return Ok(SwtpmHost { paths, endpoint }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    /// Its TCTI.
    pub fn tcti(&self) -> String {
        self.endpoint.tcti()
    }
}

impl Drop for SwtpmHost {
    fn drop(&mut self) {
        let _ = crate::stop(&self.paths);
    }
}

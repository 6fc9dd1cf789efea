//! The host's TPM as TPM-mode attestation needs it ([`vmsec_kps::tpm::client::AttestingTpm`]):
//! its AK and IDK loaded for the length of one attestation, and unloaded after it.

use vmsec_kps::tpm::client::AttestingTpm;
use zeroize::Zeroizing;

use crate::host::{HostTpm, HostTpmError, KeyBlob, KeyHandle};

/// A host TPM with the attestation key and the identity key loaded; both are flushed when
/// it is dropped.
pub struct Attesting<'a> {
    tpm: &'a mut HostTpm,
    ak: KeyHandle,
    idk: KeyHandle,
}

impl<'a> Attesting<'a> {
    /// Loads `ak` and `idk` (the AK first; it is unloaded again if the IDK fails to load).
    pub fn load(
        tpm: &'a mut HostTpm,
        ak: &KeyBlob,
        idk: &KeyBlob,
    ) -> Result<Attesting<'a>, HostTpmError> {
        let ak = tpm.load(ak)?;
        let idk = match tpm.load(idk) {
            Ok(k) => k,
            Err(e) => {
                tpm.unload(ak);
                return Err(e);
            }
        };
        Ok(Attesting { tpm, ak, idk })
    }
}

impl Drop for Attesting<'_> {
    fn drop(&mut self) {
        self.tpm.unload(self.ak);
        self.tpm.unload(self.idk);
    }
}

impl AttestingTpm for Attesting<'_> {
    fn activate_credential(
        &mut self,
        blob: &[u8],
        secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, String> {
        self.tpm
            .activate_credential(self.ak, blob, secret)
            .map_err(|e| e.to_string())
    }

    fn certify_idk(&mut self, nonce: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let s = self
            .tpm
            .certify(self.idk, self.ak, nonce)
            .map_err(|e| e.to_string())?;
        Ok((s.attest, s.signature))
    }

    fn quote(&mut self, nonce: &[u8], pcrs: &[u32]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let s = self
            .tpm
            .quote(self.ak, nonce, pcrs)
            .map_err(|e| e.to_string())?;
        Ok((s.attest, s.signature))
    }
}

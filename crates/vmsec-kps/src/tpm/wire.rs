//! The TPM 2.0 structures the Attestation Service reads from a host (TPM 2.0 Library, Part 2):
//! `TPMT_PUBLIC` (RSA keys only), `TPMS_ATTEST` (of TPM2_Quote and TPM2_Certify) and
//! `TPMT_SIGNATURE` (RSASSA). Big-endian, every length checked against what is left, so a
//! hostile host can make a parse fail but never read past its bytes or allocate more than
//! it sent.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256;

/// TPM_ALG_ID values this profile meets.
pub const ALG_RSA: u16 = 0x0001;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_RSASSA: u16 = 0x0014;

/// TPM_GENERATED_VALUE: every TPMS_ATTEST the TPM made begins with it.
const GENERATED: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_QUOTE and TPM_ST_ATTEST_CERTIFY.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
pub const ST_ATTEST_CERTIFY: u16 = 0x8017;

/// TPMA_OBJECT bits.
pub mod attr {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN: u32 = 1 << 18;
}

/// A bounded big-endian reader.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err(format!(
                "{}: {n} bytes wanted, {} left",
                self.what,
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }

    /// A TPM2B: a uint16 size and that many bytes.
    pub(crate) fn tpm2b(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.take(n.into())
    }

    pub(crate) fn end(&self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: {} bytes after the end",
                self.what,
                self.bytes.len()
            ))
        }
    }
}

/// An RSA key's `TPMT_PUBLIC`, with the bytes it was read from (its Name hashes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublic {
    pub bytes: Vec<u8>,
    pub name_alg: u16,
    pub attributes: u32,
    pub auth_policy: Vec<u8>,
    /// TPMT_SYM_DEF_OBJECT: algorithm (TPM_ALG_NULL for none), key bits, mode.
    pub symmetric: (u16, u16, u16),
    /// TPMT_RSA_SCHEME: scheme (TPM_ALG_NULL for none) and its hash.
    pub scheme: (u16, u16),
    pub key_bits: u16,
    pub exponent: u32,
    pub modulus: Vec<u8>,
}

impl RsaPublic {
    /// Reads a `TPMT_PUBLIC` of type TPM_ALG_RSA with nameAlg SHA-256, nothing after it.
    pub fn parse(bytes: &[u8]) -> Result<RsaPublic, String> {
        let mut r = Reader::new(bytes, "TPMT_PUBLIC");
        if r.u16()? != ALG_RSA {
            return Err("TPMT_PUBLIC: not an RSA key".into());
        }
        let name_alg = r.u16()?;
        if name_alg != ALG_SHA256 {
            return Err(format!("TPMT_PUBLIC: nameAlg {name_alg:#06x}, not SHA-256"));
        }
        let attributes = r.u32()?;
        let auth_policy = r.tpm2b()?.to_vec();
        let sym_alg = r.u16()?;
        let symmetric = if sym_alg == ALG_NULL {
            (ALG_NULL, 0, 0)
        } else {
            (sym_alg, r.u16()?, r.u16()?)
        };
        let scheme_alg = r.u16()?;
        let scheme = if scheme_alg == ALG_NULL {
            (ALG_NULL, 0)
        } else {
            (scheme_alg, r.u16()?)
        };
        let key_bits = r.u16()?;
        let exponent = r.u32()?;
        let modulus = r.tpm2b()?.to_vec();
        r.end()?;
        if !(2048..=4096).contains(&key_bits) || modulus.len() * 8 != usize::from(key_bits) {
            return Err(format!(
                "TPMT_PUBLIC: an RSA key of {key_bits} bits with a {}-byte modulus; 2048 to 4096 bits",
                modulus.len()
            ));
        }
        Ok(RsaPublic {
            bytes: bytes.to_vec(),
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            key_bits,
            exponent,
            modulus,
        })
    }

    /// The TPM Name: nameAlg ‖ SHA-256(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut name = ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.bytes).as_ref(),
        );
        name
    }

    fn e(&self) -> Vec<u8> {
        // An exponent of 0 means the default, 2^16 + 1.
        let e = if self.exponent == 0 {
            65537
        } else {
            self.exponent
        };
        let bytes = e.to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
        bytes[first..].to_vec()
    }

    /// The key as a DER SubjectPublicKeyInfo (what a health certificate certifies).
    pub fn spki(&self) -> Result<Vec<u8>, String> {
        let e = self.e();
        let c = PublicKeyComponents {
            n: self.modulus.as_slice(),
            e: e.as_slice(),
        };
        c.as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "TPMT_PUBLIC: not a usable RSA key".to_owned())
    }

    /// Whether every bit of `set` is set and none of `clear`.
    pub fn has(&self, set: u32, clear: u32) -> bool {
        self.attributes & set == set && self.attributes & clear == 0
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 verification of `message` with this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let e = self.e();
        PublicKeyComponents {
            n: self.modulus.as_slice(),
            e: e.as_slice(),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
    }
}

/// What a `TPMS_ATTEST` attests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attested {
    /// TPMS_QUOTE_INFO: the PCR selection (hash, bitmap) and the digest of the selected PCRs.
    Quote {
        selection: Vec<(u16, Vec<u8>)>,
        pcr_digest: Vec<u8>,
    },
    /// TPMS_CERTIFY_INFO: the certified object's Name and qualified Name.
    Certify { name: Vec<u8> },
}

/// A `TPMS_ATTEST`, with the bytes that were signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    pub bytes: Vec<u8>,
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data: the server nonce.
    pub extra_data: Vec<u8>,
    /// TPMS_CLOCK_INFO's resetCount and restartCount: a changed boot shows in them.
    pub reset_count: u32,
    pub restart_count: u32,
    pub attested: Attested,
}

/// The most PCR selections a quote may carry (one per bank).
const MAX_SELECTIONS: u32 = 4;

impl Attest {
    pub fn parse(bytes: &[u8]) -> Result<Attest, String> {
        let mut r = Reader::new(bytes, "TPMS_ATTEST");
        if r.u32()? != GENERATED {
            return Err("TPMS_ATTEST: not TPM-generated (magic)".into());
        }
        let ty = r.u16()?;
        let qualified_signer = r.tpm2b()?.to_vec();
        let extra_data = r.tpm2b()?.to_vec();
        let _clock = r.u64()?;
        let reset_count = r.u32()?;
        let restart_count = r.u32()?;
        let _safe = r.u8()?;
        let _firmware = r.u64()?;
        let attested = match ty {
            ST_ATTEST_QUOTE => {
                let count = r.u32()?;
                if count > MAX_SELECTIONS {
                    return Err(format!("TPMS_ATTEST: {count} PCR selections"));
                }
                let mut selection = Vec::new();
                for _ in 0..count {
                    let hash = r.u16()?;
                    let size = r.u8()?;
                    selection.push((hash, r.take(size.into())?.to_vec()));
                }
                Attested::Quote {
                    selection,
                    pcr_digest: r.tpm2b()?.to_vec(),
                }
            }
            ST_ATTEST_CERTIFY => {
                let name = r.tpm2b()?.to_vec();
                let _qualified = r.tpm2b()?;
                Attested::Certify { name }
            }
            other => {
                return Err(format!(
                    "TPMS_ATTEST: type {other:#06x}, not a quote or certify"
                ));
            }
        };
        r.end()?;
        Ok(Attest {
            bytes: bytes.to_vec(),
            qualified_signer,
            extra_data,
            reset_count,
            restart_count,
            attested,
        })
    }
}

/// The PCR indexes a selection bitmap names (bit i of byte j: PCR 8j + i).
pub fn selected_pcrs(bitmap: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    for (j, byte) in bitmap.iter().enumerate() {
        for i in 0..8 {
            if byte & (1 << i) != 0 {
                out.push(8 * j as u32 + i);
            }
        }
    }
    out
}

/// The RSASSA signature bytes of a `TPMT_SIGNATURE`, checked to be RSASSA with SHA-256.
pub fn rsassa_signature(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Reader::new(bytes, "TPMT_SIGNATURE");
    let alg = r.u16()?;
    let hash = r.u16()?;
    if alg != ALG_RSASSA || hash != ALG_SHA256 {
        return Err(format!(
            "TPMT_SIGNATURE: algorithm {alg:#06x} hash {hash:#06x}, not RSASSA SHA-256"
        ));
    }
    let sig = r.tpm2b()?.to_vec();
    r.end()?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA-2048 TPMT_PUBLIC as a TPM writes it (restricted signing, RSASSA-SHA256).
    pub(crate) fn ak_public(modulus: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&ALG_RSA.to_be_bytes());
        b.extend_from_slice(&ALG_SHA256.to_be_bytes());
        let a = attr::FIXED_TPM
            | attr::FIXED_PARENT
            | attr::SENSITIVE_DATA_ORIGIN
            | attr::USER_WITH_AUTH
            | attr::RESTRICTED
            | attr::SIGN;
        b.extend_from_slice(&a.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&ALG_NULL.to_be_bytes());
        b.extend_from_slice(&ALG_RSASSA.to_be_bytes());
        b.extend_from_slice(&ALG_SHA256.to_be_bytes());
        b.extend_from_slice(&2048u16.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&(modulus.len() as u16).to_be_bytes());
        b.extend_from_slice(modulus);
        b
    }

    #[test]
    fn an_rsa_public_area_reads_and_names_itself() {
        let bytes = ak_public(&[0xc5; 256]);
        let p = RsaPublic::parse(&bytes).unwrap();
        assert!(p.has(attr::RESTRICTED | attr::SIGN, attr::DECRYPT));
        assert_eq!(p.scheme, (ALG_RSASSA, ALG_SHA256));
        assert_eq!(p.name().len(), 34);
        assert_eq!(&p.name()[..2], &[0, 0x0b]);
        assert!(p.spki().is_ok());
    }

    #[test]
    fn truncated_or_trailing_bytes_and_small_keys_are_refused() {
        let bytes = ak_public(&[0xc5; 256]);
        for n in [0, 1, 10, bytes.len() - 1] {
            assert!(RsaPublic::parse(&bytes[..n]).is_err(), "{n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(
            RsaPublic::parse(&long)
                .unwrap_err()
                .contains("after the end")
        );
        assert!(RsaPublic::parse(&ak_public(&[0xc5; 128])).is_err());
    }

    #[test]
    fn an_attest_with_an_unknown_type_or_a_huge_selection_is_refused() {
        let mut q = GENERATED.to_be_bytes().to_vec();
        q.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0]); // signer, extra data
        q.extend_from_slice(&[0; 17 + 8]);
        let mut huge = q.clone();
        huge.extend_from_slice(&1000u32.to_be_bytes());
        assert!(Attest::parse(&huge).unwrap_err().contains("selections"));
        q[5] = 0x99;
        assert!(Attest::parse(&q).unwrap_err().contains("type"));
        assert_eq!(selected_pcrs(&[0b0000_0101, 0, 0x80]), vec![0, 2, 23]);
    }
}

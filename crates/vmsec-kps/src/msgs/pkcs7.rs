//! The PKCS#7 "certs-only" bundle ([RFC 2315] degenerate SignedData: no content, no
//! signers) in which `signingCertificates` hands out the attestation signers.
//!
//! No maintained crate in this workspace writes one, and the structure is fixed, so it is
//! written here, with a reader of the same structure for what others publish.

/// id-signedData, 1.2.840.113549.1.7.2
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/// id-data, 1.2.840.113549.1.7.1
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The DER bundle of `certificates` (each DER).
pub fn certs_only(certificates: &[&[u8]]) -> Vec<u8> {
    let signed_data = [
        tlv(0x02, &[1]),                   // version
        tlv(0x31, &[]),                    // digestAlgorithms: none
        tlv(0x30, &tlv(0x06, OID_DATA)),   // contentInfo: data, absent
        tlv(0xa0, &certificates.concat()), // [0] IMPLICIT certificates
        tlv(0x31, &[]),                    // signerInfos: none
    ]
    .concat();
    tlv(
        0x30,
        &[
            tlv(0x06, OID_SIGNED_DATA),
            tlv(0xa0, &tlv(0x30, &signed_data)),
        ]
        .concat(),
    )
}

/// One TLV at the start of `input`: (tag, content, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The certificates (DER, each a whole TLV) of a certs-only bundle; `None` when it is not one.
pub fn certificates(der: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (0x30, content_info, []) = read_tlv(der)? else {
        return None;
    };
    let (0x06, oid, rest) = read_tlv(content_info)? else {
        return None;
    };
    if oid != OID_SIGNED_DATA {
        return None;
    }
    let (0xa0, explicit, []) = read_tlv(rest)? else {
        return None;
    };
    let (0x30, signed_data, []) = read_tlv(explicit)? else {
        return None;
    };
    let (0x02, _version, rest) = read_tlv(signed_data)? else {
        return None;
    };
    let (0x31, _digests, rest) = read_tlv(rest)? else {
        return None;
    };
    let (0x30, _content, rest) = read_tlv(rest)? else {
        return None;
    };
    let (0xa0, mut certs, _signers) = read_tlv(rest)? else {
        return None;
    };
    let mut out = Vec::new();
    while !certs.is_empty() {
        let (0x30, _, rest) = read_tlv(certs)? else {
            return None;
        };
        out.push(certs[..certs.len() - rest.len()].to_vec());
        certs = rest;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_back_with_short_and_long_lengths() {
        let small = tlv(0x30, &[1, 2, 3]);
        let large = tlv(0x30, &vec![9; 70_000]);
        let bundle = certs_only(&[&small, &large]);
        assert_eq!(certificates(&bundle).unwrap(), vec![small, large]);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_not_a_bundle() {
        let bundle = certs_only(&[&tlv(0x30, &[1])]);
        for cut in 0..bundle.len() {
            assert!(certificates(&bundle[..cut]).is_none(), "cut at {cut}");
        }
        assert!(certificates(&tlv(0x30, &tlv(0x06, OID_DATA))).is_none());
    }
}

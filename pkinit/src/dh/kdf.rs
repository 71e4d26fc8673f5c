//! Reply-key derivation from the DH/ECDH shared secret: RFC 4556 §3.2.3.1
//! octetstring2key and the RFC 8636 §5 KDF over OtherInfo.

use krb::crypto::{EncType, Key};
use krb::msg::raw::push_header;
use krb::principal::Principal;
use rasn::prelude::*;
use rasn::types::Oid;
use rasn_pkix::AlgorithmIdentifier;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::DhError;
use crate::asn1::{KdfAlgorithmId, Krb5PrincipalName, oid};

/// An RFC 8636 key derivation function (id-pkinit-kdf-ah-*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kdf {
    /// id-pkinit-kdf-ah-sha1, 1.3.6.1.5.2.3.6.1.
    Sha1,
    /// id-pkinit-kdf-ah-sha256, 1.3.6.1.5.2.3.6.2 (what MIT kinit offers first).
    Sha256,
    /// id-pkinit-kdf-ah-sha512, 1.3.6.1.5.2.3.6.3.
    Sha512,
}

impl Kdf {
    /// All supported KDFs, in the order the KDC lists them in
    /// KDC_ERR_NO_ACCEPTABLE_KDF e-data (MIT's order: SHA-256, SHA-1, SHA-512).
    pub const ALL: [Kdf; 3] = [Kdf::Sha256, Kdf::Sha1, Kdf::Sha512];

    /// The KDF for an OID, or `None` if unsupported.
    pub fn from_oid(o: &Oid) -> Option<Kdf> {
        Kdf::ALL.into_iter().find(|k| k.oid() == o)
    }

    /// The KDF's OID.
    pub fn oid(self) -> &'static Oid {
        match self {
            Kdf::Sha1 => oid::KDF_SHA1,
            Kdf::Sha256 => oid::KDF_SHA256,
            Kdf::Sha512 => oid::KDF_SHA512,
        }
    }

    /// The KDFAlgorithmId for DHRepInfo.kdf.
    pub fn algorithm_id(self) -> KdfAlgorithmId {
        KdfAlgorithmId {
            kdf_id: self.oid().to_owned(),
        }
    }
}

/// Which KDF to use for a request: the first of the client's supportedKDFs
/// that we support. `None` means octetstring2key, but also "nothing
/// acceptable": callers that must answer KDC_ERR_NO_ACCEPTABLE_KDF (RFC 8636
/// §4) should use [`select_kdf`].
pub fn choose_kdf(supported: Option<&[KdfAlgorithmId]>) -> Option<Kdf> {
    select_kdf(supported).ok().flatten()
}

/// Like [`choose_kdf`] but distinguishes the cases: `Ok(None)` when the
/// client sent no supportedKDFs (RFC 4556 octetstring2key), `Ok(Some(kdf))`
/// for the first supported entry in client order, and
/// [`DhError::NoAcceptableKdf`] when the client listed KDFs (possibly an
/// empty list) and none is supported.
pub fn select_kdf(supported: Option<&[KdfAlgorithmId]>) -> Result<Option<Kdf>, DhError> {
    match supported {
        None => Ok(None),
        Some(list) => list
            .iter()
            .find_map(|k| Kdf::from_oid(&k.kdf_id))
            .map(Some)
            .ok_or(DhError::NoAcceptableKdf),
    }
}

/// DER SEQUENCE OF KDFAlgorithmId listing our KDFs ([`Kdf::ALL`]), the
/// e-data content RFC 8636 §4 asks for with KDC_ERR_NO_ACCEPTABLE_KDF.
pub fn supported_kdfs_der() -> Vec<u8> {
    let list: Vec<KdfAlgorithmId> = Kdf::ALL.iter().map(|k| k.algorithm_id()).collect();
    // Encoding OIDs we defined ourselves cannot fail.
    rasn::der::encode(&list).unwrap_or_default()
}

/// RFC 3961 random-to-key for the enctype.
fn random_to_key(etype: EncType, seed: &[u8]) -> Result<Key, DhError> {
    Key::from_random_bits(etype, seed)
        .map_err(|e| DhError::Malformed(format!("key construction: {e}")))
}

fn seed_len(etype: EncType) -> usize {
    etype.random_to_key_len()
}

/// RFC 4556 §3.2.3.1: `random-to-key(K-truncate(SHA1(0x00 | x) | SHA1(0x01 |
/// x) | ...))` with `x = DHSharedSecret | n_c | n_k`. The nonces count only
/// when both the client's and the KDC's are present (otherwise both are
/// empty, as the RFC says). `shared_secret` must already be ZZ left-padded
/// to |p| (MODP) or the fixed-length x-coordinate (EC).
pub fn octetstring2key(
    etype: EncType,
    shared_secret: &[u8],
    client_dh_nonce: Option<&[u8]>,
    server_dh_nonce: Option<&[u8]>,
) -> Result<Key, DhError> {
    let nonces: [&[u8]; 2] = match (client_dh_nonce, server_dh_nonce) {
        (Some(c), Some(k)) => [c, k],
        _ => [&[], &[]],
    };
    let need = seed_len(etype);
    let mut stream = Zeroizing::new(Vec::with_capacity(need + 20));
    let mut counter = 0u8;
    while stream.len() < need {
        let mut h = Sha1::new();
        h.update([counter]);
        h.update(shared_secret);
        h.update(nonces[0]);
        h.update(nonces[1]);
        stream.extend_from_slice(&h.finalize());
        counter = counter.wrapping_add(1);
    }
    random_to_key(etype, &stream[..need])
}

/// OtherInfo of RFC 8636 §5 (SP 800-56A), with explicit tags; the
/// reference encoding [`OtherInfoParts`] is tested against.
#[cfg(test)]
#[derive(AsnType, Encode)]
struct OtherInfo {
    algorithm_id: AlgorithmIdentifier,
    #[rasn(tag(explicit(0)))]
    party_u_info: OctetString,
    #[rasn(tag(explicit(1)))]
    party_v_info: OctetString,
    #[rasn(tag(explicit(2)))]
    supp_pub_info: OctetString,
}

/// PkinitSuppPubInfo of RFC 8636 §5.
#[cfg(test)]
#[derive(AsnType, Encode)]
struct PkinitSuppPubInfo {
    #[rasn(tag(explicit(0)))]
    enctype: i32,
    #[rasn(tag(explicit(1)))]
    as_req: OctetString,
    #[rasn(tag(explicit(2)))]
    pk_as_rep: OctetString,
}

fn encode<T: Encode>(v: &T) -> Result<Vec<u8>, DhError> {
    rasn::der::encode(v).map_err(|e| DhError::Malformed(format!("DER encoding: {e}")))
}

fn krb5_principal_name(p: &Principal) -> Result<Vec<u8>, DhError> {
    let (principal_name, realm) = p
        .to_rasn()
        .map_err(|e| DhError::Malformed(format!("principal for KDF: {e}")))?;
    encode(&Krb5PrincipalName {
        realm,
        principal_name,
    })
}

/// The DER OtherInfo for `kdf`, exposed for tests and debugging.
pub fn other_info(
    kdf: Kdf,
    etype: EncType,
    client: &Principal,
    kdc: &Principal,
    as_req: &[u8],
    pk_as_rep: &[u8],
) -> Result<Vec<u8>, DhError> {
    let parts = OtherInfoParts::new(kdf, etype, client, kdc, as_req, pk_as_rep)?;
    Ok(parts.pieces().concat())
}

/// OtherInfo as `head | as_req | mid | pk_as_rep`: the two large fields are
/// hashed where they lie instead of being copied into a DER buffer (they
/// are several kilobytes; the rest is a few hundred bytes). The encoding
/// is the same as [`OtherInfo`]'s, checked against it in the tests.
struct OtherInfoParts<'a> {
    head: Vec<u8>,
    as_req: &'a [u8],
    mid: Vec<u8>,
    pk_as_rep: &'a [u8],
}

/// Length of a TLV with `len` content bytes.
fn tlv_len(len: usize) -> usize {
    let mut header = Vec::with_capacity(10);
    push_header(&mut header, 0, len);
    header.len() + len
}

/// `[tag] EXPLICIT OCTET STRING` holding `content`: header bytes only.
fn explicit_octets_header(out: &mut Vec<u8>, tag: u8, content_len: usize) {
    push_header(out, tag, tlv_len(content_len));
    push_header(out, 0x04, content_len);
}

impl<'a> OtherInfoParts<'a> {
    fn new(
        kdf: Kdf,
        etype: EncType,
        client: &Principal,
        kdc: &Principal,
        as_req: &'a [u8],
        pk_as_rep: &'a [u8],
    ) -> Result<OtherInfoParts<'a>, DhError> {
        let algorithm = encode(&AlgorithmIdentifier {
            algorithm: kdf.oid().to_owned(),
            parameters: None,
        })?;
        let mut enctype = Vec::new();
        let int = encode(&etype.as_i32())?;
        push_header(&mut enctype, 0xa0, int.len());
        enctype.extend_from_slice(&int);
        let mut names = Vec::new();
        for (tag, p) in [(0xa0, client), (0xa1, kdc)] {
            let name = krb5_principal_name(p)?;
            explicit_octets_header(&mut names, tag, name.len());
            names.extend_from_slice(&name);
        }
        // PkinitSuppPubInfo { [0] enctype, [1] AS-REQ, [2] PA-PK-AS-REP }.
        let supp_content =
            enctype.len() + tlv_len(tlv_len(as_req.len())) + tlv_len(tlv_len(pk_as_rep.len()));
        let supp = tlv_len(supp_content);
        let outer = algorithm.len() + names.len() + tlv_len(tlv_len(supp));
        let mut head = Vec::with_capacity(outer - supp + 64);
        push_header(&mut head, 0x30, outer);
        head.extend_from_slice(&algorithm);
        head.extend_from_slice(&names);
        explicit_octets_header(&mut head, 0xa2, supp);
        push_header(&mut head, 0x30, supp_content);
        head.extend_from_slice(&enctype);
        explicit_octets_header(&mut head, 0xa1, as_req.len());
        let mut mid = Vec::with_capacity(12);
        explicit_octets_header(&mut mid, 0xa2, pk_as_rep.len());
        Ok(OtherInfoParts {
            head,
            as_req,
            mid,
            pk_as_rep,
        })
    }

    fn pieces(&self) -> [&[u8]; 4] {
        [&self.head, self.as_req, &self.mid, self.pk_as_rep]
    }
}

/// SP 800-56A single-step KDF: H(counter32 | Z | OtherInfo) blocks, counter from 1.
fn concat_kdf<D: Digest>(z: &[u8], info: &OtherInfoParts<'_>, out: &mut [u8]) {
    let mut counter: u32 = 1;
    for chunk in out.chunks_mut(<D as Digest>::output_size()) {
        let mut h = D::new();
        h.update(counter.to_be_bytes());
        h.update(z);
        for piece in info.pieces() {
            h.update(piece);
        }
        let block = h.finalize();
        chunk.copy_from_slice(&block[..chunk.len()]);
        counter = counter.wrapping_add(1);
    }
}

/// RFC 8636 §5: the reply key from the shared secret and OtherInfo
/// (partyUInfo = client's KRB5PrincipalName, partyVInfo = the KDC's,
/// suppPubInfo = PkinitSuppPubInfo{enctype, AS-REQ, PA-PK-AS-REP}).
///
/// `client` and `kdc` must be the cname/crealm and sname/realm exactly as in
/// the AS-REQ, name types included (MIT passes `request->client` and
/// `request->server`); `as_req` is the DER AS-REQ as received and
/// `pk_as_rep` the DER PA-PK-AS-REP padata-value as sent.
pub fn kdf_rfc8636(
    kdf: Kdf,
    etype: EncType,
    shared_secret: &[u8],
    client: &Principal,
    kdc: &Principal,
    as_req: &[u8],
    pk_as_rep: &[u8],
) -> Result<Key, DhError> {
    let info = OtherInfoParts::new(kdf, etype, client, kdc, as_req, pk_as_rep)?;
    let mut seed = Zeroizing::new(vec![0u8; seed_len(etype)]);
    match kdf {
        Kdf::Sha1 => concat_kdf::<Sha1>(shared_secret, &info, &mut seed),
        Kdf::Sha256 => concat_kdf::<Sha256>(shared_secret, &info, &mut seed),
        Kdf::Sha512 => concat_kdf::<Sha512>(shared_secret, &info, &mut seed),
    }
    random_to_key(etype, &seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed encoding equals rasn's DER of the same OtherInfo, with
    /// short and long (multi-byte length) fields.
    #[test]
    fn streamed_other_info_is_the_der_encoding() {
        let client = Principal::parse("mta/mta1.example.net@EXAMPLE.NET", None).unwrap();
        let kdc = Principal::parse("krbtgt/EXAMPLE.NET@EXAMPLE.NET", None).unwrap();
        for (a, b) in [(10, 20), (127, 128), (300, 5000), (70000, 3)] {
            let as_req = vec![0x5a; a];
            let pk_as_rep = vec![0xa5; b];
            for kdf in Kdf::ALL {
                let etype = EncType::Aes256CtsHmacSha384192;
                let reference = encode(&OtherInfo {
                    algorithm_id: AlgorithmIdentifier {
                        algorithm: kdf.oid().to_owned(),
                        parameters: None,
                    },
                    party_u_info: krb5_principal_name(&client).unwrap().into(),
                    party_v_info: krb5_principal_name(&kdc).unwrap().into(),
                    supp_pub_info: encode(&PkinitSuppPubInfo {
                        enctype: etype.as_i32(),
                        as_req: OctetString::from_slice(&as_req),
                        pk_as_rep: OctetString::from_slice(&pk_as_rep),
                    })
                    .unwrap()
                    .into(),
                })
                .unwrap();
                let streamed = other_info(kdf, etype, &client, &kdc, &as_req, &pk_as_rep).unwrap();
                assert_eq!(streamed, reference, "{a} {b} {kdf:?}");
            }
        }
    }

    #[test]
    fn select_kdf_cases() {
        let id = |o: &Oid| KdfAlgorithmId {
            kdf_id: o.to_owned(),
        };
        let unknown = Oid::const_new(&[1, 2, 3]);
        assert_eq!(select_kdf(None).unwrap(), None);
        assert!(matches!(
            select_kdf(Some(&[])),
            Err(DhError::NoAcceptableKdf)
        ));
        assert!(matches!(
            select_kdf(Some(&[id(unknown)])),
            Err(DhError::NoAcceptableKdf)
        ));
        let list = [id(unknown), id(oid::KDF_SHA512), id(oid::KDF_SHA256)];
        assert_eq!(select_kdf(Some(&list)).unwrap(), Some(Kdf::Sha512));
        assert_eq!(choose_kdf(Some(&list)), Some(Kdf::Sha512));
        assert_eq!(choose_kdf(Some(&[id(unknown)])), None);
        assert_eq!(choose_kdf(None), None);
    }
}

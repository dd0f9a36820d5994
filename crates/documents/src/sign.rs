//! Signed certificate payloads: what a certificate's QR code holds.
//!
//! A payload is one line of printable ASCII, four parts joined by `.`:
//!
//! ```text
//! KC1.<key id>.<record: base64url JSON, no padding>.<signature: base64url, no padding>
//! ```
//!
//! The signature is Ed25519 over the ASCII bytes of the first three parts and their dots (the
//! version, the key id and the record as written, so nothing can be re-encoded in between). The
//! key id is the first 8 bytes of SHA-256 over the 32-byte public key, as 16 lower-case hex
//! digits; verifiers pick the published key by it. The record is [`CertificateRecord`] in its
//! compact form: `{"b": beneficiary id, "n": name, "y": birth year, "i": masked ID,
//! "d": [{"n": dose, "v": vaccine, "b": batch, "t": "YYYY-MM-DD", "c": centre id,
//! "cn": centre name}], "f": fully vaccinated}`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version tag every payload starts with.
pub const PAYLOAD_VERSION: &str = "KC1";
/// Longest payload [`verify`] looks at, in characters (a QR code holds at most 2953 bytes).
pub const PAYLOAD_CHARS_MAX: usize = 4096;
/// Bytes of an Ed25519 signing seed.
pub const SIGNING_SEED_BYTES: usize = 32;

/// One administered dose as a certificate states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoseEntry {
    /// 1 or 2.
    #[serde(rename = "n")]
    pub dose: u8,
    /// The vaccine's CoWIN name, e.g. `COVISHIELD`.
    #[serde(rename = "v")]
    pub vaccine: String,
    /// The batch recorded by the vaccinator.
    #[serde(rename = "b")]
    pub batch: String,
    /// The day it was given, `YYYY-MM-DD`.
    #[serde(rename = "t")]
    pub date: String,
    /// The centre's id.
    #[serde(rename = "c")]
    pub centre_id: u64,
    /// The centre's name.
    #[serde(rename = "cn")]
    pub centre_name: String,
}

/// What a certificate certifies: the person (masked ID only) and every recorded dose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// The beneficiary's id (the certificate's reference).
    #[serde(rename = "b")]
    pub beneficiary_id: u64,
    /// Name as registered.
    #[serde(rename = "n")]
    pub name: String,
    /// Year of birth.
    #[serde(rename = "y")]
    pub birth_year: u16,
    /// The photo ID, masked (`XXXX-XXXX-1234`); never the number itself.
    #[serde(rename = "i")]
    pub id_masked: String,
    /// Every recorded dose, in order.
    #[serde(rename = "d")]
    pub doses: Vec<DoseEntry>,
    /// Whether dose 2 is on record.
    #[serde(rename = "f")]
    pub fully_vaccinated: bool,
}

impl CertificateRecord {
    /// A record whose `fully_vaccinated` follows from its doses (dose 2 on record).
    pub fn new(
        beneficiary_id: u64,
        name: String,
        birth_year: u16,
        id_masked: String,
        doses: Vec<DoseEntry>,
    ) -> Self {
        let fully_vaccinated = doses.iter().any(|d| d.dose >= 2);
        Self {
            beneficiary_id,
            name,
            birth_year,
            id_masked,
            doses,
            fully_vaccinated,
        }
    }
}

/// The key id of a public key: 16 hex digits of SHA-256 over its 32 bytes.
pub fn key_id(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    hex::encode(&digest[..8])
}

/// Signs certificate records with the server's Ed25519 key. `Debug` shows the key id only.
#[derive(Clone)]
pub struct CertificateSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for CertificateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CertificateSigner {
    /// A signer from a 32-byte seed (the configured or generated `certificate_key`). Longer
    /// secrets are hashed down to 32 bytes with SHA-256; shorter ones are refused.
    pub fn from_secret(secret: &[u8]) -> Result<Self, SignError> {
        let seed: [u8; SIGNING_SEED_BYTES] = match <[u8; SIGNING_SEED_BYTES]>::try_from(secret) {
            Ok(seed) => seed,
            Err(_) if secret.len() > SIGNING_SEED_BYTES => Sha256::digest(secret).into(),
            Err(_) => return Err(SignError::SeedTooShort),
        };
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(&key.verifying_key());
        Ok(Self { key, key_id })
    }

    /// The key id payloads name.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half, as published at `GET /v1/certificates/keys`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signed payload for a record.
    pub fn sign(&self, record: &CertificateRecord) -> String {
        // Serialising plain strings and numbers cannot fail.
        let json = serde_json::to_vec(record).unwrap_or_default();
        let signed = format!(
            "{PAYLOAD_VERSION}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(json)
        );
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// A published verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// Its key id.
    pub key_id: String,
    /// The Ed25519 key.
    pub key: VerifyingKey,
}

impl PublicKey {
    /// The key as base64url (no padding) of its 32 bytes, as published.
    pub fn encoded(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.as_bytes())
    }

    /// Reads a published key (base64url, or standard base64, or 64 hex digits); its key id is
    /// computed, never taken on trust.
    pub fn decode(text: &str) -> Result<Self, SignError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| SignError::BadPublicKey)?
        } else {
            URL_SAFE_NO_PAD
                .decode(t.trim_end_matches('='))
                .or_else(|_| base64::engine::general_purpose::STANDARD.decode(t))
                .map_err(|_| SignError::BadPublicKey)?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| SignError::BadPublicKey)?;
        let key = VerifyingKey::from_bytes(&arr).map_err(|_| SignError::BadPublicKey)?;
        Ok(Self {
            key_id: key_id(&key),
            key,
        })
    }
}

/// Why a payload is not a genuine certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Not `KC1.<kid>.<record>.<signature>`.
    #[error("not a Kataar certificate payload")]
    Malformed,
    /// Longer than [`PAYLOAD_CHARS_MAX`].
    #[error("payload longer than {PAYLOAD_CHARS_MAX} characters")]
    TooLong,
    /// Signed by a key that is not among the given ones.
    #[error("signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the record.
    #[error("the signature does not match")]
    BadSignature,
    /// The signed record is not a certificate record.
    #[error("the signed record cannot be read")]
    BadRecord,
    /// A signing seed shorter than 32 bytes.
    #[error("certificate_key must be at least {SIGNING_SEED_BYTES} bytes")]
    SeedTooShort,
    /// A public key that is not 32 bytes of Ed25519.
    #[error("not an Ed25519 public key (32 bytes, base64url or hex)")]
    BadPublicKey,
}

/// A payload that verified: the key that signed it and the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The key id that signed it.
    pub key_id: String,
    /// The certified record.
    pub record: CertificateRecord,
}

/// Checks a payload against the published keys. The record is read only after the signature
/// has been checked, and `fully_vaccinated` must agree with the doses.
pub fn verify(payload: &str, keys: &[PublicKey]) -> Result<Verified, SignError> {
    let payload = payload.trim();
    if payload.len() > PAYLOAD_CHARS_MAX {
        return Err(SignError::TooLong);
    }
    let (signed, signature) = payload.rsplit_once('.').ok_or(SignError::Malformed)?;
    let mut parts = signed.split('.');
    let (Some(version), Some(kid), Some(record), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SignError::Malformed);
    };
    if version != PAYLOAD_VERSION {
        return Err(SignError::Malformed);
    }
    let key = keys
        .iter()
        .find(|k| k.key_id == kid)
        .ok_or(SignError::UnknownKey)?;
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| SignError::BadSignature)?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| SignError::BadSignature)?;
    key.key
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| SignError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(record)
        .map_err(|_| SignError::BadRecord)?;
    let record: CertificateRecord =
        serde_json::from_slice(&json).map_err(|_| SignError::BadRecord)?;
    if record.fully_vaccinated != record.doses.iter().any(|d| d.dose >= 2) {
        return Err(SignError::BadRecord);
    }
    Ok(Verified {
        key_id: kid.to_owned(),
        record,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(doses: u8) -> CertificateRecord {
        let d = (1..=doses)
            .map(|n| DoseEntry {
                dose: n,
                vaccine: "COVISHIELD".into(),
                batch: format!("4121Z0{n}"),
                date: format!("2026-0{n}-15"),
                centre_id: 7,
                centre_name: "जिला अस्पताल भोपाल".into(),
            })
            .collect();
        CertificateRecord::new(42, "आशा देवी".into(), 1980, "XXXX-XXXX-0123".into(), d)
    }

    #[test]
    fn a_signed_payload_verifies_and_round_trips() {
        let signer = CertificateSigner::from_secret(&[9u8; 32]).unwrap();
        let r = record(2);
        assert!(r.fully_vaccinated);
        let p = signer.sign(&r);
        assert!(p.starts_with("KC1."));
        assert!(p.bytes().all(|b| b.is_ascii_graphic()));
        let v = verify(&p, &[signer.public_key()]).unwrap();
        assert_eq!(v.record, r);
        assert_eq!(v.key_id, signer.key_id());
        assert!(!record(1).fully_vaccinated);
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let signer = CertificateSigner::from_secret(&[3u8; 32]).unwrap();
        let p = signer.sign(&record(1));
        let keys = [signer.public_key()];
        let bytes = p.as_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let text = String::from_utf8(changed).unwrap();
            assert!(
                verify(&text, &keys).is_err(),
                "byte {i} changed still verified"
            );
        }
    }

    #[test]
    fn another_keys_signature_is_refused() {
        let ours = CertificateSigner::from_secret(&[1u8; 32]).unwrap();
        let theirs = CertificateSigner::from_secret(&[2u8; 32]).unwrap();
        let forged = theirs.sign(&record(2));
        assert_eq!(
            verify(&forged, &[ours.public_key()]),
            Err(SignError::UnknownKey)
        );
        // The forger names our key id: the signature does not match our key.
        let relabelled = forged.replacen(theirs.key_id(), ours.key_id(), 1);
        assert_eq!(
            verify(&relabelled, &[ours.public_key()]),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn public_keys_decode_from_their_published_form() {
        let signer = CertificateSigner::from_secret(&[5u8; 40]).unwrap();
        let public = signer.public_key();
        assert_eq!(PublicKey::decode(&public.encoded()).unwrap(), public);
        assert_eq!(
            PublicKey::decode(&hex::encode(public.key.as_bytes())).unwrap(),
            public
        );
        assert!(PublicKey::decode("not a key").is_err());
        assert_eq!(
            CertificateSigner::from_secret(&[1u8; 31]).unwrap_err(),
            SignError::SeedTooShort
        );
        assert_eq!(
            verify(&"K".repeat(PAYLOAD_CHARS_MAX + 1), &[public]),
            Err(SignError::TooLong)
        );
    }
}

//! Person keys: HMAC-SHA256 of `"<id_type>:<normalised number>"` under the server's person-key
//! secret. The key, not the number, is what the store holds and deduplicates on.
//!
//! The same number under two ID types gives two keys (they are different documents).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::photo_id::NormalizedId;

/// Length of a person key in bytes.
pub const PERSON_KEY_BYTES: usize = 32;

/// A person key: the HMAC of one photo ID.
pub type PersonKey = [u8; PERSON_KEY_BYTES];

/// Computes person keys. Holds the keyed HMAC state, so `key` does not re-derive it per call.
#[derive(Clone)]
pub struct PersonKeyer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for PersonKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonKeyer(<redacted>)")
    }
}

impl PersonKeyer {
    /// A keyer for `secret` (any length; 32 random bytes expected).
    pub fn new(secret: &[u8]) -> PersonKeyer {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        PersonKeyer { mac }
    }

    /// HMAC-SHA256(secret, `"<id_type>:<normalised>"`), e.g. `"aadhaar:234567890124"`.
    pub fn key(&self, id: &NormalizedId) -> PersonKey {
        let mut mac = self.mac.clone();
        mac.update(id.id_type().as_str().as_bytes());
        mac.update(b":");
        mac.update(id.expose_secret().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// [`PersonKeyer::key`] as 64 lowercase hex characters.
    pub fn key_hex(&self, id: &NormalizedId) -> String {
        person_key_to_hex(&self.key(id))
    }
}

/// A person key as 64 lowercase hex characters.
pub fn person_key_to_hex(key: &PersonKey) -> String {
    hex::encode(key)
}

/// Parses 64 hex characters (either case) back into a person key.
pub fn person_key_from_hex(s: &str) -> Option<PersonKey> {
    let mut out = [0u8; PERSON_KEY_BYTES];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::photo_id::{normalize_and_validate, verhoeff_check_digit, IdType};

    #[test]
    fn key_is_hmac_of_type_and_number() {
        let keyer = PersonKeyer::new(b"secret-one");
        let id = normalize_and_validate(IdType::Pan, "abcde1234f").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret-one").unwrap();
        mac.update(b"pan:ABCDE1234F");
        let expected: PersonKey = mac.finalize().into_bytes().into();
        assert_eq!(keyer.key(&id), expected);
        assert_eq!(person_key_from_hex(&keyer.key_hex(&id)), Some(expected));
        assert_eq!(keyer.key_hex(&id).len(), 64);
    }

    #[test]
    fn normalised_forms_share_a_key_and_secrets_and_types_separate() {
        let body = "23456789012";
        let n = format!("{body}{}", verhoeff_check_digit(body).unwrap());
        let spaced = format!("{} {} {}", &n[..4], &n[4..8], &n[8..]);
        let a = normalize_and_validate(IdType::Aadhaar, &n).unwrap();
        let b = normalize_and_validate(IdType::Aadhaar, &spaced).unwrap();
        let k1 = PersonKeyer::new(b"one");
        let k2 = PersonKeyer::new(b"two");
        assert_eq!(k1.key(&a), k1.key(&b));
        assert_ne!(k1.key(&a), k2.key(&a));
        let as_voter = normalize_and_validate(IdType::VoterId, &n).unwrap();
        assert_ne!(k1.key(&a), k1.key(&as_voter));
        assert!(!format!("{k1:?}").contains("one"));
    }

    #[test]
    fn hex_parsing_rejects_bad_input() {
        assert_eq!(person_key_from_hex("00"), None);
        assert_eq!(person_key_from_hex(&"g".repeat(64)), None);
        assert_eq!(person_key_from_hex(&"AB".repeat(32)), Some([0xAB; 32]));
    }
}

//! Operator API keys: `kop_` followed by 32 random URL-safe characters, shown once and stored
//! only as the lowercase hex SHA-256 of the whole key.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Prefix of every operator key.
pub const OPERATOR_KEY_PREFIX: &str = "kop_";
/// Random characters after the prefix (6 bits each: 192 bits).
pub const OPERATOR_KEY_RANDOM_CHARS: usize = 32;

const URL_SAFE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A clear operator key. `Debug` is redacted; print it once with [`ClearOperatorKey::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClearOperatorKey(String);

impl std::fmt::Debug for ClearOperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClearOperatorKey(kop_<redacted>)")
    }
}

impl ClearOperatorKey {
    /// The clear key, to show the operator once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// A new key and its hash (the hash is what the store keeps).
pub fn generate_operator_key() -> (ClearOperatorKey, String) {
    let mut rng = rand::thread_rng();
    let mut clear = String::with_capacity(OPERATOR_KEY_PREFIX.len() + OPERATOR_KEY_RANDOM_CHARS);
    clear.push_str(OPERATOR_KEY_PREFIX);
    for _ in 0..OPERATOR_KEY_RANDOM_CHARS {
        clear.push(char::from(
            URL_SAFE_ALPHABET[rng.gen_range(0..URL_SAFE_ALPHABET.len())],
        ));
    }
    let hash = hash_operator_key(&clear);
    (ClearOperatorKey(clear), hash)
}

/// Lowercase hex SHA-256 of the whole key (prefix included), as stored.
pub fn hash_operator_key(clear: &str) -> String {
    hex::encode(Sha256::digest(clear.as_bytes()))
}

/// True if `s` has the shape of an operator key (prefix, 32 URL-safe characters): use it to tell
/// operator bearer tokens from citizens' JWTs before any lookup.
pub fn looks_like_operator_key(s: &str) -> bool {
    s.strip_prefix(OPERATOR_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == OPERATOR_KEY_RANDOM_CHARS
            && rest.bytes().all(|b| URL_SAFE_ALPHABET.contains(&b))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_shape_and_hash() {
        let (clear, hash) = generate_operator_key();
        let k = clear.expose_secret();
        assert!(k.starts_with("kop_"));
        assert_eq!(k.len(), 36);
        assert!(looks_like_operator_key(k));
        assert_eq!(hash, hash_operator_key(k));
        assert_eq!(hash.len(), 64);
        assert!(hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(!format!("{clear:?}").contains(&k[4..]));
        let (other, other_hash) = generate_operator_key();
        assert_ne!(other, clear);
        assert_ne!(other_hash, hash);
    }

    #[test]
    fn known_hash_and_shape_checks() {
        // SHA-256("abc")
        assert_eq!(
            hash_operator_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!looks_like_operator_key("kop_short"));
        assert!(!looks_like_operator_key(&format!("kop_{}", "a".repeat(33))));
        assert!(!looks_like_operator_key(&format!("kop_{}", "+".repeat(32))));
        assert!(!looks_like_operator_key(&format!("kap_{}", "a".repeat(32))));
        assert!(looks_like_operator_key(&format!(
            "kop_{}",
            "a-_Z".repeat(8)
        )));
    }

    #[test]
    fn characters_cover_the_alphabet() {
        let mut seen = [false; 128];
        for _ in 0..200 {
            let (clear, _) = generate_operator_key();
            for b in clear.expose_secret()[4..].bytes() {
                seen[usize::from(b)] = true;
            }
        }
        assert!(URL_SAFE_ALPHABET.iter().all(|&b| seen[usize::from(b)]));
    }
}

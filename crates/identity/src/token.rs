//! Citizens' bearer tokens: standard JWTs (HS256) verified without a database round trip, and a
//! small HMAC-signed blob for passes and cursors.
//!
//! Token: header `{"alg":"HS256","typ":"JWT"}`, claims
//! `{"sub":"<account_id>","acc":<account_id>,"iat":<unix s>,"exp":<unix s>}`, base64url without
//! padding, signed with HMAC-SHA256 under the token key. Clients may decode it unverified to read
//! `exp`. Blobs are signed under a key derived from the same secret, so a blob signature can never
//! pass as a token signature or the reverse.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Default token lifetime in seconds (15 minutes).
pub const TOKEN_TTL_DEFAULT_S: u64 = 900;
/// Longest token accepted for verification, in bytes (ours are about 150).
pub const TOKEN_CHARS_MAX: usize = 1024;
/// Longest signed blob accepted for verification, in bytes.
pub const BLOB_CHARS_MAX: usize = 4096;

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const BLOB_KEY_LABEL: &[u8] = b"kataar-signed-blob-v1";

/// An account id, as carried in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId(pub u64);

/// Why a token was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, a header other than HS256, or claims that do not parse.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is at or before now.
    #[error("token expired")]
    Expired,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id as a decimal string (JWT convention).
    pub sub: String,
    /// The account id as a number.
    pub acc: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// A newly issued token. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The compact JWT, for the `Authorization: Bearer` header.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at_unix_s: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("expires_at_unix_s", &self.expires_at_unix_s)
            .finish()
    }
}

/// Issues and verifies tokens, and signs blobs. `Debug` is redacted.
#[derive(Clone)]
pub struct TokenSigner {
    jwt: Hmac<Sha256>,
    blob: Hmac<Sha256>,
    ttl_s: u64,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

fn hmac_of(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

impl TokenSigner {
    /// A signer with `secret` issuing tokens that live `ttl` (whole seconds; at least 1).
    pub fn new(secret: &[u8], ttl: Duration) -> TokenSigner {
        let mut derive = hmac_of(secret);
        derive.update(BLOB_KEY_LABEL);
        let blob_key = derive.finalize().into_bytes();
        TokenSigner {
            jwt: hmac_of(secret),
            blob: hmac_of(&blob_key),
            ttl_s: ttl.as_secs().max(1),
        }
    }

    /// The token lifetime in seconds.
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// A token for `account_id` issued at `now_unix_s`.
    pub fn issue(&self, account_id: u64, now_unix_s: u64) -> Issued {
        let exp = now_unix_s.saturating_add(self.ttl_s);
        let claims = Claims {
            sub: account_id.to_string(),
            acc: account_id,
            iat: now_unix_s,
            exp,
        };
        // Serialising a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let mut token = URL_SAFE_NO_PAD.encode(HEADER_JSON);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.jwt.clone();
        mac.update(token.as_bytes());
        let sig = mac.finalize().into_bytes();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Issued {
            token,
            expires_at_unix_s: exp,
        }
    }

    /// Checks `token` at `now_unix_s` and returns its claims.
    pub fn verify_claims(&self, token: &str, now_unix_s: u64) -> Result<Claims, TokenError> {
        if token.len() > TOKEN_CHARS_MAX {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.jwt.clone();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.sub != claims.acc.to_string() {
            return Err(TokenError::Malformed);
        }
        if claims.exp <= now_unix_s {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Checks `token` at `now_unix_s` and returns its account.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<AccountId, TokenError> {
        self.verify_claims(token, now_unix_s)
            .map(|c| AccountId(c.acc))
    }

    /// `base64url(blob) "." base64url(HMAC(blob key, blob))`: tamper-evident, not secret.
    pub fn sign_blob(&self, blob: &[u8]) -> String {
        let mut mac = self.blob.clone();
        mac.update(blob);
        let sig = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(blob),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The blob inside `signed` if its signature is right.
    pub fn verify_blob(&self, signed: &str) -> Option<Vec<u8>> {
        if signed.len() > BLOB_CHARS_MAX {
            return None;
        }
        let (b, s) = signed.split_once('.')?;
        let blob = URL_SAFE_NO_PAD.decode(b).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        let mut mac = self.blob.clone();
        mac.update(&blob);
        mac.verify_slice(&sig).ok()?;
        Some(blob)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(b"token-secret", Duration::from_secs(TOKEN_TTL_DEFAULT_S))
    }

    fn b64json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn issue_and_verify_round_trip_as_a_standard_jwt() {
        let s = signer();
        let issued = s.issue(42, 1_700_000_000);
        assert_eq!(issued.expires_at_unix_s, 1_700_000_900);
        let parts: Vec<&str> = issued.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            b64json(parts[0]),
            serde_json::json!({"alg": "HS256", "typ": "JWT"})
        );
        assert_eq!(
            b64json(parts[1]),
            serde_json::json!({"sub": "42", "acc": 42, "iat": 1_700_000_000u64, "exp": 1_700_000_900u64})
        );
        // The signature is HMAC-SHA256 over "header.payload", as any JWT library computes it.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"token-secret").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
            parts[2]
        );
        assert_eq!(s.verify(&issued.token, 1_700_000_899), Ok(AccountId(42)));
    }

    #[test]
    fn expiry_signature_and_shape() {
        let s = signer();
        let issued = s.issue(7, 1000);
        assert_eq!(s.verify(&issued.token, 1900), Err(TokenError::Expired));
        let other = TokenSigner::new(b"other-secret", Duration::from_secs(900));
        assert_eq!(
            other.verify(&issued.token, 1000),
            Err(TokenError::BadSignature)
        );
        // Change the payload to another account, keep the signature.
        let parts: Vec<&str> = issued.token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"8","acc":8,"iat":1000,"exp":1900}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(s.verify(&forged, 1000), Err(TokenError::BadSignature));
        // alg "none" is refused outright.
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let none = format!("{}.{}.", none_header, parts[1]);
        assert_eq!(s.verify(&none, 1000), Err(TokenError::Malformed));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"a".repeat(TOKEN_CHARS_MAX + 1),
        ] {
            assert_eq!(s.verify(bad, 1000), Err(TokenError::Malformed), "{bad}");
        }
        assert!(!format!("{issued:?} {s:?}").contains(&issued.token));
        assert!(!format!("{s:?}").contains("token-secret"));
    }

    #[test]
    fn blobs_round_trip_and_are_not_tokens() {
        let s = signer();
        let signed = s.sign_blob(b"pass:release=3:account=42");
        assert_eq!(
            s.verify_blob(&signed).unwrap(),
            b"pass:release=3:account=42"
        );
        let other = TokenSigner::new(b"other", Duration::from_secs(1));
        assert_eq!(other.verify_blob(&signed), None);
        let (b, sig) = signed.split_once('.').unwrap();
        let tampered = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(b"pass:release=3:account=43"),
            sig
        );
        assert_eq!(s.verify_blob(&tampered), None);
        assert_eq!(s.verify_blob(b), None);
        assert_eq!(s.verify_blob(&format!("{b}.{sig}.x")), None);
        // A token's signature does not verify as a blob signature, nor the reverse.
        let t = s.issue(1, 0);
        let (hp, tsig) = t.token.rsplit_once('.').unwrap();
        assert_eq!(
            s.verify_blob(&format!("{}.{}", URL_SAFE_NO_PAD.encode(hp), tsig)),
            None
        );
        let blob_sig = s.sign_blob(hp.as_bytes());
        let (_, bsig) = blob_sig.split_once('.').unwrap();
        assert_eq!(
            s.verify(&format!("{hp}.{bsig}"), 0),
            Err(TokenError::BadSignature)
        );
    }
}

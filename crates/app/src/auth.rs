//! Who is asking: citizens carry a JWT from the OTP flow, operators a `kop_` key. Both come
//! as `Authorization: Bearer …` (the scheme matched case-insensitively). Tokens are verified
//! without a database round trip; an operator key unknown to memory is looked up in the store
//! once (keys made by `kataar admin create-key` while serving) and then cached. A key the store
//! does not know is remembered as unknown for [`UNKNOWN_OPERATOR_KEY_TTL_MS`] (at most
//! [`UNKNOWN_OPERATOR_KEYS_MAX`] of them), so repeating a wrong key costs no store round trip;
//! a key revoked with `kataar admin revoke-key` is dropped from memory by a task polling the
//! store every [`OPERATOR_KEY_REFRESH_MS`].

use crate::state::AppState;
use axum::extract::FromRequestParts;
use http::request::Parts;
use kataar_api::ApiError;
use kataar_domain::{AccountId, OperatorKey, Role};
use kataar_identity::{hash_operator_key, looks_like_operator_key};
use kataar_inventory::Scope;

/// How long a key hash the store did not know is answered `401` from memory, in milliseconds
/// (also how long a key created by the CLI may take to work after it was tried unknown).
pub const UNKNOWN_OPERATOR_KEY_TTL_MS: u64 = 2_000;
/// How many unknown key hashes are remembered; past it, expired ones are dropped, and if none
/// has expired a new one is not remembered (it costs a store lookup, as without the cache).
pub const UNKNOWN_OPERATOR_KEYS_MAX: usize = 4_096;
/// How often a running server reads which operator keys were revoked, in milliseconds (a
/// revoked key stops working within this, plus one store round trip).
pub const OPERATOR_KEY_REFRESH_MS: u64 = 2_000;

/// Operator key hashes the store did not know, with when that was learned.
#[derive(Debug, Default)]
pub struct UnknownKeys {
    seen: parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl UnknownKeys {
    /// Whether `hash` was found unknown less than [`UNKNOWN_OPERATOR_KEY_TTL_MS`] ago.
    pub fn contains(&self, hash: &str, now: std::time::Instant) -> bool {
        self.seen
            .lock()
            .get(hash)
            .is_some_and(|at| now.duration_since(*at) < unknown_ttl())
    }

    /// Remembers `hash` as unknown (bounded by [`UNKNOWN_OPERATOR_KEYS_MAX`]).
    pub fn insert(&self, hash: &str, now: std::time::Instant) {
        let mut seen = self.seen.lock();
        if seen.len() >= UNKNOWN_OPERATOR_KEYS_MAX {
            seen.retain(|_, at| now.duration_since(*at) < unknown_ttl());
        }
        if seen.len() < UNKNOWN_OPERATOR_KEYS_MAX {
            seen.insert(hash.to_string(), now);
        }
    }

    /// Hashes remembered right now.
    pub fn len(&self) -> usize {
        self.seen.lock().len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unknown_ttl() -> std::time::Duration {
    std::time::Duration::from_millis(UNKNOWN_OPERATOR_KEY_TTL_MS)
}

/// Drops revoked operator keys from memory every [`OPERATOR_KEY_REFRESH_MS`].
pub fn spawn_key_refresh(state: AppState) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(std::time::Duration::from_millis(OPERATOR_KEY_REFRESH_MS));
        loop {
            tick.tick().await;
            match state.store.revoked_operator_keys().await {
                Ok(ids) if !ids.is_empty() => {
                    let ids: std::collections::HashSet<_> = ids.into_iter().collect();
                    let dropped = state.inv.forget_operator_keys(&ids);
                    if dropped > 0 {
                        tracing::info!(keys = dropped, "revoked operator keys dropped");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading revoked operator keys failed"),
            }
        }
    });
}

/// The bearer credential of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_of(&parts.headers)
}

/// The bearer credential in `headers`, if any (scheme matched case-insensitively).
pub fn bearer_of(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// A citizen token already verified for this request (by the admission layer), so the
/// extractor does not check the signature a second time.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedToken(pub AccountId);

/// Verifies a citizen token (signature and expiry, no store).
pub fn verify_citizen_token(state: &AppState, token: &str) -> Option<AccountId> {
    if looks_like_operator_key(token) {
        return None;
    }
    let now = u64::try_from(state.now().timestamp()).unwrap_or(0);
    state.tokens.verify(token, now).ok().map(|a| AccountId(a.0))
}

/// A signed-in citizen.
#[derive(Clone, Copy, Debug)]
pub struct Citizen {
    /// The account of the token.
    pub account_id: AccountId,
}

impl FromRequestParts<AppState> for Citizen {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let verified = parts.extensions.get::<VerifiedToken>().map(|v| v.0);
        let account_id = match verified {
            Some(a) => a,
            None => bearer(parts)
                .and_then(|token| verify_citizen_token(state, token))
                .ok_or_else(ApiError::unauthenticated)?,
        };
        if state.inv.account(account_id).is_none() {
            return Err(ApiError::unauthenticated());
        }
        Ok(Citizen { account_id })
    }
}

/// A signed-in operator.
#[derive(Clone, Debug)]
pub struct Operator {
    /// The key record (never the clear key).
    pub key: OperatorKey,
}

impl Operator {
    /// What this operator may see and act on.
    pub fn scope(&self) -> Scope {
        match self.key.role {
            Role::Admin => Scope::All,
            Role::Centre => Scope::Centres(self.key.centres.clone()),
        }
    }

    /// Refuses with `403 forbidden` unless the key is an administrator's.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.key.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already authenticated by a layer of this request (the operator idempotency layer).
        if let Some(op) = parts.extensions.get::<Operator>() {
            return Ok(op.clone());
        }
        let key = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        if !looks_like_operator_key(key) {
            return Err(ApiError::unauthenticated());
        }
        let hash = hash_operator_key(key);
        if let Some(k) = state.inv.operator_key(&hash) {
            return Ok(Operator { key: k });
        }
        let now = std::time::Instant::now();
        if state.unknown_operator_keys.contains(&hash, now) {
            return Err(ApiError::unauthenticated());
        }
        match state.store.operator_key_by_hash(&hash).await {
            Ok(Some(k)) => {
                state.inv.cache_operator_key(k.clone());
                Ok(Operator { key: k })
            }
            Ok(None) => {
                state.unknown_operator_keys.insert(&hash, now);
                Err(ApiError::unauthenticated())
            }
            Err(e) => {
                tracing::warn!(error = %e, "operator key lookup failed");
                Err(ApiError::store_unavailable(
                    crate::errors::STORE_RETRY_AFTER_S,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn unknown_keys_expire_and_stay_bounded() {
        let keys = UnknownKeys::default();
        let t0 = Instant::now();
        keys.insert("a", t0);
        assert!(keys.contains("a", t0));
        assert!(!keys.contains("b", t0));
        assert!(!keys.contains("a", t0 + unknown_ttl()));
        for i in 0..UNKNOWN_OPERATOR_KEYS_MAX + 10 {
            keys.insert(&format!("k{i}"), t0);
        }
        assert_eq!(keys.len(), UNKNOWN_OPERATOR_KEYS_MAX);
        // At the bound, expired entries make room for new ones.
        let later = t0 + unknown_ttl() + Duration::from_millis(1);
        keys.insert("fresh", later);
        assert!(keys.contains("fresh", later));
        assert_eq!(keys.len(), 1);
    }
}

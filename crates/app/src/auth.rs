//! Who is asking: citizens carry a JWT from the OTP flow, operators a `kop_` key. Both come
//! as `Authorization: Bearer …` (the scheme matched case-insensitively). Tokens are verified
//! without a database round trip; an operator key unknown to memory is looked up in the store
//! once (keys made by `kataar admin create-key` while serving) and then cached.

use crate::state::AppState;
use axum::extract::FromRequestParts;
use http::request::Parts;
use kataar_api::ApiError;
use kataar_domain::{AccountId, OperatorKey, Role};
use kataar_identity::{hash_operator_key, looks_like_operator_key};
use kataar_inventory::Scope;

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
        let key = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        if !looks_like_operator_key(key) {
            return Err(ApiError::unauthenticated());
        }
        let hash = hash_operator_key(key);
        if let Some(k) = state.inv.operator_key(&hash) {
            return Ok(Operator { key: k });
        }
        match state.store.operator_key_by_hash(&hash).await {
            Ok(Some(k)) => {
                state.inv.cache_operator_key(k.clone());
                Ok(Operator { key: k })
            }
            Ok(None) => Err(ApiError::unauthenticated()),
            Err(e) => {
                tracing::warn!(error = %e, "operator key lookup failed");
                Err(ApiError::store_unavailable(
                    crate::errors::STORE_RETRY_AFTER_S,
                ))
            }
        }
    }
}

//! The admission middleware: every v1 request is classified into a lane and admitted (perhaps
//! after a short bounded wait) or refused at once, before its body is read or any engine lock
//! is taken (see `kataar-admission` for the decision itself).
//!
//! A refusal answers in the contract shape with `Retry-After` and `details.retry_after_s`:
//! `429 too_many_requests` (this client address or account is over its own limit),
//! `503 overloaded` (the lane is full) or `503 store_unavailable` (the store breaker is open:
//! booking-lane writes only; reads keep being served from memory). An admitted request runs its
//! handler holding the [`kataar_admission::Permit`] until the response is produced.
//!
//! `/healthz`, `/readyz` and `/metrics` are not behind this layer (and `classify` would leave
//! them alone anyway).

use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use kataar_admission::{classify, client_addr, client_deadline, Refusal, RefusalKind};
use kataar_api::ApiError;
use std::net::{Ipv4Addr, SocketAddr};

/// The middleware (`axum::middleware::from_fn_with_state(state, admission::admit)`).
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(lane) = classify(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |c| c.0);
    let headers = req.headers();
    let client = client_addr(peer, headers, state.trusted_proxy_header.as_ref());
    let account = citizen_account(&state, headers);
    let deadline = client_deadline(headers);
    match state.admission.admit(lane, client, account, deadline).await {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(refusal) => refusal_error(refusal).into_response(),
    }
}

/// The account of a valid citizen bearer token (signature and expiry only: no store, no engine
/// lock). Absent, operator keys and invalid tokens give `None`; the handler answers `401`.
fn citizen_account(state: &AppState, headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    if token.is_empty() || kataar_identity::looks_like_operator_key(token) {
        return None;
    }
    let now = u64::try_from(state.now().timestamp()).unwrap_or(0);
    state
        .tokens
        .verify(token, now)
        .ok()
        .map(|account| account.0)
}

/// The contract-shaped answer to a refusal (always with `Retry-After`).
pub fn refusal_error(refusal: Refusal) -> ApiError {
    let retry_after_s = refusal.retry_after_s.max(1);
    match refusal.kind {
        RefusalKind::TooManyRequests => ApiError::too_many_requests(retry_after_s),
        RefusalKind::Overloaded => ApiError::overloaded(retry_after_s),
        RefusalKind::StoreUnavailable => ApiError::store_unavailable(retry_after_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_onto_the_catalogue_with_retry_after() {
        for kind in RefusalKind::ALL {
            let e = refusal_error(Refusal {
                kind,
                retry_after_s: 3,
            });
            assert_eq!(e.status.as_u16(), kind.status());
            assert_eq!(e.code, kind.code());
            assert_eq!(e.retry_after_s, Some(3));
            let details = e.details.unwrap_or_default();
            assert_eq!(details.get("retry_after_s"), Some(&serde_json::json!(3)));
        }
    }
}

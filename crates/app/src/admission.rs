//! The admission middleware: every v1 request is classified into a lane and admitted (perhaps
//! after a short bounded wait) or refused at once, before any engine lock is taken (see
//! `kataar-admission` for the decision itself). The body has already been read whole, within
//! `body_read_timeout_s` (`kataar_api::middleware`), so a slow sender never holds an admission
//! place.
//!
//! A refusal answers in the contract shape with `Retry-After` and `details.retry_after_s`:
//! `429 too_many_requests` (this client address or account is over its own rate or its own
//! in-flight cap),
//! `503 overloaded` (the lane is full) or `503 store_unavailable` (the store breaker is open:
//! booking-lane writes only; reads keep being served from memory). An admitted request runs its
//! handler holding the [`kataar_admission::Permit`] until the response is produced (a queue
//! poll held open gives it back before it waits: [`HeldPermit`]).
//!
//! `/healthz`, `/readyz` and `/metrics` are not behind this layer (and `classify` would leave
//! them alone anyway).

use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kataar_admission::{classify, client_addr, client_deadline, Permit, RefusalKind};
use kataar_api::LoadRefusal;
use parking_lot::Mutex;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The middleware (`axum::middleware::from_fn_with_state(state, admission::admit)`).
pub async fn admit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(lane) = classify(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |c| c.0);
    let headers = req.headers();
    let client = client_addr(peer, headers, &state.trusted_proxies);
    // Signature and expiry only (no store, no engine lock); the handler answers 401 for a
    // missing or bad token. A verified token is handed on so it is not checked twice.
    let account =
        crate::auth::bearer_of(headers).and_then(|t| crate::auth::verify_citizen_token(&state, t));
    let deadline = client_deadline(headers);
    if let Some(a) = account {
        req.extensions_mut().insert(crate::auth::VerifiedToken(a));
    }
    match state
        .admission
        .admit(lane, client, account.map(|a| a.0), deadline)
        .await
    {
        Ok(permit) => {
            if is_held_poll(&req) {
                // The handler gives the place back before it holds the poll open.
                req.extensions_mut()
                    .insert(HeldPermit(Arc::new(Mutex::new(Some(permit)))));
                return next.run(req).await;
            }
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(refusal) => {
            if lane == kataar_admission::Lane::Booking
                && refusal.kind != RefusalKind::TooManyRequests
            {
                // The booking lane is full: the waiting rooms admit more slowly for a while.
                state.waitroom.booking_lane_refused();
            }
            if crate::compat::is_v2(req.uri().path()) {
                crate::compat::refusal(refusal.retry_after_s)
            } else {
                LoadRefusal(refusal.kind).to_response(refusal.retry_after_s.max(1))
            }
        }
    }
}

/// The admission place of a queue poll that asks to be held open (`GET /v1/queue/{id}?wait_s=`):
/// it is given back before the poll waits, so a held poll takes no lane or client place (held
/// polls have their own bound, `queue_held_polls_max`, and one per ticket).
#[derive(Clone)]
pub struct HeldPermit(Arc<Mutex<Option<Permit>>>);

impl HeldPermit {
    /// Gives the admission place back.
    pub fn give_back(&self) {
        self.0.lock().take();
    }
}

fn is_held_poll(req: &Request) -> bool {
    req.method() == http::Method::GET
        && req.uri().path().starts_with("/v1/queue/")
        && req.uri().query().is_some_and(|q| q.contains("wait_s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_onto_the_catalogue_with_retry_after() {
        for kind in RefusalKind::ALL {
            let e = LoadRefusal(kind).error(3);
            assert_eq!(e.status.as_u16(), kind.status());
            assert_eq!(e.code, kind.code());
            assert_eq!(e.retry_after_s, Some(3));
            let details = e.details.unwrap_or_default();
            assert_eq!(details.get("retry_after_s"), Some(&serde_json::json!(3)));
        }
    }
}

//! Citizens' bookings: book and reschedule (under an `Idempotency-Key`), list, read, cancel.
//!
//! Booking and rescheduling hash the raw request body for the idempotency protocol, so their
//! body is read by [`JsonWithBytes`], which hands the bytes to the same strict [`ApiJson`]
//! rules (content type, field paths) as every other v1 body.

use crate::auth::Citizen;
use crate::durable;
use crate::errors::OrApi;
use crate::state::AppState;
use crate::v1::render;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use kataar_api::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, OptionalJson};
use kataar_domain::limits::{PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use kataar_domain::{BeneficiaryId, Booking, BookingId, SessionId, SlotId};
use kataar_inventory::{BookRequest, Prepared, Scope};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

/// The booking routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bookings", post(book).get(list))
        .route("/v1/bookings/{booking_id}", get(read))
        .route("/v1/bookings/{booking_id}/cancel", post(cancel))
        .route("/v1/bookings/{booking_id}/reschedule", post(reschedule))
}

/// The bookings part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(book, list, read, cancel, reschedule),
    components(schemas(BookBody, RescheduleBody))
)]
struct BookingsDoc;

/// The OpenAPI paths of the booking routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    BookingsDoc::openapi()
}

/// A strict JSON body (as [`ApiJson`]) together with its raw bytes (for request hashing).
/// The body limit is axum's `DefaultBodyLimit` (`body_bytes_max`; `413 payload_too_large`).
#[derive(Debug)]
pub struct JsonWithBytes<T>(pub T, pub Bytes);

impl<T, S> FromRequest<S> for JsonWithBytes<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let mut rebuilt = Request::new(Body::empty());
        *rebuilt.headers_mut() = parts.headers.clone();
        let whole = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(whole, state)
            .await
            .map_err(|r| ApiError::for_status(r.status()))?;
        *rebuilt.body_mut() = Body::from(bytes.clone());
        let ApiJson(value) = ApiJson::<T>::from_request(rebuilt, state).await?;
        Ok(JsonWithBytes(value, bytes))
    }
}

use crate::v1::dose_param as dose;

/// Renders a prepared booking as the answer to record with its events.
fn rendered(state: &AppState, p: Prepared<Booking>) -> Prepared<Value> {
    let value = render::booking(&state.inv, &p.value);
    Prepared {
        value,
        events: p.events,
        finisher: p.finisher,
    }
}

/// Body of `POST /v1/bookings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    beneficiary_id: u64,
    session_id: u64,
    slot_id: u64,
    dose: u8,
}

/// Books a place (`Idempotency-Key` required).
#[utoipa::path(post, path = "/v1/bookings", tag = "citizens", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header)), request_body = BookBody,
    responses(
        (status = 201, description = "The booking"),
        (status = 403, description = "`pass_invalid`: a wrong, expired or other account's \
            waiting-room pass in `Kataar-Pass`", body = ErrorBody),
        (status = 409, description = "`pool_full`, `already_booked`, `not_eligible`, \
            `dose_sequence`, `dose_interval`, `vaccine_mismatch`, `session_closed`, `not_open`, \
            `queue_required` (a release's session needs a `Kataar-Pass`)",
            body = ErrorBody),
        (status = 422, description = "`idempotency_key_mismatch`", body = ErrorBody),
        (status = 428, description = "`idempotency_key_required`", body = ErrorBody)))]
async fn book(
    State(state): State<AppState>,
    citizen: Citizen,
    headers: HeaderMap,
    JsonWithBytes(body, raw): JsonWithBytes<BookBody>,
) -> Result<Response, ApiError> {
    durable::idempotency_key(&headers)?;
    let account = citizen.account_id;
    let req = BookRequest {
        account_id: account,
        beneficiary_id: BeneficiaryId(body.beneficiary_id),
        session_id: SessionId(body.session_id),
        slot_id: SlotId(body.slot_id),
        dose: dose(body.dose)?,
        now: state.now(),
        today: state.today(),
    };
    let pass = crate::waitroom::pass_of(&headers);
    let admitted = crate::waitroom::Admitted::default();
    let answer = durable::idempotent(
        &state,
        account,
        &headers,
        "POST /v1/bookings",
        &raw,
        StatusCode::CREATED,
        || {
            let gate = admitted.gate(&state, account, pass.as_deref());
            let p = state.inv.book(&req, gate).or_api()?;
            Ok(rendered(&state, p))
        },
    )
    .await;
    if answer
        .as_ref()
        .is_ok_and(|r| r.status() == StatusCode::CREATED)
    {
        admitted.booked();
    }
    crate::metrics::booking_outcome(match &answer {
        Ok(r) if r.headers().contains_key("idempotent-replayed") => "replayed",
        Ok(_) => "created",
        Err(e) => e.code,
    });
    answer
}

/// Body of `POST /v1/bookings/{id}/reschedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    session_id: u64,
    slot_id: u64,
}

/// Moves a booking to another slot as one step (`Idempotency-Key` required).
#[utoipa::path(post, path = "/v1/bookings/{booking_id}/reschedule", tag = "citizens",
    security(("bearer" = [])),
    params(("booking_id" = u64, Path), ("Idempotency-Key" = String, Header)),
    request_body = RescheduleBody,
    responses(
        (status = 200, description = "The booking, moved"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "The booking refusals, `booking_state`", body = ErrorBody)))]
async fn reschedule(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
    headers: HeaderMap,
    JsonWithBytes(body, raw): JsonWithBytes<RescheduleBody>,
) -> Result<Response, ApiError> {
    durable::idempotency_key(&headers)?;
    let account = citizen.account_id;
    let (now, today) = (state.now(), state.today());
    let pass = crate::waitroom::pass_of(&headers);
    let admitted = crate::waitroom::Admitted::default();
    let answer = durable::idempotent(
        &state,
        account,
        &headers,
        &format!("POST /v1/bookings/{id}/reschedule"),
        &raw,
        StatusCode::OK,
        || {
            let gate = admitted.gate(&state, account, pass.as_deref());
            let p = state
                .inv
                .reschedule(
                    BookingId(id),
                    account,
                    SessionId(body.session_id),
                    SlotId(body.slot_id),
                    now,
                    today,
                    gate,
                )
                .or_api()?;
            Ok(rendered(&state, p))
        },
    )
    .await;
    if answer.as_ref().is_ok_and(|r| r.status() == StatusCode::OK) {
        admitted.booked();
    }
    answer
}

/// Query of `GET /v1/bookings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
    after: Option<u64>,
}

/// The account's bookings, oldest first.
#[utoipa::path(get, path = "/v1/bookings", tag = "citizens", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("after" = Option<String>, Query)),
    responses((status = 200, description = "`{bookings: [...], next_after?}`")))]
async fn list(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_LIMIT_DEFAULT);
    if limit == 0 || limit > PAGE_LIMIT_MAX {
        return Err(ApiError::invalid_request(
            "limit",
            format!("limit must be between 1 and {PAGE_LIMIT_MAX}"),
        ));
    }
    let mut all = state.inv.bookings_of(citizen.account_id);
    all.sort_by_key(|b| b.booking_id.0);
    let after = q.after.unwrap_or(0);
    let mut rest = all.into_iter().filter(|b| b.booking_id.0 > after);
    let page: Vec<Booking> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let mut answer = json!({
        "bookings": page.iter().map(|b| render::booking(&state.inv, b)).collect::<Vec<_>>(),
    });
    if more {
        if let (Some(last), Some(m)) = (page.last(), answer.as_object_mut()) {
            m.insert("next_after".into(), json!(last.booking_id.0.to_string()));
        }
    }
    Ok(Json(answer))
}

/// One of the account's bookings.
#[utoipa::path(get, path = "/v1/bookings/{booking_id}", tag = "citizens",
    security(("bearer" = [])), params(("booking_id" = u64, Path)),
    responses(
        (status = 200, description = "The booking"),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
async fn read(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let b = state
        .inv
        .booking(BookingId(id), &Scope::Account(citizen.account_id))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render::booking(&state.inv, &b)))
}

/// Body of `POST /v1/bookings/{id}/cancel` (none, or `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// Cancels a booking (no body, or `{}`).
#[utoipa::path(post, path = "/v1/bookings/{booking_id}/cancel", tag = "citizens",
    security(("bearer" = [])), params(("booking_id" = u64, Path)),
    responses(
        (status = 200, description = "The booking, `cancelled`"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`booking_state`", body = ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
    OptionalJson(NoBody {}): OptionalJson<NoBody>,
) -> Result<Json<Value>, ApiError> {
    let prepared = state
        .inv
        .cancel(
            BookingId(id),
            &Scope::Account(citizen.account_id),
            state.now(),
        )
        .or_api()?;
    let b = durable::commit(&state, prepared).await?;
    Ok(Json(render::booking(&state.inv, &b)))
}

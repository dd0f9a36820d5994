//! Operators' bookings: the day's list of a session, walk-ins, check-in, administer, no-show,
//! and the audit log.
//!
//! Bookings are answered as citizens see them (`render::booking`) plus the beneficiary's
//! `name`, `id_masked` and the booking's `channel`. A walk-in's photo ID is normalised,
//! validated and keyed exactly as a citizen's registration does; the clear number is dropped
//! right after keying and never reaches a log, an error or the audit log.

use super::{commit_answered, page_after, page_limit, text_field, Admin, Audit, NoBody, PageQuery};
use crate::auth::Operator;
use crate::errors::{OrApi, STORE_RETRY_AFTER_S};
use crate::state::AppState;
use crate::v1::render;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Datelike;
use kataar_api::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, OptionalJson};
use kataar_domain::limits::BIRTH_YEAR_MIN;
use kataar_domain::*;
use kataar_identity::{normalize_and_validate, normalize_mobile, IdType};
use kataar_inventory::{Inventory, NewBeneficiary};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// A booking with the beneficiary's name and masked ID (for centre staff).
pub fn staff_booking(inv: &Inventory, b: &Booking) -> Value {
    let mut v = render::booking(inv, b);
    let person = inv.beneficiary_any(b.beneficiary_id);
    if let Some(m) = v.as_object_mut() {
        m.insert("channel".into(), json!(b.channel.as_str()));
        m.insert(
            "name".into(),
            person
                .as_ref()
                .map_or(Value::Null, |p| json!(p.beneficiary.name)),
        );
        m.insert(
            "id_masked".into(),
            person
                .as_ref()
                .map_or(Value::Null, |p| json!(p.beneficiary.id_masked)),
        );
        // For the console's search by the last digits of a mobile.
        let mobile = person
            .as_ref()
            .and_then(|p| inv.account(p.beneficiary.account_id))
            .and_then(|a| a.mobile);
        m.insert(
            "mobile_masked".into(),
            mobile.map_or(Value::Null, |m| {
                json!(format!("XXXXXX{}", m.get(6..).unwrap_or("")))
            }),
        );
    }
    v
}

/// What the audit log keeps of a booking (never the person's ID).
fn audit_booking(b: &Booking) -> Value {
    json!({
        "booking_id": b.booking_id.0,
        "beneficiary_id": b.beneficiary_id.0,
        "session_id": b.session_id.0,
        "slot_id": b.slot_id.0,
        "dose": b.dose.number(),
        "channel": b.channel.as_str(),
        "status": b.status.as_str(),
    })
}

/// Query of `GET /v1/admin/bookings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayListQuery {
    session_id: u64,
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /v1/admin/bookings?session_id=…&limit=&after=`: the session's bookings by token number
/// (`after` is a token number, from `next_after`).
#[utoipa::path(get, path = "/v1/admin/bookings", tag = "operators", security(("operator_key" = [])),
    params(("session_id" = u64, Query), ("limit" = Option<usize>, Query, description = "1..=500, default 50"), ("after" = Option<String>, Query, description = "`next_after` of the previous page")),
    responses((status = 200, description = "The session's bookings by token number, with `name` and `id_masked`"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody)))]
pub async fn day_list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<DayListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = page_after(q.after.as_deref())?;
    let id = SessionId(q.session_id);
    let view = state.inv.session(id).ok_or_else(ApiError::not_found)?;
    if !op.scope().allows_centre(view.session.centre_id) {
        return Err(ApiError::not_found());
    }
    let mut list: Vec<Booking> = state
        .inv
        .session_bookings(id)
        .into_iter()
        .filter(|b| u64::from(b.token_number) > after)
        .take(limit + 1)
        .collect();
    let more = list.len() > limit;
    list.truncate(limit);
    let next_after = match (more, list.last()) {
        (true, Some(b)) => json!(b.token_number.to_string()),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "session_id": id.0,
        "date": view.session.date.format("%Y-%m-%d").to_string(),
        "bookings": list.iter().map(|b| staff_booking(&state.inv, b)).collect::<Vec<_>>(),
        "next_after": next_after,
    })))
}

/// The person of a walk-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkinPerson {
    name: String,
    birth_year: u16,
    #[schema(value_type = String, example = "female")]
    gender: Gender,
    #[schema(value_type = String, example = "aadhaar")]
    id_type: IdType,
    id_number: String,
    #[serde(default)]
    mobile: Option<String>,
}

/// Body of `POST /v1/admin/walkins`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkinBody {
    session_id: u64,
    slot_id: u64,
    dose: u8,
    beneficiary: WalkinPerson,
}

/// `POST /v1/admin/walkins`: registers the person if new (found by photo ID otherwise) and
/// checks them in (walk-in pool first, then online); `201` booking, `checked_in`.
#[utoipa::path(post, path = "/v1/admin/walkins", tag = "operators", security(("operator_key" = [])),
    request_body = WalkinBody,
    responses((status = 201, description = "The booking, `checked_in`"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 409, description = "`pool_full`, `already_booked`, `not_eligible`, `dose_sequence`, `dose_interval`, `vaccine_mismatch`, `session_closed`", body = ErrorBody)))]
pub async fn walkin(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<WalkinBody>,
) -> Result<Response, ApiError> {
    let dose = crate::v1::dose_param(body.dose)?;
    let p = &body.beneficiary;
    let name = text_field("beneficiary.name", &p.name)?;
    let today = state.today();
    let year_max = u16::try_from(today.year()).unwrap_or(u16::MAX);
    if p.birth_year < BIRTH_YEAR_MIN || p.birth_year > year_max {
        return Err(ApiError::invalid_request(
            "beneficiary.birth_year",
            format!("birth_year must be between {BIRTH_YEAR_MIN} and {year_max}"),
        ));
    }
    let id = normalize_and_validate(p.id_type, &p.id_number)
        .map_err(|e| ApiError::invalid_request("beneficiary.id_number", e.to_string()))?;
    let person = NewBeneficiary {
        person_key: PersonKey(state.keyer.key(&id)),
        name,
        birth_year: p.birth_year,
        gender: p.gender,
        id_type: p.id_type.as_str().to_string(),
        id_masked: id.masked(),
    };
    let (new_name, new_id_masked) = (person.name.clone(), person.id_masked.clone());
    drop(id);
    let mobile = match &p.mobile {
        Some(m) => Some(
            normalize_mobile(m)
                .map_err(|e| ApiError::invalid_request("beneficiary.mobile", e.to_string()))?,
        ),
        None => None,
    };
    let prepared = state
        .inv
        .walkin(
            SessionId(body.session_id),
            SlotId(body.slot_id),
            dose,
            person,
            mobile.as_ref().map(|m| m.as_str()),
            &op.scope(),
            state.now(),
            today,
        )
        .or_api()?;
    let object = format!("booking:{}", prepared.value.booking_id);
    let audit = Audit {
        action: "walkin.create",
        object,
        before: Value::Null,
    };
    let inv = state.inv.clone();
    commit_answered(
        &state,
        &op,
        prepared,
        audit,
        audit_booking,
        StatusCode::CREATED,
        |booking| {
            // A person registered by this walk-in is in the engine once committed: name them
            // from the request.
            let mut v = staff_booking(&inv, booking);
            if let Some(m) = v.as_object_mut() {
                if m.get("name").is_none_or(Value::is_null) {
                    m.insert("name".into(), json!(new_name));
                    m.insert("id_masked".into(), json!(new_id_masked));
                    m.insert(
                        "mobile_masked".into(),
                        mobile.as_ref().map_or(Value::Null, |m| {
                            json!(format!("XXXXXX{}", m.as_str().get(6..).unwrap_or("")))
                        }),
                    );
                }
            }
            v
        },
    )
    .await
}

/// `POST /v1/admin/bookings/{id}/check-in` (`booked → checked_in`).
#[utoipa::path(post, path = "/v1/admin/bookings/{booking_id}/check-in", tag = "operators", security(("operator_key" = [])),
    params(("booking_id" = u64, Path)),
    responses((status = 200, description = "The booking, `checked_in`"), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 409, description = "`booking_state`", body = ErrorBody)))]
pub async fn check_in(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
    OptionalJson(_): OptionalJson<NoBody>,
) -> Result<Response, ApiError> {
    let id = BookingId(id);
    let prepared = state.inv.check_in(id, &op.scope(), state.now()).or_api()?;
    let audit = Audit {
        action: "booking.check_in",
        object: format!("booking:{id}"),
        before: json!({"status": BookingStatus::Booked.as_str()}),
    };
    commit_answered(
        &state,
        &op,
        prepared,
        audit,
        audit_booking,
        StatusCode::OK,
        |b| staff_booking(&state.inv, b),
    )
    .await
}

/// Body of `POST /v1/admin/bookings/{id}/administer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministerBody {
    vaccine: String,
    batch: String,
}

/// `POST /v1/admin/bookings/{id}/administer` `{"vaccine", "batch"}`: records the dose.
#[utoipa::path(post, path = "/v1/admin/bookings/{booking_id}/administer", tag = "operators", security(("operator_key" = [])),
    params(("booking_id" = u64, Path)), request_body = AdministerBody,
    responses((status = 200, description = "The booking, `administered`, with the dose record"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 409, description = "`booking_state`, `vaccine_mismatch`", body = ErrorBody)))]
pub async fn administer(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
    ApiJson(body): ApiJson<AdministerBody>,
) -> Result<Response, ApiError> {
    let id = BookingId(id);
    let vaccine = Vaccine::parse(&body.vaccine)
        .ok_or_else(|| ApiError::invalid_request("vaccine", "unknown vaccine"))?;
    let batch = text_field("batch", &body.batch)?;
    let prepared = state
        .inv
        .administer(
            id,
            &op.scope(),
            vaccine,
            batch,
            op.key.operator_id,
            state.now(),
            state.today(),
        )
        .or_api()?;
    let audit = Audit {
        action: "booking.administer",
        object: format!("booking:{id}"),
        before: json!({"status": BookingStatus::CheckedIn.as_str()}),
    };
    commit_answered(
        &state,
        &op,
        prepared,
        audit,
        |(b, d): &(Booking, DoseRecord)| {
            let mut v = audit_booking(b);
            if let Some(m) = v.as_object_mut() {
                m.insert("vaccine".into(), json!(d.vaccine.name()));
                m.insert("batch".into(), json!(d.batch));
                m.insert("date".into(), json!(d.date.format("%Y-%m-%d").to_string()));
            }
            v
        },
        StatusCode::OK,
        |(booking, record)| {
            let mut v = staff_booking(&state.inv, booking);
            if let Some(m) = v.as_object_mut() {
                m.insert(
                    "administered".into(),
                    json!({
                        "vaccine": record.vaccine.name(),
                        "batch": record.batch,
                        "date": record.date.format("%Y-%m-%d").to_string(),
                        "operator_id": record.operator_id.0,
                        "at": render::instant(record.administered_at),
                    }),
                );
            }
            v
        },
    )
    .await
}

/// `POST /v1/admin/bookings/{id}/no-show`: only after the session's day.
#[utoipa::path(post, path = "/v1/admin/bookings/{booking_id}/no-show", tag = "operators", security(("operator_key" = [])),
    params(("booking_id" = u64, Path)),
    responses((status = 200, description = "The booking, `no_show`"), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody), (status = 409, description = "`booking_state` (on or before the session's day)", body = ErrorBody)))]
pub async fn no_show(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
    OptionalJson(_): OptionalJson<NoBody>,
) -> Result<Response, ApiError> {
    let id = BookingId(id);
    let before = state.inv.booking(id, &op.scope());
    let prepared = state
        .inv
        .no_show(id, &op.scope(), state.now(), state.today())
        .or_api()?;
    let audit = Audit {
        action: "booking.no_show",
        object: format!("booking:{id}"),
        before: json!({"status": before.map(|b| b.status.as_str())}),
    };
    commit_answered(
        &state,
        &op,
        prepared,
        audit,
        audit_booking,
        StatusCode::OK,
        |b| staff_booking(&state.inv, b),
    )
    .await
}

/// `GET /v1/admin/audit?after=&limit=` (admin): the log from the store, oldest first (newest
/// last); `next_after` is the last record's id while a full page came back, else `null`.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "operators", security(("operator_key" = [])),
    params(("limit" = Option<usize>, Query, description = "1..=500, default 50"), ("after" = Option<String>, Query, description = "`next_after` of the previous page")),
    responses((status = 200, description = "`{\"audit\": [record], \"next_after\"}`, newest last"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`forbidden`: administrators only", body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = page_after(q.after.as_deref())?;
    let records = state.store.audit_after(after, limit).await.map_err(|e| {
        tracing::warn!(error = %e, "reading the audit log failed");
        ApiError::store_unavailable(STORE_RETRY_AFTER_S)
    })?;
    let next_after = match records.last() {
        Some(r) if records.len() >= limit => json!(r.audit_id.to_string()),
        _ => Value::Null,
    };
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "audit_id": r.audit_id,
                "at": render::instant(r.at),
                "operator_id": r.operator_id.0,
                "action": r.action,
                "request_id": r.request_id,
                "object": r.object,
                "before": r.before,
                "after": r.after,
            })
        })
        .collect();
    Ok(Json(json!({ "audit": list, "next_after": next_after })))
}

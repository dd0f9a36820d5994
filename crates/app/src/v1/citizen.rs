//! The citizen routes of v1: OTP login, the account, beneficiaries, and (in
//! [`bookings`], `citizen_bookings.rs`) bookings.
//!
//! No handler here logs or returns a mobile in clear, an OTP, a token (other than the one
//! issued to its owner) or a photo-ID number: refusals name the field and the rule only.

use crate::auth::Citizen;
use crate::durable;
use crate::errors::OrApi;
use crate::state::AppState;
use crate::v1::render;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Utc};
use http::StatusCode;
use kataar_api::{ApiError, ApiJson, ApiPath};
use kataar_domain::limits::{BIRTH_YEAR_MIN, TEXT_CHARS_MAX};
use kataar_domain::rules;
use kataar_domain::{AccountId, BeneficiaryId, Gender};
use kataar_identity::{normalize_and_validate, normalize_mobile, IdType, OtpError, OtpMessage};
use kataar_inventory::{AccountLookup, BeneficiaryView, NewBeneficiary};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

#[path = "citizen_bookings.rs"]
pub mod bookings;

/// The citizen routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/otp", post(otp_request))
        .route("/v1/auth/otp/verify", post(otp_verify))
        .route("/v1/me", get(me))
        .route(
            "/v1/beneficiaries",
            post(add_beneficiary).get(list_beneficiaries),
        )
        .route(
            "/v1/beneficiaries/{beneficiary_id}",
            get(get_beneficiary).delete(remove_beneficiary),
        )
        .merge(bookings::routes())
}

/// Maps an OTP refusal to its catalogue error.
pub fn otp_error(e: OtpError) -> ApiError {
    match e {
        OtpError::ResendTooSoon { retry_after_s } => ApiError::otp_resend_too_soon(retry_after_s),
        OtpError::LimitReached { retry_after_s } => ApiError::otp_limit_reached(retry_after_s),
        OtpError::Busy { retry_after_s } => ApiError::overloaded(retry_after_s),
        OtpError::Invalid { attempts_left } => ApiError::otp_invalid(u32::from(attempts_left)),
        OtpError::Expired => ApiError::otp_expired(),
    }
}

/// Body of `POST /v1/auth/otp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpRequestBody {
    mobile: String,
}

async fn otp_request(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OtpRequestBody>,
) -> Result<Response, ApiError> {
    let mobile = normalize_mobile(&body.mobile).map_err(|_| {
        ApiError::invalid_request(
            "mobile",
            "mobile must be a 10-digit Indian mobile number starting with 6-9",
        )
    })?;
    let issued = state
        .otp
        .request(&mobile, Instant::now())
        .map_err(otp_error)?;
    let answer = json!({
        "txn_id": issued.txn_id,
        "expires_in_s": issued.expires_in_s,
        "resend_after_s": issued.resend_after_s,
    });
    let queued = state.otp_sender.dispatch(OtpMessage {
        mobile,
        otp: issued.otp,
        txn_id: issued.txn_id,
        sent_at: state.now(),
    });
    if !queued {
        tracing::warn!("OTP delivery queue full; this OTP was not sent");
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Body of `POST /v1/auth/otp/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpVerifyBody {
    txn_id: String,
    otp: String,
}

fn unix_s(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

async fn otp_verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OtpVerifyBody>,
) -> Result<Json<Value>, ApiError> {
    let verified = state
        .otp
        .verify(&body.txn_id, &body.otp, Instant::now())
        .map_err(otp_error)?;
    let now = state.now();
    let account = match state
        .inv
        .ensure_account(Some(verified.mobile.as_str()), now)
    {
        AccountLookup::Existing(a) => a,
        AccountLookup::New(prepared) => durable::commit(&state, prepared).await?,
    };
    let issued = state.tokens.issue(account.account_id.0, unix_s(now));
    let expires_at = i64::try_from(issued.expires_at_unix_s)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .unwrap_or(now);
    Ok(Json(json!({
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": render::instant(expires_at),
        "account_id": account.account_id.0,
    })))
}

async fn me(State(state): State<AppState>, citizen: Citizen) -> Result<Json<Value>, ApiError> {
    let account = state
        .inv
        .account(citizen.account_id)
        .ok_or_else(ApiError::unauthenticated)?;
    let masked = account
        .mobile
        .as_deref()
        .and_then(|m| normalize_mobile(m).ok())
        .map(|m| m.masked());
    Ok(Json(json!({
        "account_id": account.account_id.0,
        "mobile_masked": masked,
        "beneficiaries": beneficiaries_json(&state, citizen.account_id),
    })))
}

fn beneficiaries_json(state: &AppState, account: AccountId) -> Vec<Value> {
    state
        .inv
        .beneficiaries(account)
        .iter()
        .map(|v| render::beneficiary(&state.inv, v))
        .collect()
}

/// A free-text field: trimmed, 1..=[`TEXT_CHARS_MAX`] characters.
pub fn text_field(field: &'static str, raw: &str) -> Result<String, ApiError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > TEXT_CHARS_MAX {
        return Err(ApiError::invalid_request(
            field,
            format!("{field} must be 1-{TEXT_CHARS_MAX} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(text.to_string())
}

/// Body of `POST /v1/beneficiaries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBeneficiaryBody {
    name: String,
    birth_year: u32,
    gender: String,
    id_type: String,
    id_number: String,
}

async fn add_beneficiary(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiJson(body): ApiJson<NewBeneficiaryBody>,
) -> Result<Response, ApiError> {
    let name = text_field("name", &body.name)?;
    let year_max = u32::try_from(state.today().year()).unwrap_or(u32::MAX);
    let birth_year = u16::try_from(body.birth_year)
        .ok()
        .filter(|y| *y >= BIRTH_YEAR_MIN && u32::from(*y) <= year_max)
        .ok_or_else(|| {
            ApiError::invalid_request(
                "birth_year",
                format!("birth_year must be between {BIRTH_YEAR_MIN} and {year_max}"),
            )
        })?;
    let gender = Gender::parse(&body.gender).ok_or_else(|| {
        ApiError::invalid_request("gender", "gender must be male, female or other")
    })?;
    let id_type = IdType::parse(&body.id_type).ok_or_else(|| {
        ApiError::invalid_request(
            "id_type",
            "id_type must be one of aadhaar, pan, passport, driving_licence, voter_id, \
             ration_card, npr_smart_card",
        )
    })?;
    // The refusal names the type and the rule, never the number.
    let id = normalize_and_validate(id_type, &body.id_number)
        .map_err(|e| ApiError::invalid_request("id_number", e.to_string()))?;
    let new = NewBeneficiary {
        person_key: kataar_domain::PersonKey(state.keyer.key(&id)),
        name,
        birth_year,
        gender,
        id_type: id_type.as_str().to_string(),
        id_masked: id.masked(),
    };
    drop(id);
    let now = state.now();
    let prepared = state
        .inv
        .add_beneficiary(citizen.account_id, new, now)
        .or_api()?;
    let added = durable::commit(&state, prepared).await?;
    let view = state
        .inv
        .beneficiary(citizen.account_id, added.beneficiary_id)
        .unwrap_or_else(|| BeneficiaryView {
            next: rules::next_dose(&[]),
            beneficiary: added,
            doses: Vec::new(),
            bookings: Vec::new(),
        });
    Ok((
        StatusCode::CREATED,
        Json(render::beneficiary(&state.inv, &view)),
    )
        .into_response())
}

async fn list_beneficiaries(State(state): State<AppState>, citizen: Citizen) -> Json<Value> {
    Json(json!({ "beneficiaries": beneficiaries_json(&state, citizen.account_id) }))
}

async fn get_beneficiary(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .inv
        .beneficiary(citizen.account_id, BeneficiaryId(id))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(render::beneficiary(&state.inv, &view)))
}

async fn remove_beneficiary(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    let prepared = state
        .inv
        .remove_beneficiary(citizen.account_id, BeneficiaryId(id))
        .or_api()?;
    durable::commit(&state, prepared).await?;
    Ok(StatusCode::NO_CONTENT)
}

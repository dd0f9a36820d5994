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
use kataar_api::{ApiError, ApiJson, ApiPath, ErrorBody};
use kataar_domain::limits::BIRTH_YEAR_MIN;
use kataar_domain::rules;
use kataar_domain::{AccountId, BeneficiaryId, Gender};
use kataar_identity::{
    normalize_and_validate, normalize_mobile, IdType, OtpClaim, OtpError, OtpMessage,
};
use kataar_inventory::{AccountLookup, BeneficiaryView, NewBeneficiary};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;
use utoipa::{OpenApi, ToSchema};

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

/// The citizens' part of the OpenAPI document (for `OpenApi::merge`; the schemas of the
/// answers are described in words, as in `api.md`).
#[derive(OpenApi)]
#[openapi(
    paths(
        otp_request,
        otp_verify,
        me,
        add_beneficiary,
        list_beneficiaries,
        get_beneficiary,
        remove_beneficiary
    ),
    components(schemas(OtpRequestBody, OtpVerifyBody, NewBeneficiaryBody, ErrorBody)),
    tags((name = "citizens", description = "OTP login, beneficiaries, bookings")),
    modifiers(&BearerScheme)
)]
struct CitizenDoc;

/// Declares the `bearer` security scheme the citizen paths name.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The OpenAPI paths of every citizen route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = CitizenDoc::openapi();
    doc.merge(bookings::openapi());
    doc
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpRequestBody {
    mobile: String,
}

/// Sends an OTP to a mobile.
#[utoipa::path(post, path = "/v1/auth/otp", tag = "citizens", request_body = OtpRequestBody,
    responses(
        (status = 202, description = "`{txn_id, expires_in_s, resend_after_s}`"),
        (status = 400, description = "`invalid_request` (`mobile`)", body = ErrorBody),
        (status = 429, description = "`otp_resend_too_soon`, `otp_limit_reached`", body = ErrorBody),
        (status = 503, description = "`overloaded`: the OTP could not be queued for delivery; none was issued", body = ErrorBody)))]
async fn otp_request(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OtpRequestBody>,
) -> Result<Response, ApiError> {
    let sent = send_otp(&state, &body.mobile)?;
    let answer = json!({
        "txn_id": sent.txn_id,
        "expires_in_s": sent.expires_in_s,
        "resend_after_s": sent.resend_after_s,
    });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// An OTP on its way: what the client is told.
#[derive(Debug)]
pub struct OtpSent {
    /// The transaction id (a UUID).
    pub txn_id: String,
    /// Seconds the OTP stays valid.
    pub expires_in_s: u32,
    /// Seconds before another OTP may be asked for.
    pub resend_after_s: u32,
}

/// Normalises a mobile, issues its OTP and hands it to the sender (never on the request path):
/// the one OTP request for every API.
pub fn send_otp(state: &AppState, raw_mobile: &str) -> Result<OtpSent, ApiError> {
    let mobile = normalize_mobile(raw_mobile).map_err(|_| {
        ApiError::invalid_request(
            "mobile",
            "mobile must be a 10-digit Indian mobile number starting with 6-9",
        )
    })?;
    // The OTP is issued only if its delivery is queued: a full queue answers 503 and counts
    // neither against the mobile's caps nor its resend cooldown.
    let sent_at = state.now();
    let issued = state
        .otp
        .request_then(&mobile, Instant::now(), |issued| {
            state.otp_sender.dispatch(OtpMessage {
                mobile: mobile.clone(),
                otp: issued.otp.clone(),
                txn_id: issued.txn_id.clone(),
                sent_at,
            })
        })
        .map_err(otp_error)?;
    Ok(OtpSent {
        txn_id: issued.txn_id,
        expires_in_s: issued.expires_in_s,
        resend_after_s: issued.resend_after_s,
    })
}

/// Body of `POST /v1/auth/otp/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerifyBody {
    txn_id: String,
    otp: String,
}

fn unix_s(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// Exchanges a transaction's OTP for a bearer token (creating the account on first login).
#[utoipa::path(post, path = "/v1/auth/otp/verify", tag = "citizens",
    request_body = OtpVerifyBody,
    responses(
        (status = 200, description = "`{token, token_type: Bearer, expires_at, account_id}`"),
        (status = 401, description = "`otp_invalid` (`details.attempts_left`), `otp_expired`",
            body = ErrorBody)))]
async fn otp_verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OtpVerifyBody>,
) -> Result<Json<Value>, ApiError> {
    let claim = state
        .otp
        .claim(&body.txn_id, &body.otp, Instant::now())
        .map_err(otp_error)?;
    let signed = sign_in(&state, claim).await?;
    Ok(Json(json!({
        "token": signed.token,
        "token_type": "Bearer",
        "expires_at": render::instant(signed.expires_at),
        "account_id": signed.account_id.0,
    })))
}

/// A citizen signed in.
#[derive(Debug)]
pub struct SignedIn {
    /// The bearer token (a JWT).
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The account.
    pub account_id: AccountId,
    /// Whether the account was created by this sign-in.
    pub new_account: bool,
}

/// Finds or creates (durably) the account of a mobile proven by OTP and issues its token:
/// the one sign-in for every API. The OTP's transaction is consumed only once the account is
/// durable: if the commit fails, the claim is handed back and the same OTP can be retried.
pub async fn sign_in(state: &AppState, claim: OtpClaim<'_>) -> Result<SignedIn, ApiError> {
    let now = state.now();
    let (account, new_account) = match state.inv.ensure_account(Some(claim.mobile().as_str()), now)
    {
        AccountLookup::Existing(a) => (a, false),
        AccountLookup::New(prepared) => (durable::commit(state, prepared).await?, true),
    };
    claim.consume();
    let issued = state.tokens.issue(account.account_id.0, unix_s(now));
    let expires_at = i64::try_from(issued.expires_at_unix_s)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .unwrap_or(now);
    Ok(SignedIn {
        token: issued.token,
        expires_at,
        account_id: account.account_id,
        new_account,
    })
}

/// The signed-in account.
#[utoipa::path(get, path = "/v1/me", tag = "citizens", security(("bearer" = [])),
    responses(
        (status = 200, description = "`{account_id, mobile_masked, beneficiaries}`"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody)))]
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

pub use super::text_field;

/// Body of `POST /v1/beneficiaries`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBeneficiaryBody {
    name: String,
    birth_year: u32,
    gender: String,
    id_type: String,
    id_number: String,
}

/// Adds a beneficiary (at most four per account).
#[utoipa::path(post, path = "/v1/beneficiaries", tag = "citizens", security(("bearer" = [])),
    request_body = NewBeneficiaryBody,
    responses(
        (status = 201, description = "The beneficiary"),
        (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody),
        (status = 409, description = "`id_already_registered`, `beneficiary_exists`, \
            `beneficiary_limit`", body = ErrorBody)))]
async fn add_beneficiary(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiJson(body): ApiJson<NewBeneficiaryBody>,
) -> Result<Response, ApiError> {
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
    let input = BeneficiaryInput {
        name: &body.name,
        birth_year: body.birth_year,
        gender,
        id_type,
        id_number: &body.id_number,
    };
    let view = register_beneficiary(&state, citizen.account_id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(render::beneficiary(&state.inv, &view)),
    )
        .into_response())
}

/// A new beneficiary as a client gave it, before validation (v1 and the CoWIN layer).
pub struct BeneficiaryInput<'a> {
    /// Name (trimmed, bounded by [`text_field`]).
    pub name: &'a str,
    /// Birth year (checked against `BIRTH_YEAR_MIN..=this year`).
    pub birth_year: u32,
    /// Gender.
    pub gender: Gender,
    /// Photo-ID type.
    pub id_type: IdType,
    /// Photo-ID number as typed (normalised, validated and keyed here; never kept).
    pub id_number: &'a str,
}

/// Validates a new beneficiary, adds it to `account` and makes it durable: the one place the
/// beneficiary rules (name, birth year, photo-ID shape and key) are applied for every API.
pub async fn register_beneficiary(
    state: &AppState,
    account: AccountId,
    input: BeneficiaryInput<'_>,
) -> Result<BeneficiaryView, ApiError> {
    let name = text_field("name", input.name)?;
    let year_max = u32::try_from(state.today().year()).unwrap_or(u32::MAX);
    let birth_year = u16::try_from(input.birth_year)
        .ok()
        .filter(|y| *y >= BIRTH_YEAR_MIN && u32::from(*y) <= year_max)
        .ok_or_else(|| {
            ApiError::invalid_request(
                "birth_year",
                format!("birth_year must be between {BIRTH_YEAR_MIN} and {year_max}"),
            )
        })?;
    let id_type = input.id_type;
    // The refusal names the type and the rule, never the number.
    let id = normalize_and_validate(id_type, input.id_number)
        .map_err(|e| ApiError::invalid_request("id_number", e.to_string()))?;
    let new = NewBeneficiary {
        person_key: kataar_domain::PersonKey(state.keyer.key(&id)),
        name,
        birth_year,
        gender: input.gender,
        id_type: id_type.as_str().to_string(),
        id_masked: id.masked(),
    };
    drop(id);
    let now = state.now();
    let prepared = state.inv.add_beneficiary(account, new, now).or_api()?;
    let added = durable::commit(state, prepared).await?;
    Ok(state
        .inv
        .beneficiary(account, added.beneficiary_id)
        .unwrap_or_else(|| BeneficiaryView {
            next: rules::next_dose(&[]),
            beneficiary: added,
            doses: Vec::new(),
            bookings: Vec::new(),
        }))
}

/// The account's beneficiaries.
#[utoipa::path(get, path = "/v1/beneficiaries", tag = "citizens", security(("bearer" = [])),
    responses((status = 200, description = "`{beneficiaries: [...]}`")))]
async fn list_beneficiaries(State(state): State<AppState>, citizen: Citizen) -> Json<Value> {
    Json(json!({ "beneficiaries": beneficiaries_json(&state, citizen.account_id) }))
}

/// One of the account's beneficiaries.
#[utoipa::path(get, path = "/v1/beneficiaries/{beneficiary_id}", tag = "citizens",
    security(("bearer" = [])), params(("beneficiary_id" = u64, Path)),
    responses(
        (status = 200, description = "The beneficiary"),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
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

/// Removes a beneficiary with no booking and no dose.
#[utoipa::path(delete, path = "/v1/beneficiaries/{beneficiary_id}", tag = "citizens",
    security(("bearer" = [])), params(("beneficiary_id" = u64, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`beneficiary_in_use`", body = ErrorBody)))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_citizen_route() {
        let doc = openapi();
        let json = doc.to_json().unwrap_or_default();
        for path in [
            "/v1/auth/otp",
            "/v1/auth/otp/verify",
            "/v1/me",
            "/v1/beneficiaries",
            "/v1/beneficiaries/{beneficiary_id}",
            "/v1/bookings",
            "/v1/bookings/{booking_id}",
            "/v1/bookings/{booking_id}/cancel",
            "/v1/bookings/{booking_id}/reschedule",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
        assert!(json.contains("BookBody"));
        let schemes = doc
            .components
            .map(|c| c.security_schemes)
            .unwrap_or_default();
        assert!(schemes.contains_key("bearer"));
        assert!(!doc
            .paths
            .paths
            .contains_key("/v1/bookings/{booking_id}/slip"));
    }

    #[test]
    fn otp_refusals_map_to_the_catalogue() {
        let cases = [
            (
                OtpError::ResendTooSoon { retry_after_s: 7 },
                429,
                "otp_resend_too_soon",
            ),
            (
                OtpError::LimitReached { retry_after_s: 60 },
                429,
                "otp_limit_reached",
            ),
            (OtpError::Busy { retry_after_s: 3 }, 503, "overloaded"),
            (OtpError::Invalid { attempts_left: 1 }, 401, "otp_invalid"),
            (OtpError::Expired, 401, "otp_expired"),
        ];
        for (e, status, code) in cases {
            let api = otp_error(e);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
        }
        assert_eq!(
            otp_error(OtpError::Busy { retry_after_s: 3 }).retry_after_s,
            Some(3)
        );
    }

    #[test]
    fn text_fields_are_trimmed_and_bounded() {
        assert_eq!(text_field("name", "  Asha  ").ok().as_deref(), Some("Asha"));
        assert!(text_field("name", "   ").is_err());
        assert!(text_field("name", &"n".repeat(kataar_domain::limits::TEXT_CHARS_MAX)).is_ok());
        assert!(text_field(
            "name",
            &"n".repeat(kataar_domain::limits::TEXT_CHARS_MAX + 1)
        )
        .is_err());
        assert!(text_field("name", "a\u{0}b").is_err());
    }
}

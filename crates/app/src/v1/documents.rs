//! Slips and certificates: `GET /v1/bookings/{id}/slip`, `GET /v1/beneficiaries/{id}/certificate`
//! (citizens, own objects only), and the public `GET /v1/certificates/keys` and
//! `POST /v1/certificates/verify`.
//!
//! The PDFs come from `kataar-documents` (the CoWIN v2 routes call the same renderer), in the
//! language `Accept-Language` asks for, with `Content-Type` exactly `application/pdf`. They are
//! rendered on the blocking pool: a page takes milliseconds of CPU (shaping, font subsetting)
//! that must not stall the connections sharing this worker thread. A certificate is made only
//! from doses recorded as administered, so a dose that was never given cannot be certified.

use crate::auth::Citizen;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header, HeaderValue, StatusCode};
use kataar_api::{current_language, ApiError, ApiJson, ApiPath, ErrorBody, Language};
use kataar_documents::sign::PAYLOAD_CHARS_MAX;
use kataar_documents::{
    render_certificate, render_slip, verify, CertificateRecord, CertificateSigner, DoseEntry, Lang,
    SignError, SlipData, SlipPerson,
};
use kataar_domain::{BeneficiaryId, BookingId, BookingStatus};
use kataar_inventory::Scope;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{OpenApi, ToSchema};

/// The document routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/bookings/{booking_id}/slip", get(slip))
        .route(
            "/v1/beneficiaries/{beneficiary_id}/certificate",
            get(certificate),
        )
        .route("/v1/certificates/keys", get(keys))
        .route("/v1/certificates/verify", post(verify_payload))
}

/// The documents part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(slip, certificate, keys, verify_payload),
    components(schemas(VerifyBody)),
    tags((name = "documents", description = "Appointment slips, signed certificates and their verification"))
)]
struct DocumentsDoc;

/// The OpenAPI paths of the document routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    DocumentsDoc::openapi()
}

/// The documents' language for the current request.
fn lang() -> Lang {
    match current_language() {
        Language::Hi => Lang::Hi,
        Language::En => Lang::En,
    }
}

/// A PDF answer: `Content-Type` exactly `application/pdf`, private, not stored by caches.
pub fn pdf_response(bytes: Vec<u8>, filename: &str, lang: Lang) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(match lang {
            Lang::Hi => "hi",
            Lang::En => "en",
        }),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Runs a renderer on the blocking pool; a failure is `500 internal` (logged, without data).
async fn render_blocking<F>(render: F) -> Result<Vec<u8>, ApiError>
where
    F: FnOnce() -> Result<Vec<u8>, kataar_documents::DocumentError> + Send + 'static,
{
    match tokio::task::spawn_blocking(render).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "rendering a document failed");
            Err(ApiError::internal())
        }
        Err(_) => Err(ApiError::internal()),
    }
}

/// The slip's facts for one of the account's bookings (`None` if it is not theirs).
pub fn slip_data(state: &AppState, scope: &Scope, id: BookingId) -> Option<SlipData> {
    let b = state.inv.booking(id, scope)?;
    let (session, slot) = state.inv.session_slot(b.session_id, b.slot_id)?;
    let centre = state.inv.centre(b.centre_id)?;
    let person = state
        .inv
        .beneficiary(b.account_id, b.beneficiary_id)
        .map(|v| v.beneficiary)?;
    Some(SlipData {
        reference: b.booking_id.0.to_string(),
        centre_name: centre.name,
        centre_address: format!("{}, {}", centre.address, centre.pincode),
        date: session.date.format("%Y-%m-%d").to_string(),
        slot: format!("{}-{}", slot.start, slot.end),
        vaccine: session.vaccine.name().to_string(),
        dose: b.dose.number(),
        people: vec![SlipPerson {
            name: person.name,
            id_masked: person.id_masked,
            token_number: b.token_number,
            booking_ref: b.booking_id.0.to_string(),
        }],
    })
    .filter(|_| b.status != BookingStatus::Cancelled)
}

/// The appointment slip of one of the account's bookings.
#[utoipa::path(get, path = "/v1/bookings/{booking_id}/slip", tag = "documents",
    security(("bearer" = [])),
    params(("booking_id" = u64, Path), ("Accept-Language" = Option<String>, Header,
        description = "`hi` for Hindi, else English")),
    responses(
        (status = 200, description = "The slip (`application/pdf`): token number, centre, \
            date, slot, vaccine, dose, name and masked ID", content_type = "application/pdf"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`not_found` (not this account's booking, or cancelled)",
            body = ErrorBody)))]
async fn slip(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
) -> Result<Response, ApiError> {
    let data = slip_data(&state, &Scope::Account(citizen.account_id), BookingId(id))
        .ok_or_else(ApiError::not_found)?;
    let lang = lang();
    let bytes = render_blocking(move || render_slip(&data, lang)).await?;
    Ok(pdf_response(bytes, &format!("slip-{id}.pdf"), lang))
}

/// The certificate record of one of the account's beneficiaries: `Err(not_found)` if it is not
/// theirs, `Err(not_vaccinated)` with no administered dose.
pub fn certificate_record(
    state: &AppState,
    account: kataar_domain::AccountId,
    id: BeneficiaryId,
) -> Result<CertificateRecord, ApiError> {
    let view = state
        .inv
        .beneficiary(account, id)
        .ok_or_else(ApiError::not_found)?;
    if view.doses.is_empty() {
        return Err(ApiError::not_vaccinated());
    }
    let mut doses: Vec<DoseEntry> = view
        .doses
        .iter()
        .map(|d| DoseEntry {
            dose: d.dose.number(),
            vaccine: d.vaccine.name().to_string(),
            batch: d.batch.clone(),
            date: d.date.format("%Y-%m-%d").to_string(),
            centre_id: d.centre_id.0,
            centre_name: state
                .inv
                .centre(d.centre_id)
                .map(|c| c.name)
                .unwrap_or_default(),
        })
        .collect();
    doses.sort_by_key(|d| d.dose);
    let b = view.beneficiary;
    Ok(CertificateRecord::new(
        b.beneficiary_id.0,
        b.name,
        b.birth_year,
        b.id_masked,
        doses,
    ))
}

/// The signed vaccination certificate of one of the account's beneficiaries.
#[utoipa::path(get, path = "/v1/beneficiaries/{beneficiary_id}/certificate", tag = "documents",
    security(("bearer" = [])),
    params(("beneficiary_id" = u64, Path), ("Accept-Language" = Option<String>, Header,
        description = "`hi` for Hindi, else English")),
    responses(
        (status = 200, description = "The certificate (`application/pdf`): name, birth year, \
            masked ID, every administered dose (vaccine, batch, date, centre), fully vaccinated \
            after dose 2, and a QR code with the signed payload (also in the PDF's `Keywords`)",
            content_type = "application/pdf"),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_vaccinated`: no administered dose", body = ErrorBody)))]
async fn certificate(
    State(state): State<AppState>,
    citizen: Citizen,
    ApiPath(id): ApiPath<u64>,
) -> Result<Response, ApiError> {
    let record = certificate_record(&state, citizen.account_id, BeneficiaryId(id))?;
    let lang = lang();
    let signer: CertificateSigner = (*state.certificates).clone();
    let bytes = render_blocking(move || render_certificate(&record, &signer, lang)).await?;
    Ok(pdf_response(bytes, &format!("certificate-{id}.pdf"), lang))
}

/// The keys certificates are verified with.
#[utoipa::path(get, path = "/v1/certificates/keys", tag = "documents",
    responses((status = 200, description = "`{keys: [{key_id, algorithm: \"Ed25519\", \
        public_key}]}`; `public_key` is the 32-byte Ed25519 key in base64url without padding, \
        `key_id` the first 8 bytes of its SHA-256 in hex")))]
async fn keys(State(state): State<AppState>) -> Response {
    let public = state.certificates.public_key();
    let mut response = Json(json!({
        "keys": [{
            "key_id": public.key_id,
            "algorithm": "Ed25519",
            "public_key": public.encoded(),
        }]
    }))
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Body of `POST /v1/certificates/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The payload from a certificate's QR code (`KC1.…`).
    payload: String,
}

fn reason(e: &SignError) -> &'static str {
    match e {
        SignError::UnknownKey => "unknown_key",
        SignError::BadSignature => "bad_signature",
        SignError::BadRecord => "bad_record",
        _ => "malformed",
    }
}

/// Whether a certificate payload is genuine, and what it certifies.
#[utoipa::path(post, path = "/v1/certificates/verify", tag = "documents",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "`{valid: true, key_id, beneficiary: {name, birth_year, \
            id_masked}, doses: [{dose, vaccine, batch, date, centre_id, centre_name}], \
            fully_vaccinated}`, or `{valid: false, reason: malformed|unknown_key|bad_signature|\
            bad_record, beneficiary: null, doses: [], fully_vaccinated: false}`"),
        (status = 400, description = "`invalid_request` (`payload` missing, not a string, or \
            over 4096 characters)", body = ErrorBody)))]
async fn verify_payload(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<Value>, ApiError> {
    if body.payload.chars().count() > PAYLOAD_CHARS_MAX {
        return Err(ApiError::invalid_request(
            "payload",
            format!("payload must be at most {PAYLOAD_CHARS_MAX} characters"),
        ));
    }
    Ok(Json(
        match verify(&body.payload, &[state.certificates.public_key()]) {
            Ok(v) => verified_json(&v),
            Err(e) => json!({
                "valid": false,
                "reason": reason(&e),
                "beneficiary": null,
                "doses": [],
                "fully_vaccinated": false,
            }),
        },
    ))
}

/// The answer for a payload that verified (also printed by `kataar verify-certificate`).
pub fn verified_json(v: &kataar_documents::Verified) -> Value {
    let r = &v.record;
    json!({
        "valid": true,
        "key_id": v.key_id,
        "beneficiary": {
            "name": r.name,
            "birth_year": r.birth_year,
            "id_masked": r.id_masked,
        },
        "doses": r.doses.iter().map(|d| json!({
            "dose": d.dose,
            "vaccine": d.vaccine,
            "batch": d.batch,
            "date": d.date,
            "centre_id": d.centre_id,
            "centre_name": d.centre_name,
        })).collect::<Vec<_>>(),
        "fully_vaccinated": r.fully_vaccinated,
    })
}

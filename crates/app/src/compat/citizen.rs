//! The v2 citizen paths: the three OTP pairs, beneficiary registration, the beneficiaries
//! list, the captcha, and schedule / reschedule / cancel. Every rule is v1's: these handlers
//! translate the request, call the same engine operation through the same durable-commit
//! path, and translate the answer.

use super::wire::{self, v2, V2Body, V2Error};
use crate::auth::Citizen;
use crate::durable;
use crate::errors::OrApi;
use crate::state::AppState;
use crate::v1::citizen::{register_beneficiary, send_otp, sign_in, BeneficiaryInput};
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::request::Parts;
use http::StatusCode;
use kataar_domain::{
    AccountId, BeneficiaryId, Booking, BookingId, BookingStatus, Gender, SessionId, SlotId,
};
use kataar_identity::{normalize_mobile, IdType};
use kataar_inventory::{BookRequest, Scope, SessionView};
use serde_json::{json, Value};
use std::time::Instant;

/// A signed-in citizen on a v2 path (`401 Unauthenticated access!` otherwise). The token is
/// v1's: any OTP pair's token works on every v1 and v2 citizen path.
#[derive(Clone, Copy, Debug)]
pub struct V2Citizen(pub AccountId);

impl FromRequestParts<AppState> for V2Citizen {
    type Rejection = V2Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, V2Error> {
        Citizen::from_request_parts(parts, state)
            .await
            .map(|c| V2Citizen(c.account_id))
            .map_err(|_| V2Error::Unauthenticated)
    }
}

/// `generateMobileOTP`, `public/generateOTP`, `generateOTP`: `{"txnId"}` (`secret` is
/// accepted and not checked).
pub async fn generate_otp(
    State(state): State<AppState>,
    body: V2Body,
) -> Result<Json<Value>, V2Error> {
    let mobile = body.need_text("mobile")?;
    let sent = send_otp(&state, &mobile).map_err(|e| match e.code {
        "invalid_request" => V2Error::bad("USRAUT0001", "Invalid mobile number"),
        _ => V2Error::from(e),
    })?;
    Ok(Json(json!({ "txnId": sent.txn_id })))
}

async fn confirm(state: &AppState, body: &V2Body) -> Result<crate::v1::citizen::SignedIn, V2Error> {
    let (Some(otp), Some(txn)) = (body.text("otp"), body.text("txnId")) else {
        return Err(V2Error::bad("USRAUT0012", "otp and txnId are required"));
    };
    if otp.is_empty() || txn.is_empty() {
        return Err(V2Error::bad("USRAUT0012", "otp and txnId are required"));
    }
    let claim = state
        .otp
        .claim_sha256(&txn, &otp, Instant::now())
        .map_err(|e| V2Error::from(crate::v1::citizen::otp_error(e)))?;
    v2(sign_in(state, claim).await)
}

/// `validateMobileOtp` and `public/confirmOTP`: `{"token"}` for the SHA-256 of the OTP.
pub async fn confirm_otp(
    State(state): State<AppState>,
    body: V2Body,
) -> Result<Json<Value>, V2Error> {
    let signed = confirm(&state, &body).await?;
    Ok(Json(json!({ "token": signed.token })))
}

/// The partner `confirmOTP`: also `isNewAccount`.
pub async fn confirm_otp_partner(
    State(state): State<AppState>,
    body: V2Body,
) -> Result<Json<Value>, V2Error> {
    let signed = confirm(&state, &body).await?;
    Ok(Json(json!({
        "token": signed.token,
        "isNewAccount": if signed.new_account { "Y" } else { "N" },
    })))
}

/// `registration/beneficiary/new`: v1's beneficiary rules; `{"beneficiary_reference_id"}`.
pub async fn register(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    body: V2Body,
) -> Result<Json<Value>, V2Error> {
    let name = body
        .text("name")
        .ok_or_else(|| V2Error::bad("BENREG0001", "name is required"))?;
    let birth_year = body
        .whole("birth_year")
        .and_then(|y| u32::try_from(y).ok())
        .ok_or_else(|| V2Error::bad("BENREG0001", "birth_year must be a year such as \"1990\""))?;
    let gender = match body.whole("gender_id") {
        Some(1) => Gender::Male,
        Some(2) => Gender::Female,
        Some(3) => Gender::Other,
        _ => return Err(V2Error::bad("BENREG0001", "gender_id must be 1, 2 or 3")),
    };
    let id_type = body
        .whole("photo_id_type")
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| IdType::ALL.get(i).copied())
        .ok_or_else(|| V2Error::bad("BENREG0001", "photo_id_type must be an idTypes id"))?;
    let id_number = body
        .text("photo_id_number")
        .ok_or_else(|| V2Error::bad("BENREG0001", "photo_id_number is required"))?;
    let input = BeneficiaryInput {
        name: &name,
        birth_year,
        gender,
        id_type,
        id_number: &id_number,
    };
    let view = register_beneficiary(&state, account, input)
        .await
        .map_err(V2Error::registration)?;
    Ok(Json(json!({
        "beneficiary_reference_id": wire::reference_of(view.beneficiary.beneficiary_id.0),
    })))
}

fn beneficiary_id(reference: &str, on_bad: fn() -> V2Error) -> Result<BeneficiaryId, V2Error> {
    wire::beneficiary_of(reference)
        .map(BeneficiaryId)
        .ok_or_else(on_bad)
}

/// `registration/beneficiary/delete`: `204`; with a booking or a dose `409 BENREG0005`.
pub async fn unregister(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    body: V2Body,
) -> Result<StatusCode, V2Error> {
    let reference = body
        .text("beneficiary_reference_id")
        .ok_or_else(|| V2Error::bad("BENREG0001", "beneficiary_reference_id is required"))?;
    let id = beneficiary_id(&reference, || {
        V2Error::bad("BENREG0006", "Invalid beneficiary reference id")
    })?;
    let prepared = state
        .inv
        .remove_beneficiary(account, id)
        .or_api()
        .map_err(V2Error::registration)?;
    durable::commit(&state, prepared)
        .await
        .map_err(V2Error::registration)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The last four characters of a masked ID, behind stars (`"********1234"`).
fn stars(masked: &str, shown: usize) -> String {
    let tail: Vec<char> = masked.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail: String = tail[tail.len().saturating_sub(shown)..].iter().collect();
    format!("{}{tail}", "*".repeat(12 - tail.len().min(12)))
}

/// An appointment as v2 lists it (one booking).
fn appointment(state: &AppState, b: &Booking) -> Value {
    let centre = state.inv.centre(b.centre_id);
    let (state_name, district_name) = centre
        .as_ref()
        .map(|c| {
            (
                state
                    .inv
                    .state(c.state_id)
                    .map(|s| s.state_name)
                    .unwrap_or_default(),
                state
                    .inv
                    .district(c.district_id)
                    .map(|d| d.district_name)
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let (date, slot, from, to) = match state.inv.session_slot(b.session_id, b.slot_id) {
        Some((session, slot)) => (
            wire::date(session.date),
            wire::slot_text(&slot.start, &slot.end),
            wire::clock_seconds(&slot.start),
            wire::clock_seconds(&slot.end),
        ),
        None => Default::default(),
    };
    json!({
        "appointment_id": wire::uuid_of(wire::APPOINTMENT_TAG, b.booking_id.0),
        "center_id": b.centre_id.0,
        "name": centre.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        "state_name": state_name,
        "district_name": district_name,
        "block_name": centre.as_ref().map(|c| c.block_name.clone()).unwrap_or_default(),
        "from": from,
        "to": to,
        "dose": b.dose.number(),
        "date": date,
        "slot": slot,
        "session_id": wire::uuid_of(wire::SESSION_TAG, b.session_id.0),
    })
}

/// `appointment/beneficiaries`: the account's beneficiaries, with their appointments (every
/// booking not cancelled, administered ones included).
pub async fn beneficiaries(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
) -> Result<Json<Value>, V2Error> {
    let mobile = state
        .inv
        .account(account)
        .and_then(|a| a.mobile)
        .and_then(|m| normalize_mobile(&m).ok())
        .map(|m| {
            let digits = m.as_str().to_string();
            format!("******{}", &digits[digits.len().saturating_sub(4)..])
        })
        .unwrap_or_default();
    let list: Vec<Value> = state
        .inv
        .beneficiaries(account)
        .iter()
        .map(|v| {
            let b = &v.beneficiary;
            let status = match v.doses.len() {
                0 => "Not Vaccinated",
                1 => "Partially Vaccinated",
                _ => "Vaccinated",
            };
            let dose_date = |n: u8| {
                v.doses
                    .iter()
                    .find(|d| d.dose.number() == n)
                    .map(|d| wire::date(d.date))
                    .unwrap_or_default()
            };
            let id_type = IdType::parse(&b.id_type).map_or("", IdType::cowin_name);
            json!({
                "beneficiary_reference_id": wire::reference_of(b.beneficiary_id.0),
                "name": b.name,
                "birth_year": b.birth_year.to_string(),
                "gender": match b.gender {
                    Gender::Male => "Male",
                    Gender::Female => "Female",
                    Gender::Other => "Others",
                },
                "mobile_number": mobile,
                "photo_id_type": id_type,
                "photo_id_number": stars(&b.id_masked, 4),
                "comorbidity_ind": "N",
                "vaccination_status": status,
                "vaccine": v.doses.first().map(|d| d.vaccine.name()).unwrap_or(""),
                "dose1_date": dose_date(1),
                "dose2_date": dose_date(2),
                "appointments": v.bookings.iter()
                    .filter(|x| x.status != BookingStatus::Cancelled)
                    .map(|x| appointment(&state, x))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "beneficiaries": list })))
}

/// `auth/getRecaptcha`: `{"captcha": "<svg …>"}`; the answer is kept for this account.
pub async fn captcha(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    _body: V2Body,
) -> Json<Value> {
    let (answer, svg) = super::captcha::draw();
    state
        .compat
        .captchas
        .remember(account, &answer, Instant::now());
    Json(json!({ "captcha": svg }))
}

/// The session and slot a v2 request names (`APPOIN0015` when either is unknown).
fn session_slot(state: &AppState, body: &V2Body) -> Result<(SessionView, SlotId), V2Error> {
    let id = body
        .text("session_id")
        .and_then(|s| wire::id_of(wire::SESSION_TAG, &s))
        .ok_or_else(V2Error::bad_session)?;
    let session = state
        .inv
        .session(SessionId(id))
        .ok_or_else(V2Error::bad_session)?;
    let given = body.text("slot").ok_or_else(V2Error::bad_session)?;
    let slot = session
        .slots
        .iter()
        .find(|s| wire::slot_matches(&given, &s.slot.start, &s.slot.end))
        .map(|s| s.slot.slot_id)
        .ok_or_else(V2Error::bad_session)?;
    Ok((session, slot))
}

/// `appointment/schedule`: every listed beneficiary booked in the slot, all or none, by the
/// engine's `book_all` (v1's booking rules for each); one `appointment_confirmation_no` (the
/// first beneficiary's appointment).
pub async fn schedule(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    headers: http::HeaderMap,
    body: V2Body,
) -> Result<Json<Value>, V2Error> {
    if state.compat.captcha_required {
        let given = body.text("captcha").unwrap_or_default();
        if !state.compat.captchas.check(account, &given, Instant::now()) {
            return Err(V2Error::bad("APPOIN0044", "Invalid Captcha"));
        }
    }
    let dose = wire::dose(&body)?;
    let (session, slot_id) = session_slot(&state, &body)?;
    if let Some(centre) = body.whole("center_id") {
        if centre != session.session.centre_id.0 {
            return Err(V2Error::bad_session());
        }
    }
    let mut ids: Vec<BeneficiaryId> = Vec::new();
    for reference in body.list("beneficiaries")? {
        let id = beneficiary_id(&reference, V2Error::bad_beneficiary)?;
        if state.inv.beneficiary(account, id).is_none() {
            return Err(V2Error::bad_beneficiary());
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(V2Error::invalid(
            "beneficiaries must list at least one beneficiary",
        ));
    }
    let (now, today) = (state.now(), state.today());
    let reqs: Vec<BookRequest> = ids
        .iter()
        .map(|b| BookRequest {
            account_id: account,
            beneficiary_id: *b,
            session_id: session.session.session_id,
            slot_id,
            dose,
            now,
            today,
        })
        .collect();
    // A release's session needs the waiting room's pass, as in v1. A v2 client cannot carry
    // one: its account is enqueued on its first attempt and told to come back (429 with
    // Retry-After = its ETA) until its ticket is admitted; then its own pass is used.
    let mut pass = crate::waitroom::pass_of(&headers);
    let room = state
        .waitroom
        .release_of(session.session.session_id)
        .and_then(|r| state.waitroom.room(r));
    if let (Some(room), None) = (&room, &pass) {
        match crate::v1::releases::passage(&state, room, account).await {
            Ok(crate::v1::releases::Passage::Admitted(p)) => pass = Some(p),
            Ok(crate::v1::releases::Passage::Waiting(after)) => {
                return Err(V2Error::TooMany {
                    retry_after_s: after,
                })
            }
            Ok(crate::v1::releases::Passage::SoldOut) => {
                return Err(V2Error::from(crate::errors::api_error(
                    kataar_domain::BookingError::PoolFull,
                )))
            }
            Err(e) => return Err(V2Error::from(e)),
        }
    }
    let admitted = crate::waitroom::Admitted::default();
    let gate = admitted.gate(&state, account, pass.as_deref());
    let outcome = match state.inv.book_all(&reqs, gate).or_api() {
        Ok(prepared) => durable::commit(&state, prepared).await,
        Err(e) => Err(e),
    };
    if outcome.is_ok() {
        admitted.booked();
    }
    match &outcome {
        Ok(bookings) => {
            for _ in bookings {
                crate::metrics::booking_outcome("created");
            }
        }
        Err(e) => crate::metrics::booking_outcome(e.code),
    }
    let bookings = v2(outcome)?;
    let first = bookings.first().map_or(0, |b| b.booking_id.0);
    Ok(Json(json!({
        "appointment_confirmation_no": wire::uuid_of(wire::APPOINTMENT_TAG, first),
    })))
}

fn own_booking(state: &AppState, account: AccountId, body: &V2Body) -> Result<Booking, V2Error> {
    let id = body
        .text("appointment_id")
        .and_then(|s| wire::id_of(wire::APPOINTMENT_TAG, &s))
        .ok_or_else(V2Error::bad_appointment)?;
    state
        .inv
        .booking(BookingId(id), &Scope::Account(account))
        .ok_or_else(V2Error::bad_appointment)
}

/// `appointment/reschedule`: the appointment's booking moved as one step by the engine's
/// reschedule (same booking, so the same `appointment_id`, a new token number).
pub async fn reschedule(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    headers: http::HeaderMap,
    body: V2Body,
) -> Result<Json<Value>, V2Error> {
    let booking = own_booking(&state, account, &body)?;
    let (session, slot_id) = session_slot(&state, &body)?;
    let (now, today) = (state.now(), state.today());
    let pass = crate::waitroom::pass_of(&headers);
    let admitted = crate::waitroom::Admitted::default();
    let prepared = state
        .inv
        .reschedule(
            booking.booking_id,
            account,
            session.session.session_id,
            slot_id,
            now,
            today,
            admitted.gate(&state, account, pass.as_deref()),
        )
        .or_api()
        .map_err(V2Error::from)?;
    let moved = v2(durable::commit(&state, prepared).await)?;
    admitted.booked();
    Ok(Json(json!({
        "appointment_confirmation_no": wire::uuid_of(wire::APPOINTMENT_TAG, moved.booking_id.0),
    })))
}

/// `appointment/cancel`: cancels, for each beneficiary in `beneficiariesToCancel` (the
/// appointment's own beneficiary when the list is absent or empty), its booking in the same
/// session, slot and dose as the named appointment; `204`. Every listed beneficiary is
/// checked before anything is cancelled.
pub async fn cancel(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    body: V2Body,
) -> Result<Response, V2Error> {
    let named = own_booking(&state, account, &body)?;
    let mut targets: Vec<BookingId> = Vec::new();
    let listed = body.list("beneficiariesToCancel")?;
    if listed.is_empty() {
        targets.push(named.booking_id);
    }
    let mine = state.inv.bookings_of(account);
    for reference in listed {
        let b = beneficiary_id(&reference, V2Error::bad_beneficiary)?;
        let found = mine
            .iter()
            .find(|x| {
                x.beneficiary_id == b
                    && x.session_id == named.session_id
                    && x.slot_id == named.slot_id
                    && x.dose == named.dose
                    && (x.status != BookingStatus::Cancelled || x.booking_id == named.booking_id)
            })
            .ok_or_else(V2Error::bad_beneficiary)?;
        if !targets.contains(&found.booking_id) {
            targets.push(found.booking_id);
        }
    }
    for id in targets {
        let prepared = state
            .inv
            .cancel(id, &Scope::Account(account), state.now())
            .or_api()
            .map_err(|e| match e.code {
                "not_found" => V2Error::bad_appointment(),
                _ => V2Error::from(e),
            })?;
        v2(durable::commit(&state, prepared).await)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `appointment/appointmentslip/download?appointment_id=`: the slip as `application/pdf`
/// (exactly; no parameters): the appointment's centre, date, slot, vaccine and dose, and every
/// person of the account booked with it (same session, slot and dose, not cancelled) with their
/// masked ID and token number. Rendered by `kataar-documents`, as v1's slip; `Accept-Language`
/// `hi` gives the Hindi slip.
pub async fn slip(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    headers: http::HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, V2Error> {
    let q = super::places::query(raw);
    let id = q
        .get("appointment_id")
        .and_then(|s| wire::id_of(wire::APPOINTMENT_TAG, s))
        .ok_or_else(V2Error::bad_appointment)?;
    let named = state
        .inv
        .booking(BookingId(id), &Scope::Account(account))
        .filter(|b| b.status != BookingStatus::Cancelled)
        .ok_or_else(V2Error::bad_appointment)?;
    let (session, slot) = state
        .inv
        .session_slot(named.session_id, named.slot_id)
        .ok_or_else(V2Error::bad_appointment)?;
    let centre = state
        .inv
        .centre(named.centre_id)
        .ok_or_else(V2Error::bad_appointment)?;
    let mut group: Vec<Booking> = state
        .inv
        .bookings_of(account)
        .into_iter()
        .filter(|b| {
            b.session_id == named.session_id
                && b.slot_id == named.slot_id
                && b.dose == named.dose
                && b.status != BookingStatus::Cancelled
        })
        .collect();
    group.sort_by_key(|b| (b.booking_id != named.booking_id, b.booking_id.0));
    let people = group
        .iter()
        .filter_map(|b| {
            let v = state.inv.beneficiary(account, b.beneficiary_id)?;
            Some(kataar_documents::SlipPerson {
                name: v.beneficiary.name,
                id_masked: v.beneficiary.id_masked,
                token_number: b.token_number,
                booking_ref: wire::uuid_of(wire::APPOINTMENT_TAG, b.booking_id.0),
            })
        })
        .collect();
    let data = kataar_documents::SlipData {
        reference: wire::uuid_of(wire::APPOINTMENT_TAG, named.booking_id.0),
        centre_name: centre.name.clone(),
        centre_address: format!("{}, {}", centre.address, centre.pincode),
        date: wire::date(session.date),
        slot: wire::slot_text(&slot.start, &slot.end),
        vaccine: session.vaccine.name().to_string(),
        dose: named.dose.number(),
        people,
    };
    let lang = if wire::wants_hindi(&headers) {
        kataar_documents::Lang::Hi
    } else {
        kataar_documents::Lang::En
    };
    let pdf = kataar_documents::render_slip(&data, lang).map_err(|e| {
        tracing::error!(error = %e, "rendering an appointment slip failed");
        V2Error::coded(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SRVERR0001",
            "Internal error",
        )
    })?;
    Ok((
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/pdf"),
        )],
        pdf,
    )
        .into_response())
}

/// `registration/certificate/public/download?beneficiary_reference_id=` (and
/// `…/certificate/download`): the signed vaccination certificate as `application/pdf`, the same
/// record, signer and renderer as v1's `GET /v1/beneficiaries/{id}/certificate`. Another
/// account's beneficiary is `400 APPOIN0017`; one with no administered dose
/// `409 CERTIF0001`.
pub async fn certificate(
    State(state): State<AppState>,
    V2Citizen(account): V2Citizen,
    headers: http::HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, V2Error> {
    let q = super::places::query(raw);
    let id = q
        .get("beneficiary_reference_id")
        .and_then(|s| wire::beneficiary_of(s))
        .ok_or_else(V2Error::bad_beneficiary)?;
    let record =
        crate::v1::documents::certificate_record(&state, account, kataar_domain::BeneficiaryId(id))
            .map_err(|e| {
                if e.code == "not_vaccinated" {
                    V2Error::coded(
                        StatusCode::CONFLICT,
                        "CERTIF0001",
                        "No vaccination has been recorded for this beneficiary",
                    )
                } else {
                    V2Error::bad_beneficiary()
                }
            })?;
    let lang = if wire::wants_hindi(&headers) {
        kataar_documents::Lang::Hi
    } else {
        kataar_documents::Lang::En
    };
    let signer = (*state.certificates).clone();
    let rendered = tokio::task::spawn_blocking(move || {
        kataar_documents::render_certificate(&record, &signer, lang)
    })
    .await;
    let pdf = match rendered {
        Ok(Ok(pdf)) => pdf,
        _ => {
            tracing::error!("rendering a certificate failed");
            return Err(V2Error::coded(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SRVERR0001",
                "Internal error",
            ));
        }
    };
    Ok((
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/pdf"),
        )],
        pdf,
    )
        .into_response())
}

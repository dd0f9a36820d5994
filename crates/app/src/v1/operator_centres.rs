//! Operators' centres: create (admin), list, read and change (scoped to the key's centres).
//!
//! Besides the contract's fields a centre carries `fee_rupees` (optional on create and change;
//! 0..=[`FEE_RUPEES_MAX`], and 0 for a free centre). Only `name`, `address`, `fee_type` and
//! `fee_rupees` can be changed; anything else in a change is `400 invalid_request`.

use super::{
    commit_answered, page_after, page_limit, serialised, text_field, Admin, Audit, ObjectLocks,
    PageQuery,
};
use crate::auth::Operator;
use crate::state::AppState;
use crate::v1::render;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kataar_api::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use kataar_domain::*;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Largest fee a paid centre may charge, in rupees (CoWIN's private-centre cap was 1410).
pub const FEE_RUPEES_MAX: u32 = 10_000;

/// A centre as operators see it: the public fields plus the fee.
pub fn centre_json(c: &Centre) -> Value {
    let mut v = render::centre(c);
    if let Some(m) = v.as_object_mut() {
        m.insert("fee_rupees".into(), json!(c.fee_rupees));
    }
    v
}

/// Body of `POST /v1/admin/centres`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCentreBody {
    name: String,
    state_id: u64,
    district_id: u64,
    pincode: String,
    address: String,
    block_name: String,
    lat: f64,
    long: f64,
    fee_type: String,
    #[serde(default)]
    fee_rupees: Option<u32>,
}

/// Body of `PATCH /v1/admin/centres/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CentrePatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    fee_type: Option<String>,
    #[serde(default)]
    fee_rupees: Option<u32>,
}

/// Serialises the changes of one centre from read to commit, so that two changes of it (say
/// its name and its address) never undo each other; other centres do not wait.
static CENTRE_WRITES: std::sync::LazyLock<ObjectLocks> =
    std::sync::LazyLock::new(ObjectLocks::default);

fn fee_type(raw: &str) -> Result<FeeType, ApiError> {
    FeeType::parse(raw.trim())
        .ok_or_else(|| ApiError::invalid_request("fee_type", "fee_type must be free or paid"))
}

fn fee(fee_type: FeeType, rupees: u32) -> Result<u32, ApiError> {
    if rupees > FEE_RUPEES_MAX {
        return Err(ApiError::invalid_request(
            "fee_rupees",
            format!("fee_rupees must be at most {FEE_RUPEES_MAX}"),
        ));
    }
    if fee_type == FeeType::Free && rupees != 0 {
        return Err(ApiError::invalid_request(
            "fee_rupees",
            "a free centre charges no fee",
        ));
    }
    Ok(rupees)
}

fn visible_centre(state: &AppState, op: &Operator, id: u64) -> Result<Centre, ApiError> {
    let centre = state
        .inv
        .centre(CentreId(id))
        .ok_or_else(ApiError::not_found)?;
    if !op.scope().allows_centre(centre.centre_id) {
        return Err(ApiError::not_found());
    }
    Ok(centre)
}

/// `POST /v1/admin/centres` (admin).
#[utoipa::path(post, path = "/v1/admin/centres", tag = "operators", security(("operator_key" = [])),
    request_body = NewCentreBody,
    responses((status = 201, description = "The centre, with `fee_rupees`"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`forbidden`: administrators only", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(op): Admin,
    ApiJson(body): ApiJson<NewCentreBody>,
) -> Result<Response, ApiError> {
    let name = text_field("name", &body.name)?;
    let address = text_field("address", &body.address)?;
    let block_name = text_field("block_name", &body.block_name)?;
    let st = state
        .inv
        .state(StateId(body.state_id))
        .ok_or_else(|| ApiError::invalid_request("state_id", "no such state"))?;
    let district = state
        .inv
        .district(DistrictId(body.district_id))
        .ok_or_else(|| ApiError::invalid_request("district_id", "no such district"))?;
    if district.state_id != st.state_id {
        return Err(ApiError::invalid_request(
            "district_id",
            "the district is not in this state",
        ));
    }
    let pincode = body.pincode.trim();
    if pincode.len() != 6 || !pincode.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid_request(
            "pincode",
            "pincode must be 6 digits",
        ));
    }
    if !body.lat.is_finite() || !(-90.0..=90.0).contains(&body.lat) {
        return Err(ApiError::invalid_request(
            "lat",
            "lat must be between -90 and 90",
        ));
    }
    if !body.long.is_finite() || !(-180.0..=180.0).contains(&body.long) {
        return Err(ApiError::invalid_request(
            "long",
            "long must be between -180 and 180",
        ));
    }
    let fee_type = fee_type(&body.fee_type)?;
    let fee_rupees = fee(fee_type, body.fee_rupees.unwrap_or(0))?;
    let centre = Centre {
        centre_id: state.inv.ids.centre(),
        name,
        address,
        state_id: st.state_id,
        district_id: district.district_id,
        pincode: pincode.to_string(),
        block_name,
        lat: body.lat,
        long: body.long,
        fee_type,
        fee_rupees,
    };
    let object = format!("centre:{}", centre.centre_id);
    let prepared = state.inv.upsert_centre(centre);
    let audit = Audit {
        action: "centre.create",
        object,
        before: Value::Null,
    };
    commit_answered(
        &state,
        &op,
        prepared,
        audit,
        centre_json,
        StatusCode::CREATED,
        centre_json,
    )
    .await
}

/// `GET /v1/admin/centres?limit=&after=`: the key's centres by id.
#[utoipa::path(get, path = "/v1/admin/centres", tag = "operators", security(("operator_key" = [])),
    params(("limit" = Option<usize>, Query, description = "1..=500, default 50"), ("after" = Option<String>, Query, description = "`next_after` of the previous page")),
    responses((status = 200, description = "`{\"centres\": [centre], \"next_after\"}`: the key's centres by id"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = page_after(q.after.as_deref())?;
    let scope = op.scope();
    let mut page: Vec<Centre> = state
        .inv
        .centres()
        .into_iter()
        .filter(|c| c.centre_id.0 > after && scope.allows_centre(c.centre_id))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next_after = match (more, page.last()) {
        (true, Some(c)) => json!(c.centre_id.0.to_string()),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "centres": page.iter().map(centre_json).collect::<Vec<_>>(),
        "next_after": next_after,
    })))
}

/// `GET /v1/admin/centres/{id}`.
#[utoipa::path(get, path = "/v1/admin/centres/{centre_id}", tag = "operators", security(("operator_key" = [])),
    params(("centre_id" = u64, Path)),
    responses((status = 200, description = "The centre"), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Value>, ApiError> {
    let centre = visible_centre(&state, &op, id)?;
    Ok(Json(centre_json(&centre)))
}

/// `PATCH /v1/admin/centres/{id}` `{"name"?, "address"?, "fee_type"?, "fee_rupees"?}`.
#[utoipa::path(patch, path = "/v1/admin/centres/{centre_id}", tag = "operators", security(("operator_key" = [])),
    params(("centre_id" = u64, Path)), request_body = CentrePatch,
    responses((status = 200, description = "The changed centre"), (status = 400, description = "`invalid_request` with `details.field`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 404, description = "`not_found` (also outside the key's centres)", body = ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<u64>,
    ApiJson(body): ApiJson<CentrePatch>,
) -> Result<Response, ApiError> {
    serialised(&CENTRE_WRITES, id, move || async move {
        let before = visible_centre(&state, &op, id)?;
        let mut after = before.clone();
        if let Some(name) = &body.name {
            after.name = text_field("name", name)?;
        }
        if let Some(address) = &body.address {
            after.address = text_field("address", address)?;
        }
        if let Some(ft) = &body.fee_type {
            after.fee_type = fee_type(ft)?;
            if after.fee_type == FeeType::Free && body.fee_rupees.is_none() {
                after.fee_rupees = 0;
            }
        }
        if let Some(rupees) = body.fee_rupees {
            after.fee_rupees = rupees;
        }
        after.fee_rupees = fee(after.fee_type, after.fee_rupees)?;
        if after == before {
            return Ok(Json(centre_json(&before)).into_response());
        }
        let prepared = state.inv.upsert_centre(after);
        let audit = Audit {
            action: "centre.update",
            object: format!("centre:{id}"),
            before: centre_json(&before),
        };
        commit_answered(
            &state,
            &op,
            prepared,
            audit,
            centre_json,
            StatusCode::OK,
            centre_json,
        )
        .await
    })
    .await
}

//! What `/openapi.json` says beyond the handlers' `#[utoipa::path]` annotations: the bounds
//! the handlers enforce on every request field and parameter, and the refusals every operation
//! can answer whatever it does (`api.md`, "Conventions" and the error catalogue).
//!
//! [`complete`] patches the merged v1 document once, at start:
//! - request-body fields and parameters get the handlers' bounds (`limit` 1..=500, `days`
//!   1..=14, `dose` 1|2, 6-digit pincodes, `format: date`, `HH:MM` times, capacities
//!   0..=`POOL_CAPACITY_MAX`, lat/long ranges, trimmed text 1..=`TEXT_CHARS_MAX` without control
//!   characters, birth years, the enums, ids in a path or body at most 2^53 − 1, `Idempotency-Key` 1..=64
//!   printable ASCII), so a request that fits the document is one the handlers read;
//! - every v1 operation lists `429`/`503` (admission, store breaker; with `Retry-After`) and
//!   `500`; secured ones `401`; ones with parameters or a body `400`; writes `413`/`415`; ones
//!   with an id in the path `404`; idempotent writes `422`/`428` — all as `ErrorBody`.
//!
//! Keep the tables below in step with the handlers' checks (the tests here and the handlers'
//! own tests pin the constants they come from). Refusals that depend on data or on several
//! fields at once (an unknown state, overlapping slots, an Aadhaar check digit, `max_age`
//! below `min_age`, exactly one of `district_id`/`pincode`/`centre_id`) are described in words.

use chrono::Datelike;
use kataar_domain::limits::{
    BIRTH_YEAR_MIN, IDEMPOTENCY_KEY_BYTES_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX,
    POOL_CAPACITY_MAX, QUERY_DAYS_MAX, SLOTS_PER_SESSION_MAX, TEXT_CHARS_MAX,
};
use kataar_domain::Vaccine;
use kataar_identity::photo_id::ID_RAW_CHARS_MAX;
use serde_json::{json, Value};
use utoipa::openapi::OpenApi;

use super::operator::{FEE_RUPEES_MAX, SESSION_AGE_MAX};

/// Largest id the API hands out or reads (`api.md`: ids never above 2^53, so JSON numbers stay
/// exact); the extractors refuse a path or query id above it.
pub use kataar_api::extract::ID_MAX;

/// A trimmed text field: at least one character that is neither white space nor a control
/// character, and no control character or invisible formatting character (bidirectional
/// controls, zero-width characters, the byte-order mark: `v1::is_invisible_format`) anywhere
/// (length is `maxLength`). The server also takes a zero-width (non-)joiner right after an
/// Indic virama, where it is part of the spelling; the pattern leaves that out.
const TEXT_PATTERN: &str = concat!(
    r"^[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*",
    r"[^\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]",
    r"[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
);

/// An `HH:MM` time of day, 00:00..=23:59.
const TIME_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// A page cursor (`next_after`): a decimal id.
const CURSOR_PATTERN: &str = "^[0-9]{1,19}$";

/// A 6-digit Indian pincode.
const PINCODE_PATTERN: &str = "^[0-9]{6}$";

/// A mobile as `POST /v1/auth/otp` reads it (an optional `+91`, `91` or `0` prefix).
const MOBILE_PATTERN: &str = "^(\\+91|91|0)?[6-9][0-9]{9}$";

const GENDERS: [&str; 3] = ["male", "female", "other"];

const ID_TYPES: [&str; 7] = [
    "aadhaar",
    "pan",
    "passport",
    "driving_licence",
    "voter_id",
    "ration_card",
    "npr_smart_card",
];

fn text() -> Value {
    json!({"minLength": 1, "maxLength": TEXT_CHARS_MAX, "pattern": TEXT_PATTERN})
}

fn id_number() -> Value {
    json!({"minLength": 1, "maxLength": ID_RAW_CHARS_MAX,
        "description": "Aadhaar: 12 digits, first not 0 or 1, with a valid Verhoeff check digit; \
            PAN `AAAAA9999A`; passport one letter and 7 digits; the others 4-20 letters, \
            digits, `-`, `/` (spaces and dashes are dropped and letters upper-cased first)"})
}

/// The shape of `id_number` for each `id_type` (one branch per type; the Aadhaar check digit
/// is beyond a pattern).
fn id_shapes() -> Vec<Value> {
    let branch = |types: &[&str], pattern: &str| {
        json!({"type": "object", "properties": {
            "id_type": {"type": "string", "enum": types},
            "id_number": {"type": "string", "pattern": pattern},
        }})
    };
    vec![
        branch(&ID_TYPES[..1], "^[2-9][0-9]{11}$"),
        branch(&ID_TYPES[1..2], "^[A-Za-z]{5}[0-9]{4}[A-Za-z]$"),
        branch(&ID_TYPES[2..3], "^[A-Za-z][0-9]{7}$"),
        branch(&ID_TYPES[3..], "^[A-Za-z0-9/]{4,20}$"),
    ]
}

/// A free centre charges no fee; a paid one up to [`FEE_RUPEES_MAX`].
fn fee_shapes() -> Vec<Value> {
    vec![
        json!({"type": "object", "properties": {
            "fee_type": {"type": "string", "enum": ["free"]},
            "fee_rupees": {"type": ["integer", "null"], "enum": [0, null]},
        }}),
        json!({"type": "object", "properties": {
            "fee_type": {"type": "string", "enum": ["paid"]},
        }}),
    ]
}

/// A centre every rule admits (a demo state and district).
fn centre_example() -> Value {
    json!({"name": "PHC Kolar Road", "state_id": 20, "district_id": 312, "pincode": "462042",
        "address": "Kolar Road, Bhopal", "block_name": "Huzur", "lat": 23.17, "long": 77.41,
        "fee_type": "free"})
}

/// Rewrites schema `name` as `allOf: [itself, oneOf: branches]`. Done on the typed document:
/// utoipa reads any JSON schema object back as a plain object, dropping `oneOf`.
fn add_one_of(doc: &mut OpenApi, name: &str, branches: Vec<Value>, example: Value) {
    use utoipa::openapi::schema::{AllOfBuilder, OneOfBuilder, Schema};
    use utoipa::openapi::RefOr;
    let Some(slot) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(name))
    else {
        return;
    };
    let mut one_of = OneOfBuilder::new();
    for b in branches {
        match serde_json::from_value::<Schema>(b) {
            Ok(schema) => one_of = one_of.item(schema),
            Err(err) => {
                tracing::error!(error = %err, schema = name, "OpenAPI branch did not read");
                return;
            }
        }
    }
    let original = std::mem::replace(slot, RefOr::T(Schema::default()));
    *slot = RefOr::T(Schema::AllOf(
        AllOfBuilder::new()
            .item(original)
            .item(Schema::OneOf(one_of.build()))
            .examples([example])
            .build(),
    ));
}

/// A beneficiary that every rule admits (the Aadhaar number has a valid check digit).
fn person_example() -> Value {
    json!({"name": "Asha Devi", "birth_year": 1980, "gender": "female",
        "id_type": "aadhaar", "id_number": "234567890124"})
}

fn vaccines() -> Value {
    json!(Vaccine::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
}

fn birth_year(year_max: i32) -> Value {
    json!({"minimum": BIRTH_YEAR_MIN, "maximum": year_max,
        "description": "1900 up to the current year"})
}

/// The bounds of request-body fields: (schema, property, keywords added to its schema).
fn field_bounds(year_max: i32) -> Vec<(&'static str, &'static str, Value)> {
    let capacity = json!({"minimum": 0, "maximum": POOL_CAPACITY_MAX});
    let age = json!({"minimum": 0, "maximum": SESSION_AGE_MAX});
    vec![
        (
            "OtpRequestBody",
            "mobile",
            json!({"pattern": MOBILE_PATTERN, "example": "9876543210"}),
        ),
        ("OtpVerifyBody", "otp", json!({"pattern": "^[0-9]{6}$"})),
        (
            "OtpVerifyBody",
            "txn_id",
            json!({"minLength": 1, "maxLength": 64}),
        ),
        ("NewBeneficiaryBody", "name", text()),
        ("NewBeneficiaryBody", "birth_year", birth_year(year_max)),
        ("NewBeneficiaryBody", "gender", json!({"enum": GENDERS})),
        ("NewBeneficiaryBody", "id_type", json!({"enum": ID_TYPES})),
        ("NewBeneficiaryBody", "id_number", id_number()),
        ("BookBody", "dose", json!({"enum": [1, 2]})),
        ("NewCentreBody", "name", text()),
        ("NewCentreBody", "address", text()),
        ("NewCentreBody", "block_name", text()),
        (
            "NewCentreBody",
            "pincode",
            json!({"pattern": PINCODE_PATTERN}),
        ),
        (
            "NewCentreBody",
            "lat",
            json!({"minimum": -90, "maximum": 90}),
        ),
        (
            "NewCentreBody",
            "long",
            json!({"minimum": -180, "maximum": 180}),
        ),
        (
            "NewCentreBody",
            "fee_type",
            json!({"enum": ["free", "paid"]}),
        ),
        (
            "NewCentreBody",
            "fee_rupees",
            json!({"minimum": 0, "maximum": FEE_RUPEES_MAX}),
        ),
        ("CentrePatch", "name", text()),
        ("CentrePatch", "address", text()),
        (
            "CentrePatch",
            "fee_type",
            json!({"enum": ["free", "paid", null]}),
        ),
        (
            "CentrePatch",
            "fee_rupees",
            json!({"minimum": 0, "maximum": FEE_RUPEES_MAX}),
        ),
        ("NewSessionBody", "date", json!({"format": "date"})),
        ("NewSessionBody", "vaccine", json!({"enum": vaccines()})),
        ("NewSessionBody", "min_age", age.clone()),
        ("NewSessionBody", "max_age", age),
        (
            "NewSessionBody",
            "slots",
            json!({"minItems": 1, "maxItems": SLOTS_PER_SESSION_MAX,
            "description": "Each ends after it starts; slots do not overlap"}),
        ),
        ("SlotBody", "start", json!({"pattern": TIME_PATTERN})),
        ("SlotBody", "end", json!({"pattern": TIME_PATTERN})),
        ("CapacityBody", "dose1_online", capacity.clone()),
        ("CapacityBody", "dose1_walkin", capacity.clone()),
        ("CapacityBody", "dose2_online", capacity.clone()),
        ("CapacityBody", "dose2_walkin", capacity.clone()),
        ("CapacityChange", "capacity", capacity),
        (
            "MoveBody",
            "count",
            json!({"minimum": 1, "maximum": POOL_CAPACITY_MAX}),
        ),
        ("WalkinBody", "dose", json!({"enum": [1, 2]})),
        ("WalkinPerson", "name", text()),
        ("WalkinPerson", "birth_year", birth_year(year_max)),
        ("WalkinPerson", "gender", json!({"enum": GENDERS})),
        ("WalkinPerson", "id_type", json!({"enum": ID_TYPES})),
        ("WalkinPerson", "id_number", id_number()),
        ("WalkinPerson", "mobile", json!({"pattern": MOBILE_PATTERN})),
        ("AdministerBody", "vaccine", json!({"enum": vaccines()})),
        ("AdministerBody", "batch", text()),
    ]
}

/// The bounds of query and header parameters, by name (the same name means the same rule on
/// every operation).
fn param_bounds(name: &str) -> Option<Value> {
    Some(match name {
        "limit" => json!({"minimum": 1, "maximum": PAGE_LIMIT_MAX, "default": PAGE_LIMIT_DEFAULT}),
        "after" => json!({"type": ["string", "null"], "pattern": CURSOR_PATTERN}),
        "days" => json!({"minimum": 1, "maximum": QUERY_DAYS_MAX}),
        "date" => json!({"format": "date"}),
        "pincode" => json!({"pattern": PINCODE_PATTERN}),
        "dose" => json!({"enum": [1, 2, null]}),
        "vaccine" => json!({"enum": vaccines().as_array().map(|a| {
            let mut a = a.clone();
            a.push(Value::Null);
            a
        })}),
        "Idempotency-Key" => json!({"type": "string", "minLength": 1,
            "maxLength": IDEMPOTENCY_KEY_BYTES_MAX,
            "pattern": format!("^[!-~]{{1,{IDEMPOTENCY_KEY_BYTES_MAX}}}$")}),
        _ => return None,
    })
}

/// Merges `patch`'s members into the object `target` (overwriting).
fn merge_into(target: &mut Value, patch: &Value) {
    if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// Whether a schema's `type` names `integer`.
fn is_integer(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    }
}

fn error_response(description: &str, retry_after: bool) -> Value {
    let mut r = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    if retry_after {
        r["headers"] = retry_after_header();
    }
    r
}

fn retry_after_header() -> Value {
    json!({"Retry-After": {
        "description": "Whole seconds to wait (also in `details.retry_after_s`)",
        "schema": {"type": "integer", "minimum": 0},
    }})
}

/// The refusals an operation can answer besides its own (status, description).
fn common_refusals(path: &str, method: &str, op: &Value) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let write = matches!(method, "post" | "patch" | "put");
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let key = op
        .get("parameters")
        .and_then(Value::as_array)
        .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"));
    let idempotent = key.is_some();
    let key_required = key.is_some_and(|p| p["required"] == true);
    if has_params || write {
        out.push(("400", "`invalid_request` with `details.field`"));
    }
    if secured {
        out.push((
            "401",
            "`unauthenticated`: no valid bearer token or operator key",
        ));
    }
    if path.contains('{') {
        out.push((
            "404",
            "`not_found` (also another account's object, or outside the key's centres)",
        ));
    }
    if write {
        out.push(("413", "`payload_too_large`: a body over 64 KiB"));
        out.push((
            "415",
            "`unsupported_media_type`: a body without `Content-Type: application/json`",
        ));
    }
    if idempotent {
        out.push((
            "422",
            "`idempotency_key_mismatch`: the key was used with another body",
        ));
        if key_required {
            out.push(("428", "`idempotency_key_required`"));
        }
    }
    out.push(("429", "`too_many_requests` (admission), with `Retry-After`"));
    out.push(("500", "`internal`"));
    out.push((
        "503",
        "`overloaded`, `store_unavailable`, with `Retry-After`",
    ));
    out
}

/// Refusals particular to one operation that its annotation does not list.
fn extra_refusals(path: &str, method: &str) -> &'static [(&'static str, &'static str)] {
    match (method, path) {
        ("post", "/v1/bookings") | ("post", "/v1/bookings/{booking_id}/reschedule") => &[
            (
                "403",
                "`pass_invalid`: a wrong, expired or other account's waiting-room pass",
            ),
            (
                "404",
                "`not_found`: no such beneficiary, session or slot of this account",
            ),
        ],
        ("post", "/v1/auth/otp/verify") => &[("400", "`invalid_request` with `details.field`")],
        _ => &[],
    }
}

fn patch_schemas(doc: &mut Value, year_max: i32) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (schema, prop, patch) in field_bounds(year_max) {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(prop))
        {
            merge_into(p, &patch);
        }
    }
    // Ids (`*_id` integers) are at most 2^53 - 1.
    for schema in schemas.values_mut() {
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for (name, p) in props.iter_mut() {
                if name.ends_with("_id") && is_integer(p) {
                    merge_into(p, &json!({"minimum": 0, "maximum": ID_MAX}));
                }
            }
        }
    }
}

/// Operator writes accept an `Idempotency-Key` without requiring one.
fn add_optional_idempotency_key(op: &mut Value) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    let params = op.entry("parameters").or_insert_with(|| json!([]));
    if let Some(list) = params.as_array_mut() {
        if !list.iter().any(|p| p["name"] == "Idempotency-Key") {
            list.push(json!({
                "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "A retry with the same key and body answers the first answer \
                    again (`Idempotent-Replayed: true`) and applies nothing",
                "schema": {"type": "string"},
            }));
        }
    }
}

fn patch_operations(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            if path.starts_with("/v1/admin/") && matches!(method.as_str(), "post" | "patch") {
                add_optional_idempotency_key(op);
            }
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in params.iter_mut() {
                    let name = p["name"].as_str().unwrap_or_default().to_owned();
                    let Some(schema) = p.get_mut("schema") else {
                        continue;
                    };
                    if name.ends_with("_id") && is_integer(schema) {
                        // Ids stop at 2^53 - 1 in a path and in a query alike: the extractors
                        // refuse a larger one with `400 invalid_request`.
                        merge_into(schema, &json!({"minimum": 0, "maximum": ID_MAX}));
                    } else if let Some(bounds) = param_bounds(&name) {
                        merge_into(schema, &bounds);
                    }
                }
            }
            let mut wanted: Vec<(&str, &str)> = Vec::new();
            if path.starts_with("/v1/") {
                wanted.extend(common_refusals(path, method, op));
                wanted.extend(extra_refusals(path, method));
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, description) in wanted {
                if !responses.contains_key(status) {
                    let retry = matches!(status, "429" | "503");
                    responses.insert(status.to_owned(), error_response(description, retry));
                }
            }
            for (status, r) in responses.iter_mut() {
                if matches!(status.as_str(), "429" | "503") {
                    if let Some(r) = r.as_object_mut() {
                        r.entry("headers").or_insert_with(retry_after_header);
                    }
                }
            }
        }
    }
}

/// The document with the handlers' bounds and the common refusals added (see the module doc).
/// Birth years are bounded by the current UTC year (the document is built once, at start).
pub fn complete(doc: OpenApi) -> OpenApi {
    complete_for_year(doc, chrono::Utc::now().year())
}

/// [`complete`] with birth years bounded by `year_max`.
pub fn complete_for_year(doc: OpenApi, year_max: i32) -> OpenApi {
    let mut value = match serde_json::to_value(&doc) {
        Ok(v) => v,
        Err(err) => {
            tracing::error!(error = %err, "OpenAPI document did not serialise; served as built");
            return doc;
        }
    };
    patch_schemas(&mut value, year_max);
    patch_operations(&mut value);
    match serde_json::from_value::<OpenApi>(value) {
        Ok(mut done) => {
            add_one_of(
                &mut done,
                "NewBeneficiaryBody",
                id_shapes(),
                person_example(),
            );
            add_one_of(&mut done, "WalkinPerson", id_shapes(), person_example());
            add_one_of(&mut done, "NewCentreBody", fee_shapes(), centre_example());
            done
        }
        Err(err) => {
            tracing::error!(error = %err, "completed OpenAPI document did not read back");
            doc
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn completed() -> Value {
        serde_json::to_value(crate::v1::openapi()).unwrap()
    }

    /// The v1 document as the annotations alone make it.
    fn raw() -> OpenApi {
        let mut d = crate::v1::citizen::openapi();
        d.merge(crate::v1::operator::openapi());
        d.merge(crate::v1::public::openapi());
        d
    }

    /// The JSON pointer of the first place `a` and `b` differ.
    fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys()) {
                    let (Some(va), Some(vb)) = (x.get(k), y.get(k)) else {
                        return Some(format!("{at}/{k}"));
                    };
                    if let Some(d) = difference(va, vb, &format!("{at}/{k}")) {
                        return Some(d);
                    }
                }
                None
            }
            _ if a == b => None,
            _ => Some(format!("{at}: {a} vs {b}")),
        }
    }

    #[test]
    fn every_field_bound_names_a_real_property() {
        let doc = serde_json::to_value({
            let mut d = crate::v1::citizen::openapi();
            d.merge(crate::v1::operator::openapi());
            d
        })
        .unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (schema, prop, _) in field_bounds(2026) {
            assert!(
                schemas[schema]["properties"].get(prop).is_some(),
                "{schema}.{prop} is not in the document"
            );
        }
    }

    #[test]
    fn every_v1_operation_lists_the_common_refusals() {
        let doc = completed();
        let paths = doc["paths"].as_object().unwrap();
        for public in [
            "/v1/states",
            "/v1/states/{state_id}/districts",
            "/v1/availability",
        ] {
            assert!(paths.contains_key(public), "{public} missing");
        }
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for status in ["429", "500", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
                for status in ["429", "503"] {
                    assert!(
                        responses[status]["headers"].get("Retry-After").is_some(),
                        "{method} {path} {status} lacks Retry-After"
                    );
                }
                if path.contains('{') {
                    assert!(responses.contains_key("404"), "{method} {path} lacks 404");
                }
                if method == "post" || method == "patch" {
                    assert!(responses.contains_key("415"), "{method} {path} lacks 415");
                }
            }
        }
        let book = &doc["paths"]["/v1/bookings"]["post"];
        for status in ["403", "404", "422", "428"] {
            assert!(
                book["responses"].get(status).is_some(),
                "book lacks {status}"
            );
        }
        let key = book["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap();
        assert_eq!(key["required"], json!(true));
        assert_eq!(key["schema"]["maxLength"], json!(IDEMPOTENCY_KEY_BYTES_MAX));
        // Operator writes accept a key without requiring one.
        let moved = &doc["paths"]["/v1/admin/pools/move"]["post"];
        let key = moved["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap();
        assert_eq!(key["required"], json!(false));
        assert_eq!(key["schema"]["maxLength"], json!(IDEMPOTENCY_KEY_BYTES_MAX));
        assert!(moved["responses"].get("422").is_some());
        assert!(moved["responses"].get("428").is_none());
    }

    #[test]
    fn the_typed_document_keeps_every_patch() {
        let mut v = serde_json::to_value(raw()).unwrap();
        patch_schemas(&mut v, 2026);
        patch_operations(&mut v);
        let back = serde_json::to_value(serde_json::from_value::<OpenApi>(v.clone()).unwrap());
        assert_eq!(difference(&back.unwrap(), &v, ""), None);
        let doc = completed();
        for name in ["NewBeneficiaryBody", "WalkinPerson", "NewCentreBody"] {
            let s = &doc["components"]["schemas"][name];
            assert_eq!(
                s["allOf"][0]["additionalProperties"],
                json!(false),
                "{name}"
            );
            assert!(
                s["allOf"][1]["oneOf"]
                    .as_array()
                    .is_some_and(|b| b.len() >= 2),
                "{name}"
            );
        }
        let free = &doc["components"]["schemas"]["NewCentreBody"]["allOf"][1]["oneOf"][0];
        assert_eq!(free["properties"]["fee_rupees"]["enum"], json!([0, null]));
    }

    #[test]
    fn bounds_follow_the_limits() {
        let doc = serde_json::to_value(complete_for_year(raw(), 2030)).unwrap();
        let s = &doc["components"]["schemas"];
        assert_eq!(s["BookBody"]["properties"]["dose"]["enum"], json!([1, 2]));
        assert_eq!(
            s["CapacityBody"]["properties"]["dose1_online"]["maximum"],
            json!(POOL_CAPACITY_MAX)
        );
        assert_eq!(
            s["NewBeneficiaryBody"]["allOf"][0]["properties"]["birth_year"]["maximum"],
            json!(2030)
        );
        assert_eq!(
            s["BookBody"]["properties"]["session_id"]["maximum"],
            json!(ID_MAX)
        );
        assert_eq!(
            s["NewBeneficiaryBody"]["allOf"][0]["additionalProperties"],
            json!(false)
        );
        let avail = &doc["paths"]["/v1/availability"]["get"]["parameters"];
        let days = avail
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "days")
            .unwrap();
        assert_eq!(days["schema"]["maximum"], json!(QUERY_DAYS_MAX));
        let district = avail
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "district_id")
            .unwrap();
        assert_eq!(district["schema"]["maximum"], json!(ID_MAX));
    }
}

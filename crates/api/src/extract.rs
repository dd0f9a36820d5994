//! Extractors whose rejections are [`ApiError`]s in the contract shape.
//!
//! - [`ApiJson<T>`]: strict JSON body. `Content-Type: application/json` (or `application/*+json`)
//!   is required (`415 unsupported_media_type`); the body is read up to the router's body limit
//!   ([`BodyLimit`], `body_bytes_max`, `413 payload_too_large`); malformed JSON, a wrong type, a
//!   missing or unknown field are `400 invalid_request` with `details.field` (a dotted path such
//!   as `slots[0].capacity.dose1_online`, or absent when no field is to blame). Request types
//!   should carry `#[serde(deny_unknown_fields)]`.
//! - [`OptionalJson<T>`]: the same, except that an empty body without a content type reads as
//!   `{}` (for POSTs that need no body: cancel, check-in).
//! - [`ApiQuery<T>`]: the query string, with the same `400 invalid_request` shape.
//! - [`ApiPath<T>`]: path parameters. A parameter that does not parse (`/v1/bookings/abc` for a
//!   numeric id) is `404 not_found`: no such resource can exist, and the answer is the same as for
//!   an unknown numeric id.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The body limit in force, inserted as a request extension by [`crate::middleware::apply`].
/// Without it, [`BODY_BYTES_MAX_DEFAULT`] applies.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// Default body limit (64 KiB, the contract's limit; config key `body_bytes_max`).
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// A JSON request body (strict: JSON content type required).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// A JSON request body that may be absent (empty body, no content type → `{}`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

/// A query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

/// Path parameters (non-parsing values → `404 not_found`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

fn is_json_content_type(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let text = value.to_str().ok().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json")),
    )
}

async fn read_body(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(BODY_BYTES_MAX_DEFAULT, |b| b.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large());
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok((parts.headers, bytes)),
        Err(err) => {
            if is_length_limit(&err) {
                Err(ApiError::payload_too_large())
            } else {
                Err(ApiError::invalid_request_body(
                    "The request body could not be read.",
                ))
            }
        }
    }
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Deserialise JSON bytes, mapping every failure to `400 invalid_request` with the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde reads a struct from an array too (`[null, null]`); a v1 body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid_request_body(
            "The request body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| {
        ApiError::invalid_request_body(format!(
            "Malformed JSON: trailing characters at line {} column {}.",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.inner();
    match inner.classify() {
        serde_json::error::Category::Data => data_error(&path, &inner.to_string()),
        serde_json::error::Category::Eof => {
            ApiError::invalid_request_body("Malformed JSON: the body ended too early.")
        }
        _ => ApiError::invalid_request_body(format!(
            "Malformed JSON at line {} column {}.",
            inner.line(),
            inner.column()
        )),
    }
}

/// Build the `invalid_request` for a serde data error at `path` (`.` is the root).
fn data_error(path: &str, raw: &str) -> ApiError {
    let message = raw.split(" at line ").next().unwrap_or(raw).to_owned();
    let join = |name: &str| {
        // For an unknown field the path already ends with it; for a missing one it is the
        // parent's.
        if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = backticked_after(&message, "unknown field `") {
        let field = join(&name);
        return ApiError::invalid_request(&field, format!("Unknown field `{field}`."));
    }
    if let Some(name) = backticked_after(&message, "missing field `") {
        let field = join(&name);
        return ApiError::invalid_request(&field, format!("Missing field `{field}`."));
    }
    let clean = sanitize(&message);
    if path.is_empty() || path == "." {
        ApiError::invalid_request_body(format!("Invalid request body: {clean}."))
    } else {
        ApiError::invalid_request(path, format!("Invalid value for `{path}`: {clean}."))
    }
}

fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let rest = &message[start..];
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

/// Remove Rust type names from serde's messages (`expected struct Foo` → `expected an object`).
fn sanitize(message: &str) -> String {
    let mut out = message.to_owned();
    for (marker, replacement) in [
        ("expected struct ", "expected an object"),
        ("expected enum ", "expected one of the allowed values"),
        ("expected tuple struct ", "expected a value"),
        ("expected unit struct ", "expected a value"),
    ] {
        if let Some(at) = out.find(marker) {
            out.truncate(at);
            out.push_str(replacement);
        }
    }
    out
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if is_json_content_type(req.headers()) != Some(true) {
            return Err(ApiError::unsupported_media_type());
        }
        let (_, bytes) = read_body(req).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = is_json_content_type(req.headers());
        if content_type == Some(false) {
            return Err(ApiError::unsupported_media_type());
        }
        let (_, bytes) = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}").map(OptionalJson);
        }
        if content_type.is_none() {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Deserialise a query string, mapping failures to `400 invalid_request` with the field.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        data_error(&path, &err.inner().to_string())
    })
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                use axum::extract::rejection::PathRejection;
                match rejection {
                    PathRejection::FailedToDeserializePathParams(_) => Err(ApiError::not_found()),
                    other => {
                        tracing::error!(error = %other, "path extractor misconfigured");
                        Err(ApiError::internal())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        dose1_online: u32,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        birth_year: u32,
        #[serde(default)]
        slots: Vec<Inner>,
    }

    fn field(e: &ApiError) -> Option<String> {
        e.details
            .as_ref()?
            .get("field")?
            .as_str()
            .map(str::to_owned)
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":"x"}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("birth_year"));
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":1,"nme":1}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("nme"));
        let e = parse_json::<Req>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("birth_year"));
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":1,"slots":[{"x":1}]}"#).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("slots[0].x"));
        let e = parse_json::<Req>(br#"{"name":"a","birth_year":1,"slots":[{"dose1_online":-1}]}"#)
            .unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("slots[0].dose1_online"));
        let e = parse_json::<Req>(br#" [ "a", 1 ]"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        let e = parse_json::<Req>(br#"{"name":"#).unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert_eq!(field(&e), None);
        let e = parse_json::<Req>(b"[1]").unwrap_err();
        assert!(!e.message.contains("Req"), "{}", e.message);
    }

    #[test]
    fn query_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            district_id: u32,
            days: Option<u8>,
        }
        let q: Q = parse_query("district_id=312&days=3").unwrap();
        assert_eq!(q.district_id, 312);
        let e = parse_query::<Q>("district_id=abc").unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("district_id"));
        let e = parse_query::<Q>("district_id=1&dayz=2").unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("dayz"));
    }
}

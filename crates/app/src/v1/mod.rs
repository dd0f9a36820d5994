//! The v1 API (see `api.md`): public reads, citizens, operators.
//!
//! **API Boundary:** every v1 JSON shape is written in [`render`]; handlers call it.

pub mod citizen;
pub mod contract;
pub mod operator;
pub mod public;
pub mod render;

use crate::state::AppState;
use axum::Router;
use kataar_api::ApiError;
use kataar_domain::limits::TEXT_CHARS_MAX;
use kataar_domain::Dose;

/// A free-text field: trimmed, 1..=[`TEXT_CHARS_MAX`] characters, no control characters.
pub fn text_field(field: &str, raw: &str) -> Result<String, ApiError> {
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

/// A `dose` value: 1 or 2.
pub fn dose_param(n: u8) -> Result<Dose, ApiError> {
    Dose::from_number(n).ok_or_else(|| ApiError::invalid_request("dose", "dose must be 1 or 2"))
}

/// The OpenAPI paths of every v1 route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = citizen::openapi();
    doc.merge(operator::openapi());
    doc.merge(public::openapi());
    doc.merge(crate::console::openapi());
    contract::complete(doc)
}

/// Every v1 route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(public::routes())
        .merge(citizen::routes())
        .merge(operator::routes())
        .merge(crate::console::routes())
        .layer(axum::middleware::from_fn(crate::console::conditional_get))
}

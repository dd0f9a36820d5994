//! The v1 API (see `api.md`): public reads, citizens, operators.
//!
//! **API Boundary:** every v1 JSON shape is written in [`render`]; handlers call it.

pub mod citizen;
pub mod contract;
pub mod documents;
pub mod operator;
pub mod public;
pub mod releases;
pub mod render;

use crate::state::AppState;
use axum::Router;
use kataar_api::ApiError;
use kataar_domain::limits::TEXT_CHARS_MAX;
use kataar_domain::Dose;

/// Invisible characters that change how the text around them reads: bidirectional embeddings,
/// overrides and isolates (U+202A–202E, U+2066–2069), zero-width spaces and directional marks
/// (U+200B–200F), the word joiner and invisible operators (U+2060–2064), and the byte-order
/// mark (U+FEFF). A name such as `Asha\u{202E}ahsA` would print reversed on a slip or on a
/// centre's list.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// The virama (halant) of each Indic script. After one, a zero-width non-joiner (U+200C) or
/// joiner (U+200D) chooses how a conjunct is drawn and is part of how a name is spelt
/// (Unicode UAX #31, A1/A2), so it is kept there and refused everywhere else.
fn is_virama(c: char) -> bool {
    matches!(
        c,
        '\u{094D}'
            | '\u{09CD}'
            | '\u{0A4D}'
            | '\u{0ACD}'
            | '\u{0B4D}'
            | '\u{0BCD}'
            | '\u{0C4D}'
            | '\u{0CCD}'
            | '\u{0D4D}'
            | '\u{0DCA}'
    )
}

/// A free-text field: trimmed, 1..=[`TEXT_CHARS_MAX`] characters, no control characters and
/// no invisible formatting characters ([`is_invisible_format`]; a joiner after a virama is
/// spelling, not formatting).
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
    let mut previous = None;
    let invisible = text.chars().any(|c| {
        let joiner_after_virama =
            matches!(c, '\u{200C}' | '\u{200D}') && previous.is_some_and(is_virama);
        previous = Some(c);
        is_invisible_format(c) && !joiner_after_virama
    });
    if invisible {
        return Err(ApiError::invalid_request(
            field,
            format!("{field} must not contain bidirectional or zero-width characters"),
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
    doc.merge(documents::openapi());
    doc.merge(releases::openapi());
    contract::complete(doc)
}

/// Every v1 route.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(public::routes())
        .merge(citizen::routes())
        .merge(operator::routes(state))
        .merge(documents::routes())
        .merge(releases::routes())
        .merge(crate::console::routes())
}

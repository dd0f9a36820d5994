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

/// The OpenAPI paths of every v1 route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = citizen::openapi();
    doc.merge(operator::openapi());
    doc.merge(public::openapi());
    contract::complete(doc)
}

/// Every v1 route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(public::routes())
        .merge(citizen::routes())
        .merge(operator::routes())
}

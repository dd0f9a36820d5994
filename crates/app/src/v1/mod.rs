//! The v1 API (see `api.md`): public reads, citizens, operators.
//!
//! **API Boundary:** every v1 JSON shape is written in [`render`]; handlers call it.

pub mod citizen;
pub mod operator;
pub mod public;
pub mod render;

use crate::state::AppState;
use axum::Router;

/// Every v1 route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(public::routes())
        .merge(citizen::routes())
        .merge(operator::routes())
}

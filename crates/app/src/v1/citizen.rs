//! The citizen routes of v1.

use crate::state::AppState;
use axum::Router;

/// The citizen routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

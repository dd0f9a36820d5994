//! The operator routes of v1.

use crate::state::AppState;
use axum::Router;

/// The operator routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}

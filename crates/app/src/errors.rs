//! The one mapping from engine refusals and store outcomes to the API catalogue.

use kataar_api::ApiError;
use kataar_domain::BookingError;

/// Seconds a client is told to wait after a `503 store_unavailable`.
pub const STORE_RETRY_AFTER_S: u32 = 2;

/// Maps an engine refusal to its catalogue error.
pub fn api_error(e: BookingError) -> ApiError {
    match e {
        BookingError::NotFound => ApiError::not_found(),
        BookingError::DoseInterval { earliest_date } => {
            ApiError::dose_interval(&earliest_date.format("%Y-%m-%d").to_string())
        }
        BookingError::Invalid(field, message) => ApiError::invalid_request(field, message),
        BookingError::StoreUnavailable => ApiError::store_unavailable(STORE_RETRY_AFTER_S),
        other => {
            let status = http::StatusCode::from_u16(other.http_status())
                .unwrap_or(http::StatusCode::CONFLICT);
            ApiError::new(status, other.code(), other.to_string())
        }
    }
}

impl From<BookingErrorWrapper> for ApiError {
    fn from(e: BookingErrorWrapper) -> ApiError {
        api_error(e.0)
    }
}

/// Lets `?` turn an engine refusal into an [`ApiError`].
#[derive(Debug)]
pub struct BookingErrorWrapper(pub BookingError);

/// Extension to convert engine results.
pub trait OrApi<T> {
    /// Maps the refusal to the API catalogue.
    fn or_api(self) -> Result<T, ApiError>;
}

impl<T> OrApi<T> for Result<T, BookingError> {
    fn or_api(self) -> Result<T, ApiError> {
        self.map_err(api_error)
    }
}

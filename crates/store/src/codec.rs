//! Conversions between domain values and stored columns, shared by both backends. Decoding
//! errors name the column, never the value.

use crate::error::StoreError;
use chrono::{DateTime, Utc};
use kataar_domain::*;

pub(crate) fn corrupt(column: &str) -> StoreError {
    StoreError::Corrupt(column.to_string())
}

/// Ids are below 2^53 ([`ID_MAX`]), so they fit a signed 64-bit column exactly.
pub(crate) fn id_to_db(id: u64) -> i64 {
    debug_assert!(id <= ID_MAX);
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// An idempotency record's scope: a citizen account (an id) or an operator key's scope
/// (`2^62 + id`, [`OperatorId::idempotency_scope`]); both fit a signed 64-bit column.
pub(crate) fn scope_to_db(scope: AccountId) -> i64 {
    debug_assert!(scope.0 <= ID_MAX || scope.0 >= OPERATOR_IDEMPOTENCY_BASE);
    i64::try_from(scope.0).unwrap_or(i64::MAX)
}

pub(crate) fn id_from_db(v: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(column))
}

pub(crate) fn dose_from_db(v: i64) -> Result<Dose, StoreError> {
    u8::try_from(v)
        .ok()
        .and_then(Dose::from_number)
        .ok_or_else(|| corrupt("dose"))
}

pub(crate) fn channel_from_db(v: &str) -> Result<Channel, StoreError> {
    Channel::parse(v).ok_or_else(|| corrupt("channel"))
}

pub(crate) fn status_from_db(v: &str) -> Result<BookingStatus, StoreError> {
    BookingStatus::parse(v).ok_or_else(|| corrupt("status"))
}

pub(crate) fn vaccine_from_db(v: &str) -> Result<Vaccine, StoreError> {
    Vaccine::parse(v).ok_or_else(|| corrupt("vaccine"))
}

pub(crate) fn gender_from_db(v: &str) -> Result<Gender, StoreError> {
    Gender::parse(v).ok_or_else(|| corrupt("gender"))
}

pub(crate) fn fee_from_db(v: &str) -> Result<FeeType, StoreError> {
    FeeType::parse(v).ok_or_else(|| corrupt("fee_type"))
}

pub(crate) fn role_from_db(v: &str) -> Result<Role, StoreError> {
    Role::parse(v).ok_or_else(|| corrupt("role"))
}

pub(crate) fn person_key_from_db(v: &[u8]) -> Result<PersonKey, StoreError> {
    let array: [u8; 32] = v.try_into().map_err(|_| corrupt("person_key"))?;
    Ok(PersonKey(array))
}

pub(crate) fn u32_from_db(v: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(column))
}

pub(crate) fn u16_from_db(v: i64, column: &str) -> Result<u16, StoreError> {
    u16::try_from(v).map_err(|_| corrupt(column))
}

/// Timestamps are stored with microsecond precision (PostgreSQL's); SQLite keeps them as
/// integer microseconds since the Unix epoch.
pub(crate) fn micros_to_time(v: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(column))
}

/// A pool counter change as a 32-bit column delta.
pub(crate) fn delta_to_db(v: i64) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Constraint("pool delta out of range".into()))
}

/// Operator key centres in PostgreSQL array literal form, e.g. `{1,2}`.
pub(crate) fn centres_to_pg_literal(centres: &[CentreId]) -> String {
    let inner: Vec<String> = centres.iter().map(|c| c.0.to_string()).collect();
    format!("{{{}}}", inner.join(","))
}

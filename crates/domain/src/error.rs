//! The engine's refusals: one variant per catalogue code the engine can decide. The API maps
//! each to its HTTP status and `code` in one place.

use chrono::NaiveDate;
use thiserror::Error;

/// Why the engine said no. Messages are for people and never carry ids, keys or numbers a
/// client did not send.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BookingError {
    /// The object does not exist or is not the caller's.
    #[error("not found")]
    NotFound,
    /// The session's day has passed or it was cancelled.
    #[error("the session is closed")]
    SessionClosed,
    /// The session is announced for later.
    #[error("the session is not open for booking yet")]
    NotOpen,
    /// The waiting room is active and no pass was given.
    #[error("a waiting-room pass is required")]
    QueueRequired,
    /// The pass is wrong, expired or another account's.
    #[error("the waiting-room pass is not valid")]
    PassInvalid,
    /// The person's age is outside the session's band.
    #[error("the beneficiary's age is outside the session's age band")]
    NotEligible,
    /// Dose 2 without dose 1, or a dose already given.
    #[error("{0}")]
    DoseSequence(&'static str),
    /// Dose 2 of another vaccine than dose 1.
    #[error("dose 2 must be the same vaccine as dose 1")]
    VaccineMismatch,
    /// Dose 2 before the minimum interval.
    #[error("dose 2 is not due before {earliest_date}")]
    DoseInterval {
        /// The first day dose 2 may be given.
        earliest_date: NaiveDate,
    },
    /// The person already holds a live booking for this dose (under any account).
    #[error("the beneficiary already has a booking for this dose")]
    AlreadyBooked,
    /// No place left in the pool.
    #[error("no place is left in this slot")]
    PoolFull,
    /// The booking is not in a state that allows this action.
    #[error("{0}")]
    BookingState(&'static str),
    /// Capacity may not go below what is booked.
    #[error("capacity cannot go below the places already booked")]
    CapacityBelowBooked,
    /// The photo-ID is on another account.
    #[error("this photo ID is already registered on another account")]
    IdAlreadyRegistered,
    /// The photo-ID is already on this account.
    #[error("this photo ID is already registered on this account")]
    BeneficiaryExists,
    /// The account has its maximum of beneficiaries.
    #[error("an account may have at most {0} beneficiaries")]
    BeneficiaryLimit(usize),
    /// The beneficiary has a booking or a dose.
    #[error("the beneficiary has bookings or doses and cannot be removed")]
    BeneficiaryInUse,
    /// The request is well-formed but its values do not fit (field, message).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The idempotency key was used with another request.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyMismatch,
    /// The same idempotency key is being processed right now.
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInProgress,
    /// The write could not be made durable.
    #[error("the store is unavailable")]
    StoreUnavailable,
}

impl BookingError {
    /// The catalogue code.
    pub fn code(&self) -> &'static str {
        match self {
            BookingError::NotFound => "not_found",
            BookingError::SessionClosed => "session_closed",
            BookingError::NotOpen => "not_open",
            BookingError::QueueRequired => "queue_required",
            BookingError::PassInvalid => "pass_invalid",
            BookingError::NotEligible => "not_eligible",
            BookingError::DoseSequence(_) => "dose_sequence",
            BookingError::VaccineMismatch => "vaccine_mismatch",
            BookingError::DoseInterval { .. } => "dose_interval",
            BookingError::AlreadyBooked => "already_booked",
            BookingError::PoolFull => "pool_full",
            BookingError::BookingState(_) => "booking_state",
            BookingError::CapacityBelowBooked => "capacity_below_booked",
            BookingError::IdAlreadyRegistered => "id_already_registered",
            BookingError::BeneficiaryExists => "beneficiary_exists",
            BookingError::BeneficiaryLimit(_) => "beneficiary_limit",
            BookingError::BeneficiaryInUse => "beneficiary_in_use",
            BookingError::Invalid(..) => "invalid_request",
            BookingError::IdempotencyMismatch => "idempotency_key_mismatch",
            BookingError::IdempotencyInProgress => "idempotency_in_progress",
            BookingError::StoreUnavailable => "store_unavailable",
        }
    }

    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            BookingError::NotFound => 404,
            BookingError::PassInvalid => 403,
            BookingError::Invalid(..) => 400,
            BookingError::IdempotencyMismatch => 422,
            BookingError::IdempotencyInProgress => 409,
            BookingError::StoreUnavailable => 503,
            _ => 409,
        }
    }
}

//! Durable events and the snapshot they add up to.
//!
//! The engine decides in memory and emits events; the store writer commits them in batches;
//! at start the store loads a [`Snapshot`] and the engine is rebuilt from it. Pool `booked`
//! counters are never sent as absolute values: the store derives each pool's change from the
//! booking events of a batch (+1 per booking created in it, -1 per booking leaving it), so
//! batches commute and a failed batch can be undone without touching later ones.

use crate::ids::*;
use crate::model::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One durable change. Every variant carries what the store needs to write it without
/// reading anything back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A state was created or renamed.
    StateUpserted(State),
    /// A district was created or renamed.
    DistrictUpserted(District),
    /// A centre was created or its details changed.
    CentreUpserted(Centre),
    /// A session with its slots and pools was published.
    SessionCreated {
        /// The session.
        session: Session,
        /// Its slots.
        slots: Vec<Slot>,
        /// Its pools (every `booked` is 0).
        pools: Vec<Pool>,
    },
    /// A session was cancelled (its bookings are cancelled by their own events in the batch).
    SessionCancelled {
        /// The session.
        session_id: SessionId,
    },
    /// A session's announced opening was set or cleared (launch releases).
    SessionOpensAtSet {
        /// The session.
        session_id: SessionId,
        /// The new opening, or `None` for open now.
        opens_at: Option<DateTime<Utc>>,
    },
    /// A pool's capacity changed by `delta` places.
    PoolCapacityChanged {
        /// The pool.
        pool_id: PoolId,
        /// Places added (positive) or removed (negative).
        delta: i64,
    },
    /// An account was created by a first OTP login or a walk-in.
    AccountCreated(Account),
    /// A beneficiary was added to an account.
    BeneficiaryAdded(Beneficiary),
    /// A beneficiary without bookings or doses was removed.
    BeneficiaryRemoved {
        /// The beneficiary.
        beneficiary_id: BeneficiaryId,
    },
    /// A booking took a place: its pool's `booked` grows by one.
    BookingCreated(Booking),
    /// A booking changed status. Into `cancelled` its pool's `booked` shrinks by one.
    BookingStatusChanged {
        /// The booking.
        booking_id: BookingId,
        /// Its pool (for the counter).
        pool_id: PoolId,
        /// The status it had.
        from: BookingStatus,
        /// The status it has now.
        to: BookingStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// A booking moved to another slot or session as one step.
    BookingMoved {
        /// The booking.
        booking_id: BookingId,
        /// The pool it left (`booked` - 1).
        from_pool_id: PoolId,
        /// The pool it took (`booked` + 1).
        to_pool_id: PoolId,
        /// The new session.
        session_id: SessionId,
        /// The new slot.
        slot_id: SlotId,
        /// The new centre.
        centre_id: CentreId,
        /// The new token number (in the new session).
        token_number: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// A dose was given and recorded.
    DoseRecorded(DoseRecord),
    /// The original answer to a write, under its idempotency key.
    IdempotencyRecorded(IdempotencyRecord),
    /// An operator key was created.
    OperatorKeyCreated(OperatorKey),
    /// An operator action, for the audit log.
    AuditAppended(AuditRecord),
    /// A launch release was announced.
    ReleaseCreated(Release),
    /// A waiting-room ticket was taken.
    QueueTicketIssued(QueueTicket),
    /// A release's pre-queue closed at its opening, holding `prequeue` places.
    ReleaseOpened {
        /// The release.
        release_id: ReleaseId,
        /// Places in the pre-queue.
        prequeue: u32,
    },
    /// A release's queue admitted places; `cursor` is how far admission has walked. A step that
    /// failed to commit is sent again: an admission already stored is kept once, and the stored
    /// cursor only moves forward.
    QueueAdvanced {
        /// The release.
        release_id: ReleaseId,
        /// Ranks admitted or passed over so far.
        cursor: u32,
        /// The places admitted in this step.
        admitted: Vec<QueueAdmission>,
    },
}

impl Event {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::StateUpserted(_) => "state_upserted",
            Event::DistrictUpserted(_) => "district_upserted",
            Event::CentreUpserted(_) => "centre_upserted",
            Event::SessionCreated { .. } => "session_created",
            Event::SessionCancelled { .. } => "session_cancelled",
            Event::SessionOpensAtSet { .. } => "session_opens_at_set",
            Event::PoolCapacityChanged { .. } => "pool_capacity_changed",
            Event::AccountCreated(_) => "account_created",
            Event::BeneficiaryAdded(_) => "beneficiary_added",
            Event::BeneficiaryRemoved { .. } => "beneficiary_removed",
            Event::BookingCreated(_) => "booking_created",
            Event::BookingStatusChanged { .. } => "booking_status_changed",
            Event::BookingMoved { .. } => "booking_moved",
            Event::DoseRecorded(_) => "dose_recorded",
            Event::IdempotencyRecorded(_) => "idempotency_recorded",
            Event::OperatorKeyCreated(_) => "operator_key_created",
            Event::AuditAppended(_) => "audit_appended",
            Event::ReleaseCreated(_) => "release_created",
            Event::QueueTicketIssued(_) => "queue_ticket_issued",
            Event::ReleaseOpened { .. } => "release_opened",
            Event::QueueAdvanced { .. } => "queue_advanced",
        }
    }

    /// The change this event makes to pool `booked` counters: `(pool, delta)` pairs.
    pub fn booked_deltas(&self) -> impl Iterator<Item = (PoolId, i64)> {
        let pair: [Option<(PoolId, i64)>; 2] = match self {
            Event::BookingCreated(b) if b.status.holds_place() => [Some((b.pool_id, 1)), None],
            Event::BookingStatusChanged {
                pool_id, from, to, ..
            } if from.holds_place() && !to.holds_place() => [Some((*pool_id, -1)), None],
            Event::BookingMoved {
                from_pool_id,
                to_pool_id,
                ..
            } => [Some((*from_pool_id, -1)), Some((*to_pool_id, 1))],
            _ => [None, None],
        };
        pair.into_iter().flatten()
    }
}

/// Everything the engine needs to rebuild itself, as loaded from the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// States.
    pub states: Vec<State>,
    /// Districts.
    pub districts: Vec<District>,
    /// Centres.
    pub centres: Vec<Centre>,
    /// Sessions (cancelled ones included).
    pub sessions: Vec<Session>,
    /// Slots.
    pub slots: Vec<Slot>,
    /// Pools, with their stored `booked` counters (checked against the bookings on load).
    pub pools: Vec<Pool>,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Beneficiaries (removed ones excluded).
    pub beneficiaries: Vec<Beneficiary>,
    /// Bookings in every status.
    pub bookings: Vec<Booking>,
    /// Doses given.
    pub doses: Vec<DoseRecord>,
    /// Idempotency records younger than their retention.
    pub idempotency: Vec<IdempotencyRecord>,
    /// Operator keys.
    pub operator_keys: Vec<OperatorKey>,
    /// The highest audit id written (the log itself is read from the store on demand).
    pub audit_id_max: u64,
    /// The highest batch id committed.
    pub batch_id_max: u64,
    /// The highest beneficiary id ever stored, removed beneficiaries included (their rows and
    /// their bookings keep the id, so it is never handed out again).
    #[serde(default)]
    pub beneficiary_id_max: u64,
    /// Launch releases with their queues' progress.
    #[serde(default)]
    pub releases: Vec<ReleaseState>,
    /// Waiting-room tickets.
    #[serde(default)]
    pub queue_tickets: Vec<QueueTicket>,
    /// Admissions from the queues, with their passes' expiry.
    #[serde(default)]
    pub queue_admissions: Vec<QueueAdmission>,
}

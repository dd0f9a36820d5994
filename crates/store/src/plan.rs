//! A batch of events grouped by kind into the rows each statement writes. Both backends
//! write a [`Plan`], so they agree on what a batch means.
//!
//! Folding rules (so that one statement per kind is enough and no false constraint
//! violation appears inside a batch):
//! - upserts of states, districts, centres and session opening changes keep the last
//!   value per key;
//! - status changes and moves of a booking created in the same batch are folded into the
//!   inserted row; for other bookings the first `from` and the last `to` are kept, and the
//!   update only applies where the stored status is that `from` (checked by row count);
//! - removal of a beneficiary added in the same batch is folded into the inserted row;
//! - pool counters: `Event::booked_deltas` and capacity deltas summed per pool, in pool
//!   order (one update per pool per batch, so `CHECK (booked <= capacity)` sees the
//!   batch's final state).
//!
//! Updates to existing rows run *before* inserts of new bookings and beneficiaries: a
//! cancel followed by a new booking of the same person and dose in one batch must not trip
//! the partial unique index.

use chrono::{DateTime, Utc};
use kataar_domain::*;
use std::collections::{BTreeMap, HashMap};

/// A pool row with the state it belongs to (taken from its session).
pub(crate) struct PoolRow<'a> {
    pub pool: &'a Pool,
    pub state_id: StateId,
}

/// A slot row with its state.
pub(crate) struct SlotRow<'a> {
    pub slot: &'a Slot,
    pub state_id: StateId,
}

/// A status change of a booking that existed before the batch.
pub(crate) struct StatusRow {
    pub booking_id: BookingId,
    pub from: BookingStatus,
    pub to: BookingStatus,
    pub at: DateTime<Utc>,
}

/// A move of a booking that existed before the batch (the last one wins).
pub(crate) struct MoveRow {
    pub booking_id: BookingId,
    pub pool_id: PoolId,
    pub session_id: SessionId,
    pub slot_id: SlotId,
    pub centre_id: CentreId,
    pub token_number: u32,
    pub at: DateTime<Utc>,
}

/// A pool counter change over the batch.
pub(crate) struct PoolDelta {
    pub pool_id: PoolId,
    pub booked: i64,
    pub capacity: i64,
}

/// A beneficiary to insert, possibly already removed in the same batch.
pub(crate) struct BeneficiaryRow<'a> {
    pub beneficiary: &'a Beneficiary,
    pub removed: bool,
}

/// The rows of one batch, per statement, in statement order.
#[derive(Default)]
pub(crate) struct Plan<'a> {
    pub states: Vec<&'a State>,
    pub districts: Vec<&'a District>,
    pub centres: Vec<&'a Centre>,
    pub sessions: Vec<&'a Session>,
    pub slots: Vec<SlotRow<'a>>,
    pub pools: Vec<PoolRow<'a>>,
    pub session_cancels: Vec<SessionId>,
    pub session_opens: Vec<(SessionId, Option<DateTime<Utc>>)>,
    pub accounts: Vec<&'a Account>,
    pub beneficiary_removals: Vec<BeneficiaryId>,
    pub beneficiaries: Vec<BeneficiaryRow<'a>>,
    pub status_changes: Vec<StatusRow>,
    pub moves: Vec<MoveRow>,
    pub bookings: Vec<Booking>,
    pub pool_deltas: Vec<PoolDelta>,
    pub doses: Vec<&'a DoseRecord>,
    pub idempotency: Vec<&'a IdempotencyRecord>,
    pub operator_keys: Vec<&'a OperatorKey>,
    pub audit: Vec<&'a AuditRecord>,
    pub releases: Vec<&'a Release>,
    pub queue_tickets: Vec<&'a QueueTicket>,
    /// Pre-queue sizes closed at an opening.
    pub release_opens: Vec<(ReleaseId, u32)>,
    /// The furthest cursor per release in the batch.
    pub queue_cursors: Vec<(ReleaseId, u32)>,
    pub queue_admissions: Vec<&'a QueueAdmission>,
}

/// Keeps the last value per key, in first-seen order.
struct LastWins<K, V> {
    order: Vec<K>,
    values: HashMap<K, V>,
}

impl<K: std::hash::Hash + Eq + Copy, V> LastWins<K, V> {
    fn new() -> Self {
        LastWins {
            order: Vec::new(),
            values: HashMap::new(),
        }
    }

    fn put(&mut self, key: K, value: V) {
        if self.values.insert(key, value).is_none() {
            self.order.push(key);
        }
    }

    fn into_values(mut self) -> Vec<V> {
        self.order
            .iter()
            .filter_map(|k| self.values.remove(k))
            .collect()
    }
}

impl<'a> Plan<'a> {
    /// Groups `events` (in their order) into rows.
    pub(crate) fn new(events: &'a [Event]) -> Plan<'a> {
        let mut plan = Plan::default();
        let mut states = LastWins::new();
        let mut districts = LastWins::new();
        let mut centres = LastWins::new();
        let mut opens = LastWins::new();
        let mut new_bookings: Vec<Booking> = Vec::new();
        let mut new_booking_index: HashMap<BookingId, usize> = HashMap::new();
        let mut new_beneficiary_index: HashMap<BeneficiaryId, usize> = HashMap::new();
        let mut status: LastWins<BookingId, StatusRow> = LastWins::new();
        let mut moves: LastWins<BookingId, MoveRow> = LastWins::new();
        let mut deltas: BTreeMap<PoolId, (i64, i64)> = BTreeMap::new();
        let mut cursors: BTreeMap<ReleaseId, u32> = BTreeMap::new();

        for event in events {
            for (pool_id, delta) in event.booked_deltas() {
                deltas.entry(pool_id).or_default().0 += delta;
            }
            match event {
                Event::StateUpserted(s) => states.put(s.state_id, s),
                Event::DistrictUpserted(d) => districts.put(d.district_id, d),
                Event::CentreUpserted(c) => centres.put(c.centre_id, c),
                Event::SessionCreated {
                    session,
                    slots,
                    pools,
                } => {
                    plan.sessions.push(session);
                    plan.slots.extend(slots.iter().map(|slot| SlotRow {
                        slot,
                        state_id: session.state_id,
                    }));
                    plan.pools.extend(pools.iter().map(|pool| PoolRow {
                        pool,
                        state_id: session.state_id,
                    }));
                }
                Event::SessionCancelled { session_id } => plan.session_cancels.push(*session_id),
                Event::SessionOpensAtSet {
                    session_id,
                    opens_at,
                } => opens.put(*session_id, (*session_id, *opens_at)),
                Event::PoolCapacityChanged { pool_id, delta } => {
                    deltas.entry(*pool_id).or_default().1 += delta;
                }
                Event::AccountCreated(a) => plan.accounts.push(a),
                Event::BeneficiaryAdded(b) => {
                    new_beneficiary_index.insert(b.beneficiary_id, plan.beneficiaries.len());
                    plan.beneficiaries.push(BeneficiaryRow {
                        beneficiary: b,
                        removed: false,
                    });
                }
                Event::BeneficiaryRemoved { beneficiary_id } => {
                    match new_beneficiary_index.get(beneficiary_id) {
                        Some(&i) => {
                            if let Some(row) = plan.beneficiaries.get_mut(i) {
                                row.removed = true;
                            }
                        }
                        None => plan.beneficiary_removals.push(*beneficiary_id),
                    }
                }
                Event::BookingCreated(b) => {
                    new_booking_index.insert(b.booking_id, new_bookings.len());
                    new_bookings.push(b.clone());
                }
                Event::BookingStatusChanged {
                    booking_id,
                    from,
                    to,
                    at,
                    ..
                } => match new_booking_index.get(booking_id) {
                    Some(&i) => {
                        if let Some(b) = new_bookings.get_mut(i) {
                            b.status = *to;
                            b.updated_at = *at;
                        }
                    }
                    None => {
                        let first_from = status
                            .values
                            .get(booking_id)
                            .map(|row| row.from)
                            .unwrap_or(*from);
                        status.put(
                            *booking_id,
                            StatusRow {
                                booking_id: *booking_id,
                                from: first_from,
                                to: *to,
                                at: *at,
                            },
                        );
                    }
                },
                Event::BookingMoved {
                    booking_id,
                    to_pool_id,
                    session_id,
                    slot_id,
                    centre_id,
                    token_number,
                    at,
                    ..
                } => match new_booking_index.get(booking_id) {
                    Some(&i) => {
                        if let Some(b) = new_bookings.get_mut(i) {
                            b.pool_id = *to_pool_id;
                            b.session_id = *session_id;
                            b.slot_id = *slot_id;
                            b.centre_id = *centre_id;
                            b.token_number = *token_number;
                            b.updated_at = *at;
                        }
                    }
                    None => moves.put(
                        *booking_id,
                        MoveRow {
                            booking_id: *booking_id,
                            pool_id: *to_pool_id,
                            session_id: *session_id,
                            slot_id: *slot_id,
                            centre_id: *centre_id,
                            token_number: *token_number,
                            at: *at,
                        },
                    ),
                },
                Event::DoseRecorded(d) => plan.doses.push(d),
                Event::IdempotencyRecorded(r) => plan.idempotency.push(r),
                Event::OperatorKeyCreated(k) => plan.operator_keys.push(k),
                Event::AuditAppended(a) => plan.audit.push(a),
                Event::ReleaseCreated(r) => plan.releases.push(r),
                Event::QueueTicketIssued(t) => plan.queue_tickets.push(t),
                Event::ReleaseOpened {
                    release_id,
                    prequeue,
                } => plan.release_opens.push((*release_id, *prequeue)),
                Event::QueueAdvanced {
                    release_id,
                    cursor,
                    admitted,
                } => {
                    let c = cursors.entry(*release_id).or_insert(0);
                    *c = (*c).max(*cursor);
                    plan.queue_admissions.extend(admitted.iter());
                }
            }
        }
        plan.queue_cursors = cursors.into_iter().collect();
        plan.states = states.into_values();
        plan.districts = districts.into_values();
        plan.centres = centres.into_values();
        plan.session_opens = opens.into_values();
        plan.status_changes = status.into_values();
        plan.moves = moves.into_values();
        plan.bookings = new_bookings;
        plan.pool_deltas = deltas
            .into_iter()
            .filter(|(_, (b, c))| *b != 0 || *c != 0)
            .map(|(pool_id, (booked, capacity))| PoolDelta {
                pool_id,
                booked,
                capacity,
            })
            .collect();
        plan
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn booking(id: u64, pool: u64) -> Booking {
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        Booking {
            booking_id: BookingId(id),
            account_id: AccountId(1),
            beneficiary_id: BeneficiaryId(id),
            person_key: PersonKey([id as u8; 32]),
            state_id: StateId(1),
            centre_id: CentreId(1),
            session_id: SessionId(1),
            slot_id: SlotId(1),
            pool_id: PoolId(pool),
            dose: Dose::One,
            channel: Channel::Online,
            status: BookingStatus::Booked,
            token_number: 1,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn folds_changes_of_new_bookings_and_sums_deltas_per_pool() {
        let t = Utc.timestamp_opt(1_700_000_100, 0).unwrap();
        let events = vec![
            Event::BookingCreated(booking(1, 10)),
            Event::BookingCreated(booking(2, 10)),
            Event::BookingStatusChanged {
                booking_id: BookingId(1),
                pool_id: PoolId(10),
                from: BookingStatus::Booked,
                to: BookingStatus::Cancelled,
                at: t,
            },
            Event::BookingMoved {
                booking_id: BookingId(2),
                from_pool_id: PoolId(10),
                to_pool_id: PoolId(11),
                session_id: SessionId(2),
                slot_id: SlotId(2),
                centre_id: CentreId(1),
                token_number: 7,
                at: t,
            },
            Event::BookingStatusChanged {
                booking_id: BookingId(9),
                pool_id: PoolId(12),
                from: BookingStatus::Booked,
                to: BookingStatus::CheckedIn,
                at: t,
            },
            Event::BookingStatusChanged {
                booking_id: BookingId(9),
                pool_id: PoolId(12),
                from: BookingStatus::CheckedIn,
                to: BookingStatus::Administered,
                at: t,
            },
            Event::PoolCapacityChanged {
                pool_id: PoolId(12),
                delta: -3,
            },
        ];
        let plan = Plan::new(&events);
        assert_eq!(plan.bookings.len(), 2);
        assert_eq!(plan.bookings[0].status, BookingStatus::Cancelled);
        assert_eq!(plan.bookings[1].pool_id, PoolId(11));
        assert_eq!(plan.status_changes.len(), 1);
        assert_eq!(plan.status_changes[0].from, BookingStatus::Booked);
        assert_eq!(plan.status_changes[0].to, BookingStatus::Administered);
        let deltas: Vec<_> = plan
            .pool_deltas
            .iter()
            .map(|d| (d.pool_id.0, d.booked, d.capacity))
            .collect();
        // pool 10: +1 +1 -1 -1 = 0 (dropped); 11: +1; 12: capacity -3.
        assert_eq!(deltas, vec![(11, 1, 0), (12, 0, -3)]);
    }
}

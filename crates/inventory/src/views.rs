//! Read models for the API, built from memory without locks on the booking path: pool
//! counters are atomics, and the maps are read shard by shard.

use crate::engine::{Inventory, SessionCell};
use crate::pool::PoolCell;
use chrono::NaiveDate;
use kataar_domain::rules::{self, NextDose};
use kataar_domain::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A pool's live counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolView {
    /// Its id.
    pub pool_id: u64,
    /// Its slot.
    pub slot_id: u64,
    /// 1 or 2.
    pub dose: u8,
    /// `online` or `walkin`.
    pub channel: String,
    /// Places in total.
    pub capacity: u32,
    /// Places held by bookings that are not cancelled.
    pub booked: u32,
    /// Of those, checked in.
    pub checked_in: u32,
    /// Doses given.
    pub administered: u32,
    /// No-shows.
    pub no_show: u32,
    /// `capacity - booked`.
    pub available: u32,
}

impl PoolView {
    /// A snapshot of a pool's counters.
    pub fn of(p: &PoolCell) -> PoolView {
        let (capacity, booked) = p.counts();
        PoolView {
            pool_id: p.pool_id.0,
            slot_id: p.slot_id.0,
            dose: p.dose.number(),
            channel: p.channel.as_str().to_string(),
            capacity,
            booked,
            checked_in: p.checked_in.load(Ordering::Relaxed),
            administered: p.administered.load(Ordering::Relaxed),
            no_show: p.no_show.load(Ordering::Relaxed),
            available: capacity - booked,
        }
    }
}

/// Summed counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Places in total.
    pub capacity: u64,
    /// Places held.
    pub booked: u64,
    /// Checked in.
    pub checked_in: u64,
    /// Doses given.
    pub administered: u64,
    /// No-shows.
    pub no_show: u64,
    /// Places left.
    pub available: u64,
}

impl Totals {
    /// Adds a pool.
    pub fn add_pool(&mut self, p: &PoolView) {
        self.capacity += u64::from(p.capacity);
        self.booked += u64::from(p.booked);
        self.checked_in += u64::from(p.checked_in);
        self.administered += u64::from(p.administered);
        self.no_show += u64::from(p.no_show);
        self.available += u64::from(p.available);
    }

    /// Adds other totals.
    pub fn add(&mut self, t: &Totals) {
        self.capacity += t.capacity;
        self.booked += t.booked;
        self.checked_in += t.checked_in;
        self.administered += t.administered;
        self.no_show += t.no_show;
        self.available += t.available;
    }
}

/// A slot with its pools.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotView {
    /// The slot.
    pub slot: Slot,
    /// Its pools (dose 1 online, dose 1 walk-in, dose 2 online, dose 2 walk-in).
    pub pools: Vec<PoolView>,
}

impl SlotView {
    /// Online places left for a dose.
    pub fn online_available(&self, dose: Dose) -> u32 {
        self.pools
            .iter()
            .filter(|p| p.dose == dose.number() && p.channel == Channel::Online.as_str())
            .map(|p| p.available)
            .sum()
    }
}

/// A session with live counters.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionView {
    /// The record.
    pub session: Session,
    /// Being cancelled or cancelled.
    pub closed: bool,
    /// Slots in order.
    pub slots: Vec<SlotView>,
}

impl SessionView {
    /// A session as it is once created: its slots and pools with no booking yet (the answer to
    /// its creation, rendered before the commit makes it visible).
    pub fn created(session: &Session, slots: &[Slot], pools: &[Pool]) -> SessionView {
        let slots = slots
            .iter()
            .map(|slot| SlotView {
                slot: slot.clone(),
                pools: pools
                    .iter()
                    .filter(|p| p.slot_id == slot.slot_id)
                    .map(|p| PoolView {
                        pool_id: p.pool_id.0,
                        slot_id: p.slot_id.0,
                        dose: p.dose.number(),
                        channel: p.channel.as_str().to_string(),
                        capacity: p.capacity,
                        booked: p.booked,
                        checked_in: 0,
                        administered: 0,
                        no_show: 0,
                        available: p.capacity.saturating_sub(p.booked),
                    })
                    .collect(),
            })
            .collect();
        SessionView {
            session: session.clone(),
            closed: session.cancelled,
            slots,
        }
    }

    fn of(cell: &SessionCell) -> SessionView {
        let session = cell.record();
        let closed = session.cancelled || cell.closing.load(Ordering::SeqCst);
        let slots = cell
            .slots
            .iter()
            .map(|slot| SlotView {
                slot: slot.clone(),
                pools: cell
                    .pools
                    .iter()
                    .filter(|p| p.slot_id == slot.slot_id)
                    .map(|p| PoolView::of(p))
                    .collect(),
            })
            .collect();
        SessionView {
            session,
            closed,
            slots,
        }
    }

    /// Online places left for a dose, over all slots.
    pub fn online_available(&self, dose: Dose) -> u32 {
        self.slots.iter().map(|s| s.online_available(dose)).sum()
    }

    /// Every pool's counters summed.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.slots {
            for p in &s.pools {
                t.add_pool(p);
            }
        }
        t
    }
}

/// A beneficiary with dose history, next dose and bookings.
#[derive(Clone, Debug, PartialEq)]
pub struct BeneficiaryView {
    /// The record.
    pub beneficiary: Beneficiary,
    /// Doses given, in order.
    pub doses: Vec<DoseRecord>,
    /// What may be booked next.
    pub next: NextDose,
    /// Bookings, oldest first.
    pub bookings: Vec<Booking>,
}

/// How to pick centres for availability and capacity.
#[derive(Clone, Debug)]
pub enum CentreFilter {
    /// Every centre of a district.
    District(DistrictId),
    /// Every centre with this pincode.
    Pincode(String),
    /// One centre.
    Centre(CentreId),
}

impl Inventory {
    /// States, by id.
    pub fn states(&self) -> Vec<State> {
        self.states.read().values().cloned().collect()
    }

    /// One state.
    pub fn state(&self, id: StateId) -> Option<State> {
        self.states.read().get(&id).cloned()
    }

    /// Districts of a state, by id.
    pub fn districts(&self, state: StateId) -> Vec<District> {
        self.districts
            .read()
            .values()
            .filter(|d| d.state_id == state)
            .cloned()
            .collect()
    }

    /// One district.
    pub fn district(&self, id: DistrictId) -> Option<District> {
        self.districts.read().get(&id).cloned()
    }

    /// One centre.
    pub fn centre(&self, id: CentreId) -> Option<Centre> {
        self.centres.get(&id).map(|c| c.clone())
    }

    /// Every centre, by id.
    pub fn centres(&self) -> Vec<Centre> {
        let mut all: Vec<Centre> = self.centres.iter().map(|c| c.clone()).collect();
        all.sort_by_key(|c| c.centre_id);
        all
    }

    /// Centre ids matching a filter, in id order.
    pub fn centre_ids(&self, filter: &CentreFilter) -> Vec<CentreId> {
        match filter {
            CentreFilter::District(d) => self
                .centres_by_district
                .get(d)
                .map(|l| l.clone())
                .unwrap_or_default(),
            CentreFilter::Pincode(p) => self
                .centres_by_pincode
                .get(p)
                .map(|l| l.clone())
                .unwrap_or_default(),
            CentreFilter::Centre(c) => {
                if self.centres.contains_key(c) {
                    vec![*c]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// A centre's sessions with `from <= date < from + days`, by date.
    pub fn centre_sessions(
        &self,
        centre: CentreId,
        from: NaiveDate,
        days: u32,
    ) -> Vec<SessionView> {
        let to = from
            .checked_add_days(chrono::Days::new(u64::from(days)))
            .unwrap_or(NaiveDate::MAX);
        let ids = self
            .sessions_by_centre
            .get(&centre)
            .map(|l| l.clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.sessions.get(&id).map(|c| c.clone()))
            .filter(|c| {
                let d = c.session.read().date;
                d >= from && d < to
            })
            .map(|c| SessionView::of(&c))
            .collect()
    }

    /// One session with live counters.
    pub fn session(&self, id: SessionId) -> Option<SessionView> {
        self.sessions.get(&id).map(|c| SessionView::of(&c))
    }

    /// A session's record and one of its slots, without building the counters of every pool
    /// (what rendering a booking needs).
    pub fn session_slot(&self, session: SessionId, slot: SlotId) -> Option<(Session, Slot)> {
        let cell = self.sessions.get(&session)?;
        let slot = cell.slots.iter().find(|s| s.slot_id == slot)?.clone();
        Some((cell.record(), slot))
    }

    /// One pool's counters.
    pub fn pool(&self, id: PoolId) -> Option<PoolView> {
        self.pools.get(&id).map(|p| PoolView::of(&p))
    }

    /// The session a pool belongs to.
    pub fn pool_session(&self, id: PoolId) -> Option<SessionId> {
        self.pools.get(&id).map(|p| p.session_id)
    }

    /// Every pool's id with its `(capacity, booked)` (for checks and tests).
    pub fn pool_counts(&self) -> Vec<(PoolId, u32, u32)> {
        self.pools
            .iter()
            .map(|p| {
                let (c, b) = p.counts();
                (*p.key(), c, b)
            })
            .collect()
    }

    /// An account.
    pub fn account(&self, id: AccountId) -> Option<Account> {
        self.accounts.get(&id).map(|a| a.account.clone())
    }

    /// The account of a mobile number.
    pub fn account_by_mobile(&self, mobile: &str) -> Option<Account> {
        let id = self.accounts_by_mobile.get(mobile).map(|id| *id)?;
        self.account(id)
    }

    /// A beneficiary of this account (none for another account's).
    pub fn beneficiary(&self, account: AccountId, id: BeneficiaryId) -> Option<BeneficiaryView> {
        let b = self
            .beneficiaries
            .get(&id)
            .filter(|b| b.account_id == account)
            .map(|b| b.clone())?;
        self.beneficiary_view(b)
    }

    /// A beneficiary found by id alone (operators).
    pub fn beneficiary_any(&self, id: BeneficiaryId) -> Option<BeneficiaryView> {
        let b = self.beneficiaries.get(&id).map(|b| b.clone())?;
        self.beneficiary_view(b)
    }

    /// The beneficiary holding a person key.
    pub fn beneficiary_by_person(&self, key: &PersonKey) -> Option<BeneficiaryView> {
        let id = self
            .person_shard(key)
            .lock()
            .get(key)
            .map(|p| p.beneficiary_id)?;
        self.beneficiary_any(id)
    }

    fn beneficiary_view(&self, b: Beneficiary) -> Option<BeneficiaryView> {
        let (doses, booking_ids, busy) = {
            let shard = self.person_shard(&b.person_key).lock();
            let p = shard.get(&b.person_key)?;
            (p.doses.clone(), p.bookings.clone(), p.busy)
        };
        if busy {
            return None;
        }
        let bookings = booking_ids
            .iter()
            .filter_map(|id| self.bookings.get(id))
            .map(|e| e.booking.clone())
            .collect();
        Some(BeneficiaryView {
            next: rules::next_dose(&doses),
            beneficiary: b,
            doses,
            bookings,
        })
    }

    /// An account's beneficiaries, in the order they were added.
    pub fn beneficiaries(&self, account: AccountId) -> Vec<BeneficiaryView> {
        let ids = self
            .accounts
            .get(&account)
            .map(|a| a.beneficiaries.clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.beneficiary(account, id))
            .collect()
    }

    /// A booking in scope.
    pub fn booking(&self, id: BookingId, scope: &crate::Scope) -> Option<Booking> {
        self.bookings
            .get(&id)
            .filter(|e| scope.allows(e.booking.account_id, e.booking.centre_id))
            .map(|e| e.booking.clone())
    }

    /// An account's bookings, oldest first.
    pub fn bookings_of(&self, account: AccountId) -> Vec<Booking> {
        let ids = self
            .bookings_by_account
            .get(&account)
            .map(|l| l.clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.bookings.get(&id).map(|e| e.booking.clone()))
            .collect()
    }

    /// A session's bookings by token number (the centre's day list).
    pub fn session_bookings(&self, id: SessionId) -> Vec<Booking> {
        let Some(cell) = self.sessions.get(&id).map(|c| c.clone()) else {
            return Vec::new();
        };
        let ids: Vec<BookingId> = cell.bookings.lock().clone();
        let mut list: Vec<Booking> = ids
            .into_iter()
            .filter_map(|b| self.bookings.get(&b).map(|e| e.booking.clone()))
            .filter(|b| b.session_id == id)
            .collect();
        list.sort_by_key(|b| b.token_number);
        list
    }

    /// An operator key by the hash of the clear key.
    pub fn operator_key(&self, key_hash: &str) -> Option<OperatorKey> {
        self.operator_keys.get(key_hash).map(|k| k.clone())
    }

    /// Number of pools (for readiness and metrics).
    pub fn pools_len(&self) -> usize {
        self.pools.len()
    }

    /// Number of bookings held in memory.
    pub fn bookings_len(&self) -> usize {
        self.bookings.len()
    }

    /// The session cell behind an id (for the API's waiting helpers).
    pub fn session_exists(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    #[allow(dead_code)]
    pub(crate) fn cell(&self, id: SessionId) -> Option<Arc<SessionCell>> {
        self.session_cell(id)
    }
}

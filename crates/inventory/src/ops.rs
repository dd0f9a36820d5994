//! The write operations. Each one decides under the smallest set of locks, applies its takes,
//! and returns a [`Prepared`] with the events to commit and a [`Finisher`] for the rest.

use crate::engine::{
    AccountEntry, BookingEntry, Finisher, Inventory, Person, Prepared, SessionCell,
};
use crate::pool::{CapacityError, PoolCell};
use crate::views::PoolView;
use chrono::{DateTime, NaiveDate, Utc};
use kataar_domain::limits::{BENEFICIARIES_PER_ACCOUNT_MAX, POOL_CAPACITY_MAX};
use kataar_domain::rules;
use kataar_domain::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A citizen's (or a walk-in's) request for a place.
#[derive(Clone, Debug)]
pub struct BookRequest {
    /// The account booking (the beneficiary must be on it).
    pub account_id: AccountId,
    /// The person.
    pub beneficiary_id: BeneficiaryId,
    /// The session.
    pub session_id: SessionId,
    /// The slot within it.
    pub slot_id: SlotId,
    /// Which dose.
    pub dose: Dose,
    /// The instant of the decision.
    pub now: DateTime<Utc>,
    /// Today in the drive's time zone.
    pub today: NaiveDate,
}

/// Who may act on a booking: its own account, or an operator on some centres (or all).
#[derive(Clone, Debug)]
pub enum Scope {
    /// A citizen: only this account's objects.
    Account(AccountId),
    /// An operator limited to these centres.
    Centres(Vec<CentreId>),
    /// An administrator: everything.
    All,
}

impl Scope {
    /// Whether an object of `account` at `centre` is visible in this scope.
    pub fn allows(&self, account: AccountId, centre: CentreId) -> bool {
        match self {
            Scope::Account(a) => *a == account,
            Scope::Centres(list) => list.contains(&centre),
            Scope::All => true,
        }
    }

    /// Whether a centre is visible in this scope (citizens see every centre).
    pub fn allows_centre(&self, centre: CentreId) -> bool {
        match self {
            Scope::Centres(list) => list.contains(&centre),
            Scope::Account(_) | Scope::All => true,
        }
    }
}

/// One slot of a new session, with the capacity of its four pools.
#[derive(Clone, Debug)]
pub struct NewSlot {
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM`.
    pub end: String,
    /// Dose 1, online.
    pub dose1_online: u32,
    /// Dose 1, walk-in.
    pub dose1_walkin: u32,
    /// Dose 2, online.
    pub dose2_online: u32,
    /// Dose 2, walk-in.
    pub dose2_walkin: u32,
}

/// A new session.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The centre.
    pub centre_id: CentreId,
    /// The day.
    pub date: NaiveDate,
    /// The vaccine.
    pub vaccine: Vaccine,
    /// Youngest age.
    pub min_age: u16,
    /// Oldest age, if any.
    pub max_age: Option<u16>,
    /// Announced opening, if later.
    pub opens_at: Option<DateTime<Utc>>,
    /// The slots.
    pub slots: Vec<NewSlot>,
}

/// A new beneficiary (already validated and keyed by the caller).
#[derive(Clone, Debug)]
pub struct NewBeneficiary {
    /// The person key (HMAC of the normalised photo-ID).
    pub person_key: PersonKey,
    /// Name.
    pub name: String,
    /// Birth year.
    pub birth_year: u16,
    /// Gender.
    pub gender: Gender,
    /// Photo-ID type code.
    pub id_type: String,
    /// Masked number.
    pub id_masked: String,
}

/// The outcome of finding an account by mobile.
#[derive(Debug)]
pub enum AccountLookup {
    /// It exists (committed or being created).
    Existing(Account),
    /// It is new: commit these events first.
    New(Prepared<Account>),
}

fn closed(cell: &SessionCell, record: &Session, today: NaiveDate) -> bool {
    record.cancelled || cell.closing.load(Ordering::SeqCst) || record.date < today
}

/// Why a booking cannot be changed at this instant: another change of it is committing.
pub const BOOKING_BUSY: &str = "the booking is being changed right now; retry in a moment";

impl Inventory {
    fn lock_pool_session(&self, id: SessionId) -> Result<Arc<SessionCell>, BookingError> {
        self.session_cell(id).ok_or(BookingError::NotFound)
    }

    /// Books a citizen's place in the online pool.
    pub fn book(
        &self,
        req: &BookRequest,
        gate: impl FnOnce(&Session) -> Result<(), BookingError>,
    ) -> Result<Prepared<Booking>, BookingError> {
        self.book_inner(req, gate, &[Channel::Online], BookingStatus::Booked, false)
    }

    /// Books several citizens' places as one operation, all or none: each request is decided by
    /// [`Inventory::book`]'s rules in order; at the first refusal every place already taken for
    /// the earlier requests is given back and the refusal is returned. On success the events
    /// of all the bookings go to the store in one batch and finish together.
    pub fn book_all(
        &self,
        reqs: &[BookRequest],
        gate: impl Fn(&Session) -> Result<(), BookingError>,
    ) -> Result<Prepared<Vec<Booking>>, BookingError> {
        let mut bookings = Vec::with_capacity(reqs.len());
        let mut events = Vec::with_capacity(reqs.len());
        let mut fin = Finisher::new();
        for req in reqs {
            match self.book(req, &gate) {
                Ok(p) => {
                    bookings.push(p.value);
                    events.extend(p.events);
                    fin = fin.then(p.finisher);
                }
                Err(e) => {
                    self.finish(fin, false);
                    return Err(e);
                }
            }
        }
        Ok(Prepared::new(bookings, events, fin))
    }

    fn book_inner(
        &self,
        req: &BookRequest,
        gate: impl FnOnce(&Session) -> Result<(), BookingError>,
        channels: &[Channel],
        status: BookingStatus,
        allow_busy_person: bool,
    ) -> Result<Prepared<Booking>, BookingError> {
        let beneficiary = self
            .beneficiaries
            .get(&req.beneficiary_id)
            .filter(|b| b.account_id == req.account_id)
            .map(|b| (b.person_key, b.birth_year))
            .ok_or(BookingError::NotFound)?;
        let (person_key, birth_year) = beneficiary;
        let cell = self.lock_pool_session(req.session_id)?;
        if !cell.slots.iter().any(|s| s.slot_id == req.slot_id) {
            return Err(BookingError::NotFound);
        }
        let record = cell.record();
        if closed(&cell, &record, req.today) {
            return Err(BookingError::SessionClosed);
        }
        if record.opens_at.is_some_and(|at| at > req.now) {
            return Err(BookingError::NotOpen);
        }
        gate(&record)?;
        if !rules::age_allowed(birth_year, record.date, record.min_age, record.max_age) {
            return Err(BookingError::NotEligible);
        }
        let mut shard = self.person_shard(&person_key).lock();
        let person = shard.get_mut(&person_key).ok_or(BookingError::NotFound)?;
        if person.busy && !allow_busy_person {
            return Err(BookingError::NotFound);
        }
        rules::check_dose(&person.doses, req.dose, record.vaccine, record.date)?;
        if person.live[req.dose.index()].is_some() {
            return Err(BookingError::AlreadyBooked);
        }
        cell.inflight.fetch_add(1, Ordering::SeqCst);
        if cell.closing.load(Ordering::SeqCst) {
            cell.inflight.fetch_sub(1, Ordering::SeqCst);
            return Err(BookingError::SessionClosed);
        }
        let pool = channels
            .iter()
            .filter_map(|ch| cell.pool(req.slot_id, req.dose, *ch))
            .find(|p| p.try_reserve())
            .cloned();
        let Some(pool) = pool else {
            cell.inflight.fetch_sub(1, Ordering::SeqCst);
            return Err(BookingError::PoolFull);
        };
        let booking_id = self.ids.booking();
        let token_number = cell.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        let centre_id = record.centre_id;
        let booking = Booking {
            booking_id,
            account_id: req.account_id,
            beneficiary_id: req.beneficiary_id,
            person_key,
            state_id: record.state_id,
            centre_id,
            session_id: record.session_id,
            slot_id: req.slot_id,
            pool_id: pool.pool_id,
            dose: req.dose,
            channel: pool.channel,
            status,
            token_number,
            created_at: req.now,
            updated_at: req.now,
        };
        person.live[req.dose.index()] = Some(booking_id);
        person.bookings.push(booking_id);
        drop(shard);
        self.bookings.insert(
            booking_id,
            BookingEntry {
                booking: booking.clone(),
                busy: true,
            },
        );
        self.bookings_by_account
            .entry(req.account_id)
            .or_default()
            .push(booking_id);
        cell.bookings.lock().push(booking_id);
        if status == BookingStatus::CheckedIn {
            pool.checked_in.fetch_add(1, Ordering::Relaxed);
        }
        self.bump();

        let mut fin = Finisher::new();
        let commit_cell = cell.clone();
        fin.commit(move |inv| {
            if let Some(mut e) = inv.bookings.get_mut(&booking_id) {
                e.busy = false;
            }
            commit_cell.inflight.fetch_sub(1, Ordering::SeqCst);
        });
        let dose = req.dose;
        let account = req.account_id;
        fin.abort(move |inv| {
            pool.release();
            if status == BookingStatus::CheckedIn {
                pool.checked_in.fetch_sub(1, Ordering::Relaxed);
            }
            inv.bookings.remove(&booking_id);
            if let Some(mut list) = inv.bookings_by_account.get_mut(&account) {
                list.retain(|b| *b != booking_id);
            }
            cell.bookings.lock().retain(|b| *b != booking_id);
            {
                let mut shard = inv.person_shard(&person_key).lock();
                if let Some(p) = shard.get_mut(&person_key) {
                    if p.live[dose.index()] == Some(booking_id) {
                        p.live[dose.index()] = None;
                    }
                    p.bookings.retain(|b| *b != booking_id);
                }
            }
            cell.inflight.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(Prepared::new(
            booking.clone(),
            vec![Event::BookingCreated(booking)],
            fin,
        ))
    }

    /// Takes a booking for a change: checks scope and that no other change is in flight, and
    /// marks it busy. The returned finisher clears the mark either way.
    fn claim_booking(
        &self,
        id: BookingId,
        scope: &Scope,
        allowed: &[BookingStatus],
        refusal: &'static str,
    ) -> Result<(Booking, Finisher), BookingError> {
        let mut entry = self.bookings.get_mut(&id).ok_or(BookingError::NotFound)?;
        let b = &entry.booking;
        if !scope.allows(b.account_id, b.centre_id) {
            return Err(BookingError::NotFound);
        }
        if entry.busy {
            return Err(BookingError::BookingState(BOOKING_BUSY));
        }
        if !allowed.contains(&b.status) {
            return Err(BookingError::BookingState(refusal));
        }
        entry.busy = true;
        let booking = entry.booking.clone();
        drop(entry);
        let mut fin = Finisher::new();
        fin.commit(move |inv| {
            if let Some(mut e) = inv.bookings.get_mut(&id) {
                e.busy = false;
            }
        });
        fin.abort(move |inv| {
            if let Some(mut e) = inv.bookings.get_mut(&id) {
                e.busy = false;
            }
        });
        Ok((booking, fin))
    }

    fn pool_cell(&self, id: PoolId) -> Option<Arc<PoolCell>> {
        self.pools.get(&id).map(|p| p.clone())
    }

    /// Sets a booking's status in memory (after its commit) and returns the old one.
    fn set_status(&self, id: BookingId, to: BookingStatus, at: DateTime<Utc>) {
        if let Some(mut e) = self.bookings.get_mut(&id) {
            e.booking.status = to;
            e.booking.updated_at = at;
        }
    }

    fn clear_live(&self, key: PersonKey, dose: Dose, id: BookingId) {
        let mut shard = self.person_shard(&key).lock();
        if let Some(p) = shard.get_mut(&key) {
            if p.live[dose.index()] == Some(id) {
                p.live[dose.index()] = None;
            }
        }
    }

    /// Cancels a booking; its place returns to its pool once the cancellation is committed.
    /// A booking already cancelled is answered as it is, with nothing to commit.
    pub fn cancel(
        &self,
        id: BookingId,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Prepared<Booking>, BookingError> {
        if let Some(e) = self.bookings.get(&id) {
            let b = &e.booking;
            if b.status == BookingStatus::Cancelled
                && !e.busy
                && scope.allows(b.account_id, b.centre_id)
            {
                return Ok(Prepared::new(b.clone(), Vec::new(), Finisher::new()));
            }
        }
        let (booking, fin) = self.claim_booking(
            id,
            scope,
            &[BookingStatus::Booked],
            "only a booking that is not yet checked in can be cancelled",
        )?;
        let mut after = booking.clone();
        after.status = BookingStatus::Cancelled;
        after.updated_at = now;
        let pool = self
            .pool_cell(booking.pool_id)
            .ok_or(BookingError::NotFound)?;
        let mut own = Finisher::new();
        let (key, dose) = (booking.person_key, booking.dose);
        own.commit(move |inv| {
            inv.set_status(id, BookingStatus::Cancelled, now);
            pool.release();
            inv.clear_live(key, dose, id);
        });
        let event = Event::BookingStatusChanged {
            booking_id: id,
            pool_id: booking.pool_id,
            from: booking.status,
            to: BookingStatus::Cancelled,
            at: now,
        };
        Ok(Prepared::new(after, vec![event], own.then(fin)))
    }

    /// Moves a booking to another slot (of the same or another session) as one step: the new
    /// place is taken now, the old one given back when the move is committed.
    #[allow(clippy::too_many_arguments)]
    pub fn reschedule(
        &self,
        id: BookingId,
        account: AccountId,
        session_id: SessionId,
        slot_id: SlotId,
        now: DateTime<Utc>,
        today: NaiveDate,
        gate: impl FnOnce(&Session) -> Result<(), BookingError>,
    ) -> Result<Prepared<Booking>, BookingError> {
        let current = self
            .bookings
            .get(&id)
            .map(|e| e.booking.clone())
            .filter(|b| b.account_id == account)
            .ok_or(BookingError::NotFound)?;
        let cell = self.lock_pool_session(session_id)?;
        if !cell.slots.iter().any(|s| s.slot_id == slot_id) {
            return Err(BookingError::NotFound);
        }
        if current.slot_id == slot_id {
            return Err(BookingError::Invalid(
                "slot_id",
                "the booking is already in this slot".into(),
            ));
        }
        let record = cell.record();
        if closed(&cell, &record, today) {
            return Err(BookingError::SessionClosed);
        }
        if record.opens_at.is_some_and(|at| at > now) {
            return Err(BookingError::NotOpen);
        }
        gate(&record)?;
        let birth_year = self
            .beneficiaries
            .get(&current.beneficiary_id)
            .map(|b| b.birth_year)
            .ok_or(BookingError::NotFound)?;
        if !rules::age_allowed(birth_year, record.date, record.min_age, record.max_age) {
            return Err(BookingError::NotEligible);
        }
        {
            let shard = self.person_shard(&current.person_key).lock();
            let person = shard
                .get(&current.person_key)
                .ok_or(BookingError::NotFound)?;
            rules::check_dose(&person.doses, current.dose, record.vaccine, record.date)?;
        }
        let (booking, claim) = self.claim_booking(
            id,
            &Scope::Account(account),
            &[BookingStatus::Booked],
            "only a booking that is not yet checked in can be rescheduled",
        )?;
        cell.inflight.fetch_add(1, Ordering::SeqCst);
        let new_pool = if cell.closing.load(Ordering::SeqCst) {
            Err(BookingError::SessionClosed)
        } else {
            cell.pool(slot_id, booking.dose, booking.channel)
                .filter(|p| p.try_reserve())
                .cloned()
                .ok_or(BookingError::PoolFull)
        };
        let new_pool = match new_pool {
            Ok(p) => p,
            Err(e) => {
                cell.inflight.fetch_sub(1, Ordering::SeqCst);
                self.finish(claim, false);
                return Err(e);
            }
        };
        let old_pool = self.pool_cell(booking.pool_id);
        let old_session = self.session_cell(booking.session_id);
        let token_number = cell.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        let mut after = booking.clone();
        after.session_id = session_id;
        after.slot_id = slot_id;
        after.pool_id = new_pool.pool_id;
        after.centre_id = record.centre_id;
        after.state_id = record.state_id;
        after.token_number = token_number;
        after.updated_at = now;
        self.bump();
        let event = Event::BookingMoved {
            booking_id: id,
            from_pool_id: booking.pool_id,
            to_pool_id: new_pool.pool_id,
            session_id,
            slot_id,
            centre_id: record.centre_id,
            token_number,
            at: now,
        };
        let mut own = Finisher::new();
        let moved = after.clone();
        let commit_cell = cell.clone();
        own.commit(move |inv| {
            if let Some(p) = old_pool {
                p.release();
            }
            if let Some(s) = old_session {
                s.bookings.lock().retain(|b| *b != id);
            }
            commit_cell.bookings.lock().push(id);
            if let Some(mut e) = inv.bookings.get_mut(&id) {
                e.booking = moved;
            }
            commit_cell.inflight.fetch_sub(1, Ordering::SeqCst);
        });
        own.abort(move |_| {
            new_pool.release();
            cell.inflight.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(Prepared::new(after, vec![event], own.then(claim)))
    }

    /// Marks a booked person as arrived at the centre.
    pub fn check_in(
        &self,
        id: BookingId,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Prepared<Booking>, BookingError> {
        let (booking, claim) = self.claim_booking(
            id,
            scope,
            &[BookingStatus::Booked],
            "only a booked booking can be checked in",
        )?;
        let pool = self
            .pool_cell(booking.pool_id)
            .ok_or(BookingError::NotFound)?;
        let mut after = booking.clone();
        after.status = BookingStatus::CheckedIn;
        after.updated_at = now;
        let mut own = Finisher::new();
        own.commit(move |inv| {
            inv.set_status(id, BookingStatus::CheckedIn, now);
            pool.checked_in.fetch_add(1, Ordering::Relaxed);
        });
        let event = Event::BookingStatusChanged {
            booking_id: id,
            pool_id: booking.pool_id,
            from: booking.status,
            to: BookingStatus::CheckedIn,
            at: now,
        };
        Ok(Prepared::new(after, vec![event], own.then(claim)))
    }

    /// Records the dose of a checked-in booking. The vaccine must be the session's.
    #[allow(clippy::too_many_arguments)]
    pub fn administer(
        &self,
        id: BookingId,
        scope: &Scope,
        vaccine: Vaccine,
        batch: String,
        operator_id: OperatorId,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Prepared<(Booking, DoseRecord)>, BookingError> {
        let session_vaccine = {
            let e = self.bookings.get(&id).ok_or(BookingError::NotFound)?;
            if !scope.allows(e.booking.account_id, e.booking.centre_id) {
                return Err(BookingError::NotFound);
            }
            let sid = e.booking.session_id;
            drop(e);
            self.session_cell(sid)
                .map(|c| c.session.read().vaccine)
                .ok_or(BookingError::NotFound)?
        };
        let (booking, claim) = self.claim_booking(
            id,
            scope,
            &[BookingStatus::CheckedIn],
            "only a checked-in booking can be administered",
        )?;
        if vaccine != session_vaccine {
            self.finish(claim, false);
            return Err(BookingError::VaccineMismatch);
        }
        let pool = match self.pool_cell(booking.pool_id) {
            Some(p) => p,
            None => {
                self.finish(claim, false);
                return Err(BookingError::NotFound);
            }
        };
        let record = DoseRecord {
            beneficiary_id: booking.beneficiary_id,
            dose: booking.dose,
            vaccine,
            batch,
            date: today,
            centre_id: booking.centre_id,
            booking_id: id,
            operator_id,
            administered_at: now,
        };
        let mut after = booking.clone();
        after.status = BookingStatus::Administered;
        after.updated_at = now;
        let events = vec![
            Event::BookingStatusChanged {
                booking_id: id,
                pool_id: booking.pool_id,
                from: booking.status,
                to: BookingStatus::Administered,
                at: now,
            },
            Event::DoseRecorded(record.clone()),
        ];
        let mut own = Finisher::new();
        let (key, dose) = (booking.person_key, booking.dose);
        let dose_record = record.clone();
        own.commit(move |inv| {
            inv.set_status(id, BookingStatus::Administered, now);
            pool.checked_in.fetch_sub(1, Ordering::Relaxed);
            pool.administered.fetch_add(1, Ordering::Relaxed);
            let mut shard = inv.person_shard(&key).lock();
            if let Some(p) = shard.get_mut(&key) {
                if p.live[dose.index()] == Some(id) {
                    p.live[dose.index()] = None;
                }
                p.doses.push(dose_record);
                p.doses.sort_by_key(|d| d.dose);
            }
        });
        Ok(Prepared::new((after, record), events, own.then(claim)))
    }

    /// Marks a booking whose session day has passed as a no-show.
    pub fn no_show(
        &self,
        id: BookingId,
        scope: &Scope,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Prepared<Booking>, BookingError> {
        let date = {
            let e = self.bookings.get(&id).ok_or(BookingError::NotFound)?;
            if !scope.allows(e.booking.account_id, e.booking.centre_id) {
                return Err(BookingError::NotFound);
            }
            let sid = e.booking.session_id;
            drop(e);
            self.session_cell(sid)
                .map(|c| c.session.read().date)
                .ok_or(BookingError::NotFound)?
        };
        if date >= today {
            return Err(BookingError::BookingState(
                "a no-show can be recorded only after the session's day",
            ));
        }
        let (booking, claim) = self.claim_booking(
            id,
            scope,
            &[BookingStatus::Booked, BookingStatus::CheckedIn],
            "only a booked or checked-in booking can be marked no-show",
        )?;
        let pool = self
            .pool_cell(booking.pool_id)
            .ok_or(BookingError::NotFound)?;
        let mut after = booking.clone();
        after.status = BookingStatus::NoShow;
        after.updated_at = now;
        let was_checked_in = booking.status == BookingStatus::CheckedIn;
        let (key, dose) = (booking.person_key, booking.dose);
        let mut own = Finisher::new();
        own.commit(move |inv| {
            inv.set_status(id, BookingStatus::NoShow, now);
            if was_checked_in {
                pool.checked_in.fetch_sub(1, Ordering::Relaxed);
            }
            pool.no_show.fetch_add(1, Ordering::Relaxed);
            inv.clear_live(key, dose, id);
        });
        let event = Event::BookingStatusChanged {
            booking_id: id,
            pool_id: booking.pool_id,
            from: booking.status,
            to: BookingStatus::NoShow,
            at: now,
        };
        Ok(Prepared::new(after, vec![event], own.then(claim)))
    }

    /// Finds the account of a mobile number, or prepares a new one.
    pub fn ensure_account(&self, mobile: Option<&str>, now: DateTime<Utc>) -> AccountLookup {
        if let Some(m) = mobile {
            if let Some(id) = self.accounts_by_mobile.get(m).map(|id| *id) {
                if let Some(acc) = self.accounts.get(&id) {
                    return AccountLookup::Existing(acc.account.clone());
                }
            }
        }
        let account = Account {
            account_id: self.ids.account(),
            mobile: mobile.map(str::to_string),
            created_at: now,
        };
        if let Some(m) = mobile {
            let entry = self.accounts_by_mobile.entry(m.to_string());
            match entry {
                dashmap::mapref::entry::Entry::Occupied(o) => {
                    let id = *o.get();
                    drop(o);
                    if let Some(acc) = self.accounts.get(&id) {
                        return AccountLookup::Existing(acc.account.clone());
                    }
                }
                dashmap::mapref::entry::Entry::Vacant(v) => {
                    v.insert(account.account_id);
                }
            }
        }
        self.accounts.insert(
            account.account_id,
            AccountEntry {
                account: account.clone(),
                beneficiaries: Vec::new(),
            },
        );
        let mut fin = Finisher::new();
        let id = account.account_id;
        let mobile = account.mobile.clone();
        fin.abort(move |inv| {
            inv.accounts.remove(&id);
            if let Some(m) = mobile {
                inv.accounts_by_mobile.remove_if(&m, |_, v| *v == id);
            }
        });
        AccountLookup::New(Prepared::new(
            account.clone(),
            vec![Event::AccountCreated(account)],
            fin,
        ))
    }

    /// Adds a beneficiary to an account: one photo-ID, one account; at most four per account.
    pub fn add_beneficiary(
        &self,
        account: AccountId,
        new: NewBeneficiary,
        now: DateTime<Utc>,
    ) -> Result<Prepared<Beneficiary>, BookingError> {
        if !self.accounts.contains_key(&account) {
            return Err(BookingError::NotFound);
        }
        let beneficiary = Beneficiary {
            beneficiary_id: self.ids.beneficiary(),
            account_id: account,
            person_key: new.person_key,
            name: new.name,
            birth_year: new.birth_year,
            gender: new.gender,
            id_type: new.id_type,
            id_masked: new.id_masked,
            created_at: now,
        };
        let key = new.person_key;
        let id = beneficiary.beneficiary_id;
        {
            let mut shard = self.person_shard(&key).lock();
            if let Some(p) = shard.get(&key) {
                return Err(if p.account_id == account {
                    BookingError::BeneficiaryExists
                } else {
                    BookingError::IdAlreadyRegistered
                });
            }
            let mut acc = self
                .accounts
                .get_mut(&account)
                .ok_or(BookingError::NotFound)?;
            if acc.beneficiaries.len() >= BENEFICIARIES_PER_ACCOUNT_MAX {
                return Err(BookingError::BeneficiaryLimit(
                    BENEFICIARIES_PER_ACCOUNT_MAX,
                ));
            }
            acc.beneficiaries.push(id);
            drop(acc);
            shard.insert(
                key,
                Person {
                    beneficiary_id: id,
                    account_id: account,
                    live: [None, None],
                    doses: Vec::new(),
                    bookings: Vec::new(),
                    busy: true,
                },
            );
        }
        self.beneficiaries.insert(id, beneficiary.clone());
        let mut fin = Finisher::new();
        fin.commit(move |inv| {
            if let Some(p) = inv.person_shard(&key).lock().get_mut(&key) {
                p.busy = false;
            }
        });
        fin.abort(move |inv| {
            inv.person_shard(&key).lock().remove(&key);
            inv.beneficiaries.remove(&id);
            if let Some(mut acc) = inv.accounts.get_mut(&account) {
                acc.beneficiaries.retain(|b| *b != id);
            }
        });
        Ok(Prepared::new(
            beneficiary.clone(),
            vec![Event::BeneficiaryAdded(beneficiary)],
            fin,
        ))
    }

    /// Removes a beneficiary that has no booking (other than cancelled ones) and no dose.
    pub fn remove_beneficiary(
        &self,
        account: AccountId,
        id: BeneficiaryId,
    ) -> Result<Prepared<BeneficiaryId>, BookingError> {
        let key = self
            .beneficiaries
            .get(&id)
            .filter(|b| b.account_id == account)
            .map(|b| b.person_key)
            .ok_or(BookingError::NotFound)?;
        {
            let mut shard = self.person_shard(&key).lock();
            let person = shard.get_mut(&key).ok_or(BookingError::NotFound)?;
            if person.busy {
                return Err(BookingError::NotFound);
            }
            let in_use = !person.doses.is_empty()
                || person.bookings.iter().any(|b| {
                    self.bookings
                        .get(b)
                        .is_some_and(|e| e.busy || e.booking.status != BookingStatus::Cancelled)
                });
            if in_use {
                return Err(BookingError::BeneficiaryInUse);
            }
            person.busy = true;
        }
        let mut fin = Finisher::new();
        fin.commit(move |inv| {
            inv.person_shard(&key).lock().remove(&key);
            inv.beneficiaries.remove(&id);
            if let Some(mut acc) = inv.accounts.get_mut(&account) {
                acc.beneficiaries.retain(|b| *b != id);
            }
        });
        fin.abort(move |inv| {
            if let Some(p) = inv.person_shard(&key).lock().get_mut(&key) {
                p.busy = false;
            }
        });
        Ok(Prepared::new(
            id,
            vec![Event::BeneficiaryRemoved { beneficiary_id: id }],
            fin,
        ))
    }

    /// Registers (if new) and checks in a walk-in at the centre: the walk-in pool first, then
    /// the online pool; the same rules O, D and R as any booking. The person is found by
    /// photo-ID if known (on whatever account holds it).
    #[allow(clippy::too_many_arguments)]
    pub fn walkin(
        &self,
        session_id: SessionId,
        slot_id: SlotId,
        dose: Dose,
        person: NewBeneficiary,
        mobile: Option<&str>,
        scope: &Scope,
        now: DateTime<Utc>,
        today: NaiveDate,
    ) -> Result<Prepared<Booking>, BookingError> {
        let centre = self
            .session_cell(session_id)
            .map(|c| c.session.read().centre_id)
            .ok_or(BookingError::NotFound)?;
        if !scope.allows_centre(centre) {
            return Err(BookingError::NotFound);
        }
        let known = {
            let shard = self.person_shard(&person.person_key).lock();
            shard
                .get(&person.person_key)
                .map(|p| (p.account_id, p.beneficiary_id, p.busy))
        };
        let mut events = Vec::new();
        let mut fin = Finisher::new();
        let (account_id, beneficiary_id, fresh) = match known {
            Some((_, _, true)) => {
                return Err(BookingError::BookingState(
                    "this person is being registered right now; retry in a moment",
                ))
            }
            Some((a, b, false)) => (a, b, false),
            None => {
                let account = match self.ensure_account(mobile, now) {
                    AccountLookup::Existing(a) => a,
                    AccountLookup::New(p) => {
                        events.extend(p.events);
                        fin = fin.then(p.finisher);
                        p.value
                    }
                };
                match self.add_beneficiary(account.account_id, person, now) {
                    Ok(p) => {
                        events.extend(p.events);
                        fin = fin.then(p.finisher);
                        (account.account_id, p.value.beneficiary_id, true)
                    }
                    Err(e) => {
                        self.finish(fin, false);
                        return Err(e);
                    }
                }
            }
        };
        let req = BookRequest {
            account_id,
            beneficiary_id,
            session_id,
            slot_id,
            dose,
            now,
            today,
        };
        match self.book_inner(
            &req,
            |_| Ok(()),
            &[Channel::Walkin, Channel::Online],
            BookingStatus::CheckedIn,
            fresh,
        ) {
            Ok(p) => {
                events.extend(p.events);
                Ok(Prepared::new(p.value, events, fin.then(p.finisher)))
            }
            Err(e) => {
                self.finish(fin, false);
                Err(e)
            }
        }
    }

    /// Publishes a session with its slots and four pools per slot. Visible once committed.
    pub fn create_session(&self, new: NewSession) -> Result<Prepared<Session>, BookingError> {
        let centre = self
            .centres
            .get(&new.centre_id)
            .map(|c| c.clone())
            .ok_or(BookingError::NotFound)?;
        let session = Session {
            session_id: self.ids.session(),
            centre_id: centre.centre_id,
            state_id: centre.state_id,
            district_id: centre.district_id,
            date: new.date,
            vaccine: new.vaccine,
            min_age: new.min_age,
            max_age: new.max_age,
            opens_at: new.opens_at,
            cancelled: false,
        };
        let mut slots = Vec::new();
        let mut pools = Vec::new();
        for s in &new.slots {
            let slot = Slot {
                slot_id: self.ids.slot(),
                session_id: session.session_id,
                start: s.start.clone(),
                end: s.end.clone(),
            };
            for (dose, channel, capacity) in [
                (Dose::One, Channel::Online, s.dose1_online),
                (Dose::One, Channel::Walkin, s.dose1_walkin),
                (Dose::Two, Channel::Online, s.dose2_online),
                (Dose::Two, Channel::Walkin, s.dose2_walkin),
            ] {
                if capacity > POOL_CAPACITY_MAX {
                    return Err(BookingError::Invalid(
                        "capacity",
                        format!("a pool holds at most {POOL_CAPACITY_MAX} places"),
                    ));
                }
                pools.push(Pool {
                    pool_id: self.ids.pool(),
                    session_id: session.session_id,
                    slot_id: slot.slot_id,
                    dose,
                    channel,
                    capacity,
                    booked: 0,
                });
            }
            slots.push(slot);
        }
        let event = Event::SessionCreated {
            session: session.clone(),
            slots: slots.clone(),
            pools: pools.clone(),
        };
        let mut fin = Finisher::new();
        let record = session.clone();
        fin.commit(move |inv| inv.put_session(record, slots, pools));
        Ok(Prepared::new(session, vec![event], fin))
    }

    /// First step of cancelling a session: closes it to new bookings. The caller then waits
    /// until [`Inventory::session_inflight`] is zero and calls [`Inventory::cancel_session`].
    pub fn close_session(&self, id: SessionId, scope: &Scope) -> Result<(), BookingError> {
        let cell = self.session_cell(id).ok_or(BookingError::NotFound)?;
        let record = cell.record();
        if !scope.allows_centre(record.centre_id) {
            return Err(BookingError::NotFound);
        }
        cell.closing.store(true, Ordering::SeqCst);
        self.bump();
        Ok(())
    }

    /// Announces that `sessions` open for booking at `opens_at` (a launch release). The new
    /// opening applies at once, since it only holds bookings back; a failed commit puts each
    /// session's previous opening back. Cancelled sessions are refused as `session_closed`.
    pub fn announce_opening(
        &self,
        sessions: &[SessionId],
        opens_at: DateTime<Utc>,
    ) -> Result<Prepared<()>, BookingError> {
        let mut cells = Vec::with_capacity(sessions.len());
        for id in sessions {
            let cell = self.session_cell(*id).ok_or(BookingError::NotFound)?;
            let record = cell.record();
            if record.cancelled || cell.closing.load(Ordering::SeqCst) {
                return Err(BookingError::SessionClosed);
            }
            cells.push(cell);
        }
        let mut finisher = Finisher::new();
        let mut events = Vec::with_capacity(cells.len());
        for cell in cells {
            let before = {
                let mut s = cell.session.write();
                s.opens_at.replace(opens_at)
            };
            events.push(Event::SessionOpensAtSet {
                session_id: cell.record().session_id,
                opens_at: Some(opens_at),
            });
            finisher.abort(move |inv: &Inventory| {
                cell.session.write().opens_at = before;
                inv.bump();
            });
        }
        self.bump();
        Ok(Prepared::new((), events, finisher))
    }

    /// Reopens a session whose cancellation could not be committed.
    pub fn reopen_session(&self, id: SessionId) {
        if let Some(cell) = self.session_cell(id) {
            if !cell.session.read().cancelled {
                cell.closing.store(false, Ordering::SeqCst);
                self.bump();
            }
        }
    }

    /// Bookings of a session being changed right now (a check-in, cancel, reschedule or dose
    /// in flight): [`Inventory::cancel_session`] waits for them.
    pub fn session_busy_bookings(&self, id: SessionId) -> usize {
        let Some(cell) = self.session_cell(id) else {
            return 0;
        };
        let ids: Vec<BookingId> = cell.bookings.lock().clone();
        ids.iter()
            .filter(|b| self.bookings.get(b).is_some_and(|e| e.busy))
            .count()
    }

    /// Bookings of a session being decided or committed right now.
    pub fn session_inflight(&self, id: SessionId) -> u32 {
        self.session_cell(id)
            .map(|c| c.inflight.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Cancels a closed session and every live booking in it.
    pub fn cancel_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Prepared<Vec<BookingId>>, BookingError> {
        let cell = self.session_cell(id).ok_or(BookingError::NotFound)?;
        let ids: Vec<BookingId> = cell.bookings.lock().clone();
        let mut events = Vec::new();
        let mut fin = Finisher::new();
        let mut cancelled = Vec::new();
        for bid in ids {
            let claimed = self.claim_booking(
                bid,
                &Scope::All,
                &[BookingStatus::Booked, BookingStatus::CheckedIn],
                "",
            );
            let Ok((booking, claim)) = claimed else {
                if self.bookings.get(&bid).is_some_and(|e| e.busy) {
                    // A check-in, cancel or reschedule of it is committing: its outcome decides
                    // whether it is live, so the whole cancellation waits for it.
                    self.finish(fin, false);
                    return Err(BookingError::BookingState(BOOKING_BUSY));
                }
                continue;
            };
            let Some(pool) = self.pool_cell(booking.pool_id) else {
                self.finish(claim, false);
                continue;
            };
            let was_checked_in = booking.status == BookingStatus::CheckedIn;
            let (key, dose) = (booking.person_key, booking.dose);
            let mut own = Finisher::new();
            own.commit(move |inv| {
                inv.set_status(bid, BookingStatus::Cancelled, now);
                if was_checked_in {
                    pool.checked_in.fetch_sub(1, Ordering::Relaxed);
                }
                pool.release();
                inv.clear_live(key, dose, bid);
            });
            fin = fin.then(own.then(claim));
            events.push(Event::BookingStatusChanged {
                booking_id: bid,
                pool_id: booking.pool_id,
                from: booking.status,
                to: BookingStatus::Cancelled,
                at: now,
            });
            cancelled.push(bid);
        }
        events.push(Event::SessionCancelled { session_id: id });
        let commit_cell = cell.clone();
        let mut own = Finisher::new();
        own.commit(move |_| commit_cell.session.write().cancelled = true);
        own.abort(move |_| cell.closing.store(false, Ordering::SeqCst));
        Ok(Prepared::new(cancelled, events, fin.then(own)))
    }

    /// Sets a pool's capacity; never below what is booked. A decrease is taken at once, an
    /// increase is offered once committed.
    pub fn set_capacity(
        &self,
        pool_id: PoolId,
        capacity: u32,
        scope: &Scope,
    ) -> Result<Prepared<PoolView>, BookingError> {
        let pool = self.pool_cell(pool_id).ok_or(BookingError::NotFound)?;
        self.check_pool_scope(&pool, scope)?;
        if capacity > POOL_CAPACITY_MAX {
            return Err(BookingError::Invalid(
                "capacity",
                format!("a pool holds at most {POOL_CAPACITY_MAX} places"),
            ));
        }
        self.change_capacity_prepared(vec![pool], |now| {
            let (current, booked) = now[0];
            if capacity < booked {
                return Err(BookingError::CapacityBelowBooked);
            }
            Ok(vec![i64::from(capacity) - i64::from(current)])
        })
        .map(|p| {
            Prepared::new(
                p.value.into_iter().next().unwrap_or_default(),
                p.events,
                p.finisher,
            )
        })
    }

    /// Moves `count` places from one pool to another of the same session, atomically.
    pub fn move_capacity(
        &self,
        from: PoolId,
        to: PoolId,
        count: u32,
        scope: &Scope,
    ) -> Result<Prepared<Vec<PoolView>>, BookingError> {
        let a = self.pool_cell(from).ok_or(BookingError::NotFound)?;
        let b = self.pool_cell(to).ok_or(BookingError::NotFound)?;
        self.check_pool_scope(&a, scope)?;
        self.check_pool_scope(&b, scope)?;
        if a.session_id != b.session_id {
            return Err(BookingError::Invalid(
                "to_pool_id",
                "capacity moves only between pools of one session".into(),
            ));
        }
        if from == to {
            return Err(BookingError::Invalid(
                "to_pool_id",
                "the pools must differ".into(),
            ));
        }
        let n = i64::from(count);
        self.change_capacity_prepared(vec![a, b], |_| Ok(vec![-n, n]))
    }

    fn check_pool_scope(&self, pool: &PoolCell, scope: &Scope) -> Result<(), BookingError> {
        let centre = self
            .session_cell(pool.session_id)
            .map(|c| c.session.read().centre_id)
            .ok_or(BookingError::NotFound)?;
        if scope.allows_centre(centre) {
            Ok(())
        } else {
            Err(BookingError::NotFound)
        }
    }

    /// Applies capacity changes to `pools` (distinct). Under the pools' capacity locks (taken in
    /// pool-id order) it refuses if another change of one of them is still being committed,
    /// then `deltas` sees each pool's `(capacity, booked)` and returns one delta per pool.
    /// Decreases are taken at once; raises are applied on commit.
    fn change_capacity_prepared(
        &self,
        pools: Vec<Arc<PoolCell>>,
        deltas: impl FnOnce(&[(u32, u32)]) -> Result<Vec<i64>, BookingError>,
    ) -> Result<Prepared<Vec<PoolView>>, BookingError> {
        let above_max = || {
            BookingError::Invalid(
                "capacity",
                format!("a pool holds at most {POOL_CAPACITY_MAX} places"),
            )
        };
        let mut order: Vec<usize> = (0..pools.len()).collect();
        order.sort_by_key(|i| pools[*i].pool_id);
        let mut guards: Vec<Option<parking_lot::MutexGuard<'_, u32>>> =
            pools.iter().map(|_| None).collect();
        for i in order {
            guards[i] = Some(pools[i].capacity_changes_in_flight.lock());
        }
        if guards.iter().any(|g| g.as_deref().is_some_and(|n| *n > 0)) {
            return Err(BookingError::BookingState(
                "another capacity change of this pool is being committed; retry in a moment",
            ));
        }
        let seen: Vec<(u32, u32)> = pools.iter().map(|p| p.counts()).collect();
        let changes: Vec<(Arc<PoolCell>, i64)> =
            pools.iter().cloned().zip(deltas(&seen)?).collect();
        let mut taken: Vec<(Arc<PoolCell>, i64)> = Vec::new();
        for (pool, delta) in &changes {
            if *delta < 0 {
                match pool.change_capacity(*delta, POOL_CAPACITY_MAX) {
                    Ok(_) => taken.push((pool.clone(), *delta)),
                    Err(e) => {
                        for (p, d) in taken {
                            let _ = p.change_capacity(-d, u32::MAX);
                        }
                        return Err(match e {
                            CapacityError::BelowBooked => BookingError::CapacityBelowBooked,
                            CapacityError::AboveMax => above_max(),
                        });
                    }
                }
            }
        }
        for ((pool, delta), (cap, _)) in changes.iter().zip(&seen) {
            if *delta > 0 && i64::from(*cap) + delta > i64::from(POOL_CAPACITY_MAX) {
                for (p, d) in taken {
                    let _ = p.change_capacity(-d, u32::MAX);
                }
                let _ = pool;
                return Err(above_max());
            }
        }
        for g in guards.iter_mut().flatten() {
            **g += 1;
        }
        drop(guards);
        self.bump();
        let views: Vec<PoolView> = changes
            .iter()
            .map(|(p, d)| {
                let mut v = PoolView::of(p);
                if *d > 0 {
                    v.capacity += *d as u32;
                    v.available += *d as u32;
                }
                v
            })
            .collect();
        let events = changes
            .iter()
            .filter(|(_, d)| *d != 0)
            .map(|(p, d)| Event::PoolCapacityChanged {
                pool_id: p.pool_id,
                delta: *d,
            })
            .collect();
        let mut fin = Finisher::new();
        let raises: Vec<(Arc<PoolCell>, i64)> =
            changes.iter().filter(|(_, d)| *d > 0).cloned().collect();
        let involved: Vec<Arc<PoolCell>> = changes.iter().map(|(p, _)| p.clone()).collect();
        let involved_abort = involved.clone();
        fin.commit(move |_| {
            for (p, d) in raises {
                let _ = p.change_capacity(d, u32::MAX);
            }
            for p in involved {
                *p.capacity_changes_in_flight.lock() -= 1;
            }
        });
        fin.abort(move |_| {
            for (p, d) in taken {
                let _ = p.change_capacity(-d, u32::MAX);
            }
            for p in involved_abort {
                *p.capacity_changes_in_flight.lock() -= 1;
            }
        });
        Ok(Prepared::new(views, events, fin))
    }

    /// Creates or replaces a centre (visible once committed).
    pub fn upsert_centre(&self, centre: Centre) -> Prepared<Centre> {
        let mut fin = Finisher::new();
        let record = centre.clone();
        fin.commit(move |inv| inv.put_centre(record));
        Prepared::new(centre.clone(), vec![Event::CentreUpserted(centre)], fin)
    }

    /// Creates or renames a state and its districts (visible once committed).
    pub fn upsert_places(&self, states: Vec<State>, districts: Vec<District>) -> Prepared<()> {
        let mut events: Vec<Event> = states.iter().cloned().map(Event::StateUpserted).collect();
        events.extend(districts.iter().cloned().map(Event::DistrictUpserted));
        let mut fin = Finisher::new();
        fin.commit(move |inv| {
            for s in states {
                inv.put_state(s);
            }
            for d in districts {
                inv.put_district(d);
            }
            inv.bump();
        });
        Prepared::new((), events, fin)
    }

    /// Adds an operator key (usable once committed).
    pub fn add_operator_key(&self, key: OperatorKey) -> Prepared<OperatorKey> {
        let mut fin = Finisher::new();
        let record = key.clone();
        fin.commit(move |inv| inv.cache_operator_key(record));
        Prepared::new(key.clone(), vec![Event::OperatorKeyCreated(key)], fin)
    }

    /// Remembers an operator key read from the store (created by the CLI while serving).
    pub fn cache_operator_key(&self, key: OperatorKey) {
        self.ids
            .operator
            .fetch_max(key.operator_id.0, Ordering::Relaxed);
        self.operator_keys.insert(key.key_hash.clone(), key);
    }

    /// Forgets the operator keys with these ids (revoked in the store): they no longer
    /// authenticate. Returns how many were in memory.
    pub fn forget_operator_keys(&self, ids: &std::collections::HashSet<OperatorId>) -> usize {
        let before = self.operator_keys.len();
        self.operator_keys
            .retain(|_, k| !ids.contains(&k.operator_id));
        before - self.operator_keys.len().min(before)
    }

    /// Claims an idempotency key now (see [`crate::idem`]).
    pub fn idem_begin(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
    ) -> crate::IdemBegin {
        self.idem.begin(account, key, request_hash, Utc::now())
    }

    /// Claims an idempotency key at `now` (the drive's clock).
    pub fn idem_begin_at(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> crate::IdemBegin {
        self.idem.begin(account, key, request_hash, now)
    }

    /// Records a success in memory from its stored form (after its commit).
    pub fn idem_complete(&self, record: IdempotencyRecord) {
        self.idem.load(record);
    }

    /// Records a successful answer's bytes in memory (after its commit).
    pub fn idem_complete_answer(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        answer: crate::idem::Answer,
        created_at: DateTime<Utc>,
    ) {
        self.idem
            .complete(account, key, request_hash, answer, created_at);
    }

    /// Records a refusal in memory (kept minutes, see [`crate::idem`]).
    pub fn idem_refuse(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        answer: crate::idem::Answer,
        created_at: DateTime<Utc>,
    ) {
        self.idem
            .refuse(account, key, request_hash, answer, created_at);
    }

    /// Releases a claimed key whose operation did not happen.
    pub fn idem_abandon(&self, account: AccountId, key: &str) {
        self.idem.abandon(account, key);
    }

    /// Drops the expired idempotency records of one shard (0..[`crate::idem::SHARDS`]).
    pub fn idem_purge_shard(&self, shard: usize, now: DateTime<Utc>) -> usize {
        self.idem.purge_shard(shard, now)
    }

    /// The idempotency index's size: (records, estimated bytes).
    pub fn idem_size(&self) -> (usize, usize) {
        (self.idem.len(), self.idem.bytes())
    }
}

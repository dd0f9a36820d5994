//! [`Inventory`]: the maps, the indexes, rebuilding from a snapshot, and the two-phase
//! protocol.

use crate::holds::Holds;
use crate::idem::IdemIndex;
use crate::pool::PoolCell;
use dashmap::DashMap;
use kataar_domain::*;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Number of person shards (dedup index and dose records). A power of two well above the
/// core count, so two bookings for different people almost never share a lock.
pub const PERSON_SHARDS: usize = 64;

/// A session with its slots and pools.
#[derive(Debug)]
pub struct SessionCell {
    /// The session record (mutable fields: `cancelled`, `opens_at`).
    pub session: RwLock<Session>,
    /// Slots in order.
    pub slots: Vec<Slot>,
    /// Pools in order (slot, dose, channel).
    pub pools: Vec<Arc<PoolCell>>,
    /// Set first when the session is being cancelled: new bookings see it and refuse.
    pub closing: AtomicBool,
    /// Bookings being prepared or committed right now (a cancel waits for zero).
    pub inflight: AtomicU32,
    /// Next token number (dense per session, never reused).
    pub next_token: AtomicU32,
    /// Every booking ever made in this session (for the centre's day list).
    pub bookings: Mutex<Vec<BookingId>>,
}

impl SessionCell {
    /// A copy of the session record.
    pub fn record(&self) -> Session {
        self.session.read().clone()
    }

    /// The pool of `slot` for `dose` and `channel`.
    pub fn pool(&self, slot: SlotId, dose: Dose, channel: Channel) -> Option<&Arc<PoolCell>> {
        self.pools
            .iter()
            .find(|p| p.slot_id == slot && p.dose == dose && p.channel == channel)
    }
}

/// One person (photo-ID): the dedup index entry and the dose history.
#[derive(Clone, Debug)]
pub struct Person {
    /// The beneficiary record that holds this photo-ID.
    pub beneficiary_id: BeneficiaryId,
    /// Its account.
    pub account_id: AccountId,
    /// The live booking per dose (`booked` or `checked_in`): D says at most one.
    pub live: [Option<BookingId>; 2],
    /// Doses given.
    pub doses: Vec<DoseRecord>,
    /// Every booking of this person, in order.
    pub bookings: Vec<BookingId>,
    /// A registration or removal is waiting for its commit.
    pub busy: bool,
}

/// A booking and whether a change to it is waiting for its commit.
#[derive(Clone, Debug)]
pub struct BookingEntry {
    /// The record.
    pub booking: Booking,
    /// Created but not yet committed, or a change is in flight: other changes must wait.
    pub busy: bool,
}

/// An account, with its beneficiaries.
#[derive(Clone, Debug)]
pub struct AccountEntry {
    /// The record.
    pub account: Account,
    /// Its beneficiaries, in the order they were added.
    pub beneficiaries: Vec<BeneficiaryId>,
}

/// Id counters, each starting after the largest id loaded.
#[derive(Debug, Default)]
pub struct IdGen {
    pub(crate) centre: AtomicU64,
    pub(crate) session: AtomicU64,
    pub(crate) slot: AtomicU64,
    pub(crate) pool: AtomicU64,
    pub(crate) account: AtomicU64,
    pub(crate) beneficiary: AtomicU64,
    pub(crate) booking: AtomicU64,
    pub(crate) operator: AtomicU64,
    pub(crate) audit: AtomicU64,
}

fn next(counter: &AtomicU64) -> u64 {
    let id = counter.fetch_add(1, Ordering::Relaxed) + 1;
    assert!(id <= ID_MAX, "id space exhausted");
    id
}

impl IdGen {
    /// A new centre id.
    pub fn centre(&self) -> CentreId {
        CentreId(next(&self.centre))
    }
    /// A new session id.
    pub fn session(&self) -> SessionId {
        SessionId(next(&self.session))
    }
    /// A new slot id.
    pub fn slot(&self) -> SlotId {
        SlotId(next(&self.slot))
    }
    /// A new pool id.
    pub fn pool(&self) -> PoolId {
        PoolId(next(&self.pool))
    }
    /// A new account id.
    pub fn account(&self) -> AccountId {
        AccountId(next(&self.account))
    }
    /// A new beneficiary id.
    pub fn beneficiary(&self) -> BeneficiaryId {
        BeneficiaryId(next(&self.beneficiary))
    }
    /// A new booking id.
    pub fn booking(&self) -> BookingId {
        BookingId(next(&self.booking))
    }
    /// A new operator id.
    pub fn operator(&self) -> OperatorId {
        OperatorId(next(&self.operator))
    }
    /// A new audit id.
    pub fn audit(&self) -> u64 {
        next(&self.audit)
    }
}

type Effect = Box<dyn FnOnce(&Inventory) + Send>;

/// The effects still to apply once the store has answered for an operation's events.
#[must_use = "every prepared operation must be finished, or its places stay taken"]
pub struct Finisher {
    on_commit: Vec<Effect>,
    on_abort: Vec<Effect>,
}

impl Finisher {
    pub(crate) fn new() -> Finisher {
        Finisher {
            on_commit: Vec::new(),
            on_abort: Vec::new(),
        }
    }

    pub(crate) fn commit(&mut self, effect: impl FnOnce(&Inventory) + Send + 'static) {
        self.on_commit.push(Box::new(effect));
    }

    pub(crate) fn abort(&mut self, effect: impl FnOnce(&Inventory) + Send + 'static) {
        self.on_abort.push(Box::new(effect));
    }

    /// Appends the effects of an operation prepared after this one: on commit they run after
    /// ours, on failure their undo runs before ours.
    pub(crate) fn then(mut self, mut other: Finisher) -> Finisher {
        let mut aborts = std::mem::take(&mut other.on_abort);
        aborts.append(&mut self.on_abort);
        self.on_abort = aborts;
        self.on_commit.append(&mut other.on_commit);
        self
    }
}

impl std::fmt::Debug for Finisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finisher")
            .field("on_commit", &self.on_commit.len())
            .field("on_abort", &self.on_abort.len())
            .finish()
    }
}

/// A decided operation: its answer, the events to commit, and what to do after.
#[derive(Debug)]
pub struct Prepared<T> {
    /// The answer (given to the client only after the events committed).
    pub value: T,
    /// The events to make durable, in one batch.
    pub events: Vec<Event>,
    /// What to apply after the commit, or undo after a failure.
    pub finisher: Finisher,
}

impl<T> Prepared<T> {
    pub(crate) fn new(value: T, events: Vec<Event>, finisher: Finisher) -> Prepared<T> {
        Prepared {
            value,
            events,
            finisher,
        }
    }
}

/// The in-memory engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Inventory {
    pub(crate) states: RwLock<BTreeMap<StateId, State>>,
    pub(crate) districts: RwLock<BTreeMap<DistrictId, District>>,
    pub(crate) centres: DashMap<CentreId, Centre>,
    pub(crate) centres_by_district: DashMap<DistrictId, Vec<CentreId>>,
    pub(crate) centres_by_pincode: DashMap<String, Vec<CentreId>>,
    pub(crate) sessions_by_centre: DashMap<CentreId, Vec<SessionId>>,
    pub(crate) sessions: DashMap<SessionId, Arc<SessionCell>>,
    pub(crate) pools: DashMap<PoolId, Arc<PoolCell>>,
    pub(crate) persons: Vec<Mutex<HashMap<PersonKey, Person>>>,
    pub(crate) accounts: DashMap<AccountId, AccountEntry>,
    pub(crate) accounts_by_mobile: DashMap<String, AccountId>,
    pub(crate) beneficiaries: DashMap<BeneficiaryId, Beneficiary>,
    pub(crate) bookings: DashMap<BookingId, BookingEntry>,
    pub(crate) bookings_by_account: DashMap<AccountId, Vec<BookingId>>,
    pub(crate) operator_keys: DashMap<String, OperatorKey>,
    pub(crate) idem: IdemIndex,
    pub(crate) holds: Holds,
    /// Id counters.
    pub ids: IdGen,
    /// Bumped on every change that availability shows (cheap cache validator).
    pub(crate) version: AtomicU64,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("sessions", &self.sessions.len())
            .field("pools", &self.pools.len())
            .field("bookings", &self.bookings.len())
            .finish()
    }
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::empty()
    }
}

impl Inventory {
    /// An inventory with nothing in it.
    pub fn empty() -> Inventory {
        Inventory {
            states: RwLock::new(BTreeMap::new()),
            districts: RwLock::new(BTreeMap::new()),
            centres: DashMap::new(),
            centres_by_district: DashMap::new(),
            centres_by_pincode: DashMap::new(),
            sessions_by_centre: DashMap::new(),
            sessions: DashMap::new(),
            pools: DashMap::new(),
            persons: (0..PERSON_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            accounts: DashMap::new(),
            accounts_by_mobile: DashMap::new(),
            beneficiaries: DashMap::new(),
            bookings: DashMap::new(),
            bookings_by_account: DashMap::new(),
            operator_keys: DashMap::new(),
            idem: IdemIndex::new(),
            holds: Holds::new(),
            ids: IdGen::default(),
            version: AtomicU64::new(1),
        }
    }

    /// Rebuilds the inventory from what the store loaded. Checks O and D on the way: a
    /// snapshot that breaks them is refused (the database's constraints make that a bug).
    pub fn from_snapshot(snapshot: Snapshot) -> Result<Inventory, String> {
        let inv = Inventory::empty();
        let Snapshot {
            states,
            districts,
            centres,
            sessions,
            slots,
            pools,
            accounts,
            beneficiaries,
            bookings,
            doses,
            idempotency,
            operator_keys,
            audit_id_max,
            batch_id_max: _,
            beneficiary_id_max,
            // The waiting rooms are rebuilt by the application, not the engine.
            releases: _,
            queue_tickets: _,
            queue_admissions: _,
        } = snapshot;
        // Removed beneficiaries are not loaded, but their ids stay taken.
        inv.ids
            .beneficiary
            .fetch_max(beneficiary_id_max, Ordering::Relaxed);
        for s in states {
            inv.put_state(s);
        }
        for d in districts {
            inv.put_district(d);
        }
        for c in centres {
            inv.ids.centre.fetch_max(c.centre_id.0, Ordering::Relaxed);
            inv.put_centre(c);
        }
        let mut slots_by_session: HashMap<SessionId, Vec<Slot>> = HashMap::new();
        for slot in slots {
            inv.ids.slot.fetch_max(slot.slot_id.0, Ordering::Relaxed);
            slots_by_session
                .entry(slot.session_id)
                .or_default()
                .push(slot);
        }
        let mut pools_by_session: HashMap<SessionId, Vec<Pool>> = HashMap::new();
        for pool in pools {
            inv.ids.pool.fetch_max(pool.pool_id.0, Ordering::Relaxed);
            pools_by_session
                .entry(pool.session_id)
                .or_default()
                .push(pool);
        }
        for session in sessions {
            inv.ids
                .session
                .fetch_max(session.session_id.0, Ordering::Relaxed);
            let id = session.session_id;
            let mut slots = slots_by_session.remove(&id).unwrap_or_default();
            slots.sort_by(|a, b| (&a.start, a.slot_id).cmp(&(&b.start, b.slot_id)));
            let pools = pools_by_session.remove(&id).unwrap_or_default();
            inv.put_session(session, slots, pools);
        }
        for a in accounts {
            inv.ids.account.fetch_max(a.account_id.0, Ordering::Relaxed);
            inv.put_account(a);
        }
        for b in beneficiaries {
            inv.ids
                .beneficiary
                .fetch_max(b.beneficiary_id.0, Ordering::Relaxed);
            inv.put_beneficiary(b, false)
                .map_err(|e| format!("beneficiary load: {e}"))?;
        }
        let mut counted: HashMap<PoolId, u32> = HashMap::new();
        let mut bookings = bookings;
        bookings.sort_by_key(|b| b.booking_id);
        for b in bookings {
            inv.ids.booking.fetch_max(b.booking_id.0, Ordering::Relaxed);
            if b.status.holds_place() {
                *counted.entry(b.pool_id).or_default() += 1;
            }
            inv.load_booking(b)?;
        }
        for pool in inv.pools.iter() {
            let (_, booked) = pool.counts();
            let live = counted.get(pool.key()).copied().unwrap_or(0);
            if booked != live {
                return Err(format!(
                    "pool {} stores booked={booked} but has {live} bookings holding places",
                    pool.key()
                ));
            }
        }
        for d in doses {
            inv.load_dose(d)?;
        }
        for k in operator_keys {
            inv.ids
                .operator
                .fetch_max(k.operator_id.0, Ordering::Relaxed);
            inv.operator_keys.insert(k.key_hash.clone(), k);
        }
        for r in idempotency {
            inv.idem.load(r);
        }
        inv.ids.audit.store(audit_id_max, Ordering::Relaxed);
        Ok(inv)
    }

    pub(crate) fn put_state(&self, s: State) {
        self.states.write().insert(s.state_id, s);
    }

    pub(crate) fn put_district(&self, d: District) {
        self.districts.write().insert(d.district_id, d);
    }

    pub(crate) fn put_centre(&self, c: Centre) {
        let id = c.centre_id;
        if let Some(old) = self.centres.get(&id).map(|o| o.clone()) {
            if let Some(mut list) = self.centres_by_district.get_mut(&old.district_id) {
                list.retain(|x| *x != id);
            }
            if let Some(mut list) = self.centres_by_pincode.get_mut(&old.pincode) {
                list.retain(|x| *x != id);
            }
        }
        insert_sorted(
            &mut self.centres_by_district.entry(c.district_id).or_default(),
            id,
        );
        insert_sorted(
            &mut self
                .centres_by_pincode
                .entry(c.pincode.clone())
                .or_default(),
            id,
        );
        self.centres.insert(id, c);
        self.bump();
    }

    pub(crate) fn put_session(&self, session: Session, slots: Vec<Slot>, pools: Vec<Pool>) {
        let id = session.session_id;
        let centre = session.centre_id;
        let mut cells: Vec<Arc<PoolCell>> = pools
            .into_iter()
            .map(|p| {
                Arc::new(PoolCell::new(
                    p.pool_id,
                    p.session_id,
                    p.slot_id,
                    p.dose,
                    p.channel,
                    p.capacity,
                    p.booked,
                ))
            })
            .collect();
        let slot_order: HashMap<SlotId, usize> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.slot_id, i))
            .collect();
        cells.sort_by_key(|p| {
            (
                slot_order.get(&p.slot_id).copied().unwrap_or(usize::MAX),
                p.dose,
                p.channel,
            )
        });
        for cell in &cells {
            self.pools.insert(cell.pool_id, cell.clone());
        }
        let date = session.date;
        // A cancelled session is closed to bookings, as it was when its cancellation began.
        let closing = session.cancelled;
        let cell = Arc::new(SessionCell {
            session: RwLock::new(session),
            slots,
            pools: cells,
            closing: AtomicBool::new(closing),
            inflight: AtomicU32::new(0),
            next_token: AtomicU32::new(0),
            bookings: Mutex::new(Vec::new()),
        });
        self.sessions.insert(id, cell);
        {
            let mut list = self.sessions_by_centre.entry(centre).or_default();
            list.push(id);
            let sessions = &self.sessions;
            list.sort_by_key(|s| {
                let d = sessions
                    .get(s)
                    .map(|c| c.session.read().date)
                    .unwrap_or(date);
                (d, *s)
            });
        }
        self.bump();
    }

    pub(crate) fn put_account(&self, a: Account) {
        if let Some(m) = &a.mobile {
            self.accounts_by_mobile.insert(m.clone(), a.account_id);
        }
        self.accounts.insert(
            a.account_id,
            AccountEntry {
                account: a,
                beneficiaries: Vec::new(),
            },
        );
    }

    /// Inserts a beneficiary and its person entry; `busy` marks it as not yet committed.
    pub(crate) fn put_beneficiary(&self, b: Beneficiary, busy: bool) -> Result<(), BookingError> {
        {
            let mut shard = self.person_shard(&b.person_key).lock();
            if shard.contains_key(&b.person_key) {
                return Err(BookingError::IdAlreadyRegistered);
            }
            shard.insert(
                b.person_key,
                Person {
                    beneficiary_id: b.beneficiary_id,
                    account_id: b.account_id,
                    live: [None, None],
                    doses: Vec::new(),
                    bookings: Vec::new(),
                    busy,
                },
            );
        }
        if let Some(mut acc) = self.accounts.get_mut(&b.account_id) {
            acc.beneficiaries.push(b.beneficiary_id);
        }
        self.beneficiaries.insert(b.beneficiary_id, b);
        Ok(())
    }

    fn load_booking(&self, b: Booking) -> Result<(), String> {
        let session = self
            .session_cell(b.session_id)
            .ok_or_else(|| format!("booking {} names a missing session", b.booking_id))?;
        session
            .next_token
            .fetch_max(b.token_number, Ordering::Relaxed);
        session.bookings.lock().push(b.booking_id);
        if let Some(pool) = self.pools.get(&b.pool_id) {
            match b.status {
                BookingStatus::CheckedIn => {
                    pool.checked_in.fetch_add(1, Ordering::Relaxed);
                }
                BookingStatus::Administered => {
                    pool.administered.fetch_add(1, Ordering::Relaxed);
                }
                BookingStatus::NoShow => {
                    pool.no_show.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        {
            // A beneficiary whose bookings are all cancelled may be removed (and its photo-ID
            // registered again, as a new beneficiary): its old bookings stay, attached to no
            // person, exactly as the engine leaves them. Only a live booking needs its person.
            let mut shard = self.person_shard(&b.person_key).lock();
            let person = shard
                .get_mut(&b.person_key)
                .filter(|p| p.beneficiary_id == b.beneficiary_id);
            match person {
                Some(person) => {
                    if b.status.is_live() {
                        let slot = &mut person.live[b.dose.index()];
                        if slot.is_some() {
                            return Err(format!(
                                "two live bookings for one person and dose (booking {})",
                                b.booking_id
                            ));
                        }
                        *slot = Some(b.booking_id);
                    }
                    person.bookings.push(b.booking_id);
                }
                None if b.status.holds_place() => {
                    return Err(format!(
                        "booking {} holds a place but names an unknown person",
                        b.booking_id
                    ));
                }
                None => {}
            }
        }
        self.bookings_by_account
            .entry(b.account_id)
            .or_default()
            .push(b.booking_id);
        self.bookings.insert(
            b.booking_id,
            BookingEntry {
                booking: b,
                busy: false,
            },
        );
        Ok(())
    }

    fn load_dose(&self, d: DoseRecord) -> Result<(), String> {
        let key = self
            .beneficiaries
            .get(&d.beneficiary_id)
            .map(|b| b.person_key)
            .ok_or_else(|| format!("dose for unknown beneficiary {}", d.beneficiary_id))?;
        let mut shard = self.person_shard(&key).lock();
        if let Some(person) = shard.get_mut(&key) {
            person.doses.push(d);
            person.doses.sort_by_key(|d| d.dose);
        }
        Ok(())
    }

    pub(crate) fn person_shard(&self, key: &PersonKey) -> &Mutex<HashMap<PersonKey, Person>> {
        let index = (key.shard_hash() as usize) % PERSON_SHARDS;
        &self.persons[index]
    }

    pub(crate) fn session_cell(&self, id: SessionId) -> Option<Arc<SessionCell>> {
        self.sessions.get(&id).map(|s| s.clone())
    }

    pub(crate) fn bump(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// A number that changes whenever anything availability shows may have changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Applies the effects of a finished operation: the frees on commit, the undo of the takes
    /// on failure.
    pub fn finish(&self, finisher: Finisher, committed: bool) {
        let effects = if committed {
            finisher.on_commit
        } else {
            finisher.on_abort
        };
        for effect in effects {
            effect(self);
        }
        self.bump();
    }

    /// Runs a prepared operation to the end: `durable` makes the events durable (the store
    /// writer); then the operation is finished accordingly. Whatever `durable` answers, the
    /// in-memory state ends consistent with the store.
    pub async fn settle<T, F, Fut>(
        &self,
        prepared: Prepared<T>,
        durable: F,
    ) -> Result<T, BookingError>
    where
        F: FnOnce(Vec<Event>) -> Fut,
        Fut: Future<Output = Result<(), BookingError>>,
    {
        let Prepared {
            value,
            events,
            finisher,
        } = prepared;
        match durable(events).await {
            Ok(()) => {
                self.finish(finisher, true);
                Ok(value)
            }
            Err(e) => {
                self.finish(finisher, false);
                Err(e)
            }
        }
    }
}

fn insert_sorted<T: Ord + Copy>(list: &mut Vec<T>, item: T) {
    if let Err(at) = list.binary_search(&item) {
        list.insert(at, item);
    }
}

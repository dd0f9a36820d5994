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

/// Lock shards of each large map (pools, sessions, accounts, beneficiaries, bookings) built by
/// a rebuild: a power of two well above the core count, so that threads filling or reading
/// the same map rarely share a shard's lock.
pub const LARGE_MAP_SHARDS: usize = 64;

/// Most threads a rebuild from a snapshot uses (fewer on a machine with fewer cores).
pub const REBUILD_THREADS_MAX: usize = 8;

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

    /// An empty inventory whose maps are sized for what `snapshot` holds (so a rebuild does not
    /// grow and rehash them as it goes).
    fn sized_for(snapshot: &Snapshot) -> Inventory {
        fn map<K: Eq + std::hash::Hash, V>(capacity: usize) -> DashMap<K, V> {
            DashMap::with_capacity_and_shard_amount(capacity, LARGE_MAP_SHARDS)
        }
        let persons = snapshot.beneficiaries.len() / PERSON_SHARDS + 1;
        Inventory {
            sessions: map(snapshot.sessions.len()),
            pools: map(snapshot.pools.len()),
            persons: (0..PERSON_SHARDS)
                .map(|_| Mutex::new(HashMap::with_capacity(persons)))
                .collect(),
            accounts: map(snapshot.accounts.len()),
            accounts_by_mobile: map(snapshot.accounts.len()),
            beneficiaries: map(snapshot.beneficiaries.len()),
            bookings: map(snapshot.bookings.len()),
            bookings_by_account: map(snapshot.accounts.len()),
            ..Inventory::empty()
        }
    }

    /// Rebuilds the inventory from what the store loaded. Checks O and D on the way: a
    /// snapshot that breaks them is refused (the database's constraints make that a bug).
    ///
    /// The work is spread over the machine's cores ([`REBUILD_THREADS_MAX`] at most): sessions
    /// (with their slots and pools) beside accounts, then beneficiaries and bookings split by
    /// account, so that everything kept in id order per account, per person and per centre is
    /// built by one thread in that order.
    pub fn from_snapshot(snapshot: Snapshot) -> Result<Inventory, String> {
        let inv = Inventory::sized_for(&snapshot);
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, REBUILD_THREADS_MAX);
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
        let booked_total = std::thread::scope(|scope| {
            let places = scope.spawn(|| inv.load_sessions(sessions, slots, pools, threads));
            inv.load_accounts(accounts, &beneficiaries);
            places.join().map_err(|_| "session load failed".to_string())
        })?;
        in_parts(
            beneficiaries,
            threads,
            |b| b.account_id.0,
            |part| {
                for b in part {
                    inv.ids
                        .beneficiary
                        .fetch_max(b.beneficiary_id.0, Ordering::Relaxed);
                    inv.load_beneficiary(b)?;
                }
                Ok(())
            },
        )?;
        let mut bookings = bookings;
        bookings.sort_by_key(|b| b.booking_id);
        let mut holding = in_parts(
            bookings,
            threads,
            |b| b.account_id.0,
            |part| {
                let mut holding = Vec::new();
                for b in part {
                    inv.ids.booking.fetch_max(b.booking_id.0, Ordering::Relaxed);
                    if b.status.holds_place() {
                        holding.push(b.pool_id);
                    }
                    inv.load_booking(b)?;
                }
                Ok(holding)
            },
        )?
        .concat();
        // A session's bookings were pushed by several threads: back into id order.
        for session in inv.sessions.iter() {
            let mut list = session.bookings.lock();
            if !list.is_sorted() {
                list.sort_unstable();
            }
        }
        inv.check_booked(&mut holding, booked_total)?;
        for d in doses {
            inv.load_dose(d)?;
        }
        for k in operator_keys {
            inv.ids
                .operator
                .fetch_max(k.operator_id.0, Ordering::Relaxed);
            inv.operator_keys.insert(k.key_hash.clone(), k);
        }
        // Split by account: an account's records are kept in their order.
        in_parts(
            idempotency,
            threads,
            |r| r.account_id.0,
            |part| {
                for r in part {
                    inv.idem.load(r);
                }
                Ok(())
            },
        )?;
        inv.ids.audit.store(audit_id_max, Ordering::Relaxed);
        Ok(inv)
    }

    /// Sessions with their slots and pools, split by centre over `threads` threads (a
    /// centre's session list is built by one thread). Returns the sum of the stored `booked`
    /// counts of the pools it placed (a pool of no loaded session is left out).
    fn load_sessions(
        &self,
        sessions: Vec<Session>,
        slots: Vec<Slot>,
        pools: Vec<Pool>,
        threads: usize,
    ) -> u64 {
        let mut slots_by_session: HashMap<SessionId, Vec<Slot>> =
            HashMap::with_capacity(sessions.len());
        for slot in slots {
            self.ids.slot.fetch_max(slot.slot_id.0, Ordering::Relaxed);
            slots_by_session
                .entry(slot.session_id)
                .or_default()
                .push(slot);
        }
        let mut pools_by_session: HashMap<SessionId, Vec<Pool>> =
            HashMap::with_capacity(sessions.len());
        for pool in pools {
            self.ids.pool.fetch_max(pool.pool_id.0, Ordering::Relaxed);
            pools_by_session
                .entry(pool.session_id)
                .or_default()
                .push(pool);
        }
        let sessions = sessions
            .into_iter()
            .map(|session| {
                let id = session.session_id;
                let mut slots = slots_by_session.remove(&id).unwrap_or_default();
                slots.sort_by(|a, b| (&a.start, a.slot_id).cmp(&(&b.start, b.slot_id)));
                let pools = pools_by_session.remove(&id).unwrap_or_default();
                (session, slots, pools)
            })
            .collect();
        // Nothing here can fail; the parts only share the maps.
        let booked = in_parts(
            sessions,
            threads,
            |(s, _, _)| s.centre_id.0,
            |part| {
                let mut booked = 0u64;
                for (session, slots, pools) in part {
                    self.ids
                        .session
                        .fetch_max(session.session_id.0, Ordering::Relaxed);
                    booked += pools.iter().map(|p| u64::from(p.booked)).sum::<u64>();
                    self.put_session(session, slots, pools);
                }
                Ok(booked)
            },
        );
        booked.map_or(0, |parts| parts.into_iter().sum())
    }

    /// Accounts, each with the ids of its beneficiaries in `beneficiaries` (in id order).
    fn load_accounts(&self, mut accounts: Vec<Account>, beneficiaries: &[Beneficiary]) {
        if !accounts.is_sorted_by_key(|a| a.account_id) {
            accounts.sort_unstable_by_key(|a| a.account_id);
        }
        let mut owned: Vec<(AccountId, BeneficiaryId)> = beneficiaries
            .iter()
            .map(|b| (b.account_id, b.beneficiary_id))
            .collect();
        owned.sort_unstable();
        let mut rest = owned.as_slice();
        for a in accounts {
            self.ids
                .account
                .fetch_max(a.account_id.0, Ordering::Relaxed);
            let before = rest.partition_point(|(owner, _)| *owner < a.account_id);
            rest = &rest[before..];
            let mine = rest.partition_point(|(owner, _)| *owner == a.account_id);
            let ids = rest[..mine].iter().map(|(_, id)| *id).collect();
            rest = &rest[mine..];
            self.put_account_entry(a, ids);
        }
    }

    /// A loaded beneficiary and its person entry (its account already lists it).
    fn load_beneficiary(&self, b: Beneficiary) -> Result<(), String> {
        self.put_person(&b, false)
            .map_err(|e| format!("beneficiary load: {e}"))?;
        self.beneficiaries.insert(b.beneficiary_id, b);
        Ok(())
    }

    /// Checks that every pool's stored `booked` equals the bookings holding a place in it:
    /// `holding` lists the pool of each such booking, `booked_total` is the sum of the stored
    /// counts (so a pool with a count but no bookings is found too).
    fn check_booked(&self, holding: &mut [PoolId], booked_total: u64) -> Result<(), String> {
        holding.sort_unstable();
        let mut counted_total = 0u64;
        for run in holding.chunk_by(|a, b| a == b) {
            let id = run[0];
            let live = u32::try_from(run.len()).unwrap_or(u32::MAX);
            let Some(pool) = self.pools.get(&id) else {
                continue;
            };
            let (_, booked) = pool.counts();
            if booked != live {
                return Err(format!(
                    "pool {id} stores booked={booked} but has {live} bookings holding places"
                ));
            }
            counted_total += u64::from(live);
        }
        if counted_total != booked_total {
            for pool in self.pools.iter() {
                let (_, booked) = pool.counts();
                if booked > 0 && holding.binary_search(pool.key()).is_err() {
                    return Err(format!(
                        "pool {} stores booked={booked} but has 0 bookings holding places",
                        pool.key()
                    ));
                }
            }
            return Err("pools' booked counts disagree with their bookings".into());
        }
        Ok(())
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

    fn put_account_entry(&self, a: Account, beneficiaries: Vec<BeneficiaryId>) {
        if let Some(m) = &a.mobile {
            self.accounts_by_mobile.insert(m.clone(), a.account_id);
        }
        self.accounts.insert(
            a.account_id,
            AccountEntry {
                account: a,
                beneficiaries,
            },
        );
    }

    /// The person entry of a new beneficiary; refused if its photo-ID is registered already.
    fn put_person(&self, b: &Beneficiary, busy: bool) -> Result<(), BookingError> {
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
        // Only these statuses are counted on the pool (a booked or cancelled booking is in
        // the pool's stored `booked`, checked at the end).
        let counter: Option<fn(&PoolCell) -> &AtomicU32> = match b.status {
            BookingStatus::CheckedIn => Some(|p| &p.checked_in),
            BookingStatus::Administered => Some(|p| &p.administered),
            BookingStatus::NoShow => Some(|p| &p.no_show),
            _ => None,
        };
        if let Some(counter) = counter {
            if let Some(pool) = self.pools.get(&b.pool_id) {
                counter(&pool).fetch_add(1, Ordering::Relaxed);
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

/// Splits `items` into `parts` lists by `key` modulo `parts` (keeping their order within each)
/// and runs `work` on each list, on a thread of its own (the first on this thread); returns
/// what each part returned, in part order, or the first error.
fn in_parts<T: Send, R: Send>(
    items: Vec<T>,
    parts: usize,
    key: impl Fn(&T) -> u64,
    work: impl Fn(Vec<T>) -> Result<R, String> + Sync,
) -> Result<Vec<R>, String> {
    let parts = parts.max(1);
    let mut lists: Vec<Vec<T>> = (0..parts)
        .map(|_| Vec::with_capacity(items.len() / parts + 1))
        .collect();
    for item in items {
        let at = usize::try_from(key(&item) % parts as u64).unwrap_or(0);
        lists[at].push(item);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let mut lists = lists.into_iter();
        let first = lists.next();
        let others: Vec<_> = lists.map(|list| scope.spawn(move || work(list))).collect();
        let mut out = Vec::with_capacity(parts);
        if let Some(list) = first {
            out.push(work(list)?);
        }
        for handle in others {
            out.push(
                handle
                    .join()
                    .map_err(|_| "rebuild thread failed".to_string())??,
            );
        }
        Ok(out)
    })
}

fn insert_sorted<T: Ord + Copy>(list: &mut Vec<T>, item: T) {
    if let Err(at) = list.binary_search(&item) {
        list.insert(at, item);
    }
}

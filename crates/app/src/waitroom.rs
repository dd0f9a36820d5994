//! The launch waiting rooms of a running server: one [`Queue`] per release, the gate that
//! asks bookings of a release's sessions for a pass, and the step task that opens releases at
//! their instant, admits from their queues and makes each step durable.
//!
//! The draw's secret of a release is `HMAC-SHA256(draw key, release id ‖ nonce)`: the store
//! keeps only the nonce, the draw key is derived from the token secret, so neither the
//! database nor its backups can tell the shuffle before the opening.

use crate::state::AppState;
use chrono::{DateTime, TimeZone, Utc};
use kataar_api::ApiError;
use kataar_domain::*;
use kataar_identity::derive_key;
use kataar_waitroom::{Key, Queue, QueueConfig, Step};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often each release's queue is stepped (opening, admissions, expiry), in milliseconds.
pub const QUEUE_STEP_MS: u64 = 100;

/// `Retry-After` of an announcement refused at `releases_max`, seconds.
pub const RELEASES_FULL_RETRY_AFTER_S: u32 = 60;

/// The request header carrying a waiting-room pass.
pub const PASS_HEADER: &str = "kataar-pass";

/// The waiting rooms' bounds and pacing (config keys `releases_max`, `queue_*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Releases kept at once.
    pub releases_max: u32,
    /// Tickets per release.
    pub tickets_max: u32,
    /// Seconds a waiting ticket keeps its place past its poll time.
    pub keepalive_s: u32,
    /// Polls per second of a whole queue.
    pub poll_budget_per_s: u32,
    /// Shortest `poll_after_s`.
    pub poll_min_s: u32,
    /// Longest `poll_after_s`.
    pub poll_max_s: u32,
    /// Admissions per second of a release that names none (the booking lane's rate).
    pub default_admit_per_s: f64,
    /// Polls held open at once, across the rooms.
    pub held_polls_max: u32,
    /// The longest a poll is held, seconds (`queue_keepalive_s`, two seconds short of
    /// `request_timeout_s`, [`kataar_domain::limits::QUEUE_WAIT_S_MAX`], whichever is least).
    pub hold_s_max: u32,
}

/// One release and its queue.
pub struct Room {
    /// The release as announced.
    pub release: Release,
    /// Its queue.
    pub queue: Mutex<Queue>,
    /// The published draw, rendered once after the opening.
    pub draw_json: std::sync::OnceLock<axum::body::Bytes>,
    /// Set once no session of it can be booked: its gate is gone and it is no longer stepped
    /// (its status and draw stay readable).
    closed: AtomicBool,
    /// The opening and admissions not yet known to be committed (sent again at the next step
    /// until they are).
    unsaved: Mutex<Unsaved>,
    /// Its polls held open (taken before the queue's lock when both are).
    held: Mutex<Held>,
}

/// The polls held open in one room, each woken when its place is reached, the release sells
/// out or closes, or a newer held poll of the same place replaces it (one per place). A woken
/// poll is answered from the queue like any other.
#[derive(Default)]
struct Held {
    /// Place → the generation of its held poll.
    by_place: HashMap<u32, u64>,
    /// Held polls of ranked places by (rank, place): those below the cursor are woken.
    ranked: BTreeMap<(u32, u32), Wake>,
    /// Held polls of the pre-queue, ranked at the opening.
    prequeue: HashMap<u32, Wake>,
    next_gen: u64,
}

type Wake = tokio::sync::oneshot::Sender<()>;

impl Held {
    /// Drops a place's held poll (its holder is answered at once).
    fn forget(&mut self, place: u32, rank: Option<u32>) {
        self.by_place.remove(&place);
        self.prequeue.remove(&place);
        if let Some(r) = rank {
            self.ranked.remove(&(r, place));
        }
    }

    /// Wakes the held polls of places ranked below `cursor`.
    fn wake_below(&mut self, cursor: u32) {
        let rest = self.ranked.split_off(&(cursor, 0));
        for ((_, place), wake) in std::mem::replace(&mut self.ranked, rest) {
            self.by_place.remove(&place);
            let _ = wake.send(());
        }
    }

    /// Wakes every held poll.
    fn wake_all(&mut self) {
        let ranked = std::mem::take(&mut self.ranked).into_values();
        for wake in ranked.chain(self.prequeue.drain().map(|(_, w)| w)) {
            let _ = wake.send(());
        }
        self.by_place.clear();
    }

    /// The opening ranked the pre-queue: its held polls join the ranked ones.
    fn rank_prequeue(&mut self, queue: &Queue) {
        for (place, wake) in self.prequeue.drain() {
            let rank = queue.rank_of(place).unwrap_or(u32::MAX);
            self.ranked.insert((rank, place), wake);
        }
    }
}

/// A poll held open: [`HeldPoll::wait`] returns when its place may have moved on, or at the
/// deadline; dropping it (also when the client goes away) takes it out of its room.
pub struct HeldPoll {
    room: Arc<Room>,
    place: u32,
    generation: u64,
    rx: tokio::sync::oneshot::Receiver<()>,
    count: Arc<AtomicUsize>,
}

impl HeldPoll {
    /// Waits until woken or for `hold` at most; the time it waited.
    pub async fn wait(&mut self, hold: Duration) -> Duration {
        let started = tokio::time::Instant::now();
        let _ = tokio::time::timeout(hold, &mut self.rx).await;
        started.elapsed()
    }
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        let mut held = self.room.held.lock();
        if held.by_place.get(&self.place) == Some(&self.generation) {
            let rank = self.room.queue.lock().rank_of(self.place);
            held.forget(self.place, rank);
        }
        drop(held);
        self.count.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("kataar_queue_held_polls").decrement(1.0);
    }
}

#[derive(Default)]
struct Unsaved {
    opened: Option<u32>,
    /// A batch with the opening is on its way: admissions wait for its outcome, so none is ever
    /// stored before the pre-queue's size (a restart would otherwise draw a different pre-queue).
    opening_in_flight: bool,
    /// At most one entry per place (a place is admitted once), so bounded by the release's
    /// tickets.
    admitted: Vec<QueueAdmission>,
    cursor: u32,
}

/// Every release's waiting room.
pub struct Waitroom {
    key: Key,
    draw_key: [u8; 32],
    limits: Limits,
    rooms: RwLock<BTreeMap<ReleaseId, Arc<Room>>>,
    by_session: RwLock<BTreeMap<SessionId, ReleaseId>>,
    next_id: AtomicU64,
    /// Set when the booking lane refused for load since the last step.
    lane_refused: AtomicBool,
    /// Polls held open now, across the rooms.
    held_polls: Arc<AtomicUsize>,
    /// Set at shutdown: no poll is held any more.
    stopping: AtomicBool,
}

/// Unix milliseconds of an instant (0 before 1970).
pub fn unix_ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// The instant of a unix time in milliseconds.
pub fn from_unix_ms(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(i64::try_from(ms).unwrap_or(i64::MAX))
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl Waitroom {
    /// The waiting rooms, keyed from the token secret, rebuilt from what the store loaded.
    pub fn restore(
        token_secret: &[u8],
        limits: Limits,
        releases: Vec<ReleaseState>,
        tickets: Vec<QueueTicket>,
        admissions: Vec<QueueAdmission>,
        now: DateTime<Utc>,
    ) -> Waitroom {
        let w = Waitroom {
            key: Key::new(derive_key(
                token_secret,
                b"kataar waiting-room tickets and passes v1",
            )),
            draw_key: derive_key(token_secret, b"kataar waiting-room draw v1"),
            limits,
            rooms: RwLock::new(BTreeMap::new()),
            by_session: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            lane_refused: AtomicBool::new(false),
            held_polls: Arc::new(AtomicUsize::new(0)),
            stopping: AtomicBool::new(false),
        };
        let mut tickets_of: BTreeMap<ReleaseId, Vec<(u32, u64, u64)>> = BTreeMap::new();
        for t in tickets {
            tickets_of.entry(t.release_id).or_default().push((
                t.index,
                t.account_id.0,
                unix_ms(t.created_at),
            ));
        }
        let mut admissions_of: BTreeMap<ReleaseId, Vec<(u32, u64)>> = BTreeMap::new();
        for a in admissions {
            admissions_of
                .entry(a.release_id)
                .or_default()
                .push((a.index, unix_ms(a.expires_at)));
        }
        for state in releases {
            let id = state.release.release_id;
            let queue = Queue::restore(
                w.queue_config(&state.release),
                w.secret_of(&state.release),
                w.key.clone(),
                tickets_of.remove(&id).unwrap_or_default(),
                state.prequeue,
                state.cursor,
                admissions_of.get(&id).map_or(&[][..], |v| v.as_slice()),
                unix_ms(now),
            );
            w.insert(state.release, queue);
        }
        w
    }

    fn insert(&self, release: Release, queue: Queue) {
        let mut by_session = self.by_session.write();
        self.insert_locked(&mut by_session, release, queue);
    }

    /// Inserts a room with the session map's write lock held by the caller.
    fn insert_locked(
        &self,
        by_session: &mut BTreeMap<SessionId, ReleaseId>,
        release: Release,
        queue: Queue,
    ) {
        let id = release.release_id;
        self.next_id.fetch_max(id.0 + 1, Ordering::Relaxed);
        for s in &release.session_ids {
            by_session.insert(*s, id);
        }
        self.rooms.write().insert(
            id,
            Arc::new(Room {
                release,
                queue: Mutex::new(queue),
                draw_json: std::sync::OnceLock::new(),
                closed: AtomicBool::new(false),
                unsaved: Mutex::new(Unsaved::default()),
                held: Mutex::new(Held::default()),
            }),
        );
    }

    fn remove(&self, id: ReleaseId) {
        // The rooms' lock is let go before the session map's is taken (`prepare` takes the
        // session map first).
        let room = self.rooms.write().remove(&id);
        if let Some(room) = room {
            self.ungate(&room);
        }
    }

    /// Drops a room's sessions from the gate.
    fn ungate(&self, room: &Room) {
        let id = room.release.release_id;
        let mut by_session = self.by_session.write();
        for s in &room.release.session_ids {
            if by_session.get(s) == Some(&id) {
                by_session.remove(s);
            }
        }
    }

    /// Closes every room none of whose sessions can be booked any more: its gate goes and it
    /// no longer counts against `releases_max`.
    pub fn close_finished(&self, state: &AppState) {
        for room in self.rooms() {
            if !room.closed.load(Ordering::SeqCst) && standing(state, &room.release).closed {
                self.close(&room);
            }
        }
    }

    /// Closes a room (once): its gate goes and it is no longer stepped.
    fn close(&self, room: &Room) {
        if !room.closed.swap(true, Ordering::SeqCst) {
            self.ungate(room);
            room.held.lock().wake_all();
        }
    }

    /// The server is stopping: every held poll is answered and none is held any more.
    pub fn stop_holding(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for room in self.rooms() {
            room.held.lock().wake_all();
        }
    }

    /// The longest a poll is held, seconds.
    pub fn hold_s_max(&self) -> u32 {
        self.limits.hold_s_max
    }

    /// Holds a poll of `place` open, replacing an earlier held poll of it; `None` when
    /// `queue_held_polls_max` are held already or the room is closed.
    pub fn hold(&self, room: &Arc<Room>, place: u32) -> Option<HeldPoll> {
        if room.closed.load(Ordering::SeqCst) || self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut held = room.held.lock();
        // Checked again under the lock: `close` sets the flag before it wakes everyone under it,
        // so a poll registered after that wake-up would never be woken.
        if room.closed.load(Ordering::SeqCst) {
            return None;
        }
        // A poll replacing its place's held one takes the place of it (whose holder is answered
        // now and gives its count back); any other needs room under the bound.
        let max = self.limits.held_polls_max as usize;
        let count = self.held_polls.fetch_add(1, Ordering::SeqCst);
        if count >= max && !held.by_place.contains_key(&place) {
            self.held_polls.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        metrics::gauge!("kataar_queue_held_polls").increment(1.0);
        // Read with the held polls locked, so an opening ranks this one or ranked it already.
        let rank = room.queue.lock().rank_of(place);
        held.forget(place, rank);
        held.next_gen += 1;
        let generation = held.next_gen;
        held.by_place.insert(place, generation);
        match rank {
            Some(r) => {
                held.ranked.insert((r, place), tx);
            }
            None => {
                held.prequeue.insert(place, tx);
            }
        }
        drop(held);
        let poll = HeldPoll {
            room: room.clone(),
            place,
            generation,
            rx,
            count: self.held_polls.clone(),
        };
        // Checked again once registered: a shutdown that began meanwhile wakes it or is seen.
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        metrics::gauge!("kataar_queue_held_polls")
            .set(self.held_polls.load(Ordering::SeqCst) as f64);
        Some(poll)
    }

    fn queue_config(&self, r: &Release) -> QueueConfig {
        QueueConfig {
            release_id: r.release_id.0,
            created_at_ms: unix_ms(r.created_at),
            opens_at_ms: unix_ms(r.opens_at),
            admit_per_s: r
                .admit_per_s
                .map_or(self.limits.default_admit_per_s, f64::from),
            pass_ttl_s: r.pass_ttl_s,
            keepalive_s: self.limits.keepalive_s,
            tickets_max: self.limits.tickets_max,
            poll_budget_per_s: f64::from(self.limits.poll_budget_per_s),
            poll_min_s: self.limits.poll_min_s,
            poll_max_s: self.limits.poll_max_s,
        }
    }

    fn secret_of(&self, r: &Release) -> [u8; 32] {
        let mut label = r.release_id.0.to_be_bytes().to_vec();
        label.extend_from_slice(r.draw_nonce.as_bytes());
        derive_key(&self.draw_key, &label)
    }

    /// The room of a release.
    pub fn room(&self, id: ReleaseId) -> Option<Arc<Room>> {
        self.rooms.read().get(&id).cloned()
    }

    /// Every room, by release id.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.rooms.read().values().cloned().collect()
    }

    /// The release a session belongs to.
    pub fn release_of(&self, session: SessionId) -> Option<ReleaseId> {
        self.by_session.read().get(&session).copied()
    }

    /// The ticket-id and pass key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The booking lane refused a request for load: the next step lowers every open queue's
    /// admission rate.
    pub fn booking_lane_refused(&self) {
        self.lane_refused.store(true, Ordering::Relaxed);
    }

    /// A new release (not yet durable): its id, its queue and the `ReleaseCreated` event.
    /// Refused with `429` at `releases_max`, and `409 already_booked`-free: a session already in
    /// another release is `400 invalid_request`.
    pub fn prepare(
        &self,
        session_ids: Vec<SessionId>,
        opens_at: DateTime<Utc>,
        admit_per_s: Option<u32>,
        pass_ttl_s: u32,
        now: DateTime<Utc>,
    ) -> Result<Release, ApiError> {
        // Held from the check to the insert, so two announcements cannot both take a session.
        let mut by_session = self.by_session.write();
        let open = self
            .rooms
            .read()
            .values()
            .filter(|r| !r.closed.load(Ordering::SeqCst))
            .count();
        if open >= self.limits.releases_max as usize {
            return Err(ApiError::too_many_requests(RELEASES_FULL_RETRY_AFTER_S));
        }
        if let Some(s) = session_ids.iter().find(|s| by_session.contains_key(s)) {
            return Err(ApiError::invalid_request(
                "session_ids",
                format!("session {s} already belongs to a release"),
            ));
        }
        let nonce: [u8; 32] = rand::random();
        let release = Release {
            release_id: ReleaseId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            session_ids,
            opens_at,
            admit_per_s,
            pass_ttl_s,
            draw_nonce: hex::encode(nonce),
            created_at: now,
        };
        let queue = Queue::new(
            self.queue_config(&release),
            self.secret_of(&release),
            self.key.clone(),
        );
        self.insert_locked(&mut by_session, release.clone(), queue);
        Ok(release)
    }

    /// After a restart: places admitted before it whose holder has since booked one of the
    /// release's sessions are marked booked, so their passes hold no place.
    pub fn mark_restored_bookings(&self, inv: &kataar_inventory::Inventory) {
        for room in self.rooms() {
            let places = room.queue.lock().admitted_places();
            for place in places {
                let Some(account) = room.queue.lock().account_of(place) else {
                    continue;
                };
                let booked = inv.bookings_of(AccountId(account)).iter().any(|b| {
                    b.status.holds_place() && room.release.session_ids.contains(&b.session_id)
                });
                if booked {
                    room.queue.lock().mark_booked(place);
                }
            }
        }
    }

    /// Forgets a release whose creation was certainly not committed.
    pub fn abandon(&self, id: ReleaseId) {
        self.remove(id);
    }

    /// The gate of a booking in `session` by `account` with the request's pass: `Ok(None)`
    /// outside any release, `Ok(Some((room, place)))` with a valid pass.
    pub fn check(
        &self,
        session: SessionId,
        account: AccountId,
        pass: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<(Arc<Room>, u32)>, BookingError> {
        let Some(id) = self.release_of(session) else {
            return Ok(None);
        };
        let Some(room) = self.room(id) else {
            return Ok(None);
        };
        let Some(pass) = pass else {
            return Err(BookingError::QueueRequired);
        };
        match self.key.check_pass(pass, id.0, account.0, unix_ms(now)) {
            Ok(place) => Ok(Some((room, place))),
            Err(_) => Err(BookingError::PassInvalid),
        }
    }
}

/// Starts the step task: every [`QUEUE_STEP_MS`], each release is opened when due (its draw
/// computed off the async workers), its queue advanced with the places its sessions have
/// left, and the step's opening and admissions handed to the writer.
pub fn spawn_steps(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(QUEUE_STEP_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let lowered = state.waitroom.lane_refused.swap(false, Ordering::Relaxed);
            for room in state.waitroom.rooms() {
                if room.closed.load(Ordering::SeqCst) {
                    continue;
                }
                let now = standing(&state, &room.release);
                if now.closed {
                    state.waitroom.close(&room);
                } else {
                    step_room(&state, &room, now.available, lowered).await;
                }
            }
        }
    });
}

/// Where a release's sessions stand, read in one pass over them.
pub struct Standing {
    /// No session can be booked any more: all cancelled (committed: a cancellation still in
    /// progress may yet fail) or past.
    pub closed: bool,
    /// Online places left (both doses) in the sessions open to bookings.
    pub available: u64,
}

/// Where a release's sessions stand now.
pub fn standing(state: &AppState, release: &Release) -> Standing {
    let today = state.today();
    let mut out = Standing {
        closed: true,
        available: 0,
    };
    for v in release
        .session_ids
        .iter()
        .filter_map(|s| state.inv.session(*s))
    {
        if !v.session.cancelled && v.session.date >= today {
            out.closed = false;
        }
        if !v.closed {
            out.available +=
                u64::from(v.online_available(Dose::One)) + u64::from(v.online_available(Dose::Two));
        }
    }
    out
}

/// One step of a room, with `places` left in its sessions. Steps of a room never overlap (one
/// task runs them in turn), so an opening is computed once.
async fn step_room(state: &AppState, room: &Arc<Room>, places: u64, lowered: bool) {
    let now = unix_ms(state.now());
    let mut opened = None;
    let due = !room.queue.lock().is_open() && now >= unix_ms(room.release.opens_at);
    if due {
        // The pre-queue is what was given by now; tickets given while the draw is computed
        // queue behind it.
        let (n, drawer) = {
            let q = room.queue.lock();
            (u32::try_from(q.len()).unwrap_or(u32::MAX), q.drawer())
        };
        let order = tokio::task::spawn_blocking(move || drawer.order(n)).await;
        match order {
            Ok(order) => {
                let mut held = room.held.lock();
                let mut q = room.queue.lock();
                q.open_with(n, order);
                held.rank_prequeue(&q);
                opened = Some(n);
            }
            Err(e) => {
                // Tried again at the next step.
                tracing::error!(error = %e, release = room.release.release_id.0, "the draw failed");
                return;
            }
        }
    }
    let (step, counts, sold_out): (Step, _, _) = {
        let mut q = room.queue.lock();
        if lowered && q.is_open() {
            q.lower_rate(now);
        }
        let mut step = q.advance(now, places);
        if opened.is_some() {
            step.opened = opened;
        }
        (step, q.counts(), q.sold_out())
    };
    {
        let mut held = room.held.lock();
        if sold_out {
            held.wake_all();
        } else {
            if !held.prequeue.is_empty() {
                let q = room.queue.lock();
                if q.is_open() {
                    held.rank_prequeue(&q);
                }
            }
            held.wake_below(step.cursor);
        }
    }
    record_metrics(room, &counts, sold_out);
    let id = room.release.release_id;
    if !step.admitted.is_empty() {
        metrics::counter!("kataar_queue_admitted_total", "release" => id.0.to_string())
            .increment(step.admitted.len() as u64);
        let waited =
            metrics::histogram!("kataar_queue_wait_seconds", "release" => id.0.to_string());
        for w in &step.waits_s {
            waited.record(f64::from(*w));
        }
    }
    // This step's opening and admissions join whatever an earlier step could not commit.
    let (opened, admitted, cursor) = {
        let mut u = room.unsaved.lock();
        if step.opened.is_some() {
            u.opened = step.opened;
        }
        u.admitted.extend(
            step.admitted
                .iter()
                .map(|&(index, expires)| QueueAdmission {
                    release_id: id,
                    index,
                    expires_at: from_unix_ms(expires),
                }),
        );
        u.cursor = u.cursor.max(step.cursor);
        if u.opening_in_flight || (u.opened.is_none() && u.admitted.is_empty()) {
            return;
        }
        let opened = u.opened.take();
        u.opening_in_flight = opened.is_some();
        (opened, std::mem::take(&mut u.admitted), u.cursor)
    };
    let mut events = Vec::new();
    if let Some(prequeue) = opened {
        events.push(Event::ReleaseOpened {
            release_id: id,
            prequeue,
        });
    }
    if !admitted.is_empty() {
        events.push(Event::QueueAdvanced {
            release_id: id,
            cursor,
            admitted: admitted.clone(),
        });
    }
    // Not awaited here; a step that is not committed is sent again with the next one (the store
    // keeps an admission once and the cursor's maximum), so a restart finds every admission.
    let room = room.clone();
    let settle = move |room: &Room, committed: bool| {
        let mut u = room.unsaved.lock();
        if opened.is_some() {
            u.opening_in_flight = false;
        }
        if !committed {
            if u.opened.is_none() {
                u.opened = opened;
            }
            u.admitted.extend(admitted);
        }
    };
    match state.writer.submit(events) {
        Ok(ticket) => {
            tokio::spawn(async move {
                let outcome = ticket.await;
                if let Err(e) = &outcome {
                    tracing::warn!(error = %e, release = id.0, "a queue step was not committed; sent again with the next");
                }
                settle(&room, outcome.is_ok());
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, release = id.0, "the writer refused a queue step; sent again with the next");
            settle(&room, false);
        }
    }
}

fn record_metrics(room: &Room, c: &kataar_waitroom::Counts, sold_out: bool) {
    let id = room.release.release_id.0.to_string();
    metrics::gauge!("kataar_queue_waiting", "release" => id.clone()).set(c.waiting as f64);
    metrics::gauge!("kataar_queue_passes_outstanding", "release" => id.clone())
        .set(c.outstanding as f64);
    metrics::gauge!("kataar_queue_expired", "release" => id.clone()).set(c.expired as f64);
    metrics::gauge!("kataar_queue_booked", "release" => id.clone()).set(c.booked as f64);
    metrics::gauge!("kataar_queue_sold_out", "release" => id.clone()).set(if sold_out {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("kataar_queue_admit_per_second", "release" => id.clone()).set(c.admit_per_s);
    metrics::gauge!("kataar_queue_poll_budget_used_per_second", "release" => id)
        .set(c.poll_rate_per_s);
}

/// The `Kataar-Pass` header of a request.
pub fn pass_of(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(PASS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The place a booking's pass was checked for, so that the queue learns it booked.
#[derive(Default)]
pub struct Admitted(Mutex<Option<(Arc<Room>, u32)>>);

impl Admitted {
    /// The engine's gate for a booking by `account` with `pass`: a session of a release needs
    /// a valid pass of that release for this account.
    pub fn gate<'a>(
        &'a self,
        state: &'a AppState,
        account: AccountId,
        pass: Option<&'a str>,
    ) -> impl Fn(&Session) -> Result<(), BookingError> + 'a {
        move |session: &Session| {
            if let Some(held) =
                state
                    .waitroom
                    .check(session.session_id, account, pass, state.now())?
            {
                *self.0.lock() = Some(held);
            }
            Ok(())
        }
    }

    /// The booking committed: its place in the queue is marked booked.
    pub fn booked(&self) {
        if let Some((room, place)) = self.0.lock().take() {
            room.queue.lock().mark_booked(place);
        }
    }
}

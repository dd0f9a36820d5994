//! One release's queue: tickets by place index, the pre-queue's draw at the opening, admission
//! at a rate, passes outstanding, expiry by missed polls.
//!
//! Memory is a few flat vectors indexed by the place index (`accounts`, `joined`, `due`,
//! `state`, `rank`, `order`: 25 bytes a ticket) and one map from account to its current place; a poll reads
//! three of them (`position = rank − cursor + 1`), so its cost does not depend on the queue's
//! length. Admission walks `order` with a cursor, skipping places whose holder stopped polling.

use crate::draw;
use crate::ticket::Key;
use std::collections::{HashMap, VecDeque};

type Hasher = foldhash::fast::RandomState;

/// The settings of one release's queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The release.
    pub release_id: u64,
    /// When the release was created (unix ms); ticket times are kept as seconds from here.
    pub created_at_ms: u64,
    /// The opening (unix ms): tickets taken before it are drawn, later ones queue in order.
    pub opens_at_ms: u64,
    /// Admissions per second at most.
    pub admit_per_s: f64,
    /// How long a pass is valid, seconds.
    pub pass_ttl_s: u32,
    /// How long past the poll time it was given a ticket keeps its place, seconds.
    pub keepalive_s: u32,
    /// Tickets in this release at most.
    pub tickets_max: u32,
    /// The whole queue's polls per second that `poll_after_s` aims to stay within.
    pub poll_budget_per_s: f64,
    /// The shortest `poll_after_s` given, seconds.
    pub poll_min_s: u32,
    /// The longest `poll_after_s` given, seconds.
    pub poll_max_s: u32,
}

const WAITING: u8 = 0;
const ADMITTED: u8 = 1;
const BOOKED: u8 = 2;
/// Passed over by admission because its holder had stopped polling.
const SKIPPED: u8 = 3;
/// Admitted, but the pass ran out unused.
const PASS_EXPIRED: u8 = 4;
/// Given up: replaced by a newer ticket of the same account, or never committed.
const LEFT: u8 = 5;

/// How fast a lowered admission rate climbs back, as a share of the configured rate per second.
const RATE_RECOVERY_PER_S: f64 = 0.05;
/// The lowest the admission rate is lowered to, admissions per second.
const RATE_FLOOR_PER_S: f64 = 1.0;
/// Skipped places examined per `advance` at most (bounds one step's time).
const SKIPS_PER_STEP_MAX: usize = 65_536;

/// What a ticket's holder is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// In the queue. `position` (1 = next) and `eta_s` are `None` before the opening.
    Waiting {
        /// Places ahead, plus one.
        position: Option<u64>,
        /// Estimated seconds until admission.
        eta_s: Option<u64>,
    },
    /// Admitted: book with the pass before it expires.
    Admitted {
        /// The pass's expiry (unix ms).
        pass_expires_ms: u64,
    },
    /// The release has no place left.
    SoldOut,
    /// The ticket lost its place (not polled in time, or its pass ran out unused).
    Expired,
}

/// A ticket's answer: its status and when to ask again.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The place index.
    pub index: u32,
    /// The status.
    pub status: Status,
    /// Seconds until the next poll.
    pub poll_after_s: u32,
}

/// Why a ticket could not be given or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The release already holds `tickets_max` tickets.
    Full,
    /// No such ticket in this release.
    NoTicket,
    /// The ticket belongs to another account.
    NotYours,
}

/// What one `advance` changed, for the caller to make durable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// The pre-queue closed at this step, holding this many places.
    pub opened: Option<u32>,
    /// Places admitted at this step, with their pass expiry (unix ms).
    pub admitted: Vec<(u32, u64)>,
    /// The cursor after the step (ranks admitted or passed over).
    pub cursor: u32,
    /// How long each admitted place waited, seconds (from its ticket, or from the opening for
    /// the pre-queue), in the order of `admitted`.
    pub waits_s: Vec<u32>,
}

/// Counters for metrics and the public status.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Tickets not yet reached by admission (some may have stopped polling).
    pub waiting: u64,
    /// Admissions so far.
    pub admitted: u64,
    /// Places passed over or passes run out.
    pub expired: u64,
    /// Admitted tickets that booked.
    pub booked: u64,
    /// Passes valid and not yet used.
    pub outstanding: u64,
    /// The current admission rate (per second).
    pub admit_per_s: f64,
    /// The polls per second the queue's `poll_after_s` adds up to.
    pub poll_rate_per_s: f64,
}

/// Computes a release's draw away from its queue.
pub struct Drawer {
    release: u64,
    secret: [u8; 32],
    key: Key,
}

impl Drawer {
    /// The indices of the first `n` places in drawn order.
    pub fn order(&self, n: u32) -> Vec<u32> {
        let mut ids: Vec<(String, u32)> = (0..n)
            .map(|i| (self.key.ticket_id(self.release, i), i))
            .collect();
        ids.sort_unstable();
        let sorted: Vec<&str> = ids.iter().map(|(s, _)| s.as_str()).collect();
        let seed = draw::seed(&self.secret, &draw::list_hash(&sorted));
        let mut order: Vec<u32> = ids.iter().map(|(_, i)| *i).collect();
        draw::shuffle(&mut order, seed);
        order
    }
}

/// One release's queue.
#[derive(Clone)]
pub struct Queue {
    cfg: QueueConfig,
    secret: [u8; 32],
    key: Key,
    accounts: Vec<u64>,
    /// Seconds from `created_at_ms` at which the ticket was taken.
    joined: Vec<u32>,
    /// Seconds from `created_at_ms` after which the place is lost if not polled.
    due: Vec<u32>,
    state: Vec<u8>,
    /// Index → rank (`u32::MAX` before the opening).
    rank: Vec<u32>,
    /// Rank → index.
    order: Vec<u32>,
    by_account: HashMap<u64, u32, Hasher>,
    prequeue: Option<u32>,
    cursor: u32,
    /// Admitted places in pass-expiry order (each pass ends at its place's `due`).
    passes: VecDeque<u32>,
    outstanding: u64,
    available: u64,
    tokens: f64,
    rate: f64,
    last_step_ms: u64,
    last_lowered_ms: u64,
    /// `poll_after = clamp(ceil(slope × position), poll_min_s, poll_max_s)`.
    slope: f64,
    poll_rate: f64,
    admitted: u64,
    expired: u64,
    booked: u64,
}

impl Queue {
    /// An empty queue before its opening.
    pub fn new(cfg: QueueConfig, secret: [u8; 32], key: Key) -> Self {
        let rate = cfg.admit_per_s.max(RATE_FLOOR_PER_S);
        let last = cfg.created_at_ms;
        Self {
            cfg,
            secret,
            key,
            accounts: Vec::new(),
            joined: Vec::new(),
            due: Vec::new(),
            state: Vec::new(),
            rank: Vec::new(),
            order: Vec::new(),
            by_account: HashMap::default(),
            prequeue: None,
            cursor: 0,
            passes: VecDeque::new(),
            outstanding: 0,
            available: u64::MAX,
            tokens: 0.0,
            rate,
            last_step_ms: last,
            last_lowered_ms: 0,
            slope: 0.0,
            poll_rate: 0.0,
            admitted: 0,
            expired: 0,
            booked: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    /// The published commitment (hex SHA-256 of the secret).
    pub fn commitment_hex(&self) -> String {
        hex::encode(draw::commitment(&self.secret))
    }

    /// Whether the pre-queue has closed.
    pub fn is_open(&self) -> bool {
        self.prequeue.is_some()
    }

    /// The id of place `index`.
    pub fn ticket_id(&self, index: u32) -> String {
        self.key.ticket_id(self.cfg.release_id, index)
    }

    /// Tickets given so far (including given-up places).
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no ticket was given yet.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The account holding place `index`.
    pub fn account_of(&self, index: u32) -> Option<u64> {
        self.accounts.get(index as usize).copied()
    }

    fn secs(&self, now_ms: u64) -> u32 {
        u32::try_from(now_ms.saturating_sub(self.cfg.created_at_ms) / 1000).unwrap_or(u32::MAX)
    }

    fn ms(&self, secs: u32) -> u64 {
        self.cfg.created_at_ms + u64::from(secs) * 1000
    }

    /// Whether place `index` still holds: waiting and polled in time, or admitted with a pass
    /// still valid (`due` holds the pass's end then). A place whose pass has run out — used or
    /// not — is done with: asking again gives a new ticket.
    fn live(&self, index: u32, now_s: u32) -> bool {
        let i = index as usize;
        match self.state[i] {
            WAITING => self.due[i] >= now_s,
            ADMITTED | BOOKED => self.due[i] > now_s,
            _ => false,
        }
    }

    /// The account's ticket, or a new one at the end if it has none that still holds a place.
    /// Returns (index, whether it is new).
    pub fn enqueue(&mut self, account: u64, now_ms: u64) -> Result<(u32, bool), QueueError> {
        let now_s = self.secs(now_ms);
        if let Some(&index) = self.by_account.get(&account) {
            if self.live(index, now_s) {
                return Ok((index, false));
            }
            if self.state[index as usize] == WAITING {
                // Its holder stopped polling before admission reached it.
                self.state[index as usize] = LEFT;
            }
        }
        if self.accounts.len() >= self.cfg.tickets_max as usize {
            return Err(QueueError::Full);
        }
        let index = u32::try_from(self.accounts.len()).map_err(|_| QueueError::Full)?;
        self.push(index, account, WAITING);
        self.joined[index as usize] = now_s;
        let grace = self.first_poll_after(index, now_ms);
        self.due[index as usize] = now_s
            .saturating_add(grace)
            .saturating_add(self.cfg.keepalive_s);
        self.by_account.insert(account, index);
        Ok((index, true))
    }

    fn push(&mut self, index: u32, account: u64, state: u8) {
        debug_assert_eq!(index as usize, self.accounts.len());
        self.accounts.push(account);
        self.joined.push(0);
        self.due.push(0);
        self.state.push(state);
        if self.prequeue.is_some() {
            self.rank
                .push(u32::try_from(self.order.len()).unwrap_or(u32::MAX));
            self.order.push(index);
        } else {
            self.rank.push(u32::MAX);
        }
    }

    /// Gives up a place whose ticket could not be made durable.
    pub fn withdraw(&mut self, index: u32) {
        let i = index as usize;
        if i < self.state.len() {
            if self.state[i] == ADMITTED {
                // Admission reached it before its commit failed: its pass holds no place.
                self.outstanding = self.outstanding.saturating_sub(1);
            }
            self.state[i] = LEFT;
            if self.by_account.get(&self.accounts[i]) == Some(&index) {
                self.by_account.remove(&self.accounts[i]);
            }
        }
    }

    /// A holder's poll: keeps the place alive and says where it stands.
    pub fn poll(&mut self, index: u32, account: u64, now_ms: u64) -> Result<Answer, QueueError> {
        let i = index as usize;
        let Some(&owner) = self.accounts.get(i) else {
            return Err(QueueError::NoTicket);
        };
        if owner != account {
            return Err(QueueError::NotYours);
        }
        let now_s = self.secs(now_ms);
        let status = self.status_of(index, now_s, now_ms);
        let poll_after_s = match status {
            Status::Waiting { position: None, .. } => self.first_poll_after(index, now_ms),
            Status::Waiting {
                position: Some(p), ..
            } => self.poll_after(p),
            _ => self.cfg.poll_max_s,
        };
        if matches!(status, Status::Waiting { .. } | Status::SoldOut) {
            self.due[i] = now_s
                .saturating_add(poll_after_s)
                .saturating_add(self.cfg.keepalive_s);
        }
        Ok(Answer {
            index,
            status,
            poll_after_s,
        })
    }

    fn status_of(&mut self, index: u32, now_s: u32, now_ms: u64) -> Status {
        let i = index as usize;
        match self.state[i] {
            // Told at every poll while nothing is left, and kept in line meanwhile: a place
            // freed later goes to it in its turn.
            WAITING if self.prequeue.is_some() && self.available == 0 => Status::SoldOut,
            WAITING if self.due[i] < now_s => {
                self.state[i] = LEFT;
                self.expired += 1;
                Status::Expired
            }
            WAITING => match self.prequeue {
                None => Status::Waiting {
                    position: None,
                    eta_s: None,
                },
                Some(_) => {
                    let position = u64::from(self.rank[i].saturating_sub(self.cursor)) + 1;
                    let eta_s = (position as f64 / self.rate).ceil() as u64;
                    Status::Waiting {
                        position: Some(position),
                        eta_s: Some(eta_s),
                    }
                }
            },
            ADMITTED | BOOKED => {
                let expires = self.ms(self.due[i]);
                if expires > now_ms {
                    Status::Admitted {
                        pass_expires_ms: expires,
                    }
                } else {
                    Status::Expired
                }
            }
            _ => Status::Expired,
        }
    }

    /// Before the opening: the time until it, spread by place over `poll_max_s` so that the
    /// queue's first polls after the opening do not all land in the same second. (The spread
    /// cannot follow the pre-queue's size: the first tickets are given when it is still small.)
    fn first_poll_after(&self, index: u32, now_ms: u64) -> u32 {
        if self.prequeue.is_some() {
            return self.cfg.poll_min_s;
        }
        let until = self.cfg.opens_at_ms.saturating_sub(now_ms).div_ceil(1000);
        let spread = u64::from(self.cfg.poll_max_s.max(1));
        let jitter = (u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % spread;
        u32::try_from(until.min(u64::from(u32::MAX / 2)) + jitter + 1).unwrap_or(u32::MAX / 2)
    }

    /// `poll_after_s` for a waiting place at `position`.
    pub fn poll_after(&self, position: u64) -> u32 {
        let (min, max) = (
            f64::from(self.cfg.poll_min_s),
            f64::from(self.cfg.poll_max_s),
        );
        let s = if self.slope.is_finite() {
            (self.slope * position as f64).ceil().clamp(min, max)
        } else {
            max
        };
        s as u32
    }

    /// The booking lane refused: halve the admission rate (at most once a second).
    pub fn lower_rate(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_lowered_ms) >= 1000 {
            self.rate = (self.rate / 2.0).max(RATE_FLOOR_PER_S);
            self.last_lowered_ms = now_ms;
        }
    }

    /// A pass holder booked.
    pub fn mark_booked(&mut self, index: u32) {
        let i = index as usize;
        if self.state.get(i) == Some(&ADMITTED) {
            self.state[i] = BOOKED;
            self.outstanding = self.outstanding.saturating_sub(1);
            self.booked += 1;
        }
    }

    /// Moves time on to `now_ms` with `available` places left in the release: closes the
    /// pre-queue at the opening (the draw), ends passes that ran out, and admits at the rate
    /// while passes outstanding stay below the places left.
    pub fn advance(&mut self, now_ms: u64, available: u64) -> Step {
        let mut step = Step::default();
        self.available = available;
        if self.prequeue.is_none() && now_ms >= self.cfg.opens_at_ms {
            let n = self.close_prequeue();
            step.opened = Some(n);
            self.last_step_ms = now_ms;
        }
        let dt = now_ms.saturating_sub(self.last_step_ms) as f64 / 1000.0;
        self.last_step_ms = now_ms;
        let configured = self.cfg.admit_per_s.max(RATE_FLOOR_PER_S);
        self.rate = (self.rate + configured * RATE_RECOVERY_PER_S * dt).min(configured);
        // A bucket of one second's admissions.
        self.tokens = (self.tokens + self.rate * dt).min(self.rate.max(1.0));
        while let Some(&index) = self.passes.front() {
            if self.ms(self.due[index as usize]) > now_ms {
                break;
            }
            self.passes.pop_front();
            if self.state[index as usize] == ADMITTED {
                self.state[index as usize] = PASS_EXPIRED;
                self.outstanding = self.outstanding.saturating_sub(1);
                self.expired += 1;
            }
        }
        if self.prequeue.is_some() {
            self.admit(now_ms, &mut step);
        }
        step.cursor = self.cursor;
        self.update_poll_slope();
        step
    }

    fn admit(&mut self, now_ms: u64, step: &mut Step) {
        let now_s = self.secs(now_ms);
        // Passes end on a whole second from the release's creation, so `due` holds them exactly.
        let expires_s = now_s.saturating_add(self.cfg.pass_ttl_s);
        let expires = self.ms(expires_s);
        let opened_s = self.secs(self.cfg.opens_at_ms);
        let mut skips = 0usize;
        while self.tokens >= 1.0
            && self.outstanding < self.available
            && (self.cursor as usize) < self.order.len()
            && skips < SKIPS_PER_STEP_MAX
        {
            let index = self.order[self.cursor as usize];
            let i = index as usize;
            self.cursor += 1;
            match self.state[i] {
                WAITING if self.due[i] >= now_s => {
                    self.state[i] = ADMITTED;
                    self.due[i] = expires_s;
                    self.outstanding += 1;
                    self.admitted += 1;
                    self.tokens -= 1.0;
                    self.passes.push_back(index);
                    step.admitted.push((index, expires));
                    step.waits_s
                        .push(now_s.saturating_sub(self.joined[i].max(opened_s)));
                }
                WAITING => {
                    self.state[i] = SKIPPED;
                    self.expired += 1;
                    skips += 1;
                }
                _ => skips += 1,
            }
        }
    }

    /// The draw: the pre-queue's ids sorted and shuffled; ranks follow the shuffled order.
    fn close_prequeue(&mut self) -> u32 {
        let n = u32::try_from(self.accounts.len()).unwrap_or(u32::MAX);
        let order = self.drawer().order(n);
        self.open_with(n, order);
        n
    }

    /// What computing the draw needs, to do it without holding the queue (it takes about a
    /// second for 10^6 tickets): the pre-queue is then the `len()` places given by then.
    pub fn drawer(&self) -> Drawer {
        Drawer {
            release: self.cfg.release_id,
            secret: self.secret,
            key: self.key.clone(),
        }
    }

    /// Closes the pre-queue at its first `n` places in `order` (from [`Drawer::order`]);
    /// places given since queue behind it in arrival order.
    pub fn open_with(&mut self, n: u32, order: Vec<u32>) {
        if self.prequeue.is_some() {
            return;
        }
        debug_assert_eq!(order.len(), n as usize);
        self.order = order;
        for index in n..u32::try_from(self.accounts.len()).unwrap_or(u32::MAX) {
            self.order.push(index);
        }
        for (rank, &index) in self.order.iter().enumerate() {
            self.rank[index as usize] = u32::try_from(rank).unwrap_or(u32::MAX);
        }
        self.prequeue = Some(n);
        // Admission starts at the opening: nothing saved up before it.
        self.tokens = 0.0;
    }

    /// Places admitted whose pass is still valid and that have not booked yet.
    pub fn admitted_places(&self) -> Vec<u32> {
        self.passes
            .iter()
            .copied()
            .filter(|&i| self.state[i as usize] == ADMITTED)
            .collect()
    }

    /// The published draw once the pre-queue has closed: (secret, sorted ids, drawn order).
    pub fn published_draw(&self) -> Option<([u8; 32], Vec<String>, Vec<String>)> {
        let n = self.prequeue?;
        let mut sorted: Vec<String> = (0..n).map(|i| self.ticket_id(i)).collect();
        sorted.sort_unstable();
        let order = self.order[..n as usize]
            .iter()
            .map(|&i| self.ticket_id(i))
            .collect();
        Some((self.secret, sorted, order))
    }

    /// The rank of place `index` (0 = first admitted), once ranks exist.
    pub fn rank_of(&self, index: u32) -> Option<u32> {
        self.rank
            .get(index as usize)
            .copied()
            .filter(|&r| r != u32::MAX)
    }

    /// Solves for the slope of `poll_after` so that the waiting places' polls add up to the
    /// budget: Σ 1 / clamp(slope × p, min, max) over positions p = 1..W.
    fn update_poll_slope(&mut self) {
        let waiting = self.order.len().saturating_sub(self.cursor as usize) as f64;
        let (m, big_m) = (
            f64::from(self.cfg.poll_min_s.max(1)),
            f64::from(self.cfg.poll_max_s.max(1)),
        );
        let budget = self.cfg.poll_budget_per_s.max(0.001);
        let rate = |c: f64| -> f64 {
            if waiting == 0.0 {
                return 0.0;
            }
            let p1 = (m / c).min(waiting);
            let p2 = (big_m / c).min(waiting);
            p1 / m + ((p2 / p1.max(1.0)).max(1.0)).ln() / c + (waiting - p2).max(0.0) / big_m
        };
        if rate(1e12) > budget {
            // Even the longest interval for everyone is over the budget.
            self.slope = f64::INFINITY;
            self.poll_rate = waiting / big_m;
            return;
        }
        let (mut lo, mut hi) = (0.0f64, 1e12f64);
        if rate(1e-12) <= budget {
            hi = 1e-12;
        }
        for _ in 0..100 {
            let mid = (lo + hi) / 2.0;
            if rate(mid) > budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.slope = hi;
        self.poll_rate = rate(hi);
    }

    /// Counters for the status and metrics.
    pub fn counts(&self) -> Counts {
        let waiting = match self.prequeue {
            None => self.by_account.len() as u64,
            Some(_) => self.order.len().saturating_sub(self.cursor as usize) as u64,
        };
        Counts {
            waiting,
            admitted: self.admitted,
            expired: self.expired,
            booked: self.booked,
            outstanding: self.outstanding,
            admit_per_s: self.rate,
            poll_rate_per_s: self.poll_rate,
        }
    }

    /// Whether the release is sold out (opened, and nothing left to book).
    pub fn sold_out(&self) -> bool {
        self.prequeue.is_some() && self.available == 0
    }

    /// Rebuilds a queue from what was made durable: the tickets (index, account, unix ms taken)
    /// in any order,
    /// the pre-queue's size if it had closed, the cursor, and the admissions with their pass
    /// expiry. Places never committed come back as given up; every waiting place gets a full
    /// poll interval and keep-alive from `now_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        cfg: QueueConfig,
        secret: [u8; 32],
        key: Key,
        mut tickets: Vec<(u32, u64, u64)>,
        prequeue: Option<u32>,
        cursor: u32,
        admissions: &[(u32, u64)],
        now_ms: u64,
    ) -> Self {
        let mut q = Self::new(cfg, secret, key);
        tickets.sort_unstable();
        let grace = q.cfg.poll_max_s.saturating_add(q.cfg.keepalive_s);
        let now_s = q.secs(now_ms);
        let last = tickets.last().map_or(0, |&(i, _, _)| i + 1);
        let end = last.max(prequeue.unwrap_or(0));
        let mut held = tickets.into_iter().peekable();
        for index in 0..end {
            if prequeue == Some(index) {
                q.close_prequeue();
            }
            match held.next_if(|&(i, _, _)| i == index) {
                Some((_, account, joined_ms)) => {
                    q.push(index, account, WAITING);
                    q.joined[index as usize] = q.secs(joined_ms);
                    q.due[index as usize] = now_s.saturating_add(grace);
                    if let Some(old) = q.by_account.insert(account, index) {
                        q.state[old as usize] = LEFT;
                    }
                }
                // A place that never committed holds no one.
                None => q.push(index, 0, LEFT),
            }
        }
        if prequeue.is_some() && q.prequeue.is_none() {
            q.close_prequeue();
        }
        q.cursor = cursor.min(u32::try_from(q.order.len()).unwrap_or(u32::MAX));
        for rank in 0..q.cursor as usize {
            let i = q.order[rank] as usize;
            if q.state[i] == WAITING {
                q.state[i] = SKIPPED;
                q.expired += 1;
            }
        }
        for &(index, expires) in admissions {
            let i = index as usize;
            if i >= q.state.len() || q.state[i] == LEFT {
                continue;
            }
            q.admitted += 1;
            if q.state[i] == SKIPPED {
                q.expired -= 1;
            }
            if expires > now_ms {
                q.state[i] = ADMITTED;
                q.due[i] = q.secs(expires);
                q.outstanding += 1;
                q.passes.push_back(index);
            } else {
                q.state[i] = PASS_EXPIRED;
                q.expired += 1;
            }
        }
        if q.prequeue.is_none() {
            // Before the opening, holders were told to come back at it: their places last
            // until then, as they did before the restart.
            for index in 0..u32::try_from(q.state.len()).unwrap_or(u32::MAX) {
                let i = index as usize;
                if q.state[i] == WAITING {
                    let back = q.first_poll_after(index, now_ms);
                    q.due[i] = now_s.saturating_add(back).saturating_add(q.cfg.keepalive_s);
                }
            }
        }
        let due = &q.due;
        q.passes.make_contiguous().sort_by_key(|&i| due[i as usize]);
        q.last_step_ms = now_ms.max(q.cfg.created_at_ms);
        q.update_poll_slope();
        q
    }
}

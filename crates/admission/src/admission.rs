//! `Admission`: the decision — admit (possibly after a bounded wait) or refuse at once.
//!
//! Order of checks, cheapest and most specific first, all lock-free except the keyed maps' own
//! shard locks (held for one compare-and-swap, never by anything else):
//!
//! 1. the lane's in-flight cap (one atomic load) → `overloaded`;
//! 2. the client address bucket, then the account bucket → `too_many_requests`;
//!    then the client address's and the account's own in-flight caps (`client_in_flight_max`,
//!    `account_in_flight_max`) → `too_many_requests`, so a few hosts or one account holding
//!    requests open cannot take a whole lane's in-flight places;
//! 3. booking lane only: the store breaker → `store_unavailable`;
//! 4. the lane bucket: a token now → admitted; otherwise, for `admit`, a place in the lane's
//!    wait queue and a reserved token whose start is within the allowed wait → sleep until then,
//!    admitted; otherwise refused at once → `overloaded`.
//!
//! The allowed wait is the lane's `*_queue_wait_ms_max`, cut to `queue_wait_ms_standing` when the
//! lane's queue has not been empty for `queue_drain_interval_ms` (a standing queue, in CoDel's
//! sense: waiting longer only adds latency), and never more than the client's own deadline.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::breaker::{Breaker, BreakerGuard};
use crate::bucket::LaneBucket;
use crate::clock::Clock;
use crate::config::{AdmissionConfig, ConfigError, LaneLimits};
use crate::inflight::{InFlightCounts, InFlightPlace};
use crate::keyed::{client_key, KeyedLimiter};
use crate::lane::Lane;
use crate::metrics::{KeyedMetrics, LaneMetrics};
use crate::refusal::{Refusal, RefusalKind, RetryPolicy};

/// How long a caller refused by an in-flight cap is told to wait: slots free as requests finish.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// Admission control for one server. Share it as `Arc<Admission>`.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    clock: Clock,
    lanes: [Arc<LaneState>; 4],
    clients: KeyedLimiter<IpAddr>,
    accounts: KeyedLimiter<u64>,
    client_in_flight: Arc<InFlightCounts<IpAddr>>,
    account_in_flight: Arc<InFlightCounts<u64>>,
    breaker: Arc<Breaker>,
    retry: RetryPolicy,
    drain_interval_ns: u64,
    standing_wait_ns: u64,
}

/// One lane's live state.
#[derive(Debug)]
struct LaneState {
    lane: Lane,
    limits: LaneLimits,
    queue_wait_max_ns: u64,
    bucket: LaneBucket,
    queued: AtomicU32,
    in_flight: AtomicU32,
    /// The clock's nanoseconds when the wait queue was last seen empty (entering from or
    /// leaving to an empty queue).
    last_empty_ns: AtomicU64,
    metrics: LaneMetrics,
}

/// A snapshot of one lane, for `/readyz`-style reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneStatus {
    /// Requests waiting for a token now.
    pub queued: u32,
    /// Admitted requests whose [`Permit`] is alive.
    pub in_flight: u32,
}

/// An admitted request. Keep it alive until the response is ready: it holds the request's
/// in-flight slot in its lane (and, for the booking lane during a half-open breaker, the probe).
#[derive(Debug)]
#[must_use = "dropping the permit ends the request's in-flight accounting"]
pub struct Permit {
    lane: Arc<LaneState>,
    breaker: Option<BreakerGuard>,
    _keys: KeyPlaces,
}

/// The client address's and the account's in-flight places of one request.
#[derive(Debug)]
struct KeyPlaces {
    _client: InFlightPlace<IpAddr>,
    _account: Option<InFlightPlace<u64>>,
}

impl Permit {
    /// The lane this request was admitted to.
    pub fn lane(&self) -> Lane {
        self.lane.lane
    }

    /// Is this request the store breaker's half-open probe? (Its store outcome, reported by the
    /// store writer, decides whether the breaker closes.)
    pub fn is_store_probe(&self) -> bool {
        self.breaker.as_ref().is_some_and(BreakerGuard::is_probe)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.lane.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Admission on the monotonic clock. Install the metrics recorder before calling this.
    pub fn new(config: AdmissionConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Clock::monotonic())
    }

    /// Admission on `clock` (tests: [`Clock::tokio`] with a paused runtime, or
    /// [`Clock::manual`]). Waits always sleep on tokio's timer.
    pub fn with_clock(config: AdmissionConfig, clock: Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        let now = clock.nanos();
        let lanes = Lane::ALL.map(|lane| {
            let limits = config.lane(lane);
            Arc::new(LaneState {
                lane,
                limits,
                queue_wait_max_ns: duration_ns(limits.queue_wait_max),
                bucket: LaneBucket::new(limits.rate_per_s, limits.burst),
                queued: AtomicU32::new(0),
                in_flight: AtomicU32::new(0),
                last_empty_ns: AtomicU64::new(now),
                metrics: LaneMetrics::new(lane),
            })
        });
        let entries_max = usize::try_from(config.keyed_entries_max).unwrap_or(usize::MAX);
        let clients = KeyedLimiter::new(
            config.client_rate_per_s,
            config.client_burst,
            entries_max,
            clock.clone(),
            KeyedMetrics::new("client"),
        );
        let accounts = KeyedLimiter::new(
            config.account_rate_per_s,
            config.account_burst,
            entries_max,
            clock.clone(),
            KeyedMetrics::new("account"),
        );
        let breaker = Arc::new(Breaker::from_config(&config, clock.clone()));
        let config_client_in_flight = config.client_in_flight_max;
        let config_account_in_flight = config.account_in_flight_max;
        Ok(Self {
            retry: RetryPolicy {
                retry_after_s_max: config.retry_after_s_max,
                jitter_pct: config.retry_after_jitter_pct,
            },
            drain_interval_ns: config.queue_drain_interval_ms.saturating_mul(1_000_000),
            standing_wait_ns: config.queue_wait_ms_standing.saturating_mul(1_000_000),
            config,
            clock,
            lanes,
            clients,
            accounts,
            client_in_flight: Arc::new(InFlightCounts::new(config_client_in_flight)),
            account_in_flight: Arc::new(InFlightCounts::new(config_account_in_flight)),
            breaker,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// The store breaker consulted for the booking lane. Hand it to the store writer, which
    /// reports each batch's outcome (`record_success`, `record_failure`, `record_queue_full`).
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// A lane's queue depth and in-flight count now.
    pub fn lane_status(&self, lane: Lane) -> LaneStatus {
        let state = &self.lanes[lane.index()];
        LaneStatus {
            queued: state.queued.load(Ordering::Acquire),
            in_flight: state.in_flight.load(Ordering::Acquire),
        }
    }

    /// Keys tracked now by the client and the account limiters.
    pub fn keyed_entries(&self) -> (usize, usize) {
        (self.clients.len(), self.accounts.len())
    }

    /// Admitted requests in flight now for a client address and for an account.
    pub fn key_in_flight(&self, client: IpAddr, account: Option<u64>) -> (u32, u32) {
        let key = client_key(client, self.config.client_ipv6_prefix_bits);
        (
            self.client_in_flight.get(&key),
            account.map_or(0, |a| self.account_in_flight.get(&a)),
        )
    }

    /// Admit now or refuse now: never waits. For callers that cannot wait (and the benchmark).
    pub fn try_admit(
        &self,
        lane: Lane,
        client: IpAddr,
        account: Option<u64>,
    ) -> Result<Permit, Refusal> {
        let state = &self.lanes[lane.index()];
        let now = self.clock.nanos();
        let (breaker, keys) = self.prechecks(state, now, client, account)?;
        match state.bucket.reserve(now, 0) {
            Ok(_) => self.enter(state, breaker, keys),
            Err(wait_ns) => Err(self.lane_refusal(state, wait_ns)),
        }
    }

    /// Admit, waiting for a lane token when the lane is busy, at most the allowed wait (see the
    /// module doc) and at most `deadline` (the client's remaining budget, e.g. from
    /// [`crate::client_deadline`]). Refusals are immediate: a request that would wait too long,
    /// or finds the queue full, is refused without waiting. Cancel-safe: dropping the future
    /// while it waits gives its place back.
    pub async fn admit(
        &self,
        lane: Lane,
        client: IpAddr,
        account: Option<u64>,
        deadline: Option<Duration>,
    ) -> Result<Permit, Refusal> {
        let state = &self.lanes[lane.index()];
        let now = self.clock.nanos();
        let (breaker, keys) = self.prechecks(state, now, client, account)?;
        let first = match state.bucket.reserve(now, 0) {
            Ok(_) => return self.enter(state, breaker, keys),
            Err(wait_ns) => wait_ns,
        };
        let allowed_ns = self.allowed_wait_ns(state, now, deadline);
        if allowed_ns == 0 || first > allowed_ns {
            return Err(self.lane_refusal(state, first));
        }
        let Some(mut slot) = QueueSlot::enter(state, &self.clock) else {
            return Err(self.lane_refusal(state, first));
        };
        let wait_ns = match state.bucket.reserve(now, allowed_ns) {
            Ok(wait_ns) => wait_ns,
            Err(wait_ns) => {
                drop(slot);
                return Err(self.lane_refusal(state, wait_ns));
            }
        };
        slot.reserved = true;
        if wait_ns > 0 {
            tokio::time::sleep(Duration::from_nanos(wait_ns)).await;
        }
        slot.reserved = false; // the token is used now, not given back
        drop(slot);
        state.metrics.queue_wait.record(wait_ns as f64 / 1e9);
        self.enter(state, breaker, keys)
    }

    /// Drops keyed entries whose bucket has refilled (forgetting them changes no decision) and
    /// publishes the sampled gauges (keyed entries, lanes' in-flight counts). Run every
    /// `housekeeping_interval_ms`; O(entries).
    pub fn housekeeping(&self) {
        self.clients.housekeeping();
        self.accounts.housekeeping();
        for state in &self.lanes {
            let in_flight = state.in_flight.load(Ordering::Acquire);
            state.metrics.in_flight.set(f64::from(in_flight));
        }
    }

    /// Runs [`Admission::housekeeping`] every `every` on the current tokio runtime until this
    /// `Admission` is dropped (the task holds only a weak reference) or the handle is aborted.
    /// Must be called inside a tokio runtime.
    pub fn spawn_housekeeping(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate
            loop {
                ticks.tick().await;
                match weak.upgrade() {
                    Some(admission) => admission.housekeeping(),
                    None => break,
                }
            }
        })
    }

    /// Steps 1–3 of the module doc.
    #[inline]
    fn prechecks(
        &self,
        state: &LaneState,
        now: u64,
        client: IpAddr,
        account: Option<u64>,
    ) -> Result<(Option<BreakerGuard>, KeyPlaces), Refusal> {
        if state.in_flight.load(Ordering::Acquire) >= state.limits.in_flight_max {
            return Err(self.refuse(state, RefusalKind::Overloaded, IN_FLIGHT_RETRY));
        }
        let key = client_key(client, self.config.client_ipv6_prefix_bits);
        if let Err(wait) = self.clients.check(&key, now) {
            return Err(self.refuse(state, RefusalKind::TooManyRequests, wait));
        }
        if let Some(account) = account {
            if let Err(wait) = self.accounts.check(&account, now) {
                return Err(self.refuse(state, RefusalKind::TooManyRequests, wait));
            }
        }
        let Some(client_place) = InFlightPlace::take(&self.client_in_flight, key) else {
            return Err(self.refuse(state, RefusalKind::TooManyRequests, IN_FLIGHT_RETRY));
        };
        let account_place = match account {
            Some(account) => match InFlightPlace::take(&self.account_in_flight, account) {
                Some(place) => Some(place),
                None => {
                    return Err(self.refuse(state, RefusalKind::TooManyRequests, IN_FLIGHT_RETRY))
                }
            },
            None => None,
        };
        let keys = KeyPlaces {
            _client: client_place,
            _account: account_place,
        };
        if state.lane == Lane::Booking {
            return match self.breaker.allow() {
                Ok(guard) => Ok((Some(guard), keys)),
                Err(refusal) => {
                    state.metrics.refused(refusal.kind);
                    Err(refusal)
                }
            };
        }
        Ok((None, keys))
    }

    /// Takes an in-flight slot for a request that holds a lane token.
    #[inline]
    fn enter(
        &self,
        state: &Arc<LaneState>,
        breaker: Option<BreakerGuard>,
        keys: KeyPlaces,
    ) -> Result<Permit, Refusal> {
        let before = state.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= state.limits.in_flight_max {
            state.in_flight.fetch_sub(1, Ordering::AcqRel);
            state.bucket.give_back();
            return Err(self.refuse(state, RefusalKind::Overloaded, IN_FLIGHT_RETRY));
        }
        state.metrics.admitted.increment(1);
        Ok(Permit {
            lane: Arc::clone(state),
            breaker,
            _keys: keys,
        })
    }

    /// The wait a queued request may accept now.
    #[inline]
    fn allowed_wait_ns(&self, state: &LaneState, now: u64, deadline: Option<Duration>) -> u64 {
        let mut allowed = state.queue_wait_max_ns;
        if state.queued.load(Ordering::Acquire) > 0 {
            let empty_at = state.last_empty_ns.load(Ordering::Acquire);
            if now.saturating_sub(empty_at) > self.drain_interval_ns {
                allowed = allowed.min(self.standing_wait_ns);
            }
        }
        if let Some(deadline) = deadline {
            allowed = allowed.min(duration_ns(deadline));
        }
        allowed
    }

    /// An `overloaded` refusal from the lane's real backlog: the time until the next free token,
    /// and at least `(queued + 1) / rate`.
    #[cold]
    fn lane_refusal(&self, state: &LaneState, wait_ns: u64) -> Refusal {
        let queued = u64::from(state.queued.load(Ordering::Acquire));
        let backlog_ns = queued.saturating_add(1).saturating_mul(state.bucket.t_ns());
        let wait = Duration::from_nanos(wait_ns.max(backlog_ns));
        self.refuse(state, RefusalKind::Overloaded, wait)
    }

    #[cold]
    fn refuse(&self, state: &LaneState, kind: RefusalKind, wait: Duration) -> Refusal {
        state.metrics.refused(kind);
        self.retry.refusal(kind, wait)
    }
}

/// A place in a lane's wait queue. Leaving (normally or by cancellation) frees the place; a
/// reserved token that was not used is given back.
struct QueueSlot<'a> {
    state: &'a LaneState,
    clock: &'a Clock,
    reserved: bool,
}

impl<'a> QueueSlot<'a> {
    fn enter(state: &'a LaneState, clock: &'a Clock) -> Option<Self> {
        let before = state.queued.fetch_add(1, Ordering::AcqRel);
        if before >= state.limits.queue_max {
            state.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if before == 0 {
            state.last_empty_ns.store(clock.nanos(), Ordering::Release);
        }
        state.metrics.queue_depth.increment(1.0);
        Some(Self {
            state,
            clock,
            reserved: false,
        })
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        if self.reserved {
            self.state.bucket.give_back();
        }
        if self.state.queued.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state
                .last_empty_ns
                .store(self.clock.nanos(), Ordering::Release);
        }
        self.state.metrics.queue_depth.decrement(1.0);
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

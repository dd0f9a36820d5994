//! The idempotency index: (account, key) → the original answer (its status and body bytes).
//!
//! A key is claimed before the operation is decided (`InProgress`), completed with the answer
//! (in the same batch as the operation's events when the answer is a success), and abandoned if
//! the operation could not be made durable, so that a retry runs it again.
//!
//! Bounds (constants in [`kataar_domain::limits`]):
//! - A **success** is kept [`IDEMPOTENCY_TTL_S`] (26 h: the contract promises 24 h) and is never
//!   evicted before that.
//! - A **refusal** (a 4xx answer: nothing changed) is kept [`IDEMPOTENCY_REFUSED_TTL_S`] only:
//!   long enough for a client's retries to get the same answer, short enough that a flood of
//!   failing attempts does not pile up for a day. After that the key runs again.
//! - An account holds at most [`IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX`] records, an operator key's
//!   scope ([`kataar_domain::OperatorId::idempotency_scope`]) at most
//!   [`IDEMPOTENCY_RECORDS_PER_OPERATOR_KEY_MAX`]. A new key at the
//!   bound evicts that account's oldest refusal; if every record is a success (or running), the
//!   claim is refused ([`IdemBegin::AccountFull`], `429` for the client) until one expires.
//! - The whole index is bounded by [`IDEMPOTENCY_INDEX_BYTES_MAX`] (an estimate of the heap it
//!   holds, split evenly over the shards). Past it, the oldest refusals of the shard are evicted;
//!   if none is left, a new refusal is not remembered (a retry of it runs again, which changes
//!   nothing that the refusal did not). Successes are kept past the bound rather than break the
//!   24 h promise; the per-account bound and the write rate bound them.
//!
//! [`IdemIndex::purge_shard`] expires one shard at a time so that a sweep never holds a lock
//! (or an async worker) for more than one shard's scan. Entry and byte counts are kept in
//! atomics for the metrics (`kataar_idempotency_records`, `kataar_idempotency_bytes`).

use chrono::{DateTime, Utc};
use kataar_domain::limits::{
    IDEMPOTENCY_INDEX_BYTES_MAX, IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX,
    IDEMPOTENCY_RECORDS_PER_OPERATOR_KEY_MAX, IDEMPOTENCY_REFUSED_TTL_S, IDEMPOTENCY_TTL_S,
};
use kataar_domain::OPERATOR_IDEMPOTENCY_BASE;
use kataar_domain::{AccountId, IdempotencyRecord};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shards of the index (one lock each).
pub const SHARDS: usize = 256;

/// An answer kept for a retry: its status and the exact body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status answered.
    pub status: u16,
    /// The JSON body answered, as sent.
    pub body: Arc<[u8]>,
}

#[derive(Debug)]
enum State {
    InProgress,
    Done(Answer),
    Refused(Answer),
}

#[derive(Debug)]
struct Rec {
    key: Box<str>,
    request_hash: Box<str>,
    state: State,
    created_at: DateTime<Utc>,
    /// Insertion order (the refusal eviction queue's key).
    seq: u64,
}

/// Heap bytes of one account's slot in a shard's map, besides its records.
const ACCOUNT_BYTES: usize = std::mem::size_of::<(AccountId, Vec<Rec>)>() + 16;
/// Bytes of one entry of the refusal queue.
const QUEUE_ENTRY_BYTES: usize = std::mem::size_of::<(u64, AccountId)>() + 16;

impl Rec {
    fn bytes(&self) -> usize {
        let body = match &self.state {
            State::InProgress => 0,
            State::Done(a) => a.body.len(),
            State::Refused(a) => a.body.len() + QUEUE_ENTRY_BYTES,
        };
        std::mem::size_of::<Rec>() + self.key.len() + self.request_hash.len() + body
    }
}

#[derive(Debug, Default)]
struct Shard {
    accounts: HashMap<AccountId, Vec<Rec>>,
    /// Refusals by insertion order, oldest first.
    refused: BTreeMap<u64, AccountId>,
    bytes: usize,
    entries: usize,
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum IdemBegin {
    /// The key is new and now claimed: run the operation.
    Fresh,
    /// The key was used with the same request: answer this again.
    Replay(Answer),
    /// The key was used with another request.
    Mismatch,
    /// The same request with this key is running right now: wait and ask again.
    InProgress,
    /// The account holds [`IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX`] records that may not be
    /// evicted; one expires in this many seconds at the latest.
    AccountFull {
        /// Seconds until the account's oldest record expires.
        retry_after_s: u64,
    },
}

/// The sharded index.
#[derive(Debug)]
pub struct IdemIndex {
    shards: Vec<Mutex<Shard>>,
    seq: AtomicU64,
    bytes: AtomicUsize,
    entries: AtomicUsize,
    bytes_max: usize,
    per_account_max: usize,
    per_operator_max: usize,
}

impl Default for IdemIndex {
    fn default() -> Self {
        IdemIndex::new()
    }
}

fn ttl(state: &State) -> chrono::Duration {
    let s = match state {
        State::Refused(_) => IDEMPOTENCY_REFUSED_TTL_S,
        State::Done(_) | State::InProgress => IDEMPOTENCY_TTL_S,
    };
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

impl IdemIndex {
    /// An empty index with the bounds of [`kataar_domain::limits`].
    pub fn new() -> IdemIndex {
        IdemIndex::with_bounds(
            IDEMPOTENCY_INDEX_BYTES_MAX,
            IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX,
        )
    }

    /// An empty index holding about `bytes_max` bytes and `per_account_max` records per
    /// account.
    pub fn with_bounds(bytes_max: usize, per_account_max: usize) -> IdemIndex {
        IdemIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            seq: AtomicU64::new(0),
            bytes: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
            bytes_max,
            per_account_max: per_account_max.max(1),
            per_operator_max: IDEMPOTENCY_RECORDS_PER_OPERATOR_KEY_MAX,
        }
    }

    /// The same index with `per_operator_max` records per operator key's scope.
    pub fn with_operator_bound(mut self, per_operator_max: usize) -> IdemIndex {
        self.per_operator_max = per_operator_max.max(1);
        self
    }

    fn records_max(&self, account: AccountId) -> usize {
        if account.0 >= OPERATOR_IDEMPOTENCY_BASE {
            self.per_operator_max
        } else {
            self.per_account_max
        }
    }

    fn shard(&self, account: AccountId) -> &Mutex<Shard> {
        let h = account.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.shards[(h as usize) % SHARDS]
    }

    fn shard_bytes_max(&self) -> usize {
        self.bytes_max / SHARDS
    }

    /// Claims `key` for a request with `request_hash` at `now`, or reports what it holds.
    pub fn begin(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> IdemBegin {
        let mut guard = self.shard(account).lock();
        let shard = &mut *guard;
        let new_slot = !shard.accounts.contains_key(&account);
        let recs = shard.accounts.entry(account).or_default();
        let mut freed = (0usize, 0usize);
        if let Some(i) = recs.iter().position(|r| &*r.key == key) {
            let r = &recs[i];
            if r.created_at + ttl(&r.state) >= now {
                let same = &*r.request_hash == request_hash;
                return match (&r.state, same) {
                    (_, false) => IdemBegin::Mismatch,
                    (State::InProgress, true) => IdemBegin::InProgress,
                    (State::Done(a) | State::Refused(a), true) => IdemBegin::Replay(a.clone()),
                };
            }
            // Expired but not swept yet: as if absent.
            let old = recs.swap_remove(i);
            if let State::Refused(_) = old.state {
                shard.refused.remove(&old.seq);
            }
            freed = (old.bytes(), 1);
        }
        if recs.len() >= self.records_max(account) {
            let oldest_refused = recs
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r.state, State::Refused(_)))
                .min_by_key(|(_, r)| r.seq)
                .map(|(i, _)| i);
            match oldest_refused {
                Some(i) => {
                    let old = recs.swap_remove(i);
                    shard.refused.remove(&old.seq);
                    freed.0 += old.bytes();
                    freed.1 += 1;
                }
                None => {
                    let expires = recs
                        .iter()
                        .map(|r| r.created_at + ttl(&r.state))
                        .min()
                        .unwrap_or(now);
                    let retry_after_s = u64::try_from((expires - now).num_seconds())
                        .unwrap_or(0)
                        .max(1);
                    self.release(shard, freed);
                    return IdemBegin::AccountFull { retry_after_s };
                }
            }
        }
        let rec = Rec {
            key: key.into(),
            request_hash: request_hash.into(),
            state: State::InProgress,
            created_at: now,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        let added = rec.bytes() + if new_slot { ACCOUNT_BYTES } else { 0 };
        recs.push(rec);
        self.release(shard, freed);
        self.charge(shard, added, 1);
        IdemBegin::Fresh
    }

    fn charge(&self, shard: &mut Shard, bytes: usize, entries: usize) {
        shard.bytes += bytes;
        shard.entries += entries;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
    }

    fn release(&self, shard: &mut Shard, (bytes, entries): (usize, usize)) {
        let bytes = bytes.min(shard.bytes);
        let entries = entries.min(shard.entries);
        shard.bytes -= bytes;
        shard.entries -= entries;
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.entries.fetch_sub(entries, Ordering::Relaxed);
    }

    /// Removes one record (and its account's slot when it was the last).
    fn remove_at(&self, shard: &mut Shard, account: AccountId, i: usize) {
        let Some(recs) = shard.accounts.get_mut(&account) else {
            return;
        };
        let old = recs.swap_remove(i);
        let last = recs.is_empty();
        if let State::Refused(_) = old.state {
            shard.refused.remove(&old.seq);
        }
        let mut bytes = old.bytes();
        if last {
            shard.accounts.remove(&account);
            bytes += ACCOUNT_BYTES;
        }
        self.release(shard, (bytes, 1));
    }

    /// Puts `state` on the record of `key` (claimed or not), created at `created_at`.
    fn settle(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        state: State,
        created_at: DateTime<Utc>,
    ) {
        let mut guard = self.shard(account).lock();
        let shard = &mut *guard;
        let refusal = matches!(state, State::Refused(_));
        if refusal {
            // Make room: the shard's oldest refusals go first (never this key's own claim).
            let max = self.shard_bytes_max();
            while shard.bytes > max {
                let Some((&seq, &owner)) = shard.refused.iter().next() else {
                    break;
                };
                let at = shard
                    .accounts
                    .get(&owner)
                    .and_then(|recs| recs.iter().position(|r| r.seq == seq));
                match at {
                    Some(i) => self.remove_at(shard, owner, i),
                    None => {
                        shard.refused.remove(&seq);
                    }
                }
            }
            if shard.bytes > max {
                // Nothing left to evict: forget the claim instead of remembering the refusal.
                if let Some(i) = shard
                    .accounts
                    .get(&account)
                    .and_then(|recs| recs.iter().position(|r| &*r.key == key))
                {
                    self.remove_at(shard, account, i);
                }
                return;
            }
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let new_slot = !shard.accounts.contains_key(&account);
        let recs = shard.accounts.entry(account).or_default();
        let rec = Rec {
            key: key.into(),
            request_hash: request_hash.into(),
            state,
            created_at,
            seq,
        };
        let mut added = rec.bytes();
        let mut freed = (0, 0);
        match recs.iter().position(|r| &*r.key == key) {
            Some(i) => {
                let old = std::mem::replace(&mut recs[i], rec);
                if let State::Refused(_) = old.state {
                    shard.refused.remove(&old.seq);
                }
                freed = (old.bytes(), 1);
            }
            None => {
                if new_slot {
                    added += ACCOUNT_BYTES;
                }
                recs.push(rec);
            }
        }
        if refusal {
            shard.refused.insert(seq, account);
        }
        self.release(shard, freed);
        self.charge(shard, added, 1);
    }

    /// Records a success (after its commit, or read from the store at start).
    pub fn complete(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        answer: Answer,
        created_at: DateTime<Utc>,
    ) {
        self.settle(account, key, request_hash, State::Done(answer), created_at);
    }

    /// Records a refusal (kept [`IDEMPOTENCY_REFUSED_TTL_S`], evicted first at the bounds).
    pub fn refuse(
        &self,
        account: AccountId,
        key: &str,
        request_hash: &str,
        answer: Answer,
        created_at: DateTime<Utc>,
    ) {
        self.settle(
            account,
            key,
            request_hash,
            State::Refused(answer),
            created_at,
        );
    }

    /// Releases a claim whose operation did not happen, so that a retry runs it.
    pub fn abandon(&self, account: AccountId, key: &str) {
        let mut guard = self.shard(account).lock();
        let shard = &mut *guard;
        let at = shard.accounts.get(&account).and_then(|recs| {
            recs.iter()
                .position(|r| &*r.key == key && matches!(r.state, State::InProgress))
        });
        if let Some(i) = at {
            self.remove_at(shard, account, i);
        }
    }

    /// Loads a stored record (a success), at start or after its commit.
    pub fn load(&self, record: IdempotencyRecord) {
        let body = serde_json::to_vec(&record.response).unwrap_or_default();
        self.complete(
            record.account_id,
            &record.key,
            &record.request_hash,
            Answer {
                status: record.status,
                body: body.into(),
            },
            record.created_at,
        );
    }

    /// Drops the expired records of shard `i` (0..[`SHARDS`]) at `now`: successes older than
    /// [`IDEMPOTENCY_TTL_S`], refusals older than [`IDEMPOTENCY_REFUSED_TTL_S`]. Returns how
    /// many were dropped. Claims in progress stay.
    pub fn purge_shard(&self, i: usize, now: DateTime<Utc>) -> usize {
        let Some(shard) = self.shards.get(i) else {
            return 0;
        };
        let mut guard = shard.lock();
        let shard = &mut *guard;
        let mut freed = (0usize, 0usize);
        let Shard {
            accounts, refused, ..
        } = shard;
        accounts.retain(|_, recs| {
            recs.retain(|r| {
                let keep =
                    matches!(r.state, State::InProgress) || r.created_at + ttl(&r.state) >= now;
                if !keep {
                    if let State::Refused(_) = r.state {
                        refused.remove(&r.seq);
                    }
                    freed.0 += r.bytes();
                    freed.1 += 1;
                }
                keep
            });
            if recs.is_empty() {
                freed.0 += ACCOUNT_BYTES;
            }
            !recs.is_empty()
        });
        self.release(shard, freed);
        freed.1
    }

    /// [`IdemIndex::purge_shard`] over every shard in turn.
    pub fn purge(&self, now: DateTime<Utc>) -> usize {
        (0..SHARDS).map(|i| self.purge_shard(i, now)).sum()
    }

    /// Every success it holds, as the store keeps it (for [`crate::Inventory::dump`]; refusals
    /// live in memory only and claims in progress are not answers yet).
    pub(crate) fn records(&self) -> Vec<IdempotencyRecord> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            for (account, recs) in &shard.accounts {
                out.extend(recs.iter().filter_map(|r| match &r.state {
                    State::Done(a) => Some(IdempotencyRecord {
                        account_id: *account,
                        key: r.key.to_string(),
                        request_hash: r.request_hash.to_string(),
                        status: a.status,
                        response: serde_json::from_slice(&a.body).unwrap_or_default(),
                        created_at: r.created_at,
                    }),
                    State::InProgress | State::Refused(_) => None,
                }));
            }
        }
        out
    }

    /// Records held (every state).
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The estimated heap bytes the index holds.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The byte bound the index keeps refusals under.
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Answer {
        Answer {
            status,
            body: Arc::from(&br#"{"ok":true}"#[..]),
        }
    }

    #[test]
    fn claim_replay_mismatch_abandon() {
        let idx = IdemIndex::new();
        let now = Utc::now();
        let a = AccountId(1);
        assert_eq!(idx.begin(a, "k", "h1", now), IdemBegin::Fresh);
        assert_eq!(idx.begin(a, "k", "h1", now), IdemBegin::InProgress);
        assert_eq!(idx.begin(a, "k", "h2", now), IdemBegin::Mismatch);
        idx.complete(a, "k", "h1", answer(201), now);
        assert_eq!(idx.begin(a, "k", "h1", now), IdemBegin::Replay(answer(201)));
        assert_eq!(idx.begin(a, "k", "h2", now), IdemBegin::Mismatch);
        assert_eq!(idx.begin(AccountId(2), "k", "h2", now), IdemBegin::Fresh);
        idx.abandon(AccountId(2), "k");
        assert_eq!(idx.begin(AccountId(2), "k", "h2", now), IdemBegin::Fresh);
        idx.abandon(AccountId(2), "k");
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.purge(now + chrono::Duration::hours(27)), 1);
        assert_eq!((idx.len(), idx.bytes()), (0, 0));
    }

    #[test]
    fn refusals_expire_in_minutes_successes_in_a_day() {
        let idx = IdemIndex::new();
        let now = Utc::now();
        let a = AccountId(7);
        assert_eq!(idx.begin(a, "bad", "h", now), IdemBegin::Fresh);
        idx.refuse(a, "bad", "h", answer(409), now);
        assert_eq!(idx.begin(a, "ok", "h", now), IdemBegin::Fresh);
        idx.complete(a, "ok", "h", answer(201), now);
        let ttl_s = i64::try_from(IDEMPOTENCY_REFUSED_TTL_S).unwrap();
        let at_bound = now + chrono::Duration::seconds(ttl_s);
        assert_eq!(
            idx.begin(a, "bad", "h", at_bound),
            IdemBegin::Replay(answer(409))
        );
        let past = at_bound + chrono::Duration::seconds(1);
        assert_eq!(idx.purge(past), 1);
        assert_eq!(idx.begin(a, "bad", "h", past), IdemBegin::Fresh);
        let day = now + chrono::Duration::hours(24);
        assert_eq!(idx.begin(a, "ok", "h", day), IdemBegin::Replay(answer(201)));
    }

    #[test]
    fn an_account_at_its_bound_evicts_its_oldest_refusal_never_a_success() {
        let idx = IdemIndex::with_bounds(usize::MAX, 3);
        let now = Utc::now();
        let a = AccountId(3);
        for k in ["s1", "s2"] {
            assert_eq!(idx.begin(a, k, "h", now), IdemBegin::Fresh);
            idx.complete(a, k, "h", answer(201), now);
        }
        assert_eq!(idx.begin(a, "r1", "h", now), IdemBegin::Fresh);
        idx.refuse(a, "r1", "h", answer(409), now);
        assert_eq!(idx.len(), 3);
        // At the bound: r1 (the only refusal) goes, r2 takes its place.
        assert_eq!(idx.begin(a, "r2", "h", now), IdemBegin::Fresh);
        idx.refuse(a, "r2", "h", answer(409), now);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.begin(a, "r1", "h", now), IdemBegin::Fresh);
        // Now s1, s2 and the claim r1: nothing may go.
        assert!(matches!(
            idx.begin(a, "r3", "h", now),
            IdemBegin::AccountFull { retry_after_s } if retry_after_s > 3600
        ));
        assert_eq!(idx.begin(a, "s1", "h", now), IdemBegin::Replay(answer(201)));
        assert_eq!(idx.begin(AccountId(4), "r3", "h", now), IdemBegin::Fresh);
    }

    #[test]
    fn an_operator_key_holds_more_successes_than_an_account() {
        use kataar_domain::OperatorId;
        let idx = IdemIndex::with_bounds(usize::MAX, 2).with_operator_bound(5);
        let now = Utc::now();
        let op = OperatorId(7).idempotency_scope();
        for n in 0..5 {
            let k = format!("check-in-{n}");
            assert_eq!(idx.begin(op, &k, "h", now), IdemBegin::Fresh, "{k}");
            idx.complete(op, &k, "h", answer(200), now);
        }
        // At its own bound the key is full; a citizen account stops at its smaller one.
        assert!(matches!(
            idx.begin(op, "check-in-5", "h", now),
            IdemBegin::AccountFull { .. }
        ));
        let a = AccountId(7);
        for k in ["b1", "b2"] {
            assert_eq!(idx.begin(a, k, "h", now), IdemBegin::Fresh);
            idx.complete(a, k, "h", answer(201), now);
        }
        assert!(matches!(
            idx.begin(a, "b3", "h", now),
            IdemBegin::AccountFull { .. }
        ));
    }

    #[test]
    fn a_hundred_thousand_failing_keys_from_one_account_stay_bounded() {
        let idx = IdemIndex::new();
        let now = Utc::now();
        let a = AccountId(42);
        assert_eq!(idx.begin(a, "booked", "h", now), IdemBegin::Fresh);
        idx.complete(a, "booked", "h", answer(201), now);
        let mut peak = (0, 0);
        for n in 0..100_000u32 {
            let key = format!("attempt-{n}");
            assert_eq!(idx.begin(a, &key, "h", now), IdemBegin::Fresh);
            idx.refuse(a, &key, "h", answer(409), now);
            peak = (peak.0.max(idx.len()), peak.1.max(idx.bytes()));
        }
        assert!(peak.0 <= IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX, "{peak:?}");
        // 64 small records: a few KiB, not 10^5 of them.
        assert!(
            peak.1 <= IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX * 512,
            "{peak:?}"
        );
        assert_eq!(
            idx.begin(a, "booked", "h", now),
            IdemBegin::Replay(answer(201))
        );
        assert_eq!(
            idx.begin(a, "attempt-99999", "h", now),
            IdemBegin::Replay(answer(409))
        );
        assert_eq!(idx.begin(a, "attempt-0", "h", now), IdemBegin::Fresh);
    }

    #[test]
    fn the_byte_bound_evicts_refusals_and_keeps_successes() {
        let bytes_max = SHARDS * 2048;
        let idx = IdemIndex::with_bounds(bytes_max, 4);
        let now = Utc::now();
        for n in 0..20_000u64 {
            let a = AccountId(n);
            assert_eq!(idx.begin(a, "k", "h", now), IdemBegin::Fresh);
            idx.refuse(a, "k", "h", answer(409), now);
            // One claim per shard can be in flight beyond the bound, never more.
            let slack = SHARDS * 512;
            assert!(idx.bytes() <= bytes_max + slack, "{} at {n}", idx.bytes());
        }
        assert!(idx.len() < 20_000);
        let ok = AccountId(1_000_000);
        assert_eq!(idx.begin(ok, "s", "h", now), IdemBegin::Fresh);
        idx.complete(ok, "s", "h", answer(201), now);
        for n in 20_000..40_000u64 {
            let a = AccountId(n);
            assert_eq!(idx.begin(a, "k", "h", now), IdemBegin::Fresh);
            idx.refuse(a, "k", "h", answer(409), now);
        }
        assert_eq!(idx.begin(ok, "s", "h", now), IdemBegin::Replay(answer(201)));
    }
}

//! The idempotency index: (account, key) → the original answer.
//!
//! A key is claimed before the operation is decided (`InProgress`), completed with the answer
//! (in the same batch as the operation's events when the answer is a success), and abandoned if
//! the operation could not be made durable, so that a retry runs it again. Entries live for
//! [`kataar_domain::limits::IDEMPOTENCY_TTL_S`]; [`IdemIndex::purge`] drops older ones, which
//! bounds the index by the writes of about a day.

use chrono::{DateTime, Utc};
use kataar_domain::{AccountId, IdempotencyRecord};
use parking_lot::Mutex;
use std::collections::HashMap;

const SHARDS: usize = 64;

#[derive(Clone, Debug)]
enum Entry {
    InProgress { request_hash: String },
    Done(IdempotencyRecord),
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum IdemBegin {
    /// The key is new and now claimed: run the operation.
    Fresh,
    /// The key was used with the same request: answer this again.
    Replay(IdempotencyRecord),
    /// The key was used with another request.
    Mismatch,
    /// The same request with this key is running right now: wait and ask again.
    InProgress,
}

/// The sharded index.
#[derive(Debug)]
pub struct IdemIndex {
    shards: Vec<Mutex<HashMap<(AccountId, String), Entry>>>,
}

impl Default for IdemIndex {
    fn default() -> Self {
        IdemIndex::new()
    }
}

impl IdemIndex {
    /// An empty index.
    pub fn new() -> IdemIndex {
        IdemIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, account: AccountId, key: &str) -> &Mutex<HashMap<(AccountId, String), Entry>> {
        let mut h: u64 = account.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }

    /// Claims `key` for a request with `request_hash`, or reports what it already holds.
    pub fn begin(&self, account: AccountId, key: &str, request_hash: &str) -> IdemBegin {
        let mut shard = self.shard(account, key).lock();
        match shard.get(&(account, key.to_string())) {
            None => {
                shard.insert(
                    (account, key.to_string()),
                    Entry::InProgress {
                        request_hash: request_hash.to_string(),
                    },
                );
                IdemBegin::Fresh
            }
            Some(Entry::InProgress { request_hash: h }) if h == request_hash => {
                IdemBegin::InProgress
            }
            Some(Entry::Done(r)) if r.request_hash == request_hash => IdemBegin::Replay(r.clone()),
            Some(_) => IdemBegin::Mismatch,
        }
    }

    /// Records the answer under its key.
    pub fn complete(&self, record: IdempotencyRecord) {
        let mut shard = self.shard(record.account_id, &record.key).lock();
        shard.insert((record.account_id, record.key.clone()), Entry::Done(record));
    }

    /// Releases a claim whose operation did not happen, so that a retry runs it.
    pub fn abandon(&self, account: AccountId, key: &str) {
        let mut shard = self.shard(account, key).lock();
        if let Some(Entry::InProgress { .. }) = shard.get(&(account, key.to_string())) {
            shard.remove(&(account, key.to_string()));
        }
    }

    /// Loads a stored record at start.
    pub fn load(&self, record: IdempotencyRecord) {
        self.complete(record);
    }

    /// Drops completed records created before `before`. Returns how many were dropped.
    pub fn purge(&self, before: DateTime<Utc>) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut map = shard.lock();
            let len = map.len();
            map.retain(|_, e| match e {
                Entry::Done(r) => r.created_at >= before,
                Entry::InProgress { .. } => true,
            });
            dropped += len - map.len();
        }
        dropped
    }

    /// Every completed record (for [`crate::Inventory::dump`]).
    pub(crate) fn records(&self) -> Vec<IdempotencyRecord> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(shard.lock().values().filter_map(|e| match e {
                Entry::Done(r) => Some(r.clone()),
                Entry::InProgress { .. } => None,
            }));
        }
        out
    }

    /// Entries held (both states).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, hash: &str) -> IdempotencyRecord {
        IdempotencyRecord {
            account_id: AccountId(1),
            key: key.into(),
            request_hash: hash.into(),
            status: 201,
            response: serde_json::json!({"ok": true}),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn claim_replay_mismatch_abandon() {
        let idx = IdemIndex::new();
        assert_eq!(idx.begin(AccountId(1), "k", "h1"), IdemBegin::Fresh);
        assert_eq!(idx.begin(AccountId(1), "k", "h1"), IdemBegin::InProgress);
        assert_eq!(idx.begin(AccountId(1), "k", "h2"), IdemBegin::Mismatch);
        idx.complete(record("k", "h1"));
        assert!(matches!(
            idx.begin(AccountId(1), "k", "h1"),
            IdemBegin::Replay(_)
        ));
        assert_eq!(idx.begin(AccountId(1), "k", "h2"), IdemBegin::Mismatch);
        assert_eq!(idx.begin(AccountId(2), "k", "h2"), IdemBegin::Fresh);
        idx.abandon(AccountId(2), "k");
        assert_eq!(idx.begin(AccountId(2), "k", "h2"), IdemBegin::Fresh);
        assert_eq!(idx.purge(Utc::now() + chrono::Duration::hours(1)), 1);
    }
}

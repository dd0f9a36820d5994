//! A comparable picture of everything the inventory holds that the store makes durable:
//! places, sessions, bookings, people, accounts, idempotency records and keys, as sorted
//! JSON. Two inventories with equal dumps answer every request alike. Recovery is checked
//! with it: the inventory rebuilt from the store must dump exactly as the one that wrote it.
//!
//! Id and token counters are kept apart ([`Counters`]): a running engine also counts ids
//! it handed out to operations that were then refused or undone, which a rebuild (that starts
//! after the largest id stored) rightly does not.

use crate::engine::Inventory;
use kataar_domain::IdempotencyRecord;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// The id counters (the last id handed out of each kind) and each session's last token
/// number, keyed by session id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `centre, session, slot, pool, account, beneficiary, booking, operator, audit`.
    pub ids: [u64; 9],
    /// The last token number of each session.
    pub tokens: BTreeMap<u64, u32>,
}

impl Counters {
    /// Whether no counter of `self` is above the same counter of `other`.
    pub fn le(&self, other: &Counters) -> bool {
        self.ids.iter().zip(other.ids.iter()).all(|(a, b)| a <= b)
            && self
                .tokens
                .iter()
                .all(|(s, t)| other.tokens.get(s).is_some_and(|o| t <= o))
    }
}

fn sorted<T, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by_key(key);
    items
}

impl Inventory {
    /// Everything durable this inventory holds, as sorted JSON (see the module docs).
    /// Walks every map: for tests and diagnostics, not for the request path.
    pub fn dump(&self) -> Value {
        let states: Vec<Value> = self.states.read().values().map(|s| json!(s)).collect();
        let districts: Vec<Value> = self.districts.read().values().map(|d| json!(d)).collect();
        let centres = sorted(
            self.centres.iter().map(|c| c.value().clone()).collect(),
            |c| c.centre_id,
        );
        let mut by_district: Vec<(u64, Vec<u64>)> = self
            .centres_by_district
            .iter()
            .filter(|e| !e.value().is_empty())
            .map(|e| (e.key().0, e.value().iter().map(|c| c.0).collect()))
            .collect();
        by_district.sort();
        let mut by_pincode: Vec<(String, Vec<u64>)> = self
            .centres_by_pincode
            .iter()
            .filter(|e| !e.value().is_empty())
            .map(|e| (e.key().clone(), e.value().iter().map(|c| c.0).collect()))
            .collect();
        by_pincode.sort();
        let mut by_centre: Vec<(u64, Vec<u64>)> = self
            .sessions_by_centre
            .iter()
            .map(|e| (e.key().0, e.value().iter().map(|s| s.0).collect()))
            .collect();
        by_centre.sort();
        let sessions = sorted(
            self.sessions.iter().map(|e| e.value().clone()).collect(),
            |c| c.record().session_id,
        );
        let sessions: Vec<Value> = sessions
            .iter()
            .map(|cell| {
                let pools: Vec<Value> = cell
                    .pools
                    .iter()
                    .map(|p| {
                        let (capacity, booked) = p.counts();
                        json!({
                            "pool_id": p.pool_id, "slot_id": p.slot_id, "dose": p.dose,
                            "channel": p.channel, "capacity": capacity, "booked": booked,
                            "checked_in": p.checked_in.load(Ordering::Relaxed),
                            "administered": p.administered.load(Ordering::Relaxed),
                            "no_show": p.no_show.load(Ordering::Relaxed),
                        })
                    })
                    .collect();
                let mut bookings = cell.bookings.lock().clone();
                bookings.sort();
                json!({
                    "session": cell.record(),
                    "slots": cell.slots,
                    "pools": pools,
                    "closing": cell.closing.load(Ordering::Relaxed),
                    "inflight": cell.inflight.load(Ordering::Relaxed),
                    "bookings": bookings,
                })
            })
            .collect();
        let mut pool_ids: Vec<u64> = self.pools.iter().map(|p| p.key().0).collect();
        pool_ids.sort_unstable();
        let accounts = sorted(
            self.accounts.iter().map(|e| e.value().clone()).collect(),
            |a| a.account.account_id,
        );
        let accounts: Vec<Value> = accounts
            .iter()
            .map(|a| json!({"account": a.account, "beneficiaries": a.beneficiaries}))
            .collect();
        let mut by_mobile: Vec<(String, u64)> = self
            .accounts_by_mobile
            .iter()
            .map(|e| (e.key().clone(), e.value().0))
            .collect();
        by_mobile.sort();
        let beneficiaries = sorted(
            self.beneficiaries
                .iter()
                .map(|b| b.value().clone())
                .collect(),
            |b| b.beneficiary_id,
        );
        let bookings = sorted(
            self.bookings.iter().map(|e| e.value().clone()).collect(),
            |e| e.booking.booking_id,
        );
        let bookings: Vec<Value> = bookings
            .iter()
            .map(|e| json!({"booking": e.booking, "busy": e.busy}))
            .collect();
        let mut by_account: Vec<(u64, Vec<u64>)> = self
            .bookings_by_account
            .iter()
            .map(|e| {
                let mut ids: Vec<u64> = e.value().iter().map(|b| b.0).collect();
                ids.sort_unstable();
                (e.key().0, ids)
            })
            .collect();
        by_account.sort();
        let mut persons: Vec<(String, Value)> = Vec::new();
        for shard in &self.persons {
            for (key, p) in shard.lock().iter() {
                let mut bookings = p.bookings.clone();
                bookings.sort();
                persons.push((
                    key.to_hex(),
                    json!({
                        "beneficiary_id": p.beneficiary_id, "account_id": p.account_id,
                        "live": p.live, "doses": p.doses, "bookings": bookings, "busy": p.busy,
                    }),
                ));
            }
        }
        persons.sort_by(|a, b| a.0.cmp(&b.0));
        let keys = sorted(
            self.operator_keys
                .iter()
                .map(|k| k.value().clone())
                .collect(),
            |k| k.operator_id,
        );
        let idem: Vec<IdempotencyRecord> =
            sorted(self.idem.records(), |r| (r.account_id, r.key.clone()));
        json!({
            "states": states,
            "districts": districts,
            "centres": centres,
            "centres_by_district": by_district,
            "centres_by_pincode": by_pincode,
            "sessions_by_centre": by_centre,
            "sessions": sessions,
            "pools": pool_ids,
            "accounts": accounts,
            "accounts_by_mobile": by_mobile,
            "beneficiaries": beneficiaries,
            "bookings": bookings,
            "bookings_by_account": by_account,
            "persons": persons,
            "operator_keys": keys,
            "idempotency": idem,
        })
    }

    /// The id counters and each session's token counter.
    pub fn counters(&self) -> Counters {
        let i = &self.ids;
        let ids = [
            &i.centre,
            &i.session,
            &i.slot,
            &i.pool,
            &i.account,
            &i.beneficiary,
            &i.booking,
            &i.operator,
            &i.audit,
        ]
        .map(|c| c.load(Ordering::Relaxed));
        let tokens = self
            .sessions
            .iter()
            .map(|e| (e.key().0, e.value().next_token.load(Ordering::Relaxed)))
            .collect();
        Counters { ids, tokens }
    }
}

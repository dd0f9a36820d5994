//! The verdict after a run: O (no pool over capacity), L (every booking answered 201 is stored),
//! D (no person with two live bookings for one dose, no idempotency key applied twice). Checked in
//! the database when it is reachable (the queries are all here, easy to adjust to the schema), or
//! through the operators' API otherwise; the verdict says which way it was checked.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::pg;

/// The statuses that hold a place.
pub const LIVE_STATUSES_SQL: &str = "('booked', 'checked_in')";

/// O: pools whose counter is over capacity.
pub const SQL_POOLS_OVER_CAPACITY: &str =
    "SELECT count(*)::bigint FROM pools WHERE booked > capacity";

/// O: pools with more live bookings than capacity.
pub const SQL_POOLS_LIVE_OVER_CAPACITY: &str = "SELECT count(*)::bigint FROM (\
     SELECT p.pool_id FROM pools p \
     JOIN bookings b ON b.pool_id = p.pool_id AND b.status IN ('booked', 'checked_in') \
     GROUP BY p.pool_id, p.capacity HAVING count(*) > p.capacity) x";

/// L: how many of the given booking ids exist (`$1` is a `bigint[]` of distinct ids).
pub const SQL_BOOKINGS_FOUND: &str =
    "SELECT count(*)::bigint FROM bookings WHERE booking_id = ANY($1)";

/// D: (person_key, dose) pairs with two or more live bookings.
pub const SQL_DUPLICATE_LIVE: &str = "SELECT count(*)::bigint FROM (\
     SELECT person_key, dose FROM bookings WHERE status IN ('booked', 'checked_in') \
     GROUP BY person_key, dose HAVING count(*) > 1) x";

/// D: idempotency keys stored twice for one account.
pub const SQL_DUPLICATE_IDEMPOTENCY: &str = "SELECT count(*)::bigint FROM (\
     SELECT account_id, idem_key FROM idempotency \
     GROUP BY account_id, idem_key HAVING count(*) > 1) x";

/// One invariant's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Whether it held.
    pub pass: bool,
    /// How many violations were found.
    pub violations: u64,
    /// What was checked.
    pub note: String,
}

/// The verdict of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `database` or `operators_api`.
    pub via: String,
    /// No overbooking.
    pub o: Check,
    /// Nothing acknowledged lost.
    pub l: Check,
    /// No duplicates.
    pub d: Check,
    /// All three held.
    pub pass: bool,
}

impl Verdict {
    fn new(via: &str, o: Check, l: Check, d: Check) -> Self {
        let pass = o.pass && l.pass && d.pass;
        Self {
            via: via.to_owned(),
            o,
            l,
            d,
            pass,
        }
    }
}

/// Errors checking the verdict.
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    /// The database could not be reached or a query failed.
    #[error("database: {0}")]
    Db(#[from] pg::PgError),
    /// A query failed.
    #[error("query: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The operators' API failed.
    #[error("operators api: {0}")]
    Api(String),
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> Result<u64, VerdictError> {
    let n: i64 = c.query_one(sql, &[]).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Checks O, L and D in the database at `database_url`; `booking_ids` are the ids answered 201
/// (`truncated` when the run saw more than it kept).
pub async fn check_db(
    database_url: &str,
    booking_ids: &[i64],
    truncated: bool,
) -> Result<Verdict, VerdictError> {
    let c = pg::connect(database_url).await?;
    let over = count(&c, SQL_POOLS_OVER_CAPACITY).await?;
    let live_over = count(&c, SQL_POOLS_LIVE_OVER_CAPACITY).await?;
    let o = Check {
        pass: over == 0 && live_over == 0,
        violations: over + live_over,
        note: format!(
            "{over} pools with booked > capacity, {live_over} with live bookings > capacity"
        ),
    };
    let distinct: Vec<i64> = booking_ids
        .iter()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let found: i64 = c
        .query_one(SQL_BOOKINGS_FOUND, &[&distinct])
        .await?
        .try_get(0)?;
    let missing = (distinct.len() as u64).saturating_sub(u64::try_from(found).unwrap_or(0));
    let dup_ids = booking_ids.len() - distinct.len();
    let l = Check {
        pass: missing == 0 && dup_ids == 0,
        violations: missing + dup_ids as u64,
        note: format!(
            "{} booking ids answered 201{}, {missing} missing, {dup_ids} answered twice for \
             different requests",
            distinct.len(),
            if truncated {
                " (a prefix: more were seen)"
            } else {
                ""
            }
        ),
    };
    let dup_live = count(&c, SQL_DUPLICATE_LIVE).await?;
    let dup_idem = count(&c, SQL_DUPLICATE_IDEMPOTENCY).await?;
    let d = Check {
        pass: dup_live == 0 && dup_idem == 0,
        violations: dup_live + dup_idem,
        note: format!(
            "{dup_live} (person, dose) with two live bookings, {dup_idem} idempotency keys twice"
        ),
    };
    Ok(Verdict::new("database", o, l, d))
}

/// Pages through `GET {base}{path}` following `next_after`, at most this many pages.
const API_PAGES_MAX: usize = 1_000;

async fn get_json(
    http: &reqwest::Client,
    url: &str,
    key: &str,
) -> Result<serde_json::Value, VerdictError> {
    let resp = http
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| VerdictError::Api(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(VerdictError::Api(format!(
            "{url}: status {}",
            resp.status()
        )));
    }
    resp.json()
        .await
        .map_err(|e| VerdictError::Api(e.to_string()))
}

fn walk_pools<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Array(pools)) = m.get("pools") {
                out.extend(pools.iter());
            }
            for (k, x) in m {
                if k != "pools" {
                    walk_pools(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk_pools(x, out)),
        _ => {}
    }
}

/// Checks O, L and D through the operators' API: `GET /v1/admin/capacity?district_id=…&date=…&
/// days=…` for every district, `GET /v1/admin/bookings?session_id=…` for every session.
pub async fn check_api(
    base: &str,
    operator_key: &str,
    district_ids: &[i64],
    date: &str,
    days: u32,
    session_ids: &[i64],
    booking_ids: &[i64],
) -> Result<Verdict, VerdictError> {
    let http = reqwest::Client::new();
    let mut over = 0u64;
    let mut pools_seen = 0u64;
    for d in district_ids {
        let url = format!("{base}/v1/admin/capacity?district_id={d}&date={date}&days={days}");
        let v = get_json(&http, &url, operator_key).await?;
        let mut pools = Vec::new();
        walk_pools(&v, &mut pools);
        for p in pools {
            pools_seen += 1;
            let cap = p
                .get("capacity")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            let booked = p
                .get("booked")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            if booked > cap {
                over += 1;
            }
        }
    }
    let mut stored: HashSet<i64> = HashSet::new();
    let mut live: HashMap<(i64, i64), u64> = HashMap::new();
    for s in session_ids {
        let mut after: Option<String> = None;
        for _ in 0..API_PAGES_MAX {
            let mut url = format!("{base}/v1/admin/bookings?session_id={s}&limit=500");
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let v = get_json(&http, &url, operator_key).await?;
            let list = v
                .get("bookings")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            for b in &list {
                let Some(id) = b.get("booking_id").and_then(serde_json::Value::as_i64) else {
                    continue;
                };
                stored.insert(id);
                let st = b
                    .get("status")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                if st == "booked" || st == "checked_in" {
                    let who = b
                        .get("beneficiary_id")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(-id);
                    let dose = b
                        .get("dose")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(0);
                    *live.entry((who, dose)).or_insert(0) += 1;
                }
            }
            after = v
                .get("next_after")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            if after.is_none() || list.is_empty() {
                break;
            }
        }
    }
    let o = Check {
        pass: over == 0,
        violations: over,
        note: format!("{pools_seen} pools read from /v1/admin/capacity, {over} over capacity"),
    };
    let distinct: HashSet<i64> = booking_ids.iter().copied().collect();
    let missing = distinct.iter().filter(|id| !stored.contains(id)).count() as u64;
    let l = Check {
        pass: missing == 0,
        violations: missing,
        note: format!(
            "{} booking ids answered 201, {missing} not listed",
            distinct.len()
        ),
    };
    let dups = live.values().filter(|n| **n > 1).count() as u64;
    let d = Check {
        pass: dups == 0,
        violations: dups,
        note: format!(
            "{dups} (beneficiary, dose) with two live bookings in the listed sessions \
             (idempotency table not visible through the API)"
        ),
    };
    Ok(Verdict::new("operators_api", o, l, d))
}

//! The SQLite backend: the default embedded store.
//!
//! One write connection and one read connection (WAL lets reads proceed beside a commit),
//! each behind a mutex and used only from tokio's blocking threads (`spawn_blocking`), never
//! from an async worker. `journal_mode=WAL`, `synchronous=FULL`: a batch is on disk when
//! its COMMIT returns. Same schema and constraints as PostgreSQL (see
//! `migrations/sqlite_0001_init.sql`); a batch is one `BEGIN IMMEDIATE` transaction with
//! cached prepared statements (SQLite has no arrays; in-process statements are cheap).

use crate::codec::*;
use crate::error::{from_sqlite, StoreError};
use crate::migrations::{SCHEMA_MIGRATIONS_SQL, SQLITE_MIGRATIONS};
use crate::plan::Plan;
use crate::store::{idempotency_cutoff, Store, AUDIT_PAGE_MAX};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use kataar_domain::*;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How long a connection waits for another process's lock, in milliseconds.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

struct Inner {
    write: Mutex<Connection>,
    read: Mutex<Connection>,
    interrupt: rusqlite::InterruptHandle,
    in_flight: Mutex<Option<BatchId>>,
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| from_sqlite(&e))?;
    conn.busy_timeout(std::time::Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .map_err(|e| from_sqlite(&e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| from_sqlite(&e))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| from_sqlite(&e))?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(|e| from_sqlite(&e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable (SQLite rolls back an
    // unfinished transaction when the next one begins), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opened = path.clone();
        let (write, read) = tokio::task::spawn_blocking(move || {
            let write = open_conn(&opened)?;
            migrate_conn(&write)?;
            let read = open_conn(&opened)?;
            Ok::<_, StoreError>((write, read))
        })
        .await
        .map_err(|_| StoreError::Unavailable("sqlite open task failed".into()))??;
        let interrupt = write.get_interrupt_handle();
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                write: Mutex::new(write),
                read: Mutex::new(read),
                interrupt,
                in_flight: Mutex::new(None),
            }),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.read)))
            .await
            .map_err(|_| StoreError::Unavailable("sqlite task failed".into()))?
    }

    async fn with_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.write)))
            .await
            .map_err(|_| StoreError::Unavailable("sqlite task failed".into()))?
    }
}

fn migrate_conn(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA_MIGRATIONS_SQL)
        .map_err(|e| from_sqlite(&e))?;
    for (version, name, sql) in SQLITE_MIGRATIONS {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(|e| from_sqlite(&e))?;
        let applied = tx
            .query_row(
                "SELECT 1 FROM schema_migrations WHERE version = ?1",
                [version],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| from_sqlite(&e))?
            .is_some();
        if applied {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|_| StoreError::Migration(format!("{version} {name}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, Utc::now().to_rfc3339()],
        )
        .map_err(|e| from_sqlite(&e))?;
        tx.commit()
            .map_err(|_| StoreError::Migration(format!("{version} {name}")))?;
        tracing::info!(version, name, "store migration applied");
    }
    Ok(())
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

fn expect_rows(done: usize, expected: usize, what: &str) -> Result<(), StoreError> {
    if done == expected {
        Ok(())
    } else {
        Err(StoreError::Constraint(format!(
            "{what}: {done} of {expected} rows matched"
        )))
    }
}

/// Writes one batch in one transaction (see [`Plan`] for the statement order).
fn write_batch(
    conn: &mut Connection,
    batch_id: BatchId,
    epoch: u64,
    events: &[Event],
) -> Result<(), StoreError> {
    let e = |err: rusqlite::Error| from_sqlite(&err);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e)?;
    let current: i64 = tx
        .query_row("SELECT epoch FROM leader WHERE id = 1", [], |r| r.get(0))
        .map_err(e)?;
    if current != id_to_db(epoch) {
        return Err(StoreError::Fenced);
    }
    let plan = Plan::new(events);
    {
        let mut st = tx
            .prepare_cached(
                "INSERT INTO states (state_id, state_name, state_name_hi) VALUES (?1, ?2, ?3)
                 ON CONFLICT (state_id) DO UPDATE SET state_name = excluded.state_name,
                 state_name_hi = excluded.state_name_hi",
            )
            .map_err(e)?;
        for s in &plan.states {
            st.execute(params![
                id_to_db(s.state_id.0),
                s.state_name,
                s.state_name_hi
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO districts (district_id, state_id, district_name, district_name_hi)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (district_id) DO UPDATE SET state_id = excluded.state_id,
                 district_name = excluded.district_name,
                 district_name_hi = excluded.district_name_hi",
            )
            .map_err(e)?;
        for d in &plan.districts {
            st.execute(params![
                id_to_db(d.district_id.0),
                id_to_db(d.state_id.0),
                d.district_name,
                d.district_name_hi
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO centres (centre_id, state_id, district_id, name, address, pincode,
                 block_name, lat, long, fee_type, fee_rupees)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (centre_id) DO UPDATE SET state_id = excluded.state_id,
                 district_id = excluded.district_id, name = excluded.name,
                 address = excluded.address, pincode = excluded.pincode,
                 block_name = excluded.block_name, lat = excluded.lat, long = excluded.long,
                 fee_type = excluded.fee_type, fee_rupees = excluded.fee_rupees",
            )
            .map_err(e)?;
        for c in &plan.centres {
            st.execute(params![
                id_to_db(c.centre_id.0),
                id_to_db(c.state_id.0),
                id_to_db(c.district_id.0),
                c.name,
                c.address,
                c.pincode,
                c.block_name,
                c.lat,
                c.long,
                c.fee_type.as_str(),
                c.fee_rupees
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO sessions (session_id, centre_id, state_id, district_id, date,
                 vaccine, min_age, max_age, opens_at, cancelled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(e)?;
        for s in &plan.sessions {
            st.execute(params![
                id_to_db(s.session_id.0),
                id_to_db(s.centre_id.0),
                id_to_db(s.state_id.0),
                id_to_db(s.district_id.0),
                day(s.date),
                s.vaccine.name(),
                s.min_age,
                s.max_age,
                s.opens_at.map(ts),
                s.cancelled
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO slots (slot_id, session_id, state_id, start_hm, end_hm)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(e)?;
        for s in &plan.slots {
            st.execute(params![
                id_to_db(s.slot.slot_id.0),
                id_to_db(s.slot.session_id.0),
                id_to_db(s.state_id.0),
                s.slot.start,
                s.slot.end
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO pools (pool_id, session_id, slot_id, state_id, dose, channel,
                 capacity, booked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(e)?;
        for p in &plan.pools {
            st.execute(params![
                id_to_db(p.pool.pool_id.0),
                id_to_db(p.pool.session_id.0),
                id_to_db(p.pool.slot_id.0),
                id_to_db(p.state_id.0),
                p.pool.dose.number(),
                p.pool.channel.as_str(),
                p.pool.capacity,
                p.pool.booked
            ])
            .map_err(e)?;
        }
        let mut cancels: Vec<i64> = plan.session_cancels.iter().map(|s| id_to_db(s.0)).collect();
        cancels.sort_unstable();
        cancels.dedup();
        let mut st = tx
            .prepare_cached("UPDATE sessions SET cancelled = 1 WHERE session_id = ?1")
            .map_err(e)?;
        for id in &cancels {
            expect_rows(st.execute([id]).map_err(e)?, 1, "session cancel")?;
        }
        let mut st = tx
            .prepare_cached("UPDATE sessions SET opens_at = ?2 WHERE session_id = ?1")
            .map_err(e)?;
        for (id, opens) in &plan.session_opens {
            let done = st
                .execute(params![id_to_db(id.0), opens.map(ts)])
                .map_err(e)?;
            expect_rows(done, 1, "session opening")?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO accounts (account_id, mobile, created_at) VALUES (?1, ?2, ?3)",
            )
            .map_err(e)?;
        for a in &plan.accounts {
            st.execute(params![
                id_to_db(a.account_id.0),
                a.mobile,
                ts(a.created_at)
            ])
            .map_err(e)?;
        }
        let now = ts(Utc::now());
        let mut removals: Vec<i64> = plan
            .beneficiary_removals
            .iter()
            .map(|b| id_to_db(b.0))
            .collect();
        removals.sort_unstable();
        removals.dedup();
        let mut st = tx
            .prepare_cached(
                "UPDATE beneficiaries SET removed_at = ?2
                 WHERE beneficiary_id = ?1 AND removed_at IS NULL",
            )
            .map_err(e)?;
        for id in &removals {
            let done = st.execute(params![id, now]).map_err(e)?;
            expect_rows(done, 1, "beneficiary removal")?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO beneficiaries (beneficiary_id, account_id, state_id, person_key,
                 name, birth_year, gender, id_type, id_masked, created_at, removed_at)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(e)?;
        for row in &plan.beneficiaries {
            let b = row.beneficiary;
            st.execute(params![
                id_to_db(b.beneficiary_id.0),
                id_to_db(b.account_id.0),
                b.person_key.0.as_slice(),
                b.name,
                b.birth_year,
                b.gender.as_str(),
                b.id_type,
                b.id_masked,
                ts(b.created_at),
                row.removed.then_some(now)
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "UPDATE bookings SET status = ?3, updated_at = ?4
                 WHERE booking_id = ?1 AND status = ?2",
            )
            .map_err(e)?;
        for c in &plan.status_changes {
            let done = st
                .execute(params![
                    id_to_db(c.booking_id.0),
                    c.from.as_str(),
                    c.to.as_str(),
                    ts(c.at)
                ])
                .map_err(e)?;
            expect_rows(done, 1, "booking status change")?;
        }
        let mut st = tx
            .prepare_cached(
                "UPDATE bookings SET pool_id = ?2, session_id = ?3, slot_id = ?4,
                 centre_id = ?5, token_number = ?6, updated_at = ?7 WHERE booking_id = ?1",
            )
            .map_err(e)?;
        for m in &plan.moves {
            let done = st
                .execute(params![
                    id_to_db(m.booking_id.0),
                    id_to_db(m.pool_id.0),
                    id_to_db(m.session_id.0),
                    id_to_db(m.slot_id.0),
                    id_to_db(m.centre_id.0),
                    m.token_number,
                    ts(m.at)
                ])
                .map_err(e)?;
            expect_rows(done, 1, "booking move")?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO bookings (booking_id, account_id, beneficiary_id, person_key,
                 state_id, centre_id, session_id, slot_id, pool_id, dose, channel, status,
                 token_number, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .map_err(e)?;
        for b in &plan.bookings {
            st.execute(params![
                id_to_db(b.booking_id.0),
                id_to_db(b.account_id.0),
                id_to_db(b.beneficiary_id.0),
                b.person_key.0.as_slice(),
                id_to_db(b.state_id.0),
                id_to_db(b.centre_id.0),
                id_to_db(b.session_id.0),
                id_to_db(b.slot_id.0),
                id_to_db(b.pool_id.0),
                b.dose.number(),
                b.channel.as_str(),
                b.status.as_str(),
                b.token_number,
                ts(b.created_at),
                ts(b.updated_at)
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "UPDATE pools SET booked = booked + ?2, capacity = capacity + ?3
                 WHERE pool_id = ?1",
            )
            .map_err(e)?;
        for d in &plan.pool_deltas {
            let done = st
                .execute(params![
                    id_to_db(d.pool_id.0),
                    delta_to_db(d.booked)?,
                    delta_to_db(d.capacity)?
                ])
                .map_err(e)?;
            expect_rows(done, 1, "pool counters")?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO doses (beneficiary_id, dose, vaccine, batch, date, centre_id,
                 booking_id, operator_id, administered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(e)?;
        for d in &plan.doses {
            st.execute(params![
                id_to_db(d.beneficiary_id.0),
                d.dose.number(),
                d.vaccine.name(),
                d.batch,
                day(d.date),
                id_to_db(d.centre_id.0),
                id_to_db(d.booking_id.0),
                id_to_db(d.operator_id.0),
                ts(d.administered_at)
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO idempotency (account_id, idem_key, request_hash, status, response,
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(e)?;
        for r in &plan.idempotency {
            st.execute(params![
                scope_to_db(r.account_id),
                r.key,
                r.request_hash,
                r.status,
                json_text(&r.response),
                ts(r.created_at)
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO operator_keys (operator_id, key_hash, role, centres, name,
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(e)?;
        for k in &plan.operator_keys {
            let centres: Vec<u64> = k.centres.iter().map(|c| c.0).collect();
            st.execute(params![
                id_to_db(k.operator_id.0),
                k.key_hash,
                k.role.as_str(),
                serde_json::to_string(&centres).unwrap_or_else(|_| "[]".into()),
                k.name,
                ts(k.created_at)
            ])
            .map_err(e)?;
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO audit (audit_id, at, operator_id, action, request_id, object,
                 before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(e)?;
        for a in &plan.audit {
            st.execute(params![
                id_to_db(a.audit_id),
                ts(a.at),
                id_to_db(a.operator_id.0),
                a.action,
                a.request_id,
                a.object,
                json_text(&a.before),
                json_text(&a.after)
            ])
            .map_err(e)?;
        }
        write_queue_rows(&tx, &plan).map_err(e)?;
        tx.execute(
            "INSERT INTO batches (batch_id, epoch, events, committed_at) VALUES (?1, ?2, ?3, ?4)",
            params![id_to_db(batch_id.0), id_to_db(epoch), events.len(), now],
        )
        .map_err(e)?;
    }
    // A failed COMMIT on a local file is rolled back, but read back anyway to be sure.
    tx.commit().map_err(|_| StoreError::InDoubt)
}

/// The waiting rooms' rows of a batch: releases, tickets, openings, cursors, admissions.
fn write_queue_rows(tx: &Connection, plan: &Plan<'_>) -> Result<(), rusqlite::Error> {
    let mut st = tx.prepare_cached(
        "INSERT INTO releases (release_id, session_ids, opens_at, admit_per_s, pass_ttl_s,
         draw_nonce, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in &plan.releases {
        let sessions: Vec<u64> = r.session_ids.iter().map(|s| s.0).collect();
        st.execute(params![
            id_to_db(r.release_id.0),
            serde_json::to_string(&sessions).unwrap_or_else(|_| "[]".into()),
            ts(r.opens_at),
            r.admit_per_s,
            r.pass_ttl_s,
            r.draw_nonce,
            ts(r.created_at)
        ])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO queue_tickets (release_id, idx, account_id, created_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for t in &plan.queue_tickets {
        st.execute(params![
            id_to_db(t.release_id.0),
            t.index,
            id_to_db(t.account_id.0),
            ts(t.created_at)
        ])?;
    }
    let mut st = tx.prepare_cached(
        "UPDATE releases SET prequeue = ?2 WHERE release_id = ?1 AND prequeue IS NULL",
    )?;
    for (id, n) in &plan.release_opens {
        st.execute(params![id_to_db(id.0), n])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO queue_admissions (release_id, idx, expires_at)
         VALUES (?1, ?2, ?3)",
    )?;
    for a in &plan.queue_admissions {
        st.execute(params![id_to_db(a.release_id.0), a.index, ts(a.expires_at)])?;
    }
    let mut st =
        tx.prepare_cached("UPDATE releases SET cursor = max(cursor, ?2) WHERE release_id = ?1")?;
    for (id, c) in &plan.queue_cursors {
        st.execute(params![id_to_db(id.0), c])?;
    }
    Ok(())
}

fn get<T: rusqlite::types::FromSql>(row: &Row, idx: usize, column: &str) -> Result<T, StoreError> {
    row.get(idx).map_err(|_| corrupt(column))
}

fn get_id(row: &Row, idx: usize, column: &str) -> Result<u64, StoreError> {
    id_from_db(get::<i64>(row, idx, column)?, column)
}

fn get_time(row: &Row, idx: usize, column: &str) -> Result<DateTime<Utc>, StoreError> {
    micros_to_time(get::<i64>(row, idx, column)?, column)
}

fn get_day(row: &Row, idx: usize, column: &str) -> Result<NaiveDate, StoreError> {
    let text: String = get(row, idx, column)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| corrupt(column))
}

fn get_json(row: &Row, idx: usize, column: &str) -> Result<serde_json::Value, StoreError> {
    let text: String = get(row, idx, column)?;
    serde_json::from_str(&text).map_err(|_| corrupt(column))
}

/// Runs `sql` and decodes every row; decoding errors keep their column name.
fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut st = conn.prepare_cached(sql).map_err(|e| from_sqlite(&e))?;
    let mut rows = st.query(params).map_err(|e| from_sqlite(&e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| from_sqlite(&e))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn decode_operator_key(r: &Row) -> Result<OperatorKey, StoreError> {
    let centres_text: String = get(r, 3, "centres")?;
    let centres: Vec<u64> = serde_json::from_str(&centres_text).map_err(|_| corrupt("centres"))?;
    Ok(OperatorKey {
        operator_id: OperatorId(get_id(r, 0, "operator_id")?),
        key_hash: get(r, 1, "key_hash")?,
        role: role_from_db(&get::<String>(r, 2, "role")?)?,
        centres: centres.into_iter().map(CentreId).collect(),
        name: get(r, 4, "name")?,
        created_at: get_time(r, 5, "created_at")?,
    })
}

fn decode_audit(r: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        audit_id: get_id(r, 0, "audit_id")?,
        at: get_time(r, 1, "at")?,
        operator_id: OperatorId(get_id(r, 2, "operator_id")?),
        action: get(r, 3, "action")?,
        request_id: get(r, 4, "request_id")?,
        object: get(r, 5, "object")?,
        before: get_json(r, 6, "before")?,
        after: get_json(r, 7, "after")?,
    })
}

const OPERATOR_KEY_COLUMNS: &str = "operator_id, key_hash, role, centres, name, created_at";
const AUDIT_COLUMNS: &str = "audit_id, at, operator_id, action, request_id, object, before, after";

fn load_conn(conn: &mut Connection) -> Result<Snapshot, StoreError> {
    let tx = conn.transaction().map_err(|e| from_sqlite(&e))?;
    let mut snap = Snapshot {
        states: all(
            &tx,
            "SELECT state_id, state_name, state_name_hi FROM states ORDER BY state_id",
            [],
            |r| {
                Ok(State {
                    state_id: StateId(get_id(r, 0, "state_id")?),
                    state_name: get(r, 1, "state_name")?,
                    state_name_hi: get(r, 2, "state_name_hi")?,
                })
            },
        )?,
        ..Snapshot::default()
    };
    snap.districts = all(
        &tx,
        "SELECT district_id, state_id, district_name, district_name_hi FROM districts
         ORDER BY district_id",
        [],
        |r| {
            Ok(District {
                district_id: DistrictId(get_id(r, 0, "district_id")?),
                state_id: StateId(get_id(r, 1, "state_id")?),
                district_name: get(r, 2, "district_name")?,
                district_name_hi: get(r, 3, "district_name_hi")?,
            })
        },
    )?;
    snap.centres = all(
        &tx,
        "SELECT centre_id, name, address, state_id, district_id, pincode, block_name, lat, long,
         fee_type, fee_rupees FROM centres ORDER BY centre_id",
        [],
        |r| {
            Ok(Centre {
                centre_id: CentreId(get_id(r, 0, "centre_id")?),
                name: get(r, 1, "name")?,
                address: get(r, 2, "address")?,
                state_id: StateId(get_id(r, 3, "state_id")?),
                district_id: DistrictId(get_id(r, 4, "district_id")?),
                pincode: get(r, 5, "pincode")?,
                block_name: get(r, 6, "block_name")?,
                lat: get(r, 7, "lat")?,
                long: get(r, 8, "long")?,
                fee_type: fee_from_db(&get::<String>(r, 9, "fee_type")?)?,
                fee_rupees: u32_from_db(get(r, 10, "fee_rupees")?, "fee_rupees")?,
            })
        },
    )?;
    snap.sessions = all(
        &tx,
        "SELECT session_id, centre_id, state_id, district_id, date, vaccine, min_age, max_age,
         opens_at, cancelled FROM sessions ORDER BY session_id",
        [],
        |r| {
            Ok(Session {
                session_id: SessionId(get_id(r, 0, "session_id")?),
                centre_id: CentreId(get_id(r, 1, "centre_id")?),
                state_id: StateId(get_id(r, 2, "state_id")?),
                district_id: DistrictId(get_id(r, 3, "district_id")?),
                date: get_day(r, 4, "date")?,
                vaccine: vaccine_from_db(&get::<String>(r, 5, "vaccine")?)?,
                min_age: u16_from_db(get(r, 6, "min_age")?, "min_age")?,
                max_age: get::<Option<i64>>(r, 7, "max_age")?
                    .map(|a| u16_from_db(a, "max_age"))
                    .transpose()?,
                opens_at: get::<Option<i64>>(r, 8, "opens_at")?
                    .map(|t| micros_to_time(t, "opens_at"))
                    .transpose()?,
                cancelled: get(r, 9, "cancelled")?,
            })
        },
    )?;
    snap.slots = all(
        &tx,
        "SELECT slot_id, session_id, start_hm, end_hm FROM slots ORDER BY slot_id",
        [],
        |r| {
            Ok(Slot {
                slot_id: SlotId(get_id(r, 0, "slot_id")?),
                session_id: SessionId(get_id(r, 1, "session_id")?),
                start: get(r, 2, "start_hm")?,
                end: get(r, 3, "end_hm")?,
            })
        },
    )?;
    snap.pools = all(
        &tx,
        "SELECT pool_id, session_id, slot_id, dose, channel, capacity, booked FROM pools
         ORDER BY pool_id",
        [],
        |r| {
            Ok(Pool {
                pool_id: PoolId(get_id(r, 0, "pool_id")?),
                session_id: SessionId(get_id(r, 1, "session_id")?),
                slot_id: SlotId(get_id(r, 2, "slot_id")?),
                dose: dose_from_db(get(r, 3, "dose")?)?,
                channel: channel_from_db(&get::<String>(r, 4, "channel")?)?,
                capacity: u32_from_db(get(r, 5, "capacity")?, "capacity")?,
                booked: u32_from_db(get(r, 6, "booked")?, "booked")?,
            })
        },
    )?;
    snap.accounts = all(
        &tx,
        "SELECT account_id, mobile, created_at FROM accounts ORDER BY account_id",
        [],
        |r| {
            Ok(Account {
                account_id: AccountId(get_id(r, 0, "account_id")?),
                mobile: get(r, 1, "mobile")?,
                created_at: get_time(r, 2, "created_at")?,
            })
        },
    )?;
    snap.beneficiaries = all(
        &tx,
        "SELECT beneficiary_id, account_id, person_key, name, birth_year, gender, id_type,
         id_masked, created_at FROM beneficiaries WHERE removed_at IS NULL
         ORDER BY beneficiary_id",
        [],
        |r| {
            Ok(Beneficiary {
                beneficiary_id: BeneficiaryId(get_id(r, 0, "beneficiary_id")?),
                account_id: AccountId(get_id(r, 1, "account_id")?),
                person_key: person_key_from_db(&get::<Vec<u8>>(r, 2, "person_key")?)?,
                name: get(r, 3, "name")?,
                birth_year: u16_from_db(get(r, 4, "birth_year")?, "birth_year")?,
                gender: gender_from_db(&get::<String>(r, 5, "gender")?)?,
                id_type: get(r, 6, "id_type")?,
                id_masked: get(r, 7, "id_masked")?,
                created_at: get_time(r, 8, "created_at")?,
            })
        },
    )?;
    snap.bookings = all(
        &tx,
        "SELECT booking_id, account_id, beneficiary_id, person_key, state_id, centre_id,
         session_id, slot_id, pool_id, dose, channel, status, token_number, created_at,
         updated_at FROM bookings ORDER BY booking_id",
        [],
        |r| {
            Ok(Booking {
                booking_id: BookingId(get_id(r, 0, "booking_id")?),
                account_id: AccountId(get_id(r, 1, "account_id")?),
                beneficiary_id: BeneficiaryId(get_id(r, 2, "beneficiary_id")?),
                person_key: person_key_from_db(&get::<Vec<u8>>(r, 3, "person_key")?)?,
                state_id: StateId(get_id(r, 4, "state_id")?),
                centre_id: CentreId(get_id(r, 5, "centre_id")?),
                session_id: SessionId(get_id(r, 6, "session_id")?),
                slot_id: SlotId(get_id(r, 7, "slot_id")?),
                pool_id: PoolId(get_id(r, 8, "pool_id")?),
                dose: dose_from_db(get(r, 9, "dose")?)?,
                channel: channel_from_db(&get::<String>(r, 10, "channel")?)?,
                status: status_from_db(&get::<String>(r, 11, "status")?)?,
                token_number: u32_from_db(get(r, 12, "token_number")?, "token_number")?,
                created_at: get_time(r, 13, "created_at")?,
                updated_at: get_time(r, 14, "updated_at")?,
            })
        },
    )?;
    snap.doses = all(
        &tx,
        "SELECT beneficiary_id, dose, vaccine, batch, date, centre_id, booking_id, operator_id,
         administered_at FROM doses ORDER BY beneficiary_id, dose",
        [],
        |r| {
            Ok(DoseRecord {
                beneficiary_id: BeneficiaryId(get_id(r, 0, "beneficiary_id")?),
                dose: dose_from_db(get(r, 1, "dose")?)?,
                vaccine: vaccine_from_db(&get::<String>(r, 2, "vaccine")?)?,
                batch: get(r, 3, "batch")?,
                date: get_day(r, 4, "date")?,
                centre_id: CentreId(get_id(r, 5, "centre_id")?),
                booking_id: BookingId(get_id(r, 6, "booking_id")?),
                operator_id: OperatorId(get_id(r, 7, "operator_id")?),
                administered_at: get_time(r, 8, "administered_at")?,
            })
        },
    )?;
    let cutoff = ts(idempotency_cutoff(Utc::now()));
    snap.idempotency = all(
        &tx,
        "SELECT account_id, idem_key, request_hash, status, response, created_at
         FROM idempotency WHERE created_at >= ?1 ORDER BY account_id, idem_key",
        [cutoff],
        |r| {
            Ok(IdempotencyRecord {
                account_id: AccountId(get_id(r, 0, "account_id")?),
                key: get(r, 1, "idem_key")?,
                request_hash: get(r, 2, "request_hash")?,
                status: u16_from_db(get(r, 3, "status")?, "status")?,
                response: get_json(r, 4, "response")?,
                created_at: get_time(r, 5, "created_at")?,
            })
        },
    )?;
    snap.operator_keys = all(
        &tx,
        &format!(
            "SELECT {OPERATOR_KEY_COLUMNS} FROM operator_keys WHERE revoked_at IS NULL
             ORDER BY operator_id"
        ),
        [],
        decode_operator_key,
    )?;
    let u32_col = |v: i64, column: &str| u32::try_from(v).map_err(|_| corrupt(column));
    snap.releases = all(
        &tx,
        "SELECT release_id, session_ids, opens_at, admit_per_s, pass_ttl_s, draw_nonce,
                created_at, prequeue, cursor FROM releases ORDER BY release_id",
        [],
        |r| {
            let sessions: Vec<u64> = serde_json::from_str(&get::<String>(r, 1, "session_ids")?)
                .map_err(|_| corrupt("session_ids"))?;
            Ok(ReleaseState {
                release: Release {
                    release_id: ReleaseId(get_id(r, 0, "release_id")?),
                    session_ids: sessions.into_iter().map(SessionId).collect(),
                    opens_at: get_time(r, 2, "opens_at")?,
                    admit_per_s: get::<Option<i64>>(r, 3, "admit_per_s")?
                        .map(|v| u32_col(v, "admit_per_s"))
                        .transpose()?,
                    pass_ttl_s: u32_col(get(r, 4, "pass_ttl_s")?, "pass_ttl_s")?,
                    draw_nonce: get(r, 5, "draw_nonce")?,
                    created_at: get_time(r, 6, "created_at")?,
                },
                prequeue: get::<Option<i64>>(r, 7, "prequeue")?
                    .map(|v| u32_col(v, "prequeue"))
                    .transpose()?,
                cursor: u32_col(get(r, 8, "cursor")?, "cursor")?,
            })
        },
    )?;
    snap.queue_tickets = all(
        &tx,
        "SELECT release_id, idx, account_id, created_at FROM queue_tickets
         ORDER BY release_id, idx",
        [],
        |r| {
            Ok(QueueTicket {
                release_id: ReleaseId(get_id(r, 0, "release_id")?),
                index: u32_col(get(r, 1, "idx")?, "idx")?,
                account_id: AccountId(get_id(r, 2, "account_id")?),
                created_at: get_time(r, 3, "created_at")?,
            })
        },
    )?;
    snap.queue_admissions = all(
        &tx,
        "SELECT release_id, idx, expires_at FROM queue_admissions ORDER BY release_id, idx",
        [],
        |r| {
            Ok(QueueAdmission {
                release_id: ReleaseId(get_id(r, 0, "release_id")?),
                index: u32_col(get(r, 1, "idx")?, "idx")?,
                expires_at: get_time(r, 2, "expires_at")?,
            })
        },
    )?;
    let (audit_max, batch_max, beneficiary_max): (i64, i64, i64) = tx
        .query_row(
            "SELECT (SELECT coalesce(max(audit_id), 0) FROM audit),
                    (SELECT coalesce(max(batch_id), 0) FROM batches),
                    (SELECT coalesce(max(beneficiary_id), 0) FROM beneficiaries)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(|e| from_sqlite(&e))?;
    snap.audit_id_max = id_from_db(audit_max, "audit_id")?;
    snap.batch_id_max = id_from_db(batch_max, "batch_id")?;
    snap.beneficiary_id_max = id_from_db(beneficiary_max, "beneficiary_id")?;
    tx.commit().map_err(|e| from_sqlite(&e))?;
    Ok(snap)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.with_write(|conn| migrate_conn(conn)).await
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        self.with_read(load_conn).await
    }

    async fn acquire_epoch(&self) -> Result<u64, StoreError> {
        self.with_write(|conn| {
            let epoch: i64 = conn
                .query_row(
                    "UPDATE leader SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| from_sqlite(&e))?;
            id_from_db(epoch, "epoch")
        })
        .await
    }

    async fn commit(
        &self,
        batch_id: BatchId,
        epoch: u64,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        let events = events.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.write);
            *lock(&inner.in_flight) = Some(batch_id);
            let result = write_batch(&mut conn, batch_id, epoch, &events);
            *lock(&inner.in_flight) = None;
            result
        })
        .await
        .map_err(|_| StoreError::InDoubt)?
    }

    async fn abort_commit(&self, batch_id: BatchId) -> Result<(), StoreError> {
        let in_flight = lock(&self.inner.in_flight);
        if *in_flight == Some(batch_id) {
            // Under the in-flight lock, so the interrupt cannot hit a later statement.
            self.inner.interrupt.interrupt();
            tracing::warn!(batch_id = batch_id.0, "store commit interrupted");
        }
        Ok(())
    }

    async fn batch_committed(&self, batch_id: BatchId, epoch: u64) -> Result<bool, StoreError> {
        self.with_read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM batches WHERE batch_id = ?1 AND epoch = ?2",
                [id_to_db(batch_id.0), id_to_db(epoch)],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| from_sqlite(&e))
        })
        .await
    }

    async fn audit_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit.min(AUDIT_PAGE_MAX)).unwrap_or(0);
        self.with_read(move |conn| {
            all(
                conn,
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE audit_id > ?1
                     ORDER BY audit_id LIMIT ?2"
                ),
                params![id_to_db(after_id), limit],
                decode_audit,
            )
        })
        .await
    }

    async fn operator_key_by_hash(&self, hash: &str) -> Result<Option<OperatorKey>, StoreError> {
        let hash = hash.to_string();
        self.with_read(move |conn| {
            let mut found = all(
                conn,
                &format!(
                    "SELECT {OPERATOR_KEY_COLUMNS} FROM operator_keys
                     WHERE key_hash = ?1 AND revoked_at IS NULL"
                ),
                [hash],
                decode_operator_key,
            )?;
            Ok(found.pop())
        })
        .await
    }

    async fn create_operator_key(&self, key: &OperatorKey) -> Result<OperatorKey, StoreError> {
        let key = key.clone();
        self.with_write(move |conn| {
            let centres: Vec<u64> = key.centres.iter().map(|c| c.0).collect();
            let id: i64 = conn
                .query_row(
                    "INSERT INTO operator_keys (operator_id, key_hash, role, centres, name,
                     created_at)
                     SELECT COALESCE(MAX(operator_id), 0) + 1, ?1, ?2, ?3, ?4, ?5
                     FROM operator_keys
                     RETURNING operator_id",
                    params![
                        key.key_hash,
                        key.role.as_str(),
                        serde_json::to_string(&centres).unwrap_or_else(|_| "[]".into()),
                        key.name,
                        ts(key.created_at)
                    ],
                    |row| row.get(0),
                )
                .map_err(|e| from_sqlite(&e))?;
            let mut stored = key;
            stored.operator_id = OperatorId(u64::try_from(id).unwrap_or(0));
            Ok(stored)
        })
        .await
    }

    async fn revoke_operator_key(
        &self,
        id: OperatorId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with_write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE operator_keys SET revoked_at = COALESCE(revoked_at, ?2)
                     WHERE operator_id = ?1",
                    params![id_to_db(id.0), ts(at)],
                )
                .map_err(|e| from_sqlite(&e))?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoked_operator_keys(&self) -> Result<Vec<OperatorId>, StoreError> {
        self.with_read(move |conn| {
            all(
                conn,
                "SELECT operator_id FROM operator_keys WHERE revoked_at IS NOT NULL",
                [],
                |r| Ok(OperatorId(get_id(r, 0, "operator_id")?)),
            )
        })
        .await
    }

    async fn secret_check(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_string();
        self.with_read(move |conn| {
            conn.query_row(
                "SELECT check_value FROM secret_checks WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| from_sqlite(&e))
        })
        .await
    }

    async fn record_secret_check(
        &self,
        name: &str,
        check_value: &str,
    ) -> Result<String, StoreError> {
        let (name, value) = (name.to_string(), check_value.to_string());
        self.with_write(move |conn| {
            conn.execute(
                "INSERT INTO secret_checks (name, check_value, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
                params![name, value, ts(Utc::now())],
            )
            .map_err(|e| from_sqlite(&e))?;
            conn.query_row(
                "SELECT check_value FROM secret_checks WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| from_sqlite(&e))
        })
        .await
    }

    async fn holds_people(&self) -> Result<bool, StoreError> {
        self.with_read(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM accounts) OR EXISTS (SELECT 1 FROM beneficiaries)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| from_sqlite(&e))
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with_read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| from_sqlite(&e))
        })
        .await
    }

    async fn prune_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with_write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM idempotency WHERE created_at < ?1",
                    [ts(older_than)],
                )
                .map_err(|e| from_sqlite(&e))?;
            Ok(n as u64)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

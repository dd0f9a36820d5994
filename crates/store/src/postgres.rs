//! The PostgreSQL backend.
//!
//! Reads go through a deadpool-postgres pool (every pool timeout set). Commits go through one
//! dedicated connection whose backend pid is read once when it is opened, so that an in-doubt
//! commit can be ended from outside with `pg_terminate_backend(pid)`. A batch is one
//! transaction: the epoch check (`FOR SHARE` on the leader row), then one statement per
//! event kind with `unnest` arrays, then the `batches` row. `synchronous_commit` is left on.

use crate::codec::*;
use crate::error::{from_pg, from_pool, StoreError};
use crate::migrations::{PG_MIGRATIONS, PG_MIGRATION_LOCK_KEY, SCHEMA_MIGRATIONS_SQL};
use crate::plan::Plan;
use crate::store::{idempotency_cutoff, Store, AUDIT_PAGE_MAX};
use crate::tls::Tls;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool as PgPool, RecyclingMethod, Runtime};
use futures::TryStreamExt;
use kataar_domain::*;
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// Default size of the read pool (connections). The writer's commit connection is extra.
pub const PG_POOL_SIZE_MAX_DEFAULT: usize = 8;
/// Default wait for a pooled connection, in milliseconds.
pub const PG_POOL_WAIT_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Default deadline to open a connection, in milliseconds.
pub const PG_CONNECT_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// Default deadline to check a pooled connection before reuse, in milliseconds.
pub const PG_RECYCLE_TIMEOUT_MS_DEFAULT: u64 = 1_000;

/// Checks, after `pg_terminate_backend`, that the backend has exited (one per step).
const TERMINATE_WAIT_ROUNDS: u32 = 200;
/// Wait between those checks, in milliseconds.
const TERMINATE_WAIT_STEP_MS: u64 = 10;

/// How to connect.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections in the read pool (default [`PG_POOL_SIZE_MAX_DEFAULT`]).
    pub pool_size_max: usize,
    /// Wait for a free pooled connection (default [`PG_POOL_WAIT_TIMEOUT_MS_DEFAULT`]).
    pub pool_wait_timeout: Duration,
    /// Deadline to open a connection (default [`PG_CONNECT_TIMEOUT_MS_DEFAULT`]).
    pub connect_timeout: Duration,
    /// Deadline to recycle a pooled connection (default [`PG_RECYCLE_TIMEOUT_MS_DEFAULT`]).
    pub recycle_timeout: Duration,
    /// Apply migrations in `connect` (default true; `kataar migrate` calls
    /// [`Store::migrate`] itself).
    pub migrate: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size_max: PG_POOL_SIZE_MAX_DEFAULT,
            pool_wait_timeout: Duration::from_millis(PG_POOL_WAIT_TIMEOUT_MS_DEFAULT),
            connect_timeout: Duration::from_millis(PG_CONNECT_TIMEOUT_MS_DEFAULT),
            recycle_timeout: Duration::from_millis(PG_RECYCLE_TIMEOUT_MS_DEFAULT),
            migrate: true,
        }
    }
}

/// Drives a connection of its own (`what` it is for) until it ends.
async fn drive_connection<F>(connection: F, what: &'static str)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if connection.await.is_err() {
        tracing::debug!(connection = what, "store connection ended");
    }
}

/// The connection commits go through, with its backend pid and prepared statements.
struct CommitConn {
    client: Client,
    pid: i32,
    statements: HashMap<&'static str, Statement>,
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    pg_config: tokio_postgres::Config,
    tls: Tls,
    commit_conn: tokio::sync::Mutex<Option<CommitConn>>,
    /// Backend pid of each commit in flight (at most one: commits share one connection).
    in_flight: std::sync::Mutex<HashMap<BatchId, i32>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects (checking one connection at once) and applies migrations unless
    /// `options.migrate` is false. The URL is never echoed in errors.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let mut pg_config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Unavailable("invalid database url".into()))?;
        pg_config.connect_timeout(options.connect_timeout);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("kataar");
        }
        let tls = Tls::for_config(&pg_config)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Tls::Plain => Manager::from_config(pg_config.clone(), NoTls, manager_config),
            Tls::Rustls(connector) => {
                Manager::from_config(pg_config.clone(), connector.clone(), manager_config)
            }
        };
        let pool = PgPool::builder(manager)
            .max_size(options.pool_size_max.max(1))
            .wait_timeout(Some(options.pool_wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|_| StoreError::Unavailable("cannot build connection pool".into()))?;
        let store = PgStore {
            pool,
            pg_config,
            tls,
            commit_conn: tokio::sync::Mutex::new(None),
            in_flight: std::sync::Mutex::new(HashMap::new()),
        };
        store.ping().await?;
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| from_pool(&e))
    }

    /// Whether the store's connections are encrypted (`sslmode=require`).
    pub fn encrypted(&self) -> bool {
        self.tls.encrypted()
    }

    /// A connection of its own, outside the read pool (TLS as configured), driven by a task
    /// until it ends.
    async fn open_client(&self, what: &'static str) -> Result<Client, StoreError> {
        Ok(match &self.tls {
            Tls::Plain => {
                let (client, connection) = self
                    .pg_config
                    .connect(NoTls)
                    .await
                    .map_err(|e| from_pg(&e))?;
                tokio::spawn(drive_connection(connection, what));
                client
            }
            Tls::Rustls(connector) => {
                let (client, connection) = self
                    .pg_config
                    .connect(connector.clone())
                    .await
                    .map_err(|e| from_pg(&e))?;
                tokio::spawn(drive_connection(connection, what));
                client
            }
        })
    }

    /// Starts reading `table` on a connection of its own, in the transaction snapshot that
    /// `set_snapshot` (`SET TRANSACTION SNAPSHOT …` of a transaction still open) imports; where
    /// no connection is to be had (the database's connection limit reached), the table is left
    /// for the loading connection.
    async fn load_part<T: Send + 'static>(
        &self,
        set_snapshot: &str,
        table: Table<T>,
    ) -> LoadPart<T> {
        let mut client = match self.open_client("load").await {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(error = %err, "a large table is loaded on the loading connection");
                return LoadPart::Later(table);
            }
        };
        let set = set_snapshot.to_string();
        LoadPart::Reading(Reading(tokio::spawn(async move {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| from_pg(&e))?;
            tx.batch_execute(&set).await.map_err(|e| from_pg(&e))?;
            let rows = table.read(&tx).await?;
            tx.commit().await.map_err(|e| from_pg(&e))?;
            Ok(rows)
        })))
    }

    async fn open_commit_conn(&self) -> Result<CommitConn, StoreError> {
        let client = self.open_client("commit").await?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(|e| from_pg(&e))?
            .get(0);
        Ok(CommitConn {
            client,
            pid,
            statements: HashMap::new(),
        })
    }

    fn set_in_flight(&self, batch_id: BatchId, pid: Option<i32>) {
        if let Ok(mut map) = self.in_flight.lock() {
            match pid {
                Some(pid) => {
                    map.insert(batch_id, pid);
                }
                None => {
                    map.remove(&batch_id);
                }
            }
        }
    }

    /// The backend pid of the connection commits use, if it is open (for tests that need to
    /// tell it apart from others).
    pub async fn commit_backend_pid(&self) -> Option<i32> {
        self.commit_conn.lock().await.as_ref().map(|c| c.pid)
    }
}

/// Runs one statement with the connection's cached prepared statement.
async fn exec(
    tx: &tokio_postgres::Transaction<'_>,
    statements: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = match statements.get(sql) {
        Some(s) => s.clone(),
        None => {
            let s = tx.prepare(sql).await.map_err(|e| from_pg(&e))?;
            statements.insert(sql, s.clone());
            s
        }
    };
    tx.execute(&statement, params)
        .await
        .map_err(|e| from_pg(&e))
}

/// Fails the batch when an update did not touch every row it must (a missing row or a
/// status that is not the expected `from`): the database's second line of defence.
fn expect_rows(done: u64, expected: usize, what: &str) -> Result<(), StoreError> {
    if done == expected as u64 {
        Ok(())
    } else {
        Err(StoreError::Constraint(format!(
            "{what}: {done} of {expected} rows matched"
        )))
    }
}

const SQL_EPOCH: &str = "SELECT epoch FROM leader WHERE id = 1 FOR SHARE";
const SQL_STATES: &str = "INSERT INTO states (state_id, state_name, state_name_hi)
 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
 ON CONFLICT (state_id) DO UPDATE SET state_name = EXCLUDED.state_name,
 state_name_hi = EXCLUDED.state_name_hi";
const SQL_DISTRICTS: &str =
    "INSERT INTO districts (district_id, state_id, district_name, district_name_hi)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
 ON CONFLICT (district_id) DO UPDATE SET state_id = EXCLUDED.state_id,
 district_name = EXCLUDED.district_name, district_name_hi = EXCLUDED.district_name_hi";
const SQL_CENTRES: &str = "INSERT INTO centres (centre_id, state_id, district_id, name, address,
 pincode, block_name, lat, long, fee_type, fee_rupees)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
 $6::text[], $7::text[], $8::float8[], $9::float8[], $10::text[], $11::int[])
 ON CONFLICT (centre_id) DO UPDATE SET state_id = EXCLUDED.state_id,
 district_id = EXCLUDED.district_id, name = EXCLUDED.name, address = EXCLUDED.address,
 pincode = EXCLUDED.pincode, block_name = EXCLUDED.block_name, lat = EXCLUDED.lat,
 long = EXCLUDED.long, fee_type = EXCLUDED.fee_type, fee_rupees = EXCLUDED.fee_rupees";
const SQL_SESSIONS: &str = "INSERT INTO sessions (session_id, centre_id, state_id, district_id,
 date, vaccine, min_age, max_age, opens_at, cancelled)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::date[],
 $6::text[], $7::smallint[], $8::smallint[], $9::timestamptz[], $10::bool[])";
const SQL_SLOTS: &str = "INSERT INTO slots (slot_id, session_id, state_id, start_hm, end_hm)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])";
const SQL_POOLS: &str = "INSERT INTO pools (pool_id, session_id, slot_id, state_id, dose,
 channel, capacity, booked)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::smallint[],
 $6::text[], $7::int[], $8::int[])";
const SQL_SESSION_CANCEL: &str =
    "UPDATE sessions SET cancelled = true WHERE session_id = ANY($1::bigint[])";
const SQL_SESSION_OPENS: &str = "UPDATE sessions s SET opens_at = u.opens_at
 FROM unnest($1::bigint[], $2::timestamptz[]) AS u(session_id, opens_at)
 WHERE s.session_id = u.session_id";
const SQL_ACCOUNTS: &str = "INSERT INTO accounts (account_id, mobile, created_at)
 SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[])";
const SQL_BENEFICIARY_REMOVE: &str = "UPDATE beneficiaries SET removed_at = now()
 WHERE beneficiary_id = ANY($1::bigint[]) AND removed_at IS NULL";
const SQL_BENEFICIARIES: &str = "INSERT INTO beneficiaries (beneficiary_id, account_id,
 state_id, person_key, name, birth_year, gender, id_type, id_masked, created_at, removed_at)
 SELECT u.id, u.account_id, NULL, u.person_key, u.name, u.birth_year, u.gender, u.id_type,
 u.id_masked, u.created_at, CASE WHEN u.removed THEN now() END
 FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::text[], $5::smallint[], $6::text[],
 $7::text[], $8::text[], $9::timestamptz[], $10::bool[])
 AS u(id, account_id, person_key, name, birth_year, gender, id_type, id_masked, created_at,
 removed)";
const SQL_BOOKING_STATUS: &str = "UPDATE bookings b SET status = u.to_status, updated_at = u.at
 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[])
 AS u(booking_id, from_status, to_status, at)
 WHERE b.booking_id = u.booking_id AND b.status = u.from_status";
const SQL_BOOKING_MOVE: &str = "UPDATE bookings b SET pool_id = u.pool_id,
 session_id = u.session_id, slot_id = u.slot_id, centre_id = u.centre_id,
 token_number = u.token_number, updated_at = u.at
 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::int[],
 $7::timestamptz[]) AS u(booking_id, pool_id, session_id, slot_id, centre_id, token_number, at)
 WHERE b.booking_id = u.booking_id";
const SQL_BOOKINGS: &str = "INSERT INTO bookings (booking_id, account_id, beneficiary_id,
 person_key, state_id, centre_id, session_id, slot_id, pool_id, dose, channel, status,
 token_number, created_at, updated_at)
 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bigint[],
 $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::smallint[], $11::text[],
 $12::text[], $13::int[], $14::timestamptz[], $15::timestamptz[])";
const SQL_POOL_COUNTERS: &str = "UPDATE pools p SET booked = p.booked + u.booked_delta,
 capacity = p.capacity + u.capacity_delta
 FROM unnest($1::bigint[], $2::int[], $3::int[]) AS u(pool_id, booked_delta, capacity_delta)
 WHERE p.pool_id = u.pool_id";
const SQL_DOSES: &str = "INSERT INTO doses (beneficiary_id, dose, vaccine, batch, date,
 centre_id, booking_id, operator_id, administered_at)
 SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::text[], $5::date[],
 $6::bigint[], $7::bigint[], $8::bigint[], $9::timestamptz[])";
const SQL_IDEMPOTENCY: &str = "INSERT INTO idempotency (account_id, idem_key, request_hash,
 status, response, created_at)
 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::jsonb[],
 $6::timestamptz[])";
const SQL_OPERATOR_KEYS: &str = "INSERT INTO operator_keys (operator_id, key_hash, role,
 centres, name, created_at)
 SELECT u.id, u.key_hash, u.role, u.centres::bigint[], u.name, u.created_at
 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
 AS u(id, key_hash, role, centres, name, created_at)";
const SQL_AUDIT: &str = "INSERT INTO audit (audit_id, at, operator_id, action, request_id,
 object, before, after)
 SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::text[], $5::text[],
 $6::text[], $7::jsonb[], $8::jsonb[])";
const SQL_RELEASES: &str = "INSERT INTO releases (release_id, session_ids, opens_at,
 admit_per_s, pass_ttl_s, draw_nonce, created_at)
 SELECT u.id, u.sessions::bigint[], u.opens_at, u.admit, u.ttl, u.nonce, u.created_at
 FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::int[], $5::int[], $6::text[],
 $7::timestamptz[]) AS u(id, sessions, opens_at, admit, ttl, nonce, created_at)";
const SQL_QUEUE_TICKETS: &str = "INSERT INTO queue_tickets (release_id, idx, account_id,
 created_at)
 SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::timestamptz[])";
const SQL_RELEASE_OPENS: &str = "UPDATE releases r SET prequeue = u.prequeue
 FROM unnest($1::bigint[], $2::int[]) AS u(id, prequeue)
 WHERE r.release_id = u.id AND r.prequeue IS NULL";
const SQL_QUEUE_CURSORS: &str = "UPDATE releases r SET cursor = greatest(r.cursor, u.cursor)
 FROM unnest($1::bigint[], $2::int[]) AS u(id, cursor)
 WHERE r.release_id = u.id";
const SQL_QUEUE_ADMISSIONS: &str = "INSERT INTO queue_admissions (release_id, idx, expires_at)
 SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[])
 ON CONFLICT (release_id, idx) DO NOTHING";
const SQL_BATCH: &str = "INSERT INTO batches (batch_id, epoch, events) VALUES ($1, $2, $3)";

fn u32_to_db(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The waiting rooms' rows of a batch: releases, tickets, openings, cursors, admissions.
async fn write_queue_rows(
    tx: &tokio_postgres::Transaction<'_>,
    st: &mut HashMap<&'static str, Statement>,
    plan: &Plan<'_>,
) -> Result<(), StoreError> {
    if !plan.releases.is_empty() {
        let r = &plan.releases;
        let ids: Vec<i64> = r.iter().map(|x| id_to_db(x.release_id.0)).collect();
        let sessions: Vec<String> = r
            .iter()
            .map(|x| {
                let ids: Vec<String> = x.session_ids.iter().map(|s| s.0.to_string()).collect();
                format!("{{{}}}", ids.join(","))
            })
            .collect();
        let opens: Vec<DateTime<Utc>> = r.iter().map(|x| x.opens_at).collect();
        let admit: Vec<Option<i32>> = r.iter().map(|x| x.admit_per_s.map(u32_to_db)).collect();
        let ttl: Vec<i32> = r.iter().map(|x| u32_to_db(x.pass_ttl_s)).collect();
        let nonces: Vec<&str> = r.iter().map(|x| x.draw_nonce.as_str()).collect();
        let created: Vec<DateTime<Utc>> = r.iter().map(|x| x.created_at).collect();
        exec(
            tx,
            st,
            SQL_RELEASES,
            &[&ids, &sessions, &opens, &admit, &ttl, &nonces, &created],
        )
        .await?;
    }
    if !plan.queue_tickets.is_empty() {
        let t = &plan.queue_tickets;
        let releases: Vec<i64> = t.iter().map(|x| id_to_db(x.release_id.0)).collect();
        let idx: Vec<i32> = t.iter().map(|x| u32_to_db(x.index)).collect();
        let accounts: Vec<i64> = t.iter().map(|x| id_to_db(x.account_id.0)).collect();
        let created: Vec<DateTime<Utc>> = t.iter().map(|x| x.created_at).collect();
        exec(
            tx,
            st,
            SQL_QUEUE_TICKETS,
            &[&releases, &idx, &accounts, &created],
        )
        .await?;
    }
    if !plan.release_opens.is_empty() {
        let ids: Vec<i64> = plan
            .release_opens
            .iter()
            .map(|x| id_to_db(x.0 .0))
            .collect();
        let n: Vec<i32> = plan.release_opens.iter().map(|x| u32_to_db(x.1)).collect();
        exec(tx, st, SQL_RELEASE_OPENS, &[&ids, &n]).await?;
    }
    if !plan.queue_admissions.is_empty() {
        let a = &plan.queue_admissions;
        let releases: Vec<i64> = a.iter().map(|x| id_to_db(x.release_id.0)).collect();
        let idx: Vec<i32> = a.iter().map(|x| u32_to_db(x.index)).collect();
        let expires: Vec<DateTime<Utc>> = a.iter().map(|x| x.expires_at).collect();
        exec(tx, st, SQL_QUEUE_ADMISSIONS, &[&releases, &idx, &expires]).await?;
    }
    if !plan.queue_cursors.is_empty() {
        let ids: Vec<i64> = plan
            .queue_cursors
            .iter()
            .map(|x| id_to_db(x.0 .0))
            .collect();
        let c: Vec<i32> = plan.queue_cursors.iter().map(|x| u32_to_db(x.1)).collect();
        exec(tx, st, SQL_QUEUE_CURSORS, &[&ids, &c]).await?;
    }
    Ok(())
}

/// Writes one batch in one transaction. `Err(InDoubt)` only when COMMIT itself failed
/// without an answer from the server.
async fn write_batch(
    conn: &mut CommitConn,
    batch_id: BatchId,
    epoch: u64,
    events: &[Event],
) -> Result<(), StoreError> {
    let CommitConn {
        client, statements, ..
    } = conn;
    let tx = client.transaction().await.map_err(|e| from_pg(&e))?;
    let current: i64 = tx
        .query_one(SQL_EPOCH, &[])
        .await
        .map_err(|e| from_pg(&e))?
        .get(0);
    if current != id_to_db(epoch) {
        return Err(StoreError::Fenced);
    }
    let plan = Plan::new(events);
    let st = statements;

    if !plan.states.is_empty() {
        let ids: Vec<i64> = plan.states.iter().map(|s| id_to_db(s.state_id.0)).collect();
        let names: Vec<&str> = plan.states.iter().map(|s| s.state_name.as_str()).collect();
        let names_hi: Vec<&str> = plan
            .states
            .iter()
            .map(|s| s.state_name_hi.as_str())
            .collect();
        exec(&tx, st, SQL_STATES, &[&ids, &names, &names_hi]).await?;
    }
    if !plan.districts.is_empty() {
        let d = &plan.districts;
        let ids: Vec<i64> = d.iter().map(|x| id_to_db(x.district_id.0)).collect();
        let states: Vec<i64> = d.iter().map(|x| id_to_db(x.state_id.0)).collect();
        let names: Vec<&str> = d.iter().map(|x| x.district_name.as_str()).collect();
        let names_hi: Vec<&str> = d.iter().map(|x| x.district_name_hi.as_str()).collect();
        exec(&tx, st, SQL_DISTRICTS, &[&ids, &states, &names, &names_hi]).await?;
    }
    if !plan.centres.is_empty() {
        let c = &plan.centres;
        let ids: Vec<i64> = c.iter().map(|x| id_to_db(x.centre_id.0)).collect();
        let states: Vec<i64> = c.iter().map(|x| id_to_db(x.state_id.0)).collect();
        let districts: Vec<i64> = c.iter().map(|x| id_to_db(x.district_id.0)).collect();
        let names: Vec<&str> = c.iter().map(|x| x.name.as_str()).collect();
        let addresses: Vec<&str> = c.iter().map(|x| x.address.as_str()).collect();
        let pincodes: Vec<&str> = c.iter().map(|x| x.pincode.as_str()).collect();
        let blocks: Vec<&str> = c.iter().map(|x| x.block_name.as_str()).collect();
        let lats: Vec<f64> = c.iter().map(|x| x.lat).collect();
        let longs: Vec<f64> = c.iter().map(|x| x.long).collect();
        let fees: Vec<&str> = c.iter().map(|x| x.fee_type.as_str()).collect();
        let rupees: Vec<i32> = c
            .iter()
            .map(|x| i32::try_from(x.fee_rupees).unwrap_or(i32::MAX))
            .collect();
        exec(
            &tx,
            st,
            SQL_CENTRES,
            &[
                &ids, &states, &districts, &names, &addresses, &pincodes, &blocks, &lats, &longs,
                &fees, &rupees,
            ],
        )
        .await?;
    }
    if !plan.sessions.is_empty() {
        let s = &plan.sessions;
        let ids: Vec<i64> = s.iter().map(|x| id_to_db(x.session_id.0)).collect();
        let centres: Vec<i64> = s.iter().map(|x| id_to_db(x.centre_id.0)).collect();
        let states: Vec<i64> = s.iter().map(|x| id_to_db(x.state_id.0)).collect();
        let districts: Vec<i64> = s.iter().map(|x| id_to_db(x.district_id.0)).collect();
        let dates: Vec<NaiveDate> = s.iter().map(|x| x.date).collect();
        let vaccines: Vec<&str> = s.iter().map(|x| x.vaccine.name()).collect();
        let min_ages: Vec<i16> = s
            .iter()
            .map(|x| i16::try_from(x.min_age).unwrap_or(i16::MAX))
            .collect();
        let max_ages: Vec<Option<i16>> = s
            .iter()
            .map(|x| x.max_age.map(|a| i16::try_from(a).unwrap_or(i16::MAX)))
            .collect();
        let opens: Vec<Option<DateTime<Utc>>> = s.iter().map(|x| x.opens_at).collect();
        let cancelled: Vec<bool> = s.iter().map(|x| x.cancelled).collect();
        exec(
            &tx,
            st,
            SQL_SESSIONS,
            &[
                &ids, &centres, &states, &districts, &dates, &vaccines, &min_ages, &max_ages,
                &opens, &cancelled,
            ],
        )
        .await?;
    }
    if !plan.slots.is_empty() {
        let s = &plan.slots;
        let ids: Vec<i64> = s.iter().map(|x| id_to_db(x.slot.slot_id.0)).collect();
        let sessions: Vec<i64> = s.iter().map(|x| id_to_db(x.slot.session_id.0)).collect();
        let states: Vec<i64> = s.iter().map(|x| id_to_db(x.state_id.0)).collect();
        let starts: Vec<&str> = s.iter().map(|x| x.slot.start.as_str()).collect();
        let ends: Vec<&str> = s.iter().map(|x| x.slot.end.as_str()).collect();
        exec(
            &tx,
            st,
            SQL_SLOTS,
            &[&ids, &sessions, &states, &starts, &ends],
        )
        .await?;
    }
    if !plan.pools.is_empty() {
        let p = &plan.pools;
        let ids: Vec<i64> = p.iter().map(|x| id_to_db(x.pool.pool_id.0)).collect();
        let sessions: Vec<i64> = p.iter().map(|x| id_to_db(x.pool.session_id.0)).collect();
        let slots: Vec<i64> = p.iter().map(|x| id_to_db(x.pool.slot_id.0)).collect();
        let states: Vec<i64> = p.iter().map(|x| id_to_db(x.state_id.0)).collect();
        let doses: Vec<i16> = p.iter().map(|x| i16::from(x.pool.dose.number())).collect();
        let channels: Vec<&str> = p.iter().map(|x| x.pool.channel.as_str()).collect();
        let capacities: Vec<i32> = p
            .iter()
            .map(|x| i32::try_from(x.pool.capacity).unwrap_or(i32::MAX))
            .collect();
        let booked: Vec<i32> = p
            .iter()
            .map(|x| i32::try_from(x.pool.booked).unwrap_or(i32::MAX))
            .collect();
        exec(
            &tx,
            st,
            SQL_POOLS,
            &[
                &ids,
                &sessions,
                &slots,
                &states,
                &doses,
                &channels,
                &capacities,
                &booked,
            ],
        )
        .await?;
    }
    if !plan.session_cancels.is_empty() {
        let mut ids: Vec<i64> = plan.session_cancels.iter().map(|x| id_to_db(x.0)).collect();
        ids.sort_unstable();
        ids.dedup();
        let done = exec(&tx, st, SQL_SESSION_CANCEL, &[&ids]).await?;
        expect_rows(done, ids.len(), "session cancel")?;
    }
    if !plan.session_opens.is_empty() {
        let ids: Vec<i64> = plan
            .session_opens
            .iter()
            .map(|x| id_to_db(x.0 .0))
            .collect();
        let opens: Vec<Option<DateTime<Utc>>> = plan.session_opens.iter().map(|x| x.1).collect();
        let done = exec(&tx, st, SQL_SESSION_OPENS, &[&ids, &opens]).await?;
        expect_rows(done, ids.len(), "session opening")?;
    }
    if !plan.accounts.is_empty() {
        let a = &plan.accounts;
        let ids: Vec<i64> = a.iter().map(|x| id_to_db(x.account_id.0)).collect();
        let mobiles: Vec<Option<&str>> = a.iter().map(|x| x.mobile.as_deref()).collect();
        let created: Vec<DateTime<Utc>> = a.iter().map(|x| x.created_at).collect();
        exec(&tx, st, SQL_ACCOUNTS, &[&ids, &mobiles, &created]).await?;
    }
    if !plan.beneficiary_removals.is_empty() {
        let mut ids: Vec<i64> = plan
            .beneficiary_removals
            .iter()
            .map(|x| id_to_db(x.0))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let done = exec(&tx, st, SQL_BENEFICIARY_REMOVE, &[&ids]).await?;
        expect_rows(done, ids.len(), "beneficiary removal")?;
    }
    if !plan.beneficiaries.is_empty() {
        let b = &plan.beneficiaries;
        let ids: Vec<i64> = b
            .iter()
            .map(|x| id_to_db(x.beneficiary.beneficiary_id.0))
            .collect();
        let accounts: Vec<i64> = b
            .iter()
            .map(|x| id_to_db(x.beneficiary.account_id.0))
            .collect();
        let keys: Vec<&[u8]> = b
            .iter()
            .map(|x| x.beneficiary.person_key.0.as_slice())
            .collect();
        let names: Vec<&str> = b.iter().map(|x| x.beneficiary.name.as_str()).collect();
        let years: Vec<i16> = b
            .iter()
            .map(|x| i16::try_from(x.beneficiary.birth_year).unwrap_or(i16::MAX))
            .collect();
        let genders: Vec<&str> = b.iter().map(|x| x.beneficiary.gender.as_str()).collect();
        let id_types: Vec<&str> = b.iter().map(|x| x.beneficiary.id_type.as_str()).collect();
        let masked: Vec<&str> = b.iter().map(|x| x.beneficiary.id_masked.as_str()).collect();
        let created: Vec<DateTime<Utc>> = b.iter().map(|x| x.beneficiary.created_at).collect();
        let removed: Vec<bool> = b.iter().map(|x| x.removed).collect();
        exec(
            &tx,
            st,
            SQL_BENEFICIARIES,
            &[
                &ids, &accounts, &keys, &names, &years, &genders, &id_types, &masked, &created,
                &removed,
            ],
        )
        .await?;
    }
    if !plan.status_changes.is_empty() {
        let s = &plan.status_changes;
        let ids: Vec<i64> = s.iter().map(|x| id_to_db(x.booking_id.0)).collect();
        let froms: Vec<&str> = s.iter().map(|x| x.from.as_str()).collect();
        let tos: Vec<&str> = s.iter().map(|x| x.to.as_str()).collect();
        let ats: Vec<DateTime<Utc>> = s.iter().map(|x| x.at).collect();
        let done = exec(&tx, st, SQL_BOOKING_STATUS, &[&ids, &froms, &tos, &ats]).await?;
        expect_rows(done, ids.len(), "booking status change")?;
    }
    if !plan.moves.is_empty() {
        let m = &plan.moves;
        let ids: Vec<i64> = m.iter().map(|x| id_to_db(x.booking_id.0)).collect();
        let pools: Vec<i64> = m.iter().map(|x| id_to_db(x.pool_id.0)).collect();
        let sessions: Vec<i64> = m.iter().map(|x| id_to_db(x.session_id.0)).collect();
        let slots: Vec<i64> = m.iter().map(|x| id_to_db(x.slot_id.0)).collect();
        let centres: Vec<i64> = m.iter().map(|x| id_to_db(x.centre_id.0)).collect();
        let tokens: Vec<i32> = m
            .iter()
            .map(|x| i32::try_from(x.token_number).unwrap_or(i32::MAX))
            .collect();
        let ats: Vec<DateTime<Utc>> = m.iter().map(|x| x.at).collect();
        let done = exec(
            &tx,
            st,
            SQL_BOOKING_MOVE,
            &[&ids, &pools, &sessions, &slots, &centres, &tokens, &ats],
        )
        .await?;
        expect_rows(done, ids.len(), "booking move")?;
    }
    if !plan.bookings.is_empty() {
        let b = &plan.bookings;
        let ids: Vec<i64> = b.iter().map(|x| id_to_db(x.booking_id.0)).collect();
        let accounts: Vec<i64> = b.iter().map(|x| id_to_db(x.account_id.0)).collect();
        let beneficiaries: Vec<i64> = b.iter().map(|x| id_to_db(x.beneficiary_id.0)).collect();
        let keys: Vec<&[u8]> = b.iter().map(|x| x.person_key.0.as_slice()).collect();
        let states: Vec<i64> = b.iter().map(|x| id_to_db(x.state_id.0)).collect();
        let centres: Vec<i64> = b.iter().map(|x| id_to_db(x.centre_id.0)).collect();
        let sessions: Vec<i64> = b.iter().map(|x| id_to_db(x.session_id.0)).collect();
        let slots: Vec<i64> = b.iter().map(|x| id_to_db(x.slot_id.0)).collect();
        let pools: Vec<i64> = b.iter().map(|x| id_to_db(x.pool_id.0)).collect();
        let doses: Vec<i16> = b.iter().map(|x| i16::from(x.dose.number())).collect();
        let channels: Vec<&str> = b.iter().map(|x| x.channel.as_str()).collect();
        let statuses: Vec<&str> = b.iter().map(|x| x.status.as_str()).collect();
        let tokens: Vec<i32> = b
            .iter()
            .map(|x| i32::try_from(x.token_number).unwrap_or(i32::MAX))
            .collect();
        let created: Vec<DateTime<Utc>> = b.iter().map(|x| x.created_at).collect();
        let updated: Vec<DateTime<Utc>> = b.iter().map(|x| x.updated_at).collect();
        exec(
            &tx,
            st,
            SQL_BOOKINGS,
            &[
                &ids,
                &accounts,
                &beneficiaries,
                &keys,
                &states,
                &centres,
                &sessions,
                &slots,
                &pools,
                &doses,
                &channels,
                &statuses,
                &tokens,
                &created,
                &updated,
            ],
        )
        .await?;
    }
    if !plan.pool_deltas.is_empty() {
        let d = &plan.pool_deltas;
        let ids: Vec<i64> = d.iter().map(|x| id_to_db(x.pool_id.0)).collect();
        let booked: Vec<i32> = d
            .iter()
            .map(|x| delta_to_db(x.booked))
            .collect::<Result<_, _>>()?;
        let capacity: Vec<i32> = d
            .iter()
            .map(|x| delta_to_db(x.capacity))
            .collect::<Result<_, _>>()?;
        let done = exec(&tx, st, SQL_POOL_COUNTERS, &[&ids, &booked, &capacity]).await?;
        expect_rows(done, ids.len(), "pool counters")?;
    }
    if !plan.doses.is_empty() {
        let d = &plan.doses;
        let ids: Vec<i64> = d.iter().map(|x| id_to_db(x.beneficiary_id.0)).collect();
        let doses: Vec<i16> = d.iter().map(|x| i16::from(x.dose.number())).collect();
        let vaccines: Vec<&str> = d.iter().map(|x| x.vaccine.name()).collect();
        let batches: Vec<&str> = d.iter().map(|x| x.batch.as_str()).collect();
        let dates: Vec<NaiveDate> = d.iter().map(|x| x.date).collect();
        let centres: Vec<i64> = d.iter().map(|x| id_to_db(x.centre_id.0)).collect();
        let bookings: Vec<i64> = d.iter().map(|x| id_to_db(x.booking_id.0)).collect();
        let operators: Vec<i64> = d.iter().map(|x| id_to_db(x.operator_id.0)).collect();
        let ats: Vec<DateTime<Utc>> = d.iter().map(|x| x.administered_at).collect();
        exec(
            &tx,
            st,
            SQL_DOSES,
            &[
                &ids, &doses, &vaccines, &batches, &dates, &centres, &bookings, &operators, &ats,
            ],
        )
        .await?;
    }
    if !plan.idempotency.is_empty() {
        let r = &plan.idempotency;
        let accounts: Vec<i64> = r.iter().map(|x| scope_to_db(x.account_id)).collect();
        let keys: Vec<&str> = r.iter().map(|x| x.key.as_str()).collect();
        let hashes: Vec<&str> = r.iter().map(|x| x.request_hash.as_str()).collect();
        let statuses: Vec<i32> = r.iter().map(|x| i32::from(x.status)).collect();
        let responses: Vec<&serde_json::Value> = r.iter().map(|x| &x.response).collect();
        let created: Vec<DateTime<Utc>> = r.iter().map(|x| x.created_at).collect();
        exec(
            &tx,
            st,
            SQL_IDEMPOTENCY,
            &[&accounts, &keys, &hashes, &statuses, &responses, &created],
        )
        .await?;
    }
    if !plan.operator_keys.is_empty() {
        let k = &plan.operator_keys;
        let ids: Vec<i64> = k.iter().map(|x| id_to_db(x.operator_id.0)).collect();
        let hashes: Vec<&str> = k.iter().map(|x| x.key_hash.as_str()).collect();
        let roles: Vec<&str> = k.iter().map(|x| x.role.as_str()).collect();
        let centres: Vec<String> = k
            .iter()
            .map(|x| centres_to_pg_literal(&x.centres))
            .collect();
        let names: Vec<&str> = k.iter().map(|x| x.name.as_str()).collect();
        let created: Vec<DateTime<Utc>> = k.iter().map(|x| x.created_at).collect();
        exec(
            &tx,
            st,
            SQL_OPERATOR_KEYS,
            &[&ids, &hashes, &roles, &centres, &names, &created],
        )
        .await?;
    }
    if !plan.audit.is_empty() {
        let a = &plan.audit;
        let ids: Vec<i64> = a.iter().map(|x| id_to_db(x.audit_id)).collect();
        let ats: Vec<DateTime<Utc>> = a.iter().map(|x| x.at).collect();
        let operators: Vec<i64> = a.iter().map(|x| id_to_db(x.operator_id.0)).collect();
        let actions: Vec<&str> = a.iter().map(|x| x.action.as_str()).collect();
        let requests: Vec<&str> = a.iter().map(|x| x.request_id.as_str()).collect();
        let objects: Vec<&str> = a.iter().map(|x| x.object.as_str()).collect();
        let befores: Vec<&serde_json::Value> = a.iter().map(|x| &x.before).collect();
        let afters: Vec<&serde_json::Value> = a.iter().map(|x| &x.after).collect();
        exec(
            &tx,
            st,
            SQL_AUDIT,
            &[
                &ids, &ats, &operators, &actions, &requests, &objects, &befores, &afters,
            ],
        )
        .await?;
    }
    write_queue_rows(&tx, st, &plan).await?;
    let count = i32::try_from(events.len()).unwrap_or(i32::MAX);
    exec(
        &tx,
        st,
        SQL_BATCH,
        &[&id_to_db(batch_id.0), &id_to_db(epoch), &count],
    )
    .await?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        // The server refused the COMMIT (deferred constraint, serialization): rolled back.
        Err(e)
            if e.as_db_error().is_some_and(|db| {
                let code = db.code().code();
                code.starts_with("23") || code.starts_with("40")
            }) =>
        {
            Err(from_pg(&e))
        }
        // No answer, or the session was ended around it (e.g. terminated while waiting for a
        // synchronous standby, when the commit is already durable locally): in doubt.
        Err(_) => Err(StoreError::InDoubt),
    }
}

/// A large table the load reads: its query, how a row decodes, and how the rows are put in
/// order. The rows come from a sequential scan, nearly in id order, so sorting them here costs
/// far less than an index scan in key order in the database (a third as long for 10^6 pools).
struct Table<T> {
    sql: String,
    decode: fn(&Row) -> Result<T, StoreError>,
    sort: fn(&mut [T]),
}

impl<T> Table<T> {
    fn new(
        sql: impl Into<String>,
        decode: fn(&Row) -> Result<T, StoreError>,
        sort: fn(&mut [T]),
    ) -> Table<T> {
        Table {
            sql: sql.into(),
            decode,
            sort,
        }
    }

    async fn read(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<T>, StoreError> {
        let mut rows = stream_rows(tx, &self.sql, self.decode).await?;
        (self.sort)(&mut rows);
        Ok(rows)
    }
}

/// A task reading a table; dropped unread (the load failed elsewhere), it is stopped.
struct Reading<T>(tokio::task::JoinHandle<Result<Vec<T>, StoreError>>);

impl<T> Drop for Reading<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A large table of a load ([`PgStore::load_part`]): being read on a connection of its own, or
/// left for the loading connection.
enum LoadPart<T> {
    Reading(Reading<T>),
    Later(Table<T>),
}

impl<T> LoadPart<T> {
    /// The table's rows: what its task read, or read now in the loading transaction `tx`.
    async fn rows(self, tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<T>, StoreError> {
        match self {
            LoadPart::Reading(mut task) => (&mut task.0)
                .await
                .map_err(|_| StoreError::Unavailable("load task failed".into()))?,
            LoadPart::Later(table) => table.read(tx).await,
        }
    }
}

/// Reads every row of `sql` as a stream, decoding each as it arrives.
async fn stream_rows<T>(
    client: &tokio_postgres::Transaction<'_>,
    sql: &str,
    mut decode: impl FnMut(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let stream = client
        .query_raw(sql, std::iter::empty::<&(dyn ToSql + Sync)>())
        .await
        .map_err(|e| from_pg(&e))?;
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(row) = stream.try_next().await.map_err(|e| from_pg(&e))? {
        out.push(decode(&row)?);
    }
    Ok(out)
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|_| corrupt(column))
}

fn get_id(row: &Row, idx: usize, column: &str) -> Result<u64, StoreError> {
    id_from_db(get::<i64>(row, idx, column)?, column)
}

fn decode_slot(r: &Row) -> Result<Slot, StoreError> {
    Ok(Slot {
        slot_id: SlotId(get_id(r, 0, "slot_id")?),
        session_id: SessionId(get_id(r, 1, "session_id")?),
        start: get(r, 2, "start_hm")?,
        end: get(r, 3, "end_hm")?,
    })
}

fn decode_pool(r: &Row) -> Result<Pool, StoreError> {
    Ok(Pool {
        pool_id: PoolId(get_id(r, 0, "pool_id")?),
        session_id: SessionId(get_id(r, 1, "session_id")?),
        slot_id: SlotId(get_id(r, 2, "slot_id")?),
        dose: dose_from_db(i64::from(get::<i16>(r, 3, "dose")?))?,
        channel: channel_from_db(get(r, 4, "channel")?)?,
        capacity: u32_from_db(i64::from(get::<i32>(r, 5, "capacity")?), "capacity")?,
        booked: u32_from_db(i64::from(get::<i32>(r, 6, "booked")?), "booked")?,
    })
}

fn decode_account(r: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        account_id: AccountId(get_id(r, 0, "account_id")?),
        mobile: get(r, 1, "mobile")?,
        created_at: get(r, 2, "created_at")?,
    })
}

fn decode_beneficiary(r: &Row) -> Result<Beneficiary, StoreError> {
    Ok(Beneficiary {
        beneficiary_id: BeneficiaryId(get_id(r, 0, "beneficiary_id")?),
        account_id: AccountId(get_id(r, 1, "account_id")?),
        person_key: person_key_from_db(get(r, 2, "person_key")?)?,
        name: get(r, 3, "name")?,
        birth_year: u16_from_db(i64::from(get::<i16>(r, 4, "birth_year")?), "birth_year")?,
        gender: gender_from_db(get(r, 5, "gender")?)?,
        id_type: get(r, 6, "id_type")?,
        id_masked: get(r, 7, "id_masked")?,
        created_at: get(r, 8, "created_at")?,
    })
}

fn decode_booking(r: &Row) -> Result<Booking, StoreError> {
    Ok(Booking {
        booking_id: BookingId(get_id(r, 0, "booking_id")?),
        account_id: AccountId(get_id(r, 1, "account_id")?),
        beneficiary_id: BeneficiaryId(get_id(r, 2, "beneficiary_id")?),
        person_key: person_key_from_db(get(r, 3, "person_key")?)?,
        state_id: StateId(get_id(r, 4, "state_id")?),
        centre_id: CentreId(get_id(r, 5, "centre_id")?),
        session_id: SessionId(get_id(r, 6, "session_id")?),
        slot_id: SlotId(get_id(r, 7, "slot_id")?),
        pool_id: PoolId(get_id(r, 8, "pool_id")?),
        dose: dose_from_db(i64::from(get::<i16>(r, 9, "dose")?))?,
        channel: channel_from_db(get(r, 10, "channel")?)?,
        status: status_from_db(get(r, 11, "status")?)?,
        token_number: u32_from_db(
            i64::from(get::<i32>(r, 12, "token_number")?),
            "token_number",
        )?,
        created_at: get(r, 13, "created_at")?,
        updated_at: get(r, 14, "updated_at")?,
    })
}

fn sort_pools(rows: &mut [Pool]) {
    rows.sort_by_key(|p| p.pool_id);
}

fn sort_bookings(rows: &mut [Booking]) {
    rows.sort_by_key(|b| b.booking_id);
}

fn sort_beneficiaries(rows: &mut [Beneficiary]) {
    rows.sort_by_key(|b| b.beneficiary_id);
}

fn sort_accounts(rows: &mut [Account]) {
    rows.sort_by_key(|a| a.account_id);
}

fn sort_slots(rows: &mut [Slot]) {
    rows.sort_by_key(|s| s.slot_id);
}

fn sort_idempotency(rows: &mut [IdempotencyRecord]) {
    rows.sort_by(|a, b| (a.account_id, &a.key).cmp(&(b.account_id, &b.key)));
}

fn decode_idempotency(r: &Row) -> Result<IdempotencyRecord, StoreError> {
    Ok(IdempotencyRecord {
        account_id: AccountId(get_id(r, 0, "account_id")?),
        key: get(r, 1, "idem_key")?,
        request_hash: get(r, 2, "request_hash")?,
        status: u16::try_from(get::<i32>(r, 3, "status")?).map_err(|_| corrupt("status"))?,
        response: get(r, 4, "response")?,
        created_at: get(r, 5, "created_at")?,
    })
}

fn decode_operator_key(row: &Row) -> Result<OperatorKey, StoreError> {
    let centres: Vec<i64> = get(row, 3, "centres")?;
    Ok(OperatorKey {
        operator_id: OperatorId(get_id(row, 0, "operator_id")?),
        key_hash: get(row, 1, "key_hash")?,
        role: role_from_db(get(row, 2, "role")?)?,
        centres: centres
            .into_iter()
            .map(|c| id_from_db(c, "centres").map(CentreId))
            .collect::<Result<_, _>>()?,
        name: get(row, 4, "name")?,
        created_at: get(row, 5, "created_at")?,
    })
}

fn decode_audit(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        audit_id: get_id(row, 0, "audit_id")?,
        at: get(row, 1, "at")?,
        operator_id: OperatorId(get_id(row, 2, "operator_id")?),
        action: get(row, 3, "action")?,
        request_id: get(row, 4, "request_id")?,
        object: get(row, 5, "object")?,
        before: get(row, 6, "before")?,
        after: get(row, 7, "after")?,
    })
}

const SLOTS_SQL: &str = "SELECT slot_id, session_id, start_hm, end_hm FROM slots";
const POOLS_SQL: &str =
    "SELECT pool_id, session_id, slot_id, dose, channel, capacity, booked FROM pools";
const ACCOUNTS_SQL: &str = "SELECT account_id, mobile, created_at FROM accounts";
const BENEFICIARIES_SQL: &str =
    "SELECT beneficiary_id, account_id, person_key, name, birth_year, gender, id_type,
     id_masked, created_at FROM beneficiaries WHERE removed_at IS NULL";
const BOOKINGS_SQL: &str =
    "SELECT booking_id, account_id, beneficiary_id, person_key, state_id, centre_id,
     session_id, slot_id, pool_id, dose, channel, status, token_number, created_at,
     updated_at FROM bookings";
const IDEMPOTENCY_SQL: &str =
    "SELECT account_id, idem_key, request_hash, status, response, created_at FROM idempotency";
const OPERATOR_KEY_COLUMNS: &str = "operator_id, key_hash, role, centres, name, created_at";
const AUDIT_COLUMNS: &str = "audit_id, at, operator_id, action, request_id, object, before, after";

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&PG_MIGRATION_LOCK_KEY])
            .await
            .map_err(|e| from_pg(&e))?;
        let result = async {
            client
                .batch_execute(SCHEMA_MIGRATIONS_SQL)
                .await
                .map_err(|e| from_pg(&e))?;
            for (version, name, sql) in PG_MIGRATIONS {
                let tx = client.transaction().await.map_err(|e| from_pg(&e))?;
                let applied = tx
                    .query_opt(
                        "SELECT 1 FROM schema_migrations WHERE version = $1",
                        &[version],
                    )
                    .await
                    .map_err(|e| from_pg(&e))?
                    .is_some();
                if applied {
                    continue;
                }
                tx.batch_execute(sql)
                    .await
                    .map_err(|_| StoreError::Migration(format!("{version} {name}")))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at)
                     VALUES ($1, $2, now()::text)",
                    &[version, name],
                )
                .await
                .map_err(|e| from_pg(&e))?;
                tx.commit()
                    .await
                    .map_err(|_| StoreError::Migration(format!("{version} {name}")))?;
                tracing::info!(version, name, "store migration applied");
            }
            Ok::<(), StoreError>(())
        }
        .await;
        let unlock = client
            .execute("SELECT pg_advisory_unlock($1)", &[&PG_MIGRATION_LOCK_KEY])
            .await;
        result?;
        unlock.map_err(|e| from_pg(&e))?;
        Ok(())
    }

    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| from_pg(&e))?;
        // The large tables are read at once on connections of their own, each in this
        // transaction's snapshot (so together they are one consistent read); the rest here.
        let exported: String = tx
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| from_pg(&e))?
            .try_get(0)
            .map_err(|_| corrupt("snapshot"))?;
        if exported.is_empty() || !exported.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(corrupt("snapshot"));
        }
        let set = format!("SET TRANSACTION SNAPSHOT '{exported}'");
        // Records younger than their retention. The cutoff is a timestamp this process
        // formats, not input.
        let idempotency_sql = format!(
            "{IDEMPOTENCY_SQL} WHERE created_at >= '{}'::timestamptz",
            idempotency_cutoff(Utc::now()).to_rfc3339()
        );
        let (pools, bookings, beneficiaries, accounts, slots, idempotency) = tokio::join!(
            self.load_part(&set, Table::new(POOLS_SQL, decode_pool, sort_pools)),
            self.load_part(
                &set,
                Table::new(BOOKINGS_SQL, decode_booking, sort_bookings)
            ),
            self.load_part(
                &set,
                Table::new(BENEFICIARIES_SQL, decode_beneficiary, sort_beneficiaries)
            ),
            self.load_part(
                &set,
                Table::new(ACCOUNTS_SQL, decode_account, sort_accounts)
            ),
            self.load_part(&set, Table::new(SLOTS_SQL, decode_slot, sort_slots)),
            self.load_part(
                &set,
                Table::new(idempotency_sql, decode_idempotency, sort_idempotency)
            ),
        );
        let mut snap = Snapshot {
            states: stream_rows(
                &tx,
                "SELECT state_id, state_name, state_name_hi FROM states ORDER BY state_id",
                |r| {
                    Ok(State {
                        state_id: StateId(get_id(r, 0, "state_id")?),
                        state_name: get(r, 1, "state_name")?,
                        state_name_hi: get(r, 2, "state_name_hi")?,
                    })
                },
            )
            .await?,
            ..Snapshot::default()
        };
        snap.districts = stream_rows(
            &tx,
            "SELECT district_id, state_id, district_name, district_name_hi FROM districts
             ORDER BY district_id",
            |r| {
                Ok(District {
                    district_id: DistrictId(get_id(r, 0, "district_id")?),
                    state_id: StateId(get_id(r, 1, "state_id")?),
                    district_name: get(r, 2, "district_name")?,
                    district_name_hi: get(r, 3, "district_name_hi")?,
                })
            },
        )
        .await?;
        snap.centres = stream_rows(
            &tx,
            "SELECT centre_id, name, address, state_id, district_id, pincode, block_name, lat,
             long, fee_type, fee_rupees FROM centres ORDER BY centre_id",
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
                    fee_type: fee_from_db(get(r, 9, "fee_type")?)?,
                    fee_rupees: u32_from_db(i64::from(get::<i32>(r, 10, "fee_rupees")?), "fee")?,
                })
            },
        )
        .await?;
        snap.sessions = stream_rows(
            &tx,
            "SELECT session_id, centre_id, state_id, district_id, date, vaccine, min_age,
             max_age, opens_at, cancelled FROM sessions ORDER BY session_id",
            |r| {
                Ok(Session {
                    session_id: SessionId(get_id(r, 0, "session_id")?),
                    centre_id: CentreId(get_id(r, 1, "centre_id")?),
                    state_id: StateId(get_id(r, 2, "state_id")?),
                    district_id: DistrictId(get_id(r, 3, "district_id")?),
                    date: get(r, 4, "date")?,
                    vaccine: vaccine_from_db(get(r, 5, "vaccine")?)?,
                    min_age: u16_from_db(i64::from(get::<i16>(r, 6, "min_age")?), "min_age")?,
                    max_age: get::<Option<i16>>(r, 7, "max_age")?
                        .map(|a| u16_from_db(i64::from(a), "max_age"))
                        .transpose()?,
                    opens_at: get(r, 8, "opens_at")?,
                    cancelled: get(r, 9, "cancelled")?,
                })
            },
        )
        .await?;
        snap.doses = stream_rows(
            &tx,
            "SELECT beneficiary_id, dose, vaccine, batch, date, centre_id, booking_id,
             operator_id, administered_at FROM doses ORDER BY beneficiary_id, dose",
            |r| {
                Ok(DoseRecord {
                    beneficiary_id: BeneficiaryId(get_id(r, 0, "beneficiary_id")?),
                    dose: dose_from_db(i64::from(get::<i16>(r, 1, "dose")?))?,
                    vaccine: vaccine_from_db(get(r, 2, "vaccine")?)?,
                    batch: get(r, 3, "batch")?,
                    date: get(r, 4, "date")?,
                    centre_id: CentreId(get_id(r, 5, "centre_id")?),
                    booking_id: BookingId(get_id(r, 6, "booking_id")?),
                    operator_id: OperatorId(get_id(r, 7, "operator_id")?),
                    administered_at: get(r, 8, "administered_at")?,
                })
            },
        )
        .await?;
        snap.operator_keys = stream_rows(
            &tx,
            &format!(
                "SELECT {OPERATOR_KEY_COLUMNS} FROM operator_keys WHERE revoked_at IS NULL
                 ORDER BY operator_id"
            ),
            decode_operator_key,
        )
        .await?;
        snap.releases = stream_rows(
            &tx,
            "SELECT release_id, session_ids, opens_at, admit_per_s, pass_ttl_s, draw_nonce,
                    created_at, prequeue, cursor FROM releases ORDER BY release_id",
            |r| {
                let sessions: Vec<i64> = get(r, 1, "session_ids")?;
                Ok(ReleaseState {
                    release: Release {
                        release_id: ReleaseId(get_id(r, 0, "release_id")?),
                        session_ids: sessions
                            .into_iter()
                            .map(|s| id_from_db(s, "session_ids").map(SessionId))
                            .collect::<Result<_, _>>()?,
                        opens_at: get(r, 2, "opens_at")?,
                        admit_per_s: get::<Option<i32>>(r, 3, "admit_per_s")?
                            .map(|v| u32::try_from(v).map_err(|_| corrupt("admit_per_s")))
                            .transpose()?,
                        pass_ttl_s: u32::try_from(get::<i32>(r, 4, "pass_ttl_s")?)
                            .map_err(|_| corrupt("pass_ttl_s"))?,
                        draw_nonce: get(r, 5, "draw_nonce")?,
                        created_at: get(r, 6, "created_at")?,
                    },
                    prequeue: get::<Option<i32>>(r, 7, "prequeue")?
                        .map(|v| u32::try_from(v).map_err(|_| corrupt("prequeue")))
                        .transpose()?,
                    cursor: u32::try_from(get::<i32>(r, 8, "cursor")?)
                        .map_err(|_| corrupt("cursor"))?,
                })
            },
        )
        .await?;
        snap.queue_tickets = stream_rows(
            &tx,
            "SELECT release_id, idx, account_id, created_at FROM queue_tickets
             ORDER BY release_id, idx",
            |r| {
                Ok(QueueTicket {
                    release_id: ReleaseId(get_id(r, 0, "release_id")?),
                    index: u32::try_from(get::<i32>(r, 1, "idx")?).map_err(|_| corrupt("idx"))?,
                    account_id: AccountId(get_id(r, 2, "account_id")?),
                    created_at: get(r, 3, "created_at")?,
                })
            },
        )
        .await?;
        snap.queue_admissions = stream_rows(
            &tx,
            "SELECT release_id, idx, expires_at FROM queue_admissions ORDER BY release_id, idx",
            |r| {
                Ok(QueueAdmission {
                    release_id: ReleaseId(get_id(r, 0, "release_id")?),
                    index: u32::try_from(get::<i32>(r, 1, "idx")?).map_err(|_| corrupt("idx"))?,
                    expires_at: get(r, 2, "expires_at")?,
                })
            },
        )
        .await?;
        let maxima = tx
            .query_one(
                "SELECT (SELECT coalesce(max(audit_id), 0) FROM audit),
                        (SELECT coalesce(max(batch_id), 0) FROM batches),
                        (SELECT coalesce(max(beneficiary_id), 0) FROM beneficiaries)",
                &[],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        snap.audit_id_max = get_id(&maxima, 0, "audit_id")?;
        snap.batch_id_max = get_id(&maxima, 1, "batch_id")?;
        snap.beneficiary_id_max = get_id(&maxima, 2, "beneficiary_id")?;
        snap.pools = pools.rows(&tx).await?;
        snap.bookings = bookings.rows(&tx).await?;
        snap.beneficiaries = beneficiaries.rows(&tx).await?;
        snap.accounts = accounts.rows(&tx).await?;
        snap.slots = slots.rows(&tx).await?;
        snap.idempotency = idempotency.rows(&tx).await?;
        tx.commit().await.map_err(|e| from_pg(&e))?;
        Ok(snap)
    }

    async fn acquire_epoch(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "UPDATE leader SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
                &[],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        get_id(&row, 0, "epoch")
    }

    async fn commit(
        &self,
        batch_id: BatchId,
        epoch: u64,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut guard = self.commit_conn.lock().await;
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = Some(self.open_commit_conn().await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(StoreError::Unavailable("no commit connection".into()));
        };
        self.set_in_flight(batch_id, Some(conn.pid));
        let result = write_batch(conn, batch_id, epoch, events).await;
        // An in-doubt commit keeps its pid registered: `abort_commit` must end that backend
        // before anyone reads the outcome back.
        if !matches!(result, Err(StoreError::InDoubt)) {
            self.set_in_flight(batch_id, None);
        }
        // After anything but a clean refusal, start the next batch on a new connection
        // (the old one may be terminated or mid-way through a lost transaction).
        if matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::InDoubt | StoreError::Timeout)
        ) {
            *guard = None;
        }
        result
    }

    async fn abort_commit(&self, batch_id: BatchId) -> Result<(), StoreError> {
        let pid = self
            .in_flight
            .lock()
            .ok()
            .and_then(|map| map.get(&batch_id).copied());
        let Some(pid) = pid else {
            return Ok(());
        };
        let client = self.client().await?;
        client
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .map_err(|e| from_pg(&e))?;
        tracing::warn!(batch_id = batch_id.0, "store commit backend terminated");
        for _ in 0..TERMINATE_WAIT_ROUNDS {
            let alive = client
                .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .await
                .map_err(|e| from_pg(&e))?
                .is_some();
            if !alive {
                self.set_in_flight(batch_id, None);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(TERMINATE_WAIT_STEP_MS)).await;
        }
        Err(StoreError::Unavailable(
            "commit backend still running".into(),
        ))
    }

    async fn batch_committed(&self, batch_id: BatchId, epoch: u64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT 1 FROM batches WHERE batch_id = $1 AND epoch = $2",
                &[&id_to_db(batch_id.0), &id_to_db(epoch)],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        Ok(row.is_some())
    }

    async fn audit_after(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit.min(AUDIT_PAGE_MAX)).unwrap_or(0);
        let rows = client
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE audit_id > $1
                     ORDER BY audit_id LIMIT $2"
                ),
                &[&id_to_db(after_id), &limit],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        rows.iter().map(decode_audit).collect()
    }

    async fn operator_key_by_hash(&self, hash: &str) -> Result<Option<OperatorKey>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {OPERATOR_KEY_COLUMNS} FROM operator_keys
                     WHERE key_hash = $1 AND revoked_at IS NULL"
                ),
                &[&hash],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        row.as_ref().map(decode_operator_key).transpose()
    }

    async fn create_operator_key(&self, key: &OperatorKey) -> Result<OperatorKey, StoreError> {
        let client = self.client().await?;
        let centres = centres_to_pg_literal(&key.centres);
        let row = client
            .query_one(
                "INSERT INTO operator_keys (operator_id, key_hash, role, centres, name, created_at)
                 SELECT COALESCE(MAX(operator_id), 0) + 1, $1, $2, $3::text::bigint[], $4, $5
                 FROM operator_keys
                 RETURNING operator_id",
                &[
                    &key.key_hash,
                    &key.role.as_str(),
                    &centres,
                    &key.name,
                    &key.created_at,
                ],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        let id: i64 = row.get(0);
        let mut stored = key.clone();
        stored.operator_id = OperatorId(u64::try_from(id).unwrap_or(0));
        Ok(stored)
    }

    async fn revoke_operator_key(
        &self,
        id: OperatorId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE operator_keys SET revoked_at = COALESCE(revoked_at, $2)
                 WHERE operator_id = $1",
                &[&id_to_db(id.0), &at],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        Ok(n > 0)
    }

    async fn revoked_operator_keys(&self) -> Result<Vec<OperatorId>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT operator_id FROM operator_keys WHERE revoked_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        rows.iter()
            .map(|r| Ok(OperatorId(get_id(r, 0, "operator_id")?)))
            .collect()
    }

    async fn secret_check(&self, name: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT check_value FROM secret_checks WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn record_secret_check(
        &self,
        name: &str,
        check_value: &str,
    ) -> Result<String, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO secret_checks (name, check_value) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &check_value],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        let row = client
            .query_one(
                "SELECT check_value FROM secret_checks WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        Ok(row.get(0))
    }

    async fn holds_people(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM accounts) OR EXISTS (SELECT 1 FROM beneficiaries)",
                &[],
            )
            .await
            .map_err(|e| from_pg(&e))?;
        Ok(row.get(0))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| from_pg(&e))?;
        Ok(())
    }

    async fn prune_idempotency(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM idempotency WHERE created_at < $1",
                &[&older_than],
            )
            .await
            .map_err(|e| from_pg(&e))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

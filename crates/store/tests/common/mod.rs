//! Shared test harness: a fresh PostgreSQL database per test (dropped by a guard, even on
//! failure) and a fresh SQLite file per test.
#![allow(clippy::unwrap_used, dead_code)]

use kataar_store::{PgOptions, PgStore, SqliteStore, Store};
use std::sync::Arc;

/// The maintenance database tests create their databases from.
pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// A fresh database, dropped when this guard is.
pub struct PgDb {
    pub name: String,
    pub url: String,
    /// The role the database belongs to, when it is not `postgres` (dropped after it).
    role: Option<String>,
}

async fn admin(sql: &str) {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

impl PgDb {
    pub async fn create() -> PgDb {
        let name = format!("kataar_test_{:016x}", rand::random::<u64>());
        admin(&format!("CREATE DATABASE {name}")).await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        PgDb {
            name,
            url,
            role: None,
        }
    }

    /// A fresh database owned by a fresh role (not a superuser) that may hold at most
    /// `connections` connections at once; `url` connects as that role.
    pub async fn create_with_connection_limit(connections: u32) -> PgDb {
        let name = format!("kataar_test_{:016x}", rand::random::<u64>());
        let role = format!("{name}_owner");
        admin(&format!(
            "CREATE ROLE {role} LOGIN CONNECTION LIMIT {connections}"
        ))
        .await;
        admin(&format!("CREATE DATABASE {name} OWNER {role}")).await;
        let url = format!("postgres://{role}@127.0.0.1:5432/{name}");
        PgDb {
            name,
            url,
            role: Some(role),
        }
    }

    pub async fn store(&self) -> Arc<PgStore> {
        Arc::new(
            PgStore::connect(&self.url, PgOptions::default())
                .await
                .unwrap(),
        )
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let role = self.role.clone();
        // A fresh thread with its own runtime: Drop may run inside a runtime or after it.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls).await
                {
                    let task = tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    if let Some(role) = role {
                        let _ = client
                            .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
                            .await;
                    }
                    drop(client);
                    let _ = task.await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub async fn sqlite_store() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("kataar.db"))
        .await
        .unwrap();
    (dir, Arc::new(store))
}

/// Erases the concrete type.
pub fn dyn_store<S: Store>(s: Arc<S>) -> Arc<dyn Store> {
    s
}

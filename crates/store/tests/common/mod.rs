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
}

impl PgDb {
    pub async fn create() -> PgDb {
        let name = format!("kataar_test_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        PgDb { name, url }
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

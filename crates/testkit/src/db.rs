//! Fresh databases for tests.

use std::sync::Arc;

use refloop_store::SqlStore;
use sqlx::{Connection, PgConnection};

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use.
pub fn postgres_base_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own for one test: dropped (file or schema) when the value is dropped.
pub struct TestDb {
    pub backend: Backend,
    /// A URL that `refloop --database` and [`SqlStore::connect`] accept.
    pub url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn random_suffix() -> String {
    refloop_app::new_id("t").replace('_', "")
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("refloop.db").display());
                TestDb { backend, url, schema: None, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let base = postgres_base_url();
                let schema = format!("refloop_{}", random_suffix());
                let mut conn = PgConnection::connect(&base).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for this test and is unreachable at {base}: {e}. \
                         Start it (see .ci/run) or set TEST_POSTGRES_URL."
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .expect("create a test schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                TestDb { backend, url, schema: Some(schema), _dir: None }
            }
        }
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Arc<SqlStore> {
        let store = SqlStore::connect(&self.url).await.expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        Arc::new(store)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Drop the schema on a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&postgres_base_url()).await {
                        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                    }
                });
            }
        })
        .join();
    }
}

/// SQLite's own check of a database file (`PRAGMA integrity_check`): "ok" when sound.
pub async fn sqlite_integrity(url: &str) -> String {
    use sqlx::sqlite::SqliteConnectOptions;
    let options: SqliteConnectOptions = url.parse().expect("a SQLite URL");
    let mut conn = sqlx::SqliteConnection::connect_with(&options.read_only(true)).await.expect("open the database");
    let rows: Vec<String> =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.expect("PRAGMA integrity_check");
    rows.join("; ")
}

//! The migrations: both dialects end with the same schema, the status a `migrate --check`
//! reads, and processes that start at once.

use std::collections::{BTreeMap, BTreeSet};

use refloop_store::SqlStore;
use refloop_testkit::{Backend, TestDb};
use sqlx::{Connection, Row};

/// Table → (its columns, its indexes as `name(col, …)`), constraint indexes left out.
type Schema = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

async fn sqlite_schema(url: &str) -> Schema {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for table in tables {
        let columns: BTreeSet<String> = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("name"))
            .collect();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL",
        )
        .bind(&table)
        .fetch_all(&mut c)
        .await
        .unwrap();
        let mut indexes = BTreeSet::new();
        for name in names {
            let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_info({name})")))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<Option<String>, _>("name").unwrap_or_else(|| "(expression)".into()))
                .collect();
            indexes.insert(format!("{name}({})", cols.join(", ")));
        }
        schema.insert(table, (columns, indexes));
    }
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let mut schema = Schema::new();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for r in columns {
        schema.entry(r.get("t")).or_default().0.insert(r.get("c"));
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS t, i.relname::text AS i,
                array_to_string(array(SELECT coalesce(a.attname::text, '(expression)')
                    FROM unnest(x.indkey) WITH ORDINALITY k(n, o)
                    LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
                    ORDER BY k.o), ', ') AS cols
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
         WHERE t.relnamespace = current_schema()::regnamespace AND t.relname <> '_sqlx_migrations'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for r in indexes {
        let (name, cols): (String, String) = (r.get("i"), r.get("cols"));
        schema.entry(r.get("t")).or_default().1.insert(format!("{name}({cols})"));
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_end_with_the_same_tables_columns_and_indexes() {
    let (lite, pg) = (TestDb::new(Backend::Sqlite).await, TestDb::new(Backend::Postgres).await);
    lite.store().await;
    pg.store().await;
    let (a, b) = (sqlite_schema(&lite.url).await, postgres_schema(&pg.url).await);
    assert!(a.len() > 20, "the schema was read: {:?}", a.keys());
    let patients = &b["patients"];
    assert!(
        patients.0.contains("birth_date") && patients.1.contains("patients_by_birth_date(birth_date)"),
        "{patients:?}"
    );
    for table in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        assert_eq!(a.get(table), b.get(table), "table {table}: SQLite (left) and PostgreSQL (right) differ");
    }
}

async fn status_runs_through(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = SqlStore::connect(&db.url).await.unwrap();
    let before = store.migration_status().await.unwrap();
    assert_eq!(before.applied, None);
    assert_eq!(before.pending.len() as i64, refloop_store::schema_version());
    assert_eq!(before.pending[0], "0001 init");
    assert!(!before.up_to_date());

    store.migrate().await.unwrap();
    let after = store.migration_status().await.unwrap();
    assert!(after.up_to_date(), "{after:?}");
    assert_eq!(after.applied, Some(refloop_store::schema_version()));

    // A newer release applied a migration this binary does not know: still starts (expand only).
    let blob = if backend == Backend::Sqlite { "X'00'" } else { "'\\x00'::bytea" };
    store
        .execute_raw(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from a newer release', TRUE, {blob}, 1)"
        ))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let newer = store.migration_status().await.unwrap();
    assert_eq!((newer.up_to_date(), newer.unknown), (true, vec![9999]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_status_lists_what_is_pending_and_accepts_a_newer_schema() {
    status_runs_through(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_status_lists_what_is_pending_and_accepts_a_newer_schema() {
    status_runs_through(Backend::Postgres).await
}

/// Four processes start at once on one empty PostgreSQL schema: they take turns (advisory
/// lock), every one starts, and each migration ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_processes_starting_at_once_migrate_one_at_a_time() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        starts.push(tokio::spawn(async move {
            let store = SqlStore::connect(&url).await.unwrap();
            store.migrate().await
        }));
    }
    for start in starts {
        start.await.unwrap().expect("every process starts");
    }
    let store = SqlStore::connect(&db.url).await.unwrap();
    let runs = store.execute_raw("UPDATE _sqlx_migrations SET success = success").await.unwrap();
    assert_eq!(runs as i64, refloop_store::schema_version(), "each migration recorded once");
    assert!(store.migration_status().await.unwrap().up_to_date());
}

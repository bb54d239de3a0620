//! What the benchmarks share: a fresh SQLite file, and a fresh PostgreSQL schema when
//! `BENCH_POSTGRES_URL` is set.

use std::future::Future;

use refloop_store::SqlStore;

/// Runs `bench(label, url)` on SQLite, then on PostgreSQL if configured.
pub async fn on_each_backend<F, Fut>(bench: F)
where
    F: Fn(&'static str, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    // BENCH_SQLITE_DIR keeps the SQLite file there for a look afterwards.
    let path = match (std::env::var("BENCH_SQLITE_FILE"), std::env::var("BENCH_SQLITE_DIR")) {
        (Ok(f), _) => std::path::PathBuf::from(f),
        (_, Ok(d)) => std::path::PathBuf::from(d).join(format!("bench-{}.db", std::process::id())),
        _ => dir.path().join("bench.db"),
    };
    bench("sqlite", format!("sqlite://{}", path.display())).await;
    if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
        // BENCH_POSTGRES_SCHEMA keeps that schema (and what is in it) for the next run.
        let kept = std::env::var("BENCH_POSTGRES_SCHEMA").ok();
        let schema = kept.clone().unwrap_or_else(|| format!("refloop_bench_{}", std::process::id()));
        let admin = SqlStore::connect(&base).await.expect("connect to PostgreSQL");
        if kept.is_none() {
            admin.execute_raw(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.expect("drop schema");
        }
        admin.execute_raw(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await.expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        bench("postgres", format!("{base}{sep}options=-c%20search_path%3D{schema}")).await;
        if kept.is_none() {
            admin.execute_raw(&format!("DROP SCHEMA {schema} CASCADE")).await.expect("drop schema");
        }
    }
}

-- Data backfills that run once, after the schema migrations, and are recorded here (a name
-- per backfill), so that start-up never repeats work that grows with history.
CREATE TABLE data_migrations (
    name TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

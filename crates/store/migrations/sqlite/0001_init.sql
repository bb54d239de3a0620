-- refloop schema, SQLite dialect. Instants are INTEGER epoch milliseconds (UTC).

CREATE TABLE patients (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    phone         TEXT,
    sms_consent   INTEGER NOT NULL,
    sms_opted_out INTEGER NOT NULL,
    time_zone     TEXT,
    updated_at    INTEGER NOT NULL
);

-- The referral projection: query columns plus the whole referral as JSON (`doc`).
CREATE TABLE referrals (
    id                 TEXT PRIMARY KEY,
    version            INTEGER NOT NULL,
    state              TEXT NOT NULL,
    patient_id         TEXT NOT NULL,
    referring_provider TEXT NOT NULL,
    specialty          TEXT,
    urgency            TEXT NOT NULL,
    origin             TEXT NOT NULL,
    network            TEXT NOT NULL,
    duplicate_of       TEXT,
    tracked            INTEGER NOT NULL,
    ordered_at         INTEGER NOT NULL,
    stage_due_at       INTEGER,
    updated_at         INTEGER NOT NULL,
    doc                TEXT NOT NULL
);
CREATE INDEX referrals_by_order ON referrals (ordered_at DESC, id DESC);
CREATE INDEX referrals_by_patient ON referrals (patient_id, specialty, ordered_at);
CREATE INDEX referrals_by_state ON referrals (state, ordered_at);
CREATE INDEX referrals_by_due ON referrals (stage_due_at);

-- The append-only event log.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    version     INTEGER NOT NULL,
    type        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    source      TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX events_by_referral ON events (referral_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- Durable timers, armed for a referral version.
CREATE TABLE timers (
    id            TEXT PRIMARY KEY,
    referral_id   TEXT NOT NULL REFERENCES referrals (id),
    kind          TEXT NOT NULL,
    due_at        INTEGER NOT NULL,
    armed_version INTEGER NOT NULL
);
CREATE INDEX timers_by_due ON timers (due_at);
CREATE INDEX timers_by_referral ON timers (referral_id);

-- The transactional outbox.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL REFERENCES referrals (id),
    patient_id      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    key             TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_by_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_referral ON outbox (referral_id);

-- The staff worklist.
CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    referral_id  TEXT NOT NULL REFERENCES referrals (id),
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    assignee     TEXT,
    due_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER,
    outcome      TEXT
);
CREATE INDEX tasks_by_status ON tasks (status, due_at);
CREATE INDEX tasks_by_referral ON tasks (referral_id);

CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    remote        TEXT
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

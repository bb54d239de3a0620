-- refloop schema, PostgreSQL dialect. Instants are BIGINT epoch milliseconds (UTC).

CREATE TABLE patients (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    phone         TEXT,
    sms_consent   BOOLEAN NOT NULL,
    sms_opted_out BOOLEAN NOT NULL,
    time_zone     TEXT,
    updated_at    BIGINT NOT NULL
);

-- The referral projection: query columns plus the whole referral as JSON (`doc`).
CREATE TABLE referrals (
    id                 TEXT PRIMARY KEY,
    version            BIGINT NOT NULL,
    state              TEXT NOT NULL,
    patient_id         TEXT NOT NULL,
    referring_provider TEXT NOT NULL,
    specialty          TEXT,
    urgency            TEXT NOT NULL,
    origin             TEXT NOT NULL,
    network            TEXT NOT NULL,
    duplicate_of       TEXT,
    tracked            BOOLEAN NOT NULL,
    ordered_at         BIGINT NOT NULL,
    stage_due_at       BIGINT,
    updated_at         BIGINT NOT NULL,
    doc                TEXT NOT NULL
);
CREATE INDEX referrals_by_order ON referrals (ordered_at DESC, id DESC);
CREATE INDEX referrals_by_patient ON referrals (patient_id, specialty, ordered_at);
CREATE INDEX referrals_by_state ON referrals (state, ordered_at);
CREATE INDEX referrals_by_due ON referrals (stage_due_at);

-- The append-only event log.
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    referral_id TEXT NOT NULL REFERENCES referrals (id),
    version     BIGINT NOT NULL,
    type        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    source      TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX events_by_referral ON events (referral_id, seq);
CREATE FUNCTION refloop_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'events are append-only'; END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
FOR EACH ROW EXECUTE FUNCTION refloop_events_append_only();

-- Durable timers, armed for a referral version.
CREATE TABLE timers (
    id            TEXT PRIMARY KEY,
    referral_id   TEXT NOT NULL REFERENCES referrals (id),
    kind          TEXT NOT NULL,
    due_at        BIGINT NOT NULL,
    armed_version BIGINT NOT NULL
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
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT,
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
    due_at       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT,
    outcome      TEXT
);
CREATE INDEX tasks_by_status ON tasks (status, due_at);
CREATE INDEX tasks_by_referral ON tasks (referral_id);

CREATE TABLE audit_log (
    seq           BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
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
    created_at BIGINT NOT NULL
);

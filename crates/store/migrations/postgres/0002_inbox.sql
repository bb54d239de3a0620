-- Inbound messages (raw, with outcome and the ACK we gave) and the source keys that
-- identify referrals (placer / referral numbers).

CREATE TABLE inbox (
    id           TEXT PRIMARY KEY,
    protocol     TEXT NOT NULL,
    source       TEXT NOT NULL,
    control_id   TEXT NOT NULL,
    transport    TEXT NOT NULL,
    message_type TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    raw          BYTEA NOT NULL,
    status       TEXT NOT NULL,
    ack          BYTEA,
    error        TEXT,
    referral_id  TEXT,
    attempts     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (protocol, source, control_id)
);
CREATE INDEX inbox_by_status ON inbox (status, received_at);

CREATE TABLE referral_keys (
    key         TEXT PRIMARY KEY,
    referral_id TEXT NOT NULL REFERENCES referrals (id)
);
CREATE INDEX referral_keys_by_referral ON referral_keys (referral_id);

-- What the reports aggregate, one narrow row per referral beside its projection, written in
-- the same transaction: the dashboard groups these in the database instead of reading documents.
CREATE TABLE referral_stats (
    ordered_at  BIGINT NOT NULL,
    id          TEXT NOT NULL,
    tracked     SMALLINT NOT NULL,
    specialty   TEXT,
    provider    TEXT NOT NULL,
    specialist  TEXT,
    network     TEXT NOT NULL,
    urgency     TEXT NOT NULL,
    -- reach, leak stage and escalation in one small number (see refloop_app::ReferralStats::code)
    code        SMALLINT NOT NULL,
    leak_reason TEXT,
    -- 0–7 from the id: rows with sample < 2 are a fixed one-in-four sample of the referrals
    sample      SMALLINT NOT NULL,
    m_notify    BIGINT,
    m_schedule  BIGINT,
    m_attend    BIGINT,
    m_note      BIGINT,
    m_total     BIGINT,
    PRIMARY KEY (ordered_at, id)
);

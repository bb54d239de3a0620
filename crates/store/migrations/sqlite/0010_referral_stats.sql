-- What the reports aggregate, one narrow row per referral beside its projection, written in
-- the same transaction: the dashboard groups these in the database instead of reading documents.
CREATE TABLE referral_stats (
    ordered_at  INTEGER NOT NULL,
    id          TEXT NOT NULL,
    tracked     INTEGER NOT NULL,
    specialty   TEXT,
    provider    TEXT NOT NULL,
    specialist  TEXT,
    network     TEXT NOT NULL,
    urgency     TEXT NOT NULL,
    -- reach, leak stage and escalation in one small number (see refloop_app::ReferralStats::code)
    code        INTEGER NOT NULL,
    leak_reason TEXT,
    -- 0–7 from the id: rows with sample < 2 are a fixed one-in-four sample of the referrals
    sample      INTEGER NOT NULL,
    m_notify    INTEGER,
    m_schedule  INTEGER,
    m_attend    INTEGER,
    m_note      INTEGER,
    m_total     INTEGER,
    PRIMARY KEY (ordered_at, id)
) WITHOUT ROWID;

-- The report's days at each stage come, above 50,000 referrals in a period, from the fixed
-- one-in-four sample (sample < 2): this index holds just those rows with what the span
-- histograms read, so each span reads a quarter of the period from the index alone.
CREATE INDEX referral_stats_sample ON referral_stats
    (ordered_at, tracked, sample, specialty, m_notify, m_schedule, m_attend, m_note, m_total) WHERE sample < 2;

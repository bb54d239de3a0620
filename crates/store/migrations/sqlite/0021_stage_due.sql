-- Maturity: beside each report row, when its referral's current stage runs out of time (the
-- projection's stage_due_at; NULL once the referral has ended). An open referral is "in
-- progress" until then and has leaked only after. Filled once from the projections here.
ALTER TABLE referral_stats ADD COLUMN stage_due INTEGER;
UPDATE referral_stats SET stage_due = (
    SELECT r.stage_due_at FROM referrals r WHERE r.id = referral_stats.id
);

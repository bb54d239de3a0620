-- Talking with patients: a staff reply's text (the workflow's own messages are rendered from
-- the practice's templates when sent, so they keep none), and the inbound texts of a referral.
ALTER TABLE outbox ADD COLUMN body TEXT;
CREATE INDEX inbox_by_referral ON inbox (referral_id, received_at);

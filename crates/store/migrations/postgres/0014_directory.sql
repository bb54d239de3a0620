-- The directory as staff keep it: whether the specialist takes 360X closed-loop referrals,
-- and the link patients book with.
ALTER TABLE specialists ADD COLUMN accepts_360x BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE specialists ADD COLUMN booking_url TEXT;

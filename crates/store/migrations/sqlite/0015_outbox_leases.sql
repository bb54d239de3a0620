-- Leases per item: a claim writes its token on each row, and only the holder of the token
-- records the item's outcome (compare-and-set). An attempt is marked before the connector is
-- called, so an item whose sender died before that goes back to `pending`; one whose attempt
-- had started becomes `unconfirmed` and the provider is asked before anything is resent
-- (`check_first`), from `first_attempt_at` on.
ALTER TABLE outbox ADD COLUMN lease_token TEXT;
ALTER TABLE outbox ADD COLUMN attempt_started_at INTEGER;
ALTER TABLE outbox ADD COLUMN first_attempt_at INTEGER;
ALTER TABLE outbox ADD COLUMN check_first INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_by_lease ON outbox (status, lease_until);

-- One row that /readyz writes while a write has lately failed: it answers ready again only
-- once the database takes a write.
CREATE TABLE write_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);

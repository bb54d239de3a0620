-- Audit rows are hash-chained: a sealer gives each new row, in turn, its place in the chain
-- (chain_pos), the hash of the row before it and its own hash. A row can be sealed once and
-- never changed or deleted after (the retention purge lifts the delete trigger inside its own
-- transaction and records where the chain now starts in audit_anchor).
ALTER TABLE audit_log ADD COLUMN chain_pos INTEGER;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_by_chain ON audit_log (chain_pos);
CREATE INDEX audit_unsealed ON audit_log (seq) WHERE hash IS NULL;
CREATE INDEX audit_by_at ON audit_log (at);

CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    chain_pos INTEGER NOT NULL,
    hash      TEXT NOT NULL,
    purged_at INTEGER NOT NULL
);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log
WHEN OLD.hash IS NOT NULL OR NEW.hash IS NULL
    OR NEW.seq IS NOT OLD.seq OR NEW.at IS NOT OLD.at OR NEW.actor IS NOT OLD.actor
    OR NEW.action IS NOT OLD.action OR NEW.resource_type IS NOT OLD.resource_type
    OR NEW.resource_id IS NOT OLD.resource_id OR NEW.remote IS NOT OLD.remote
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;

-- The specialist directory: where note requests go, and how fresh that contact data is.
CREATE TABLE specialists (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    specialties    TEXT NOT NULL,
    network        TEXT NOT NULL,
    phone          TEXT,
    fax            TEXT,
    direct_address TEXT,
    last_verified  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX specialists_by_name ON specialists (name);

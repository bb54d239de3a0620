-- Durable positions of pollers (e.g. the FHIR pull's _lastUpdated per resource type).
CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

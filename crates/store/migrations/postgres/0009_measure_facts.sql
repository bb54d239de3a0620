-- What quality measures (CMS50) read from the EHR: encounters, procedures, referral orders and
-- consultant-report tasks, one row per FHIR resource (Type/id), replaced when it is resent.
CREATE TABLE measure_facts (
    key        TEXT PRIMARY KEY,
    patient    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX measure_facts_by_patient ON measure_facts (patient);

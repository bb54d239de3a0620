-- Patients as people on staff pages: date of birth, preferred language, and a search key
-- (the name lower-cased with accents folded, after a leading space so a word's start is
-- " word"). Rows written before this get a plain lower-case key until next updated.
ALTER TABLE patients ADD COLUMN birth_date TEXT;
ALTER TABLE patients ADD COLUMN language TEXT;
ALTER TABLE patients ADD COLUMN name_key TEXT;
UPDATE patients SET name_key = ' ' || lower(name) WHERE name IS NOT NULL;

-- Referring providers' names, from HL7 (PRD-2, ORC-12, OBR-16, PV1-8) and FHIR
-- (Practitioner, PractitionerRole, ServiceRequest.requester.display).
CREATE TABLE providers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

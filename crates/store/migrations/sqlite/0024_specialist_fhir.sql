-- A specialist's FHIR endpoint: the first rung of the note-request ladder (a CDex-style Task
-- asking for the consult note), when the directory knows one.
ALTER TABLE specialists ADD COLUMN fhir_base TEXT;

-- A patient's phone number as it came (e.g. "(937)555-0101" in HL7 PID-13), for staff to see;
-- `phone` holds what refloop reads from it (E.164 when it can take a text).
ALTER TABLE patients ADD COLUMN phone_text TEXT;

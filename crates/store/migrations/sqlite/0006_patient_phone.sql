-- Inbound SMS are matched to patients by their phone number.
CREATE INDEX patients_by_phone ON patients (phone);

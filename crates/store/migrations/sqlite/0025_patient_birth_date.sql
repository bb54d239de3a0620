-- A note whose patient identifier finds no one is offered to a person with the referrals of
-- the patients born that day whose name matches: looked up by birth date.
CREATE INDEX patients_by_birth_date ON patients (birth_date);

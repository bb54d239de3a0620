-- Enhanced mode: the application acknowledgement sent after the accept acknowledgement.
ALTER TABLE inbox ADD COLUMN application_ack BLOB;

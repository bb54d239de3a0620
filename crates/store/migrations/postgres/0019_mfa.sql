-- A second factor (TOTP, RFC 6238) per user: the secret once confirmed, the one being
-- enrolled, and the last time step used (a code is taken once). Recovery codes are kept as
-- SHA-256 hashes, each usable once. A session may wait for the second factor or for an
-- enrolment before it reaches any page (stage 'mfa' or 'enrol'; 'full' otherwise).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
CREATE TABLE recovery_codes (
    username TEXT NOT NULL REFERENCES users (username),
    hash     TEXT NOT NULL,
    used_at  BIGINT,
    PRIMARY KEY (username, hash)
);
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'full';

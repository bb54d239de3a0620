-- Failed sign-ins in a row per user, and the lockout they lead to (lifted by an admin or
-- when it runs out).
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until BIGINT;

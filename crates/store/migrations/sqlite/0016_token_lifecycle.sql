-- API tokens expire (by default a year after they are made), record when they were last used
-- (to the minute) and can be revoked; a revoked or expired token is refused.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;

-- Single sign-on (OpenID Connect). A user who signs in through the practice's identity
-- provider is kept with source 'oidc' and no usable password; a sign-in under way keeps its
-- PKCE verifier and nonce here (by a hash of its state) until the provider sends the browser
-- back, so any process may finish it.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
CREATE TABLE sso_pending (
    state_hash TEXT PRIMARY KEY,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    next       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

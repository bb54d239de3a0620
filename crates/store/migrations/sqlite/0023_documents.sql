-- Documents that came in (a Direct message's C-CDA and PDF parts, an inbound fax): content
-- with its media type, SHA-256 and size, the inbound message it came in, and its filing —
-- unfiled (in Unfiled documents), filed on a referral (as its consult note or another
-- document) or dismissed with a reason. Retention empties the content of settled ones.

CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    inbox_id    TEXT,
    source      TEXT NOT NULL,
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    status      TEXT NOT NULL,
    referral_id TEXT,
    role        TEXT,
    settled_by  TEXT,
    settled_at  INTEGER,
    reason      TEXT,
    content     BLOB NOT NULL
);
CREATE INDEX documents_by_status ON documents (status, received_at);
CREATE INDEX documents_by_referral ON documents (referral_id);
CREATE INDEX documents_by_inbox ON documents (inbox_id);

-- A worklist made for a shift: call attempts, the outcome's note, and each task's history
-- (claimed, reassigned, tried again, completed with its outcome) for the referral's timeline.
ALTER TABLE tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN note TEXT;
CREATE INDEX tasks_by_completed ON tasks (completed_at);

CREATE TABLE task_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    referral_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    assignee    TEXT,
    outcome     TEXT,
    note        TEXT
);
CREATE INDEX task_log_by_referral ON task_log (referral_id, seq);

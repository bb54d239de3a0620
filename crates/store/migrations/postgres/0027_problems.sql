-- Operational problems (a channel failing, dead letters piling, a poller stuck, the disk
-- nearly full): one row per problem, opened and cleared by one process at a time, so that
-- people are told once when it starts and once when it clears.
CREATE TABLE problems (
    name TEXT PRIMARY KEY,
    detail TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    cleared_at BIGINT
);

-- A worklist task may concern an inbound message (the review queue).
ALTER TABLE tasks ADD COLUMN inbox_id TEXT;

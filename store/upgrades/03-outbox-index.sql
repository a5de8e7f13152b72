-- v2 -> v3: An index that serves the outbox's delivery query
-- Unsent reads the undelivered messages in the order they were queued
-- (rowid); an index on created_at no longer served it, and every delivery
-- pass scanned the whole outbox, sent rows included.
DROP INDEX outbox_unsent_idx;
CREATE INDEX outbox_unsent_idx ON outbox (sent_at) WHERE sent_at IS NULL;

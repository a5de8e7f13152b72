-- v9 -> v10: When the last send of a queued message started
-- sending_at (unix ms; 0: never tried) is written before each send. A
-- message found unsent after a restart with a recent sending_at may still be
-- in flight at the homeserver, which deduplicates a repeated transaction id
-- only once the first request has finished: its next try waits for that.
ALTER TABLE outbox ADD COLUMN sending_at BIGINT NOT NULL DEFAULT 0;

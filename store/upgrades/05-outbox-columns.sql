-- v4 -> v5: The outbox says what it holds, and paces its retries
-- Until v4 the kind of a queued message and what it belonged to were only
-- prefixes of its key ("ack:$event", "welcome:12", "notice:$event:0"),
-- parsed back by the bot and by SQL (key NOT LIKE 'ack:%'). The key stays
-- the idempotency key and the Matrix transaction id; these columns are what
-- is read:
--   kind          what the message is (ack, reply, welcome, revoked, ...)
--   request_id    the access request it reports on (welcomes and decisions)
--   regarding     the event it answers (a question, an announcement, a command)
--   recipient     the person it is for, when it is for one person
--   next_attempt  when it may be tried again (unix ms; 0: at once): retries
--                 are paced per message, with exponential backoff
--   given_up_at   when guichet stopped trying (a permanent error, or too
--                 many attempts); the people concerned were told
--   dm_requested_at  when a direct-message room was asked for it (unix ms;
--                 0: never): if the answer was lost, a retry looks for that
--                 room (its creation content names the message) before
--                 creating another
--   dm_created    the direct-message room opened for it, recorded before the
--                 invite: a retry reuses it instead of creating another
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN request_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN regarding TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN next_attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN given_up_at BIGINT;
ALTER TABLE outbox ADD COLUMN dm_requested_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN dm_created TEXT NOT NULL DEFAULT '';

-- Existing rows: the kind is the key's prefix; the request or event comes
-- from the rest of the key ("notice:$event:0" and "after:$event:0" end with
-- an index, cut at the last colon).
-- only: sqlite
UPDATE outbox SET kind = substr(key, 1, instr(key, ':') - 1) WHERE instr(key, ':') > 1;
-- only: postgres
UPDATE outbox SET kind = substr(key, 1, strpos(key, ':') - 1) WHERE strpos(key, ':') > 1;
UPDATE outbox SET request_id = CAST(substr(key, length(kind) + 2) AS INTEGER)
    WHERE kind IN ('welcome', 'waitlisted', 'rejected', 'revoked');
UPDATE outbox SET regarding = substr(key, length(kind) + 2)
    WHERE kind IN ('ack', 'reply', 'cmd', 'undecryptable', 'queue') AND substr(key, length(kind) + 2) LIKE '$%';
UPDATE outbox SET regarding = rtrim(rtrim(substr(key, length(kind) + 2), '0123456789'), ':')
    WHERE kind IN ('notice', 'after') AND substr(key, length(kind) + 2) LIKE '$%';
UPDATE outbox SET regarding = reply_to WHERE regarding = '' AND reply_to <> '';
UPDATE outbox SET recipient = dm_user WHERE dm_user <> '';
-- v4 gave up after 20 attempts and left the row: it stays given up.
UPDATE outbox SET given_up_at = created_at WHERE sent_at IS NULL AND attempts >= 20;

-- The delivery query reads the rows due now, and for each the earlier
-- pending rows of its room (order is kept per room).
DROP INDEX outbox_unsent_idx;
CREATE INDEX outbox_unsent_idx ON outbox (room_id, dm_user) WHERE sent_at IS NULL AND given_up_at IS NULL;
CREATE INDEX outbox_due_idx ON outbox (next_attempt) WHERE sent_at IS NULL AND given_up_at IS NULL;

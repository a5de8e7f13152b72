-- v5 -> v6: A question's side effects are keyed by the question
-- What handling a question changes outside its final transaction, recorded
-- under the question's event id so that a replay after a stop or a crash
-- continues it instead of doing it again:
--   admitted_at     when the per-agent limits counted it (unix ms; 0: not
--                   counted, or given back): a replay does not count it again
--   placeholder_at  when the send of its placeholder started (unix ms; 0:
--                   never): if the event id below is missing, the send may
--                   have reached the homeserver, and a replay looks for it in
--                   the room before sending another
--   placeholder     the placeholder's event id, once known: a replay edits it
CREATE TABLE question (
    event_id       TEXT   PRIMARY KEY,
    room_id        TEXT   NOT NULL,
    user_id        TEXT   NOT NULL,
    admitted_at    BIGINT NOT NULL DEFAULT 0,
    placeholder_at BIGINT NOT NULL DEFAULT 0,
    placeholder    TEXT   NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL
);

-- The question a call to Albert was made for: the usage of a question is
-- written in the transaction that finishes it, once.
ALTER TABLE usage_ledger ADD COLUMN question TEXT NOT NULL DEFAULT '';

-- An encrypted event recorded before its Megolm key arrived: the session it
-- waits for ('' once decrypted). It is decrypted when the key arrives, at
-- start-up, or its sender is asked to send it again after a timeout.
ALTER TABLE inbox ADD COLUMN waiting_session TEXT NOT NULL DEFAULT '';
CREATE INDEX inbox_waiting_idx ON inbox (waiting_session) WHERE waiting_session <> '';

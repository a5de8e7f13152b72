-- v0 -> v1: Initial guichet schema
CREATE TABLE access_request (
    id           INTEGER PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'waitlisted', 'approved', 'active', 'rejected', 'revoked')),
    renewal      BOOLEAN NOT NULL DEFAULT false,
    room_id      TEXT    NOT NULL DEFAULT '',
    event_id     TEXT    NOT NULL DEFAULT '',
    reason       TEXT    NOT NULL DEFAULT '',
    decided_by   TEXT    NOT NULL DEFAULT '',
    decided_at   BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL
);
-- At most one open request per person: a new one only after rejection or revocation.
CREATE UNIQUE INDEX access_request_open_idx ON access_request (user_id) WHERE status NOT IN ('rejected', 'revoked');
CREATE INDEX access_request_user_idx ON access_request (user_id, id);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         BIGINT  NOT NULL,
    actor      TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    request_id INTEGER,
    action     TEXT    NOT NULL,
    reason     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_target_idx ON audit_log (target, at);

CREATE TABLE consent (
    user_id        TEXT   NOT NULL,
    policy_version TEXT   NOT NULL,
    accepted_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, policy_version)
);

-- Every incoming event guichet acts on, recorded before acting: a replayed
-- sync finds it here and is ignored; work cut by a crash is resumed.
CREATE TABLE inbox (
    event_id    TEXT   PRIMARY KEY,
    room_id     TEXT   NOT NULL,
    sender      TEXT   NOT NULL,
    event_json  TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    done_at     BIGINT
);
CREATE INDEX inbox_pending_idx ON inbox (received_at) WHERE done_at IS NULL;

-- Messages to people, written in the same transaction as the change they
-- report and delivered once (the key doubles as the Matrix transaction id).
CREATE TABLE outbox (
    key         TEXT    PRIMARY KEY,
    room_id     TEXT    NOT NULL DEFAULT '',
    dm_user     TEXT    NOT NULL DEFAULT '',
    reply_to    TEXT    NOT NULL DEFAULT '',
    replaces    TEXT    NOT NULL DEFAULT '',
    msgtype     TEXT    NOT NULL,
    markdown    TEXT    NOT NULL,
    mentions    TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    sent_at     BIGINT,
    event_id    TEXT    NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_unsent_idx ON outbox (created_at) WHERE sent_at IS NULL;

CREATE TABLE dm_room (
    user_id    TEXT   PRIMARY KEY,
    room_id    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dm_room_room_idx ON dm_room (room_id);

CREATE TABLE conversation_turn (
    id       INTEGER PRIMARY KEY,
    room_id  TEXT    NOT NULL,
    user_id  TEXT    NOT NULL,
    role     TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content  TEXT    NOT NULL,
    event_id TEXT    NOT NULL DEFAULT '',
    at       BIGINT  NOT NULL
);
CREATE INDEX conversation_turn_room_idx ON conversation_turn (room_id, id);

CREATE TABLE setting (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX outbox_event_idx ON outbox (event_id) WHERE event_id <> '';
CREATE INDEX access_request_status_idx ON access_request (status, id);
CREATE INDEX access_request_event_idx ON access_request (event_id) WHERE event_id <> '';

-- Where each DM's current conversation starts (after !reset or a long silence).
CREATE TABLE conversation (
    room_id    TEXT   PRIMARY KEY,
    started_at BIGINT NOT NULL
);

-- Per-agent choices, e.g. the model picked with !modele.
CREATE TABLE agent_pref (
    user_id TEXT PRIMARY KEY,
    model   TEXT NOT NULL DEFAULT ''
);

-- One row per call to Albert: what it cost and how it went.
CREATE TABLE usage_ledger (
    id                INTEGER PRIMARY KEY,
    user_id           TEXT    NOT NULL,
    room_id           TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    estimated         BOOLEAN NOT NULL,
    latency_ms        BIGINT  NOT NULL,
    outcome           TEXT    NOT NULL,
    at                BIGINT  NOT NULL
);
CREATE INDEX usage_ledger_user_idx ON usage_ledger (user_id, at);
CREATE INDEX conversation_turn_event_idx ON conversation_turn (event_id) WHERE event_id <> '';

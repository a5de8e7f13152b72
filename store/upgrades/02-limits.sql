-- v1 -> v2: Rate limits and quotas
-- Each agent's counters for the per-agent limits (package ratelimit): the
-- per-minute token bucket and today's use. A restart changes nothing.
CREATE TABLE limit_state (
    user_id         TEXT    PRIMARY KEY,
-- only: sqlite
    bucket          REAL    NOT NULL CHECK (bucket >= 0), -- questions in the bucket at refilled_at
-- only: postgres
    bucket          DOUBLE PRECISION NOT NULL CHECK (bucket >= 0),
    refilled_at     BIGINT  NOT NULL,
    day             TEXT    NOT NULL,                     -- YYYY-MM-DD in limits.timezone
    messages        BIGINT  NOT NULL DEFAULT 0 CHECK (messages >= 0),
    tokens          BIGINT  NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    warned_messages BOOLEAN NOT NULL DEFAULT false,
    warned_tokens   BOOLEAN NOT NULL DEFAULT false
);

-- Limits a moderator set for one agent (!quota @agent ...); 0 keeps the default.
CREATE TABLE limit_override (
    user_id             TEXT    PRIMARY KEY,
    messages_per_minute BIGINT  NOT NULL DEFAULT 0 CHECK (messages_per_minute >= 0),
    messages_per_day    BIGINT  NOT NULL DEFAULT 0 CHECK (messages_per_day >= 0),
    tokens_per_day      BIGINT  NOT NULL DEFAULT 0 CHECK (tokens_per_day >= 0),
    set_at              BIGINT  NOT NULL
);

-- v3 -> v4: Per-minute limits that hold over any 60 seconds
-- The times of each agent's questions admitted in the last minute (package
-- ratelimit): with messages_per_minute N, a question is admitted only while
-- fewer than N of these lie in the 60 seconds before it. limit_state's bucket
-- stays for limits.per_user.burst, which now only spaces questions out.
CREATE TABLE limit_admission (
    user_id TEXT   NOT NULL REFERENCES limit_state (user_id) ON DELETE CASCADE,
    at      BIGINT NOT NULL -- unix ms, rounded up
);
CREATE INDEX limit_admission_user_idx ON limit_admission (user_id, at);

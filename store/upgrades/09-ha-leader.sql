-- v8 -> v9: The takeover counter of the hot standby
-- One row (id 1) when ha.enabled: the leader's takeover counter (epoch),
-- bumped by each process that takes the leadership lock, who it is and
-- since when (unix ms). A leader compares its own epoch with this one before
-- each send (the fence): once another process took over, it sends nothing.
CREATE TABLE ha_leader (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT  NOT NULL,
    holder TEXT    NOT NULL,
    since  BIGINT  NOT NULL
);

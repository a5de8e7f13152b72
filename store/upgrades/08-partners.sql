-- v7 -> v8: Partner access: requests and usage name their partner
-- A partner is an administration with its own Albert key, limits and cap
-- (config partners:); '' is the default profile. An agent's partner is the
-- first whose globs match their user id; it is recorded on their requests
-- (caps and waitlists are per partner) and on every call in the usage
-- ledger (billing), with what Albert said the call cost:
--   cost     euros
--   kwh      energy, kWh (the upper bound when Albert gives a range)
--   kgco2eq  emissions, kgCO2eq (likewise)
ALTER TABLE access_request ADD COLUMN partner TEXT NOT NULL DEFAULT '';
CREATE INDEX access_request_partner_idx ON access_request (partner, status);

ALTER TABLE usage_ledger ADD COLUMN partner TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_ledger ADD COLUMN cost DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN kwh DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN kgco2eq DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX usage_ledger_partner_idx ON usage_ledger (partner, at);

-- Which account a connection reached, and which account each flow's state belongs to. When a
-- connection's fingerprint changes (another base URL, client id, API key or install), every
-- flow of it starts a new baseline; `account_changed_at` says when that last happened.
ALTER TABLE connections ADD COLUMN account_fingerprint text;
ALTER TABLE connections ADD COLUMN account_changed_at timestamptz;
ALTER TABLE flow_states ADD COLUMN account_fingerprint text;

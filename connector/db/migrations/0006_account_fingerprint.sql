-- Which account a connection reached, and which account each flow's state belongs to. When a
-- connection's fingerprint changes (another base URL, client id, API key or install), every
-- flow of it starts a new baseline; `account_changed_at` says when that last happened.
ALTER TABLE connections ADD COLUMN account_fingerprint text;
ALTER TABLE connections ADD COLUMN account_changed_at timestamptz;
ALTER TABLE flow_states ADD COLUMN account_fingerprint text;
-- Installs made before this have an install id already: it is their fingerprint (the form
-- of connector.accounts.of_install). Flow-file connections take theirs at the next start.
UPDATE connections SET account_fingerprint = 'install|' || install_id
 WHERE source = 'app_install' AND install_id IS NOT NULL;

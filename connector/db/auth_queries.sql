-- Connections, tokens and OAuth states: the provider layer's queries.

-- name: connection_ensure
INSERT INTO connections (id, provider) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING;

-- name: connection_upsert_config
-- A config connection whose credentials changed is active again: the operator fixed them.
INSERT INTO connections (id, provider, source, scopes, credentials)
VALUES ($1, $2, 'config', $3, $4)
ON CONFLICT (id) DO UPDATE
   SET provider = EXCLUDED.provider,
       scopes = EXCLUDED.scopes,
       credentials = EXCLUDED.credentials,
       status = CASE WHEN $5 THEN 'active' ELSE connections.status END,
       status_reason = CASE WHEN $5 THEN NULL ELSE connections.status_reason END,
       updated_at = now();

-- name: connection_get
SELECT id, provider, source, status, install_id, account_id, scopes, credentials, status_reason
  FROM connections WHERE id = $1;

-- name: connection_mark_needs_reauth
UPDATE connections SET status = 'needs_reauth', status_reason = $2, updated_at = now()
 WHERE id = $1 AND status = 'active'
RETURNING id;

-- name: token_lock
-- Serialises token refreshes of one connection across processes, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('connector.token'), hashtext($1));

-- name: token_get
SELECT c.status, t.access_token, t.refresh_token, t.expires_at, t.version
  FROM connections c LEFT JOIN tokens t ON t.connection_id = c.id
 WHERE c.id = $1;

-- name: token_store
INSERT INTO tokens (connection_id, access_token, refresh_token, expires_at, refreshed_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (connection_id) DO UPDATE
   SET access_token = EXCLUDED.access_token,
       refresh_token = EXCLUDED.refresh_token,
       expires_at = EXCLUDED.expires_at,
       refreshed_at = EXCLUDED.refreshed_at,
       version = tokens.version + 1
RETURNING version;

-- name: token_delete
DELETE FROM tokens WHERE connection_id = $1;

-- name: install_upsert
-- An app install becomes a connection; installing again reactivates the same one. An id
-- held by the flow file or by another account is not taken over: nothing is returned.
INSERT INTO connections (id, provider, source, status, install_id, account_id, scopes, credentials)
VALUES ($1, $2, 'app_install', 'active', $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE
   SET status = 'active',
       status_reason = NULL,
       install_id = EXCLUDED.install_id,
       account_id = EXCLUDED.account_id,
       scopes = EXCLUDED.scopes,
       credentials = EXCLUDED.credentials,
       updated_at = now()
 WHERE connections.source = 'app_install'
   AND connections.provider = EXCLUDED.provider
   AND connections.account_id = EXCLUDED.account_id
RETURNING id;

-- name: install_find
SELECT id, provider, status, account_id FROM connections WHERE install_id = $1;

-- name: install_purge_poll_lease
-- First: a poll of the install that is committing holds this row (lease_check_for_commit), so
-- the purge waits for it and then deletes what it wrote; a poll that commits later finds its
-- lease gone and commits nothing.
DELETE FROM leases WHERE resource = 'poll:' || $1;

-- name: install_purge_snapshots
DELETE FROM snapshot_items
 WHERE flow_name IN (SELECT flow_name FROM flow_states WHERE connection_id = $1);

-- name: install_purge_deliveries
-- Every state: delivered and dead ones hold subscriber data in their attempts too.
DELETE FROM deliveries WHERE connection_id = $1;

-- name: install_purge_events
DELETE FROM events WHERE connection_id = $1;

-- name: install_purge_cursors
DELETE FROM flow_states WHERE connection_id = $1;

-- name: install_purge_poll_runs
DELETE FROM poll_runs WHERE connection_id = $1;

-- name: install_purge_connection
DELETE FROM connections WHERE id = $1;

-- name: oauth_state_insert
-- Nothing is inserted (and nothing returned) once the app has $6 states pending.
INSERT INTO oauth_states (state, app, code_verifier, redirect_uri, expires_at)
SELECT $1, $2, $3, $4, $5
 WHERE (SELECT count(*) FROM oauth_states WHERE app = $2) < $6
RETURNING state;

-- name: oauth_state_take
-- One-time: taking a state deletes it, whether or not it is still valid.
DELETE FROM oauth_states WHERE state = $1 RETURNING app, code_verifier, redirect_uri, expires_at;

-- name: oauth_state_prune
DELETE FROM oauth_states WHERE expires_at < $1;

-- name: installs_active
SELECT id FROM connections
 WHERE source = 'app_install' AND status = 'active' AND left(id, length($1) + 1) = $1 || '-'
 ORDER BY id;

-- name: connection_account_record
-- The old fingerprint comes back only when one was stored and it differs; under the row lock
-- a second worker loading the same change finds it already made and gets nothing back.
UPDATE connections c
   SET account_fingerprint = $2,
       account_changed_at = CASE WHEN old.fingerprint IS NULL THEN c.account_changed_at
                                 ELSE now() END,
       updated_at = now()
  FROM (SELECT account_fingerprint AS fingerprint FROM connections WHERE id = $1 FOR UPDATE) old
 WHERE c.id = $1 AND c.account_fingerprint IS DISTINCT FROM $2
RETURNING old.fingerprint;

-- name: rotation_tokens
SELECT connection_id, access_token, refresh_token FROM tokens ORDER BY connection_id;

-- name: rotation_token_update
-- Only if the row still holds what was read: a refresh in between has already re-encrypted.
UPDATE tokens SET access_token = $2, refresh_token = $3
 WHERE connection_id = $1 AND access_token = $4
   AND refresh_token IS NOT DISTINCT FROM $5;

-- name: rotation_token_forget
-- A token no key opens is useless: drop it, so the next call fetches a new one.
DELETE FROM tokens WHERE connection_id = $1 AND access_token = $2;

-- name: rotation_credentials
SELECT id, credentials FROM connections WHERE credentials IS NOT NULL ORDER BY id;

-- name: rotation_credentials_update
UPDATE connections SET credentials = $2 WHERE id = $1 AND credentials = $3;

-- Named queries of the poll engine: leases, flow state, snapshot diff, events, poll runs.

-- name: lease_acquire
-- Free, expired, or already ours: take it (or extend it). Otherwise nothing is returned.
INSERT INTO leases AS l (resource, owner, acquired_at, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (resource) DO UPDATE
   SET owner = EXCLUDED.owner,
       acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at
                          ELSE EXCLUDED.acquired_at END,
       expires_at = EXCLUDED.expires_at
 WHERE l.owner = EXCLUDED.owner OR l.expires_at <= EXCLUDED.acquired_at
RETURNING owner;

-- name: lease_renew
UPDATE leases SET expires_at = $3
 WHERE resource = $1 AND owner = $2 AND expires_at > $4
RETURNING expires_at;

-- name: lease_release
DELETE FROM leases WHERE resource = $1 AND owner = $2;

-- name: lease_holder
SELECT owner, expires_at FROM leases WHERE resource = $1;

-- name: lease_check_for_commit
-- Taken inside the commit transaction: a worker whose lease lapsed must not commit.
SELECT owner, expires_at FROM leases WHERE resource = $1 FOR UPDATE;

-- name: flow_state_get
SELECT flow_name, connection_id, trigger_type, state_key, cursor, baseline_done, last_error,
       account_fingerprint
  FROM flow_states WHERE flow_name = $1;

-- name: flow_state_save
INSERT INTO flow_states AS f
       (flow_name, connection_id, trigger_type, state_key, cursor, baseline_done, last_error,
        account_fingerprint, updated_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, now())
ON CONFLICT (flow_name) DO UPDATE
   SET connection_id = EXCLUDED.connection_id,
       account_fingerprint = EXCLUDED.account_fingerprint,
       trigger_type = EXCLUDED.trigger_type,
       state_key = EXCLUDED.state_key,
       cursor = EXCLUDED.cursor,
       baseline_done = EXCLUDED.baseline_done,
       last_error = EXCLUDED.last_error,
       updated_at = now();

-- name: flow_state_set_error
-- Only the error moves: a failed poll leaves the cursor and baseline as they were.
INSERT INTO flow_states AS f (flow_name, connection_id, trigger_type, state_key, last_error)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (flow_name) DO UPDATE
   SET last_error = EXCLUDED.last_error, updated_at = now();

-- name: poll_run_insert
INSERT INTO poll_runs
       (flow_name, connection_id, worker, started_at, finished_at, requests, items_seen,
        events_created, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id;

-- name: events_insert
INSERT INTO events (id, flow_name, connection_id, trigger_type, item_key, payload, source,
                    occurred_at)
SELECT e.id, $1, $2, $3, e.item_key, e.payload::jsonb, $4, e.occurred_at
  FROM unnest($5::text[], $6::text[], $7::text[], $8::timestamptz[])
       AS e (id, item_key, payload, occurred_at)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: deliveries_insert
INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type, connection_id)
SELECT d.id, d.event_id, $1, d.action_index, d.action_type, d.connection_id
  FROM unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[])
       AS d (id, event_id, action_index, action_type, connection_id)
ON CONFLICT DO NOTHING;

-- name: event_counts_for_keys
-- How many events a flow already holds per item key: numbers the occurrences of a change
-- (a subscriber who leaves and joins again joins twice).
SELECT item_key, count(*)::int AS n FROM events
 WHERE flow_name = $1 AND item_key = ANY($2::text[])
 GROUP BY item_key;

-- name: snapshot_incoming_create
-- seq numbers the rows in the order the API listed them (COPY fills it in that order).
CREATE TEMP TABLE IF NOT EXISTS snapshot_incoming (
    item_key    text NOT NULL,
    fingerprint text NOT NULL,
    payload     text,
    seq         bigserial
);

-- name: snapshot_incoming_truncate
TRUNCATE snapshot_incoming;

-- name: snapshot_incoming_analyze
ANALYZE snapshot_incoming;

-- name: snapshot_incoming_drop
DROP TABLE IF EXISTS snapshot_incoming;

-- name: snapshot_incoming_read
-- start: all on a snapshot: the newest $1 by the payload field $2 (null: the list has no
-- order, so the first $1 as listed), returned oldest first.
SELECT kind, item_key, fingerprint, previous, payload FROM (
    SELECT kind, item_key, fingerprint, previous, payload, rank, seq FROM (
        SELECT DISTINCT ON (item_key) 'added' AS kind, item_key, fingerprint,
               NULL AS previous, payload,
               CASE WHEN jsonb_typeof(payload::jsonb -> $2) = 'number'
                    THEN (payload::jsonb ->> $2)::numeric END AS rank, seq
          FROM snapshot_incoming ORDER BY item_key, seq DESC
    ) latest
    ORDER BY rank DESC NULLS LAST, seq LIMIT $1
) chosen
ORDER BY rank NULLS FIRST, seq;

-- name: snapshot_clear
DELETE FROM snapshot_items WHERE flow_name = $1;

-- name: snapshot_insert_all
INSERT INTO snapshot_items (flow_name, item_key, fingerprint)
SELECT DISTINCT ON (item_key) $1, item_key, fingerprint FROM snapshot_incoming
ON CONFLICT (flow_name, item_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint;

-- name: snapshot_delta_create
CREATE TEMP TABLE IF NOT EXISTS snapshot_delta (
    kind        text NOT NULL,
    item_key    text NOT NULL,
    fingerprint text,
    previous    text,
    payload     text
);

-- name: snapshot_delta_truncate
TRUNCATE snapshot_delta;

-- name: snapshot_fingerprints
-- A flow's stored snapshot, up to a limit (a short list diffed in memory before its commit).
SELECT item_key, fingerprint FROM snapshot_items WHERE flow_name = $1 LIMIT $2;

-- name: snapshot_delta_fill
-- One full join of the incoming list against the stored snapshot: everything that differs.
INSERT INTO snapshot_delta (kind, item_key, fingerprint, previous, payload)
SELECT CASE WHEN s.item_key IS NULL THEN 'added'
            WHEN i.item_key IS NULL THEN 'removed'
            ELSE 'changed' END,
       coalesce(i.item_key, s.item_key), i.fingerprint, s.fingerprint, i.payload
  FROM snapshot_incoming i
  FULL JOIN (SELECT item_key, fingerprint FROM snapshot_items WHERE flow_name = $1) s
    ON s.item_key = i.item_key
 WHERE s.item_key IS NULL OR i.item_key IS NULL OR s.fingerprint <> i.fingerprint;

-- name: snapshot_apply_removed
DELETE FROM snapshot_items s
 USING snapshot_delta d
 WHERE s.flow_name = $1 AND d.kind = 'removed' AND s.item_key = d.item_key;

-- name: snapshot_apply_added
INSERT INTO snapshot_items (flow_name, item_key, fingerprint)
SELECT DISTINCT ON (item_key) $1, item_key, fingerprint FROM snapshot_delta WHERE kind = 'added'
ON CONFLICT (flow_name, item_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint;

-- name: snapshot_apply_changed
UPDATE snapshot_items s SET fingerprint = d.fingerprint
  FROM (SELECT DISTINCT ON (item_key) item_key, fingerprint FROM snapshot_delta
         WHERE kind = 'changed') d
 WHERE s.flow_name = $1 AND s.item_key = d.item_key;

-- name: snapshot_delta_page
-- Keyset pages, so that the engine can write events between two reads.
SELECT DISTINCT ON (item_key) kind, item_key, fingerprint, previous, payload
  FROM snapshot_delta WHERE item_key > $1 ORDER BY item_key, kind LIMIT $2;

-- name: poll_start
-- The start of a poll in one round trip. Takes the poll lease $1 for $2 (now $3, until $4)
-- as lease_acquire does, unless a sibling poll of the same worker holds it already ($7
-- false) or the connection $6 waits for re-authorisation; and reads the flow $5's state and
-- the connection's status and account. The reads see the database as the statement began:
-- the lease's holder is the one this poll could not displace (or, if it took the lease, the
-- one it displaced).
WITH connection AS (
    SELECT status, account_fingerprint FROM connections WHERE id = $6::text
), taken AS (
    INSERT INTO leases AS l (resource, owner, acquired_at, expires_at)
    SELECT $1::text, $2::text, $3::timestamptz, $4::timestamptz
     WHERE $7::boolean
       AND NOT EXISTS (SELECT 1 FROM connection WHERE status = 'needs_reauth')
    ON CONFLICT (resource) DO UPDATE
       SET owner = EXCLUDED.owner,
           acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at
                              ELSE EXCLUDED.acquired_at END,
           expires_at = EXCLUDED.expires_at
     WHERE l.owner = EXCLUDED.owner OR l.expires_at <= EXCLUDED.acquired_at
    RETURNING owner
)
SELECT EXISTS (SELECT 1 FROM taken) AS taken,
       (SELECT owner FROM leases WHERE resource = $1::text) AS holder,
       c.status AS connection_status,
       c.account_fingerprint AS connection_account,
       f.flow_name IS NOT NULL AS has_state,
       f.connection_id, f.trigger_type, f.state_key, f.cursor, f.baseline_done, f.last_error,
       f.account_fingerprint
  FROM (SELECT 1) AS one
  LEFT JOIN connection c ON true
  LEFT JOIN flow_states f ON f.flow_name = $5::text;

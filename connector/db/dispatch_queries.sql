-- Named queries of the dispatcher, the delivery log and replay.

-- name: dispatch_claim_lock
-- Claims are serialised (they are short) so that per-flow limits and ordering hold across
-- workers; SKIP LOCKED still keeps a claim from waiting on rows being finished.
SELECT pg_advisory_xact_lock(7391001);

-- name: dispatch_claim
-- $1 owner, $2 now, $3 lease expiry, $4 batch size,
-- $5 flow names, $6 per-flow concurrency, $7 per-flow ordered flag.
WITH flows AS (
    SELECT f.flow_name, f.max_running, f.ordered,
           f.max_running - (SELECT count(*) FROM deliveries r
                             WHERE r.flow_name = f.flow_name AND r.state = 'running') AS room
      FROM unnest($5::text[], $6::int[], $7::bool[]) AS f (flow_name, max_running, ordered)
), candidates AS (
    SELECT c.id, c.next_attempt_at, c.seq
      FROM flows f
      CROSS JOIN LATERAL (
          SELECT d.id, d.next_attempt_at, d.seq FROM deliveries d
           WHERE d.flow_name = f.flow_name AND d.state = 'pending' AND d.next_attempt_at <= $2
             -- A provider action runs on the worker that owns its connection (the 'own:'
             -- lease of connector/ownership.py), so one rate limiter speaks for the account.
             AND (d.connection_id IS NULL OR NOT EXISTS (
                      SELECT 1 FROM leases l
                       WHERE l.resource = 'own:' || d.connection_id
                         AND l.owner <> $1 AND l.expires_at > $2))
             -- A connection whose credentials were refused holds its deliveries until new
             -- ones make it active again (they would only fail on the same 401).
             AND (d.connection_id IS NULL OR NOT EXISTS (
                      SELECT 1 FROM connections cn
                       WHERE cn.id = d.connection_id AND cn.status = 'needs_reauth'))
           ORDER BY d.next_attempt_at, d.seq
           LIMIT greatest(least(f.room, $4), 0)
      ) c
     WHERE NOT f.ordered
    UNION ALL
    -- An ordered flow runs only its oldest unfinished delivery, and only when none runs.
    SELECT h.id, h.next_attempt_at, h.seq
      FROM flows f
      CROSS JOIN LATERAL (
          SELECT d.id, d.state, d.next_attempt_at, d.seq, d.connection_id FROM deliveries d
           WHERE d.flow_name = f.flow_name AND d.state IN ('pending', 'running')
           ORDER BY d.seq
           LIMIT 1
      ) h
     WHERE f.ordered AND h.state = 'pending' AND h.next_attempt_at <= $2
       AND (h.connection_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM leases l
                 WHERE l.resource = 'own:' || h.connection_id
                   AND l.owner <> $1 AND l.expires_at > $2))
       AND (h.connection_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM connections cn
                 WHERE cn.id = h.connection_id AND cn.status = 'needs_reauth'))
), picked AS (
    SELECT d.id FROM deliveries d
     WHERE d.id IN (SELECT id FROM candidates ORDER BY next_attempt_at, seq LIMIT $4)
       FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
   SET state = 'running', attempt = d.attempt + 1, lease_owner = $1,
       lease_expires_at = $3, updated_at = $2
  FROM picked, events e
 WHERE d.id = picked.id AND d.state = 'pending' AND e.id = d.event_id
RETURNING d.id, d.event_id, d.flow_name, d.action_index, d.action_type, d.connection_id,
          d.attempt, d.schedule_offset, d.seq, e.trigger_type, e.item_key, e.payload,
          e.occurred_at, e.created_at AS event_created_at;

-- name: dispatch_finish
-- Many attempts at once (group commit): finish each delivery and write down its attempt,
-- or do neither. The zombie guard: only the attempt that still holds its row may finish it.
-- $1 ids, $2 attempts, $3 new states, $4 next attempt at (pending only), $5 summaries,
-- $6 last errors, $7 started at, $8 durations ms, $9 outcomes, $10 status codes,
-- $11 details, $12 now
WITH input AS (
    SELECT *
      FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::text[],
                  $6::text[], $7::timestamptz[], $8::int[], $9::text[], $10::int[], $11::text[])
           AS i (id, attempt, state, next_at, summary, error, started_at, duration_ms,
                 outcome, status_code, detail)
), finished AS (
    UPDATE deliveries d
       SET state = i.state, next_attempt_at = coalesce(i.next_at, d.next_attempt_at),
           summary = coalesce(i.summary, d.summary), last_error = i.error,
           lease_owner = NULL, lease_expires_at = NULL,
           delivered_at = CASE WHEN i.state = 'delivered' THEN $12 ELSE d.delivered_at END,
           updated_at = $12
      FROM input i
     WHERE d.id = i.id AND d.attempt = i.attempt AND d.state = 'running'
    RETURNING d.id, i.attempt, i.started_at, i.duration_ms, i.outcome, i.status_code,
              i.detail
), logged AS (
    INSERT INTO delivery_attempts
           (delivery_id, attempt, started_at, duration_ms, outcome, status_code, detail)
    SELECT id, attempt, started_at, duration_ms, outcome, status_code, detail FROM finished
)
SELECT id FROM finished;

-- name: dispatch_rescue_expired
-- A worker that died or hung lost its lease: the delivery goes back to pending at once,
-- and the lost attempt is written down (updated_at is when it was claimed).
WITH expired AS (
    SELECT id, updated_at AS claimed_at FROM deliveries
     WHERE state = 'running' AND lease_expires_at < $1
       FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE deliveries d
       SET state = 'pending', next_attempt_at = $1, lease_owner = NULL,
           lease_expires_at = NULL, last_error = 'lease expired: the worker stopped or hung',
           updated_at = $1
      FROM expired
     WHERE d.id = expired.id
    RETURNING d.id, d.attempt, d.flow_name, expired.claimed_at
), logged AS (
    INSERT INTO delivery_attempts
           (delivery_id, attempt, started_at, duration_ms, outcome, detail)
    SELECT id, attempt, claimed_at,
           greatest(0, (extract(epoch FROM ($1 - claimed_at)) * 1000)::int), 'retry',
           'lease expired: the worker stopped or hung'
      FROM rescued
)
SELECT id, attempt, flow_name FROM rescued;

-- name: deliveries_list
-- $1 flow or null, $2 state or null, $3 created since or null, $4 event id or null, $5 limit
SELECT d.id, d.event_id, d.flow_name, d.action_index, d.action_type, d.state, d.attempt,
       d.next_attempt_at, d.last_error, d.summary, d.created_at, d.updated_at,
       d.delivered_at, e.item_key, e.trigger_type
  FROM deliveries d JOIN events e ON e.id = d.event_id
 WHERE ($1::text IS NULL OR d.flow_name = $1)
   AND ($2::text IS NULL OR d.state = $2)
   AND ($3::timestamptz IS NULL OR d.created_at >= $3)
   AND ($4::text IS NULL OR d.event_id = $4)
 ORDER BY d.created_at DESC, d.seq DESC
 LIMIT $5;

-- name: event_get
SELECT id, flow_name, connection_id, trigger_type, item_key, payload, source, occurred_at,
       created_at
  FROM events WHERE id = $1;

-- name: event_deliveries
SELECT id, action_index, action_type, state, attempt, next_attempt_at, last_error, summary,
       delivered_at
  FROM deliveries WHERE event_id = $1 ORDER BY action_index;

-- name: delivery_attempts_for_event
SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.outcome, a.status_code,
       a.detail
  FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
 WHERE d.event_id = $1
 ORDER BY d.action_index, a.started_at, a.id;

-- name: delivery_get
SELECT id, event_id, flow_name, state, attempt FROM deliveries WHERE id = $1;

-- name: replay_delivery
-- Back to pending with the same id; only a dead delivery, never a delivered one.
-- The schedule restarts from its first step; attempt numbers keep counting.
UPDATE deliveries
   SET state = 'pending', next_attempt_at = $2, schedule_offset = attempt, last_error = NULL,
       updated_at = $2
 WHERE id = $1 AND state = 'dead'
RETURNING id, event_id, flow_name;

-- name: replay_dead_deliveries
-- $1 flow, $2 now, $3 dead since (updated_at) or null
UPDATE deliveries
   SET state = 'pending', next_attempt_at = $2, schedule_offset = attempt, last_error = NULL,
       updated_at = $2
 WHERE flow_name = $1 AND state = 'dead' AND ($3::timestamptz IS NULL OR updated_at >= $3)
RETURNING id, event_id, flow_name;

-- name: deliveries_wake
SELECT pg_notify('deliveries_due', '');

-- name: dispatch_count_dead
-- For the dead-deliveries gauge; the partial index deliveries_dead keeps it cheap.
SELECT count(*) FROM deliveries WHERE state = 'dead';

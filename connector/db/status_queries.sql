-- Named queries of the operator's view: `connector status` and the status page.

-- name: status_flow_states
SELECT flow_name, connection_id, trigger_type, baseline_done, last_error, updated_at
  FROM flow_states WHERE flow_name = ANY($1::text[]);

-- name: status_last_polls
-- The latest poll of each flow, and the latest one that succeeded (its commit moved the
-- cursor or snapshot, so its end is their age).
SELECT f.name AS flow_name,
       last.started_at, last.finished_at, last.requests, last.items_seen,
       last.events_created, last.error, last.worker,
       ok.finished_at AS last_ok_at
  FROM unnest($1::text[]) AS f(name)
  LEFT JOIN LATERAL (
       SELECT started_at, finished_at, requests, items_seen, events_created, error, worker
         FROM poll_runs WHERE flow_name = f.name ORDER BY started_at DESC LIMIT 1
  ) last ON true
  LEFT JOIN LATERAL (
       SELECT finished_at FROM poll_runs
        WHERE flow_name = f.name AND error IS NULL ORDER BY started_at DESC LIMIT 1
  ) ok ON true;

-- name: status_events_since
SELECT flow_name, count(*) AS n FROM events
 WHERE flow_name = ANY($1::text[]) AND created_at >= $2
 GROUP BY flow_name;

-- name: status_deliveries_since
SELECT flow_name, state, count(*) AS n FROM deliveries
 WHERE flow_name = ANY($1::text[]) AND created_at >= $2
 GROUP BY flow_name, state;

-- name: status_dead_counts
SELECT flow_name, count(*) AS n FROM deliveries WHERE state = 'dead' GROUP BY flow_name;

-- name: status_connections
SELECT id, status, status_reason FROM connections WHERE id = ANY($1::text[]);

-- name: status_workers
-- Live workers (their heartbeat lease) and the connections each one holds.
SELECT substr(w.resource, 8) AS worker, w.expires_at,
       coalesce(array_agg(substr(o.resource, 5) ORDER BY o.resource)
                FILTER (WHERE o.resource IS NOT NULL), '{}') AS connections
  FROM leases w
  LEFT JOIN leases o
         ON o.owner = substr(w.resource, 8) AND o.resource LIKE 'own:%' AND o.expires_at > $1
 WHERE w.resource LIKE 'worker:%' AND w.expires_at > $1
 GROUP BY w.resource, w.expires_at
 ORDER BY 1;

-- name: status_dead_deliveries
SELECT d.id, d.flow_name, d.action_index, d.action_type, d.attempt, d.last_error,
       d.updated_at, e.item_key, e.id AS event_id
  FROM deliveries d JOIN events e ON e.id = d.event_id
 WHERE d.state = 'dead'
 ORDER BY d.updated_at DESC, d.seq DESC
 LIMIT $1;

-- name: replay_progress
-- How far a batch of replayed deliveries has got: sent, given up again, still waiting.
SELECT count(*) FILTER (WHERE state = 'delivered') AS delivered,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       count(*) FILTER (WHERE state IN ('pending', 'running')) AS waiting
  FROM deliveries WHERE id = ANY($1::uuid[]);

-- Named queries of the poll-run book: quiet polls' poll_runs rows, written together.

-- name: poll_runs_insert_many
INSERT INTO poll_runs
       (flow_name, connection_id, worker, started_at, finished_at, requests, items_seen,
        events_created, error)
SELECT r.flow_name, r.connection_id, $1, r.started_at, r.finished_at, r.requests,
       r.items_seen, 0, NULL
  FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int[],
              $7::int[])
       AS r (flow_name, connection_id, started_at, finished_at, requests, items_seen);

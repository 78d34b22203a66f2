-- `connector demo`: its sandbox starts afresh each run, so its flows start afresh too.

-- name: demo_reset_events
-- Deliveries and their attempts go with their events (ON DELETE CASCADE).
DELETE FROM events WHERE flow_name = ANY($1::text[]);

-- name: demo_reset_snapshots
DELETE FROM snapshot_items WHERE flow_name = ANY($1::text[]);

-- name: demo_reset_cursors
DELETE FROM flow_states WHERE flow_name = ANY($1::text[]);

-- name: demo_reset_poll_runs
DELETE FROM poll_runs WHERE flow_name = ANY($1::text[]);

-- name: demo_reset_tokens
DELETE FROM tokens WHERE connection_id = ANY($1::text[]);

-- Named queries of the in-memory snapshot diff: a list short enough to hold is diffed in
-- Python against its stored fingerprints, and only the delta is written back (no temporary
-- tables, so no DDL in a poll's commit).

-- name: snapshot_remove_keys
DELETE FROM snapshot_items WHERE flow_name = $1 AND item_key = ANY($2::text[]);

-- name: snapshot_upsert_keys
INSERT INTO snapshot_items (flow_name, item_key, fingerprint)
SELECT $1, r.item_key, r.fingerprint
  FROM unnest($2::text[], $3::text[]) AS r (item_key, fingerprint)
ON CONFLICT (flow_name, item_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint;

-- name: flow_state_forget_digest
-- The snapshot moved outside a poll (a webhook): the next poll must diff, not trust a digest.
UPDATE flow_states SET cursor = cursor - 'digest'
 WHERE flow_name = $1 AND cursor ? 'digest';

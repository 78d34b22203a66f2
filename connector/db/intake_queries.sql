-- Named queries of the SendPulse webhook intake.

-- name: snapshot_fingerprint
SELECT fingerprint FROM snapshot_items WHERE flow_name = $1 AND item_key = $2;

-- name: flow_baseline
SELECT state_key, baseline_done, connection_id, account_fingerprint
  FROM flow_states WHERE flow_name = $1;

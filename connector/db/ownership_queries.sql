-- Named queries of connection ownership across workers (rows in `leases`).

-- name: live_workers
SELECT count(*) FROM leases WHERE resource LIKE 'worker:%' AND expires_at > $1;

-- name: owned_leases
SELECT resource FROM leases WHERE owner = $1 AND resource LIKE 'own:%' AND expires_at > $2;

-- name: release_owned
DELETE FROM leases WHERE owner = $1 AND (resource LIKE 'own:%' OR resource = 'worker:' || $1);

-- name: connection_status
SELECT status FROM connections WHERE id = $1;

-- Named queries of connection ownership across workers (rows in `leases`).

-- name: live_workers
SELECT count(*) FROM leases WHERE resource LIKE 'worker:%' AND expires_at > $1;

-- name: owned_leases
SELECT resource FROM leases WHERE owner = $1 AND resource LIKE 'own:%' AND expires_at > $2;

-- name: release_owned
DELETE FROM leases WHERE owner = $1 AND (resource LIKE 'own:%' OR resource = 'worker:' || $1);

-- name: clear_orphaned_poll_lease
-- A worker that died mid-poll leaves the connection's poll lease behind for up to its TTL.
-- The new owner drops it when that worker's heartbeat is gone, so polling resumes at once; a
-- stalled worker that wakes up later finds its lease gone and cannot commit.
DELETE FROM leases p
 WHERE p.resource = 'poll:' || $1
   AND p.owner NOT LIKE 'intake:%'
   AND NOT EXISTS (SELECT 1 FROM leases w
                    WHERE w.resource = 'worker:' || p.owner AND w.expires_at > $2)
RETURNING p.owner;

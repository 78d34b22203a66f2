-- Ids given on the command line, which may be unique prefixes (as git takes them).
-- The caller checks that a prefix holds only id characters, so LIKE sees no wildcard.

-- name: event_ids_by_prefix
SELECT id FROM events WHERE id LIKE $1 || '%' ORDER BY id LIMIT 3;

-- name: delivery_ids_by_prefix
SELECT id::text AS id FROM deliveries WHERE id::text LIKE $1 || '%' ORDER BY id LIMIT 3;

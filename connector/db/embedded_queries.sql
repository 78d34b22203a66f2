-- The embedded cluster's own statements, run in single-user mode where nothing can be bound:
-- {password} is replaced by a generated url-safe token, never by user input.

-- name: embedded_set_password
ALTER ROLE connector WITH PASSWORD '{password}';

-- Named queries of the scheduler.

-- name: flows_polled_before
-- The flows among $1 that have polled at least once: they keep their phase after a restart
-- or a reload; the others are new and poll soon.
SELECT flow_name FROM flow_states WHERE flow_name = ANY($1::text[]);

-- deliveries_event (event_id) repeated the leading column of the unique index on
-- (event_id, action_index), which serves the same look-ups and the cascade from events; it
-- was one more index entry written at every insert, claim and finish of a delivery.
DROP INDEX deliveries_event;

-- Dead deliveries wait for a replay: the gauge counts them and `connector deliveries
-- --status dead` lists them, newest first, without scanning the whole log.
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';

-- The whole current schema. Kept equal to what the migrations build (a test proves it).

-- Connections (one provider account each) and their tokens, stored encrypted.
CREATE TABLE connections (
    id              text PRIMARY KEY,
    provider        text NOT NULL CHECK (provider IN ('sendpulse', 'sendloop', 'mailium')),
    source          text NOT NULL DEFAULT 'config' CHECK (source IN ('config', 'app_install')),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'needs_reauth', 'uninstalled')),
    install_id      text UNIQUE,
    account_id      text,
    scopes          text[],
    credentials     bytea,
    status_reason   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
    connection_id   text PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    access_token    bytea NOT NULL,
    refresh_token   bytea,
    expires_at      timestamptz NOT NULL,
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    version         bigint NOT NULL DEFAULT 1
);

-- One row per flow: where its trigger stands. A change of trigger type or params changes
-- state_key, which starts a new baseline.
CREATE TABLE flow_states (
    flow_name       text PRIMARY KEY,
    connection_id   text,
    trigger_type    text NOT NULL,
    state_key       text NOT NULL,
    cursor          jsonb,
    baseline_done   boolean NOT NULL DEFAULT false,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The last full view of a list, for snapshot diffs: one row per item key.
CREATE TABLE snapshot_items (
    flow_name       text NOT NULL,
    item_key        text NOT NULL,
    fingerprint     text NOT NULL,
    PRIMARY KEY (flow_name, item_key)
);

-- Events: the id is a stable hash of (flow, trigger, item key, change fingerprint), so the
-- same change seen twice (two polls, or a webhook and a poll) is one row.
CREATE TABLE events (
    id              text PRIMARY KEY,
    flow_name       text NOT NULL,
    connection_id   text,
    trigger_type    text NOT NULL,
    item_key        text NOT NULL,
    payload         jsonb NOT NULL,
    source          text NOT NULL DEFAULT 'poll' CHECK (source IN ('poll', 'webhook', 'replay')),
    occurred_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_flow_created ON events (flow_name, created_at);
CREATE INDEX events_item_key ON events (item_key);

-- The outbox: one row per (event, action), written with its event. Its id is the
-- idempotency key sent on every attempt.
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    flow_name        text NOT NULL,
    action_index     integer NOT NULL,
    action_type      text NOT NULL,
    connection_id    text,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'delivered', 'dead')),
    attempt          integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    summary          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (event_id, action_index)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_lease ON deliveries (lease_expires_at) WHERE state = 'running';
CREATE INDEX deliveries_flow_state ON deliveries (flow_name, state);

CREATE TABLE delivery_attempts (
    id              bigserial PRIMARY KEY,
    delivery_id     uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    status_code     integer,
    detail          text
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);

-- Leases: who polls a connection (or runs any other singleton) until when.
CREATE TABLE leases (
    resource        text PRIMARY KEY,
    owner           text NOT NULL,
    acquired_at     timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);

CREATE TABLE poll_runs (
    id              bigserial PRIMARY KEY,
    flow_name       text NOT NULL,
    connection_id   text,
    worker          text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    requests        integer NOT NULL DEFAULT 0,
    items_seen      integer NOT NULL DEFAULT 0,
    events_created  integer NOT NULL DEFAULT 0,
    error           text
);
CREATE INDEX poll_runs_flow_started ON poll_runs (flow_name, started_at);

-- One-time OAuth state (and PKCE verifier) for Sendloop/Mailium app installs.
CREATE TABLE oauth_states (
    state           text PRIMARY KEY,
    app             text NOT NULL,
    code_verifier   text,
    redirect_uri    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);

-- ==== 0004_dispatch ====
-- Dispatch: an insertion order for ordered flows, a retry-schedule offset that a replay
-- moves (so a replayed delivery gets a fresh schedule while its attempt numbers keep
-- counting), indexes for per-flow claims, and a wake-up for idle dispatchers.
ALTER TABLE deliveries ADD COLUMN seq bigint GENERATED BY DEFAULT AS IDENTITY;
ALTER TABLE deliveries ADD COLUMN schedule_offset integer NOT NULL DEFAULT 0;
CREATE INDEX deliveries_flow_due ON deliveries (flow_name, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX deliveries_flow_seq ON deliveries (flow_name, seq)
    WHERE state IN ('pending', 'running');
-- (deliveries_event, an index on event_id alone, is gone: see 0007.)

CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('deliveries_due', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();

-- 0005_dead_index
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';

-- 0006_account_fingerprint
-- Which account a connection reached, and which account each flow's state belongs to. When a
-- connection's fingerprint changes (another base URL, client id, API key or install), every
-- flow of it starts a new baseline; `account_changed_at` says when that last happened.
ALTER TABLE connections ADD COLUMN account_fingerprint text;
ALTER TABLE connections ADD COLUMN account_changed_at timestamptz;
ALTER TABLE flow_states ADD COLUMN account_fingerprint text;

-- Timestamps are integer milliseconds since the Unix epoch (UTC) on both backends: the same
-- runtime SQL then serves SQLite and PostgreSQL, and durations are plain subtraction.

CREATE TABLE contacts (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    merged_into TEXT REFERENCES contacts (id),
    erased_at   BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX contacts_by_name ON contacts (name);

CREATE TABLE identities (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identities_by_contact ON identities (contact_id);

CREATE TABLE contact_merges (
    id      TEXT PRIMARY KEY,
    into_id TEXT NOT NULL,
    from_id TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL
);

CREATE TABLE reps (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    email               TEXT,
    telegram_chat_id    BIGINT,
    api_token_hash      TEXT UNIQUE,
    capacity            BIGINT,
    weight              BIGINT NOT NULL DEFAULT 1,
    languages           TEXT NOT NULL DEFAULT '[]',
    timezone            TEXT,
    working_hours       TEXT,
    active              BIGINT NOT NULL DEFAULT 1,
    out_of_office_until BIGINT,
    open_leads          BIGINT NOT NULL DEFAULT 0,
    config_hash         TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE team_members (
    team_id           TEXT NOT NULL,
    rep_id            TEXT NOT NULL REFERENCES reps (id),
    last_assigned_seq BIGINT NOT NULL DEFAULT 0,
    wrr_current       BIGINT NOT NULL DEFAULT 0,
    -- 'config' memberships follow the config file; 'api' ones were made through the API.
    source            TEXT NOT NULL DEFAULT 'config',
    PRIMARY KEY (team_id, rep_id)
);

-- One row per team: the assignment sequence, advanced under a row lock.
CREATE TABLE team_state (
    team_id TEXT PRIMARY KEY,
    seq     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE leads (
    id                TEXT PRIMARY KEY,
    contact_id        TEXT NOT NULL REFERENCES contacts (id),
    channel           TEXT NOT NULL,
    source_form       TEXT,
    source_mailbox    TEXT,
    source_bot        TEXT,
    utm_source        TEXT,
    utm_medium        TEXT,
    utm_campaign      TEXT,
    utm_term          TEXT,
    utm_content       TEXT,
    referrer          TEXT,
    language          TEXT,
    country           TEXT,
    status            TEXT NOT NULL,
    lost_reason       TEXT,
    team_id           TEXT,
    owner_id          TEXT REFERENCES reps (id),
    assigned_at       BIGINT,
    accepted_at       BIGINT,
    first_response_at BIGINT,
    next_action_at    BIGINT,
    next_action_note  TEXT,
    last_activity_at  BIGINT NOT NULL,
    custom_fields     TEXT NOT NULL DEFAULT '{}',
    closed_at         BIGINT,
    merged_into       TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
-- At most one open lead per contact: a new inquiry joins it.
CREATE UNIQUE INDEX leads_one_open_per_contact ON leads (contact_id) WHERE closed_at IS NULL;
CREATE INDEX leads_by_contact ON leads (contact_id, created_at);
CREATE INDEX leads_by_owner ON leads (owner_id, id);
CREATE INDEX leads_by_status ON leads (status, id);
CREATE INDEX leads_by_created ON leads (created_at);
CREATE INDEX leads_unassigned ON leads (created_at) WHERE owner_id IS NULL AND closed_at IS NULL;

CREATE TABLE interactions (
    id          TEXT PRIMARY KEY,
    lead_id     TEXT NOT NULL REFERENCES leads (id),
    channel     TEXT NOT NULL,
    direction   TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'message',
    author_id   TEXT,
    external_id TEXT,
    subject     TEXT,
    text        TEXT NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]',
    at          BIGINT NOT NULL
);
CREATE INDEX interactions_by_lead ON interactions (lead_id, at);

CREATE TABLE assignments (
    id      TEXT PRIMARY KEY,
    lead_id TEXT NOT NULL REFERENCES leads (id),
    rep_id  TEXT NOT NULL,
    team_id TEXT,
    reason  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX assignments_by_lead ON assignments (lead_id, at);

CREATE TABLE events (
    id      TEXT PRIMARY KEY,
    lead_id TEXT,
    type    TEXT NOT NULL,
    actor   TEXT,
    data    TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX events_by_lead ON events (lead_id, at);

CREATE TABLE inbound_items (
    id           TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    meta         TEXT NOT NULL DEFAULT '{}',
    payload      BYTEA NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    lead_id      TEXT,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    UNIQUE (channel, external_id)
);
CREATE INDEX inbound_by_status ON inbound_items (status, received_at);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    lead_id         TEXT,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    UNIQUE (kind, target, event_id)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_by_status ON outbox (status, created_at);

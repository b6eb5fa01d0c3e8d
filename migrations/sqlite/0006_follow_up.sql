-- Follow-up discipline and analytics (issue 5).

-- Every status change, so the funnel can count the leads that ever reached a stage.
CREATE TABLE status_changes (
    id          TEXT PRIMARY KEY,
    lead_id     TEXT NOT NULL REFERENCES leads (id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    actor       TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX status_changes_by_lead ON status_changes (lead_id, at);
-- Leads that moved before this table existed: their one known change.
INSERT INTO status_changes (id, lead_id, from_status, to_status, actor, at)
    SELECT 'sc-' || id, id, 'new', status, NULL, updated_at FROM leads WHERE status <> 'new';

-- Why a lead was lost beyond the reason's name ("other" needs one).
ALTER TABLE leads ADD COLUMN lost_note TEXT;
-- The next_action_at whose reminder went out: a new date gets a new reminder.
ALTER TABLE leads ADD COLUMN reminded_for INTEGER;
-- The last_activity_at that was reported stale: new activity re-arms the alert.
ALTER TABLE leads ADD COLUMN stale_for INTEGER;
-- When the manager was told the lead ran out of sla reassignments.
ALTER TABLE leads ADD COLUMN escalated_at INTEGER;

CREATE INDEX leads_next_action ON leads (next_action_at) WHERE closed_at IS NULL AND next_action_at IS NOT NULL;
CREATE INDEX leads_by_activity ON leads (last_activity_at) WHERE closed_at IS NULL;

-- To-dos on a lead besides its one next action.
CREATE TABLE tasks (
    id         TEXT PRIMARY KEY,
    lead_id    TEXT NOT NULL REFERENCES leads (id),
    title      TEXT NOT NULL,
    due_at     INTEGER,
    done_at    INTEGER,
    created_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX tasks_by_lead ON tasks (lead_id, created_at);

-- One daily digest per manager and local date, whichever instance sends it.
CREATE TABLE digests (
    manager_id TEXT NOT NULL,
    day        TEXT NOT NULL,
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (manager_id, day)
);

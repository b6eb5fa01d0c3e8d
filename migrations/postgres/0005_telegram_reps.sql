-- One-time codes that link a rep's Telegram chat (t.me/<bot>?start=link-<code>), stored as
-- sha256 so a database dump does not hand out working links.
CREATE TABLE rep_links (
    code_hash  TEXT PRIMARY KEY,
    rep_id     TEXT NOT NULL REFERENCES reps (id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);

-- Telegram messages we sent about a lead (`tg:<chat>:<message>`) are also looked up by lead:
-- a team announcement is edited when someone takes the lead.
CREATE INDEX thread_refs_by_lead ON thread_refs (lead_id);

-- Leads their owner has not taken on yet, by team: the sla check runs on every scheduler tick.
CREATE INDEX leads_unaccepted ON leads (team_id, assigned_at)
    WHERE accepted_at IS NULL AND closed_at IS NULL AND owner_id IS NOT NULL;

-- Closing the doors (issue 9).

-- A session belongs to the token that made it. Sessions from before cannot say which token
-- that was, so they end: everyone signs in once more.
DELETE FROM sessions;
ALTER TABLE sessions ADD COLUMN token_hash TEXT NOT NULL DEFAULT '';

-- Raw payloads are bounded: a processed or skipped item keeps an excerpt of its body, and its
-- size and sha256 describe the whole (an Idempotency-Key sent again with another body is
-- refused by them); a failed item keeps it all, for replay. `raw_kept` marks the excerpts the
-- retention job (inbound.raw_retention) has not cleared yet.
ALTER TABLE inbound_items ADD COLUMN payload_size INTEGER;
ALTER TABLE inbound_items ADD COLUMN payload_sha256 TEXT;
ALTER TABLE inbound_items ADD COLUMN raw_kept INTEGER NOT NULL DEFAULT 0;
UPDATE inbound_items SET raw_kept = 1 WHERE status <> 'failed';
CREATE INDEX inbound_raw_by_age ON inbound_items (received_at) WHERE raw_kept = 1;

-- A merge is recorded as what it moved, so that an admin can undo it: the identities and
-- leads that changed contact, the open leads folded into the kept one and the messages
-- that moved with them.
ALTER TABLE contact_merges ADD COLUMN actor TEXT;
ALTER TABLE contact_merges ADD COLUMN undone_at INTEGER;
ALTER TABLE contact_merges ADD COLUMN undone_by TEXT;
CREATE INDEX contact_merges_by_into ON contact_merges (into_id, at);
CREATE TABLE merge_moves (
    merge_id TEXT NOT NULL,
    -- 'identity' (kind, value), 'lead' (value = lead id), 'fold' (value = the folded lead,
    -- kind = the lead it went into), 'message' (value = interaction id, kind = its lead then)
    item     TEXT NOT NULL,
    kind     TEXT,
    value    TEXT NOT NULL
);
CREATE INDEX merge_moves_by_merge ON merge_moves (merge_id);

-- Merges that unauthenticated input would make between contacts that both have owners wait
-- here until an admin, or every owner, confirms (or one of them rejects).
CREATE TABLE merge_reviews (
    id           TEXT PRIMARY KEY,
    into_id      TEXT NOT NULL,
    from_id      TEXT NOT NULL,
    -- the lead the inquiry that linked them went to, and its channel
    lead_id      TEXT,
    channel      TEXT NOT NULL,
    -- JSON: the owners who confirmed so far (the owners are those of the two contacts'
    -- leads when someone decides)
    confirmed_by TEXT NOT NULL DEFAULT '[]',
    -- pending | merged | rejected
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    decided_by   TEXT
);
CREATE UNIQUE INDEX merge_reviews_one_pending ON merge_reviews (into_id, from_id) WHERE status = 'pending';
CREATE INDEX merge_reviews_by_status ON merge_reviews (status, created_at);

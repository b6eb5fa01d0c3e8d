-- Where each mailbox's reader is: the UID of the last message committed, valid while the
-- folder's UIDVALIDITY stays the same. Advanced in the transaction that stores the message.
CREATE TABLE mailbox_cursors (
    mailbox_id  TEXT PRIMARY KEY,
    uidvalidity BIGINT NOT NULL,
    last_uid    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- A bounce marks the address it reports.
ALTER TABLE identities ADD COLUMN undeliverable_at BIGINT;

-- Replies are threaded through the Message-IDs they quote.
CREATE INDEX interactions_by_external_id ON interactions (external_id);

-- How each rep wants to hear about their leads: auto (Telegram when they have a chat id,
-- else email), email, or telegram.
ALTER TABLE reps ADD COLUMN notify TEXT NOT NULL DEFAULT 'auto';

-- Message-IDs of the emails we send about a lead: a reply quoting one joins that lead.
CREATE TABLE thread_refs (
    message_id TEXT PRIMARY KEY,
    lead_id    TEXT NOT NULL
);

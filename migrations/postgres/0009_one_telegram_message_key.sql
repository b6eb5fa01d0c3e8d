-- A Telegram message has one key everywhere: `msg:<chat>:<message>`, as on the timeline.
-- Our own messages were indexed as `tg:<chat>:<message>`; rewrite them so a reply to a card
-- sent before the upgrade still finds its lead.
UPDATE thread_refs SET message_id = 'msg:' || substr(message_id, 4)
WHERE message_id LIKE 'tg:%'
  AND NOT EXISTS (SELECT 1 FROM thread_refs t WHERE t.message_id = 'msg:' || substr(thread_refs.message_id, 4));

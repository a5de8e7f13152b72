-- v6 -> v7: A conversation turn names its question; an answer's event has its own column
-- Until v6 an answer's turn was stored under a synthetic id, "<event>:answer",
-- where <event> was its placeholder or, when it had none, its question. From v7
-- every stored id is an event id:
--   event_id      the question's event id, on both turns of an exchange
--   answer_event  assistant turns: the event the answer was first shown in
--                 (its placeholder); '' when the answer was sent as its own
--                 message (the outbox row regarding event_id holds its id)
--   sources       assistant turns: the excerpts the answer was given, as a
--                 JSON array ('' when none)
ALTER TABLE conversation_turn ADD COLUMN answer_event TEXT NOT NULL DEFAULT '';
ALTER TABLE conversation_turn ADD COLUMN sources TEXT NOT NULL DEFAULT '';
UPDATE conversation_turn SET answer_event = substr(event_id, 1, length(event_id) - 7)
    WHERE role = 'assistant' AND event_id LIKE '%:answer';
UPDATE conversation_turn SET event_id = COALESCE((SELECT q.event_id FROM conversation_turn q
    WHERE q.id = conversation_turn.id - 1 AND q.role = 'user' AND q.room_id = conversation_turn.room_id), '')
    WHERE role = 'assistant';
UPDATE conversation_turn SET answer_event = '' WHERE role = 'assistant' AND answer_event = event_id;
CREATE INDEX conversation_turn_answer_idx ON conversation_turn (answer_event) WHERE answer_event <> '';

-- An agent's choice among the offered collections (!collections): a JSON
-- array of collection ids ('[]': none); NULL: the configured default.
ALTER TABLE agent_pref ADD COLUMN collections TEXT;

-- What a ledger row paid for: 'chat' (a chat completion) or 'search' (a
-- search in document collections). Quotas and statistics count chat calls.
ALTER TABLE usage_ledger ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'chat';

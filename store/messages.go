package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// InboxItem is an incoming event recorded before guichet acts on it.
type InboxItem struct {
	EventID    id.EventID
	RoomID     id.RoomID
	Sender     id.UserID
	EventJSON  []byte
	ReceivedAt time.Time
	// WaitingSession is the Megolm session an encrypted event waits for
	// ("" once decrypted): EventJSON is then the encrypted event.
	WaitingSession id.SessionID
}

// AddInbox records an incoming event; it returns false if the event was
// already recorded (a replayed sync), in which case the caller does nothing.
// A decrypted event replaces the encrypted one recorded while it waited for
// its key, and counts as fresh then: exactly one of the paths that decrypt
// it (the sync, the key's arrival, a restart) acts on it.
func (s *Store) AddInbox(ctx context.Context, item InboxItem) (bool, error) {
	res, err := s.db.Exec(ctx, `INSERT INTO inbox (event_id, room_id, sender, event_json, received_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO UPDATE SET event_json=excluded.event_json, waiting_session=''
		WHERE inbox.waiting_session <> '' AND inbox.done_at IS NULL`,
		item.EventID, item.RoomID, item.Sender, string(item.EventJSON), ms(item.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("failed to record event %s: %w", item.EventID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AddUndecrypted records an encrypted event whose key has not arrived, so
// that it survives a stop before the key comes; it changes nothing if the
// event was recorded already (decrypted, or waiting).
func (s *Store) AddUndecrypted(ctx context.Context, item InboxItem) error {
	_, err := s.db.Exec(ctx, `INSERT INTO inbox (event_id, room_id, sender, event_json, received_at, waiting_session)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING`,
		item.EventID, item.RoomID, item.Sender, string(item.EventJSON), ms(item.ReceivedAt), item.WaitingSession)
	if err != nil {
		return fmt.Errorf("failed to record encrypted event %s: %w", item.EventID, err)
	}
	return nil
}

// WaitingForKey lists the recorded events still waiting for a Megolm key:
// those of one session, or all of them when session is "".
func (s *Store) WaitingForKey(ctx context.Context, session id.SessionID) ([]InboxItem, error) {
	q := `SELECT ` + inboxColumns + ` FROM inbox WHERE waiting_session <> '' AND done_at IS NULL`
	args := []any{}
	if session != "" {
		q += ` AND waiting_session=$1`
		args = append(args, session)
	}
	return s.scanInbox(ctx, q+` ORDER BY received_at`, args...)
}

const inboxColumns = `event_id, room_id, sender, event_json, received_at, waiting_session`

func (s *Store) scanInbox(ctx context.Context, query string, args ...any) ([]InboxItem, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []InboxItem
	for rows.Next() {
		var it InboxItem
		var evt, room, sender, js, session string
		var at int64
		if err := rows.Scan(&evt, &room, &sender, &js, &at, &session); err != nil {
			return nil, err
		}
		it.EventID, it.RoomID, it.Sender, it.EventJSON, it.ReceivedAt = id.EventID(evt), id.RoomID(room), id.UserID(sender), []byte(js), fromMS(at)
		it.WaitingSession = id.SessionID(session)
		out = append(out, it)
	}
	return out, rows.Err()
}

// MarkDone records that the work an event asked for is finished.
func (s *Store) MarkDone(ctx context.Context, eventID id.EventID, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE inbox SET done_at=$2 WHERE event_id=$1`, eventID, ms(at))
	return err
}

// InboxDone reports whether the event was recorded and finished.
func (s *Store) InboxDone(ctx context.Context, eventID id.EventID) (recorded, done bool, err error) {
	var doneAt sql.NullInt64
	err = s.db.QueryRow(ctx, `SELECT done_at FROM inbox WHERE event_id=$1`, eventID).Scan(&doneAt)
	if isNoRows(err) {
		return false, false, nil
	} else if err != nil {
		return false, false, err
	}
	return true, doneAt.Valid, nil
}

// UnfinishedInbox lists recorded events whose work a stop interrupted,
// those still waiting for their key included.
func (s *Store) UnfinishedInbox(ctx context.Context) ([]InboxItem, error) {
	return s.scanInbox(ctx, `SELECT `+inboxColumns+` FROM inbox WHERE done_at IS NULL ORDER BY received_at`)
}

// CountQuestions counts the questions user asked (stored turns).
func (s *Store) CountQuestions(ctx context.Context, user id.UserID) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM conversation_turn WHERE user_id=$1 AND role='user'`, user).Scan(&n)
	return n, err
}

// Forget deletes user's stored conversations and usage detail, then
// scrubs the write-ahead log so that the bytes are gone from the files too.
func (s *Store) Forget(ctx context.Context, user id.UserID) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		// What guichet sent in the person's DMs (answers quote questions):
		// the one on record, and any room where they asked questions.
		if _, err := s.db.Exec(ctx, `UPDATE outbox SET markdown='' WHERE sent_at IS NOT NULL AND (dm_user=$1
			OR room_id IN (SELECT room_id FROM dm_room WHERE user_id=$1)
			OR room_id IN (SELECT room_id FROM conversation_turn WHERE user_id=$1))`, user); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM conversation_turn WHERE user_id=$1`, user); err != nil {
			return err
		}
		// The counts stay (quotas rely on them); what was said goes.
		if _, err := s.db.Exec(ctx, `UPDATE usage_ledger SET room_id='' WHERE user_id=$1`, user); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `UPDATE inbox SET event_json='{}' WHERE sender=$1 AND done_at IS NOT NULL`, user); err != nil {
			return err
		}
		// Decision hooks already delivered hold a moderator's reason about
		// the person (queued per person in the pseudo-room "hook:<user>").
		_, err := s.db.Exec(ctx, `UPDATE outbox SET markdown='' WHERE room_id=$1 AND sent_at IS NOT NULL`, "hook:"+user.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to forget %s: %w", user, err)
	}
	return s.Scrub(ctx)
}

// ForgetEvent deletes what guichet stored of a message its sender redacted
// in room: the question's turn and the answer recorded with it, the
// decrypted event, and the text of the answer sent to it. It then scrubs the
// write-ahead log. A message guichet never stored changes nothing.
func (s *Store) ForgetEvent(ctx context.Context, room id.RoomID, evt id.EventID) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		// A question and its answer are stored under the question's id.
		if _, err := s.db.Exec(ctx, `DELETE FROM conversation_turn WHERE room_id=$1 AND event_id=$2`, room, evt); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `UPDATE inbox SET event_json='{}' WHERE event_id=$1 AND room_id=$2 AND done_at IS NOT NULL`, evt, room); err != nil {
			return err
		}
		// The answer, its continuations (a long answer is several messages)
		// and the notices sent with it.
		_, err := s.db.Exec(ctx, `UPDATE outbox SET markdown='' WHERE (key=$1 OR regarding=$2) AND sent_at IS NOT NULL`,
			"reply:"+evt.String(), evt)
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to forget %s: %w", evt, err)
	}
	return s.Scrub(ctx)
}

// Usage is one call to the assistant.
type Usage struct {
	UserID           id.UserID
	RoomID           id.RoomID
	Model            string
	PromptTokens     int
	CompletionTokens int
	Estimated        bool
	Latency          time.Duration
	Outcome          string // "ok" or an error class
	At               time.Time
	Question         id.EventID // the question the call was made for, if any
	// Endpoint is what was called: EndpointChat (the default when "") or
	// EndpointSearch. Quotas and statistics count chat calls only.
	Endpoint string
	// Partner is the profile whose key paid for the call ("" for the
	// default profile).
	Partner string
	// Cost (euros), KWh and KgCO2eq are what Albert reported for the call.
	Cost    float64
	KWh     float64
	KgCO2eq float64
}

// Usage endpoints.
const (
	EndpointChat   = "chat"
	EndpointSearch = "search"
)

// AddUsage appends a row to the usage ledger.
func (s *Store) AddUsage(ctx context.Context, u Usage) error {
	_, err := s.db.Exec(ctx, `INSERT INTO usage_ledger (user_id, room_id, model, prompt_tokens, completion_tokens, estimated, latency_ms, outcome, at, question,
			endpoint, partner, cost, kwh, kgco2eq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		u.UserID, u.RoomID, u.Model, u.PromptTokens, u.CompletionTokens, u.Estimated, u.Latency.Milliseconds(), u.Outcome, ms(u.At), u.Question,
		cmp.Or(u.Endpoint, EndpointChat), u.Partner, u.Cost, u.KWh, u.KgCO2eq)
	if err != nil {
		return fmt.Errorf("failed to record usage: %w", err)
	}
	return nil
}

// UsageTotals sums user's calls since a time.
type UsageTotals struct {
	Questions        int
	PromptTokens     int
	CompletionTokens int
}

// UsageSince sums user's successful calls since a time.
func (s *Store) UsageSince(ctx context.Context, user id.UserID, since time.Time) (UsageTotals, error) {
	var t UsageTotals
	err := s.db.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
		FROM usage_ledger WHERE user_id=$1 AND at >= $2 AND outcome='ok' AND endpoint='chat'`, user, ms(since)).Scan(&t.Questions, &t.PromptTokens, &t.CompletionTokens)
	return t, err
}

// ExpireTexts deletes what people wrote, and guichet answered, before a time
// (privacy.retention): conversation turns, the decrypted events of handled
// messages and the texts of delivered messages. The rows that serve
// idempotency stay until Prune. It then scrubs the write-ahead log, and
// returns the number of rows changed.
func (s *Store) ExpireTexts(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		for _, q := range []string{
			`DELETE FROM conversation_turn WHERE at < $1`,
			`UPDATE inbox SET event_json='{}' WHERE done_at IS NOT NULL AND done_at < $1 AND event_json <> '{}'`,
			`UPDATE outbox SET markdown='' WHERE sent_at IS NOT NULL AND sent_at < $1 AND markdown <> ''`,
			`UPDATE outbox SET markdown='' WHERE given_up_at IS NOT NULL AND given_up_at < $1 AND markdown <> ''`,
		} {
			res, err := s.db.Exec(ctx, q, ms(before))
			if err != nil {
				return err
			}
			rows, _ := res.RowsAffected()
			n += rows
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("failed to expire texts: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.Scrub(ctx)
}

// Prune deletes what only served idempotency and is old enough not to be
// replayed: finished inbox rows, and outbox rows delivered or given up
// before a time. Delivered acknowledgements stay (moderators react to them
// to decide).
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.Exec(ctx, `DELETE FROM inbox WHERE done_at IS NOT NULL AND done_at < $1`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("failed to prune inbox: %w", err)
	}
	inbox, _ := res.RowsAffected()
	res, err = s.db.Exec(ctx, `DELETE FROM outbox WHERE sent_at < $1 AND kind <> $2 OR given_up_at < $1`, ms(before), KindAck)
	if err != nil {
		return inbox, fmt.Errorf("failed to prune outbox: %w", err)
	}
	outbox, _ := res.RowsAffected()
	// A question's side effects serve its replay only: kept while it is
	// unfinished.
	res, err = s.db.Exec(ctx, `DELETE FROM question WHERE created_at < $1
		AND event_id NOT IN (SELECT event_id FROM inbox WHERE done_at IS NULL)`, ms(before))
	if err != nil {
		return inbox + outbox, fmt.Errorf("failed to prune questions: %w", err)
	}
	questions, _ := res.RowsAffected()
	return inbox + outbox + questions, nil
}

// QuestionState is what handling a question did outside the transaction
// that finishes it (see migration 06): a replay after a stop or a crash
// reads it to continue the question rather than start it again.
type QuestionState struct {
	EventID id.EventID
	// AdmittedAt is when the per-agent limits counted the question (zero:
	// not counted, or given back).
	AdmittedAt time.Time
	// PlaceholderAt is when the send of its placeholder started (zero:
	// never); Placeholder is the placeholder's event id once known.
	PlaceholderAt time.Time
	Placeholder   id.EventID
}

// Question returns what was recorded of a question (the zero state, with
// EventID set, if nothing was).
func (s *Store) Question(ctx context.Context, evt id.EventID) (QuestionState, error) {
	q := QuestionState{EventID: evt}
	var admitted, placeholderAt int64
	var placeholder string
	err := s.db.QueryRow(ctx, `SELECT admitted_at, placeholder_at, placeholder FROM question WHERE event_id=$1`, evt).
		Scan(&admitted, &placeholderAt, &placeholder)
	if isNoRows(err) {
		return q, nil
	} else if err != nil {
		return q, fmt.Errorf("failed to read the state of question %s: %w", evt, err)
	}
	if admitted != 0 {
		q.AdmittedAt = fromMS(admitted)
	}
	if placeholderAt != 0 {
		q.PlaceholderAt = fromMS(placeholderAt)
	}
	q.Placeholder = id.EventID(placeholder)
	return q, nil
}

// SetAdmitted records whether a question is counted by the per-agent
// limits; call it in the transaction that changes the counters. One
// statement: the question's row is made if it is not there yet.
func (s *Store) SetAdmitted(ctx context.Context, evt id.EventID, room id.RoomID, user id.UserID, at time.Time, admitted bool) error {
	var v int64
	if admitted {
		v = ms(at)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO question (event_id, room_id, user_id, created_at, admitted_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (event_id) DO UPDATE SET admitted_at=excluded.admitted_at`, evt, room, user, ms(at), v)
	if err != nil {
		return fmt.Errorf("failed to record the admission of question %s: %w", evt, err)
	}
	return nil
}

// PlaceholderSending records that the placeholder of a question is about to
// be sent (the first time only); it is committed before the request leaves.
func (s *Store) PlaceholderSending(ctx context.Context, evt id.EventID, room id.RoomID, user id.UserID, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO question (event_id, room_id, user_id, created_at, placeholder_at) VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (event_id) DO UPDATE SET placeholder_at=excluded.placeholder_at WHERE question.placeholder_at=0`,
		evt, room, user, ms(at))
	if err != nil {
		return fmt.Errorf("failed to record the placeholder of question %s: %w", evt, err)
	}
	return nil
}

// SetPlaceholder records the placeholder's event id once the homeserver gave it.
func (s *Store) SetPlaceholder(ctx context.Context, evt id.EventID, placeholder id.EventID) error {
	if _, err := s.db.Exec(ctx, `UPDATE question SET placeholder=$2 WHERE event_id=$1`, evt, placeholder); err != nil {
		return fmt.Errorf("failed to record the placeholder of question %s: %w", evt, err)
	}
	return nil
}

// SettleWaiting marks done an event still waiting for its key (given up,
// or decrypted into something guichet does not act on); an event decrypted
// and recorded meanwhile is left to its handler.
func (s *Store) SettleWaiting(ctx context.Context, evt id.EventID, at time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE inbox SET done_at=$2 WHERE event_id=$1 AND waiting_session <> '' AND done_at IS NULL`, evt, ms(at)); err != nil {
		return fmt.Errorf("failed to settle encrypted event %s: %w", evt, err)
	}
	return nil
}

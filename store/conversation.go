package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/conversation"
)

// The store implements what conversations need.
var _ conversation.Store = (*Store)(nil)

// AddExchange records a question and its answer as two turns under the
// question's event id (see migration 07), the answer with its sources.
func (s *Store) AddExchange(ctx context.Context, ex conversation.Exchange) error {
	var sources string
	if len(ex.Sources) > 0 {
		b, err := json.Marshal(ex.Sources)
		if err != nil {
			return fmt.Errorf("failed to encode sources: %w", err)
		}
		sources = string(b)
	}
	const insert = `INSERT INTO conversation_turn (room_id, user_id, role, content, event_id, answer_event, sources, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	if _, err := s.db.Exec(ctx, insert, ex.Room, ex.User, conversation.RoleUser, ex.Asked, ex.Question, "", "", ms(ex.AskedAt)); err != nil {
		return fmt.Errorf("failed to store question: %w", err)
	}
	if _, err := s.db.Exec(ctx, insert, ex.Room, ex.User, conversation.RoleAssistant, ex.Answered, ex.Question, ex.Answer, sources, ms(ex.AnsweredAt)); err != nil {
		return fmt.Errorf("failed to store answer: %w", err)
	}
	return nil
}

const turnColumns = `role, content, event_id, answer_event, at`

func scanTurn(row interface{ Scan(...any) error }) (conversation.Turn, error) {
	var t conversation.Turn
	var question, answer string
	var at int64
	err := row.Scan(&t.Role, &t.Content, &question, &answer, &at)
	t.Question, t.Answer, t.At = id.EventID(question), id.EventID(answer), fromMS(at)
	return t, err
}

// RecentTurns returns at most limit latest turns of room's current
// conversation (see StartConversation) since a time, oldest first.
func (s *Store) RecentTurns(ctx context.Context, room id.RoomID, since time.Time, limit int) ([]conversation.Turn, error) {
	rows, err := s.db.Query(ctx, `SELECT `+turnColumns+` FROM
		(SELECT id, `+turnColumns+` FROM conversation_turn WHERE room_id=$1 AND at >= $3
			AND at >= COALESCE((SELECT started_at FROM conversation WHERE room_id=$1), 0)
			ORDER BY id DESC LIMIT $2) AS recent
		ORDER BY id`, room, limit, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []conversation.Turn
	for rows.Next() {
		t, err := scanTurn(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// QuotedTurn returns the turn a message in room replies to: a question by
// its event; an answer by the event it was first shown in, or by any
// message queued for its question (its first message when it had no
// placeholder, its continuations); nil if none.
func (s *Store) QuotedTurn(ctx context.Context, room id.RoomID, evt id.EventID) (*conversation.Turn, error) {
	t, err := scanTurn(s.db.QueryRow(ctx, `SELECT `+turnColumns+` FROM conversation_turn WHERE room_id=$1 AND (
			role='user' AND event_id=$2
			OR role='assistant' AND answer_event=$2
			OR role='assistant' AND event_id IN (SELECT regarding FROM outbox WHERE event_id=$2 AND kind=$3 AND regarding <> ''))
		ORDER BY id LIMIT 1`, room, evt, KindReply))
	if isNoRows(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return &t, nil
}

// TurnsOf returns the turns recorded for a question (its own and its
// answer's), oldest first.
func (s *Store) TurnsOf(ctx context.Context, question id.EventID) ([]conversation.Turn, error) {
	rows, err := s.db.Query(ctx, `SELECT `+turnColumns+` FROM conversation_turn WHERE event_id=$1 ORDER BY id`, question)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []conversation.Turn
	for rows.Next() {
		t, err := scanTurn(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LastExchange returns the latest answered exchange in room with its
// sources (the question's text is left empty), or nil.
func (s *Store) LastExchange(ctx context.Context, room id.RoomID) (*conversation.Exchange, error) {
	var ex conversation.Exchange
	var user, question, answer, sources string
	var at int64
	err := s.db.QueryRow(ctx, `SELECT user_id, event_id, answer_event, content, sources, at FROM conversation_turn
		WHERE room_id=$1 AND role='assistant' ORDER BY id DESC LIMIT 1`, room).Scan(&user, &question, &answer, &ex.Answered, &sources, &at)
	if isNoRows(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	ex.Room, ex.User, ex.Question, ex.Answer, ex.AnsweredAt = room, id.UserID(user), id.EventID(question), id.EventID(answer), fromMS(at)
	if sources != "" {
		if err := json.Unmarshal([]byte(sources), &ex.Sources); err != nil {
			return nil, fmt.Errorf("failed to decode sources: %w", err)
		}
	}
	return &ex, nil
}

// StartConversation starts a new conversation in room: earlier turns are no
// longer sent as context.
func (s *Store) StartConversation(ctx context.Context, room id.RoomID, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO conversation (room_id, started_at) VALUES ($1, $2)
		ON CONFLICT (room_id) DO UPDATE SET started_at=excluded.started_at`, room, ms(at))
	return err
}

// Prefs returns user's choices (the zero Prefs if none).
func (s *Store) Prefs(ctx context.Context, user id.UserID) (conversation.Prefs, error) {
	var p conversation.Prefs
	var collections sql.NullString
	err := s.db.QueryRow(ctx, `SELECT model, collections FROM agent_pref WHERE user_id=$1`, user).Scan(&p.Model, &collections)
	if isNoRows(err) {
		return p, nil
	} else if err != nil {
		return p, err
	}
	if collections.Valid {
		p.CollectionsChosen = true
		if err := json.Unmarshal([]byte(collections.String), &p.Collections); err != nil {
			return p, fmt.Errorf("failed to decode collections of %s: %w", user, err)
		}
	}
	return p, nil
}

// SetModelPref records user's model choice ("" for the default).
func (s *Store) SetModelPref(ctx context.Context, user id.UserID, model string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO agent_pref (user_id, model) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET model=excluded.model`, user, model)
	return err
}

// SetCollectionsPref records user's collections; chosen false goes back to
// the configured default.
func (s *Store) SetCollectionsPref(ctx context.Context, user id.UserID, ids []int, chosen bool) error {
	var value sql.NullString
	if chosen {
		if ids == nil {
			ids = []int{}
		}
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		value = sql.NullString{String: string(b), Valid: true}
	}
	_, err := s.db.Exec(ctx, `INSERT INTO agent_pref (user_id, collections) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET collections=excluded.collections`, user, value)
	return err
}

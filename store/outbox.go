package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// Outgoing is a message to a person, queued in the transaction of the change
// it reports. Key is unique per message and becomes the Matrix transaction id.
type Outgoing struct {
	Key       string
	RoomID    id.RoomID // where to send; empty with DMUser
	DMUser    id.UserID // send in the direct message with this user
	ReplyTo   id.EventID
	Replaces  id.EventID // set for an edit of an earlier message
	MsgType   string     // m.notice or m.text
	Markdown  string
	Mentions  []id.UserID
	CreatedAt time.Time
	Attempts  int
}

// Enqueue queues msg; a message with the same key is queued only once.
func (s *Store) Enqueue(ctx context.Context, msg Outgoing) error {
	_, err := s.db.Exec(ctx, `INSERT INTO outbox (key, room_id, dm_user, reply_to, replaces, msgtype, markdown, mentions, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING`,
		msg.Key, msg.RoomID, msg.DMUser, msg.ReplyTo, msg.Replaces, msg.MsgType, msg.Markdown, joinIDs(msg.Mentions), ms(msg.CreatedAt))
	if err != nil {
		return fmt.Errorf("failed to queue message %s: %w", msg.Key, err)
	}
	return nil
}

// MaxAttempts is how many times a message is tried before it is given up
// (and left in the outbox for an operator to look at).
const MaxAttempts = 20

// Unsent lists queued messages not yet delivered, in the order they were
// queued.
func (s *Store) Unsent(ctx context.Context, limit int) ([]Outgoing, error) {
	rows, err := s.db.Query(ctx, `SELECT key, room_id, dm_user, reply_to, replaces, msgtype, markdown, mentions, created_at, attempts
		FROM outbox WHERE sent_at IS NULL AND attempts < $2 ORDER BY rowid LIMIT $1`, limit, MaxAttempts)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Outgoing
	for rows.Next() {
		var m Outgoing
		var room, dm, reply, replaces, mentions string
		var created int64
		if err := rows.Scan(&m.Key, &room, &dm, &reply, &replaces, &m.MsgType, &m.Markdown, &mentions, &created, &m.Attempts); err != nil {
			return nil, err
		}
		m.RoomID, m.DMUser, m.ReplyTo, m.Replaces = id.RoomID(room), id.UserID(dm), id.EventID(reply), id.EventID(replaces)
		m.Mentions, m.CreatedAt = splitIDs(mentions), fromMS(created)
		out = append(out, m)
	}
	return out, rows.Err()
}

// MarkSent records delivery of a queued message.
func (s *Store) MarkSent(ctx context.Context, key string, eventID id.EventID, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE outbox SET sent_at=$2, event_id=$3 WHERE key=$1`, key, ms(at), eventID)
	return err
}

// MarkFailed records a failed delivery attempt.
func (s *Store) MarkFailed(ctx context.Context, key string, reason string) error {
	_, err := s.db.Exec(ctx, `UPDATE outbox SET attempts=attempts+1, last_error=$2 WHERE key=$1`, key, reason)
	return err
}

// SentEvent returns the event id a queued message was delivered as.
func (s *Store) SentEvent(ctx context.Context, key string) (id.EventID, bool, error) {
	var evt string
	var sent sql.NullInt64
	err := s.db.QueryRow(ctx, `SELECT event_id, sent_at FROM outbox WHERE key=$1`, key).Scan(&evt, &sent)
	if isNoRows(err) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	return id.EventID(evt), sent.Valid, nil
}

// DMRoom returns the direct-message room with user, if guichet has one.
func (s *Store) DMRoom(ctx context.Context, user id.UserID) (id.RoomID, error) {
	var room string
	err := s.db.QueryRow(ctx, `SELECT room_id FROM dm_room WHERE user_id=$1`, user).Scan(&room)
	if isNoRows(err) {
		return "", nil
	}
	return id.RoomID(room), err
}

// SetDMRoom records the direct-message room with user.
func (s *Store) SetDMRoom(ctx context.Context, user id.UserID, room id.RoomID, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO dm_room (user_id, room_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET room_id=excluded.room_id, created_at=excluded.created_at`, user, room, ms(at))
	return err
}

func joinIDs(ids []id.UserID) string {
	out := ""
	for i, u := range ids {
		if i > 0 {
			out += " "
		}
		out += string(u)
	}
	return out
}

func splitIDs(s string) []id.UserID {
	var out []id.UserID
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if i > start {
				out = append(out, id.UserID(s[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// OutgoingKeyForEvent returns the outbox key of the message delivered as evt.
func (s *Store) OutgoingKeyForEvent(ctx context.Context, evt id.EventID) (string, bool, error) {
	var key string
	err := s.db.QueryRow(ctx, `SELECT key FROM outbox WHERE event_id=$1`, evt).Scan(&key)
	if isNoRows(err) {
		return "", false, nil
	}
	return key, err == nil, err
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// Kind says what a queued message is. The key stays the idempotency key
// (and the Matrix transaction id); the kind, not a prefix of the key, is what
// pruning, reactions and quoted replies read.
type Kind string

// The kinds of queued messages.
const (
	KindAck           Kind = "ack"           // acknowledgement of a request in the support room (reactions on it decide)
	KindCmd           Kind = "cmd"           // answer to a command
	KindReply         Kind = "reply"         // answer to a question in a DM (or its final edit)
	KindNotice        Kind = "notice"        // notice sent before an answer
	KindAfter         Kind = "after"         // notice sent after an answer (quota warnings)
	KindQueue         Kind = "queue"         // a question's place in the queue
	KindBreaker       Kind = "breaker"       // Albert overloaded: to the agent waiting, or to the support room
	KindWelcome       Kind = "welcome"       // the welcome of an approved agent
	KindWaitlisted    Kind = "waitlisted"    // decision notice: waitlisted
	KindRejected      Kind = "rejected"      // decision notice: rejected
	KindRevoked       Kind = "revoked"       // decision notice: revoked
	KindUndecryptable Kind = "undecryptable" // asks the sender of an undecryptable message to send it again
	KindNotDM         Kind = "notdm"         // why guichet leaves a room that is not a DM
	KindReminder      Kind = "reminder"      // stale requests, to the support room
	KindPause         Kind = "pause"         // Albert's key paused, to the support room
	KindResume        Kind = "resume"        // Albert's key works again, to the support room
	KindAlert         Kind = "alert"         // operator alert
	KindResolved      Kind = "resolved"      // operator alert resolved
	KindUndelivered   Kind = "undelivered"   // someone told that a message could not be delivered
	// KindHook is a decision posted to hooks.decisions_url, not a Matrix
	// message: Markdown holds the exact JSON body, RoomID "hook:<user id>"
	// keeps one agent's deliveries in order.
	KindHook Kind = "hook"
)

// Decision tells the kinds that tell an agent about their access: when one
// cannot be delivered the moderators must know.
func (k Kind) Decision() bool {
	switch k {
	case KindWelcome, KindWaitlisted, KindRejected, KindRevoked:
		return true
	}
	return false
}

// Outgoing is a message to a person, queued in the transaction of the change
// it reports. Key is unique per message and becomes the Matrix transaction id.
type Outgoing struct {
	Key      string
	RoomID   id.RoomID // where to send; empty with DMUser
	DMUser   id.UserID // send in the direct message with this user
	ReplyTo  id.EventID
	Replaces id.EventID // set for an edit of an earlier message
	MsgType  string     // m.notice or m.text
	Markdown string
	Mentions []id.UserID

	// Kind, RequestID, Regarding and Recipient say what the message is and
	// what it belongs to. Enqueue derives those left empty from the key
	// (and Regarding from ReplyTo, Recipient from DMUser).
	Kind      Kind
	RequestID int64      // the access request it reports on
	Regarding id.EventID // the event it answers: a question, an announcement, a command
	Recipient id.UserID  // the one person it is for, if any

	CreatedAt   time.Time
	Attempts    int
	NextAttempt time.Time // when it may be tried again
	// SendingAt is when its last send started (zero: never tried); see
	// migration 10.
	SendingAt time.Time
	GivenUpAt time.Time // when guichet stopped trying (zero while it tries)
	LastError string
	// DMRequestedAt is when a DM room was asked for it: if the answer was
	// lost, the room may exist without DMCreated.
	DMRequestedAt time.Time
	DMCreated     id.RoomID // the DM room opened for it, before the invite
}

// KindOfKey is the kind of a key built the way guichet builds them
// ("kind:rest"), for callers that did not set Kind.
func KindOfKey(key string) Kind {
	k, _, ok := strings.Cut(key, ":")
	if !ok {
		return ""
	}
	return Kind(k)
}

// withDefaults fills what the caller left empty from the key, so that a
// message built by code that predates the columns is still read right.
func (m Outgoing) withDefaults() Outgoing {
	if m.Kind == "" {
		m.Kind = KindOfKey(m.Key)
	}
	rest := strings.TrimPrefix(m.Key, string(m.Kind)+":")
	if m.RequestID == 0 && m.Kind.Decision() {
		m.RequestID, _ = strconv.ParseInt(rest, 10, 64)
	}
	if m.Regarding == "" {
		switch {
		case m.ReplyTo != "":
			m.Regarding = m.ReplyTo
		case (m.Kind == KindNotice || m.Kind == KindAfter) && strings.HasPrefix(rest, "$"):
			if i := strings.LastIndexByte(rest, ':'); i > 0 {
				m.Regarding = id.EventID(rest[:i])
			}
		}
	}
	if m.Recipient == "" {
		m.Recipient = m.DMUser
	}
	return m
}

// Enqueue queues msg; a message with the same key is queued only once.
func (s *Store) Enqueue(ctx context.Context, msg Outgoing) error {
	msg = msg.withDefaults()
	_, err := s.db.Exec(ctx, `INSERT INTO outbox (key, room_id, dm_user, reply_to, replaces, msgtype, markdown, mentions, created_at,
			kind, request_id, regarding, recipient, next_attempt)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (key) DO NOTHING`,
		msg.Key, msg.RoomID, msg.DMUser, msg.ReplyTo, msg.Replaces, msg.MsgType, msg.Markdown, joinIDs(msg.Mentions), ms(msg.CreatedAt),
		msg.Kind, msg.RequestID, msg.Regarding, msg.Recipient, ms(msg.NextAttempt))
	if err != nil {
		return fmt.Errorf("failed to queue message %s: %w", msg.Key, err)
	}
	return nil
}

// MaxAttempts is how many times a message is tried before it is given up
// (a permanent error gives it up at once).
const MaxAttempts = 20

// Retry delays: the first retry after RetryBase, each later one after twice
// the previous, at most RetryMax apart. Twenty attempts span about two
// hours: a homeserver restarting or a network cut is waited out, while each
// message costs at most one request per RetryMax.
const (
	RetryBase = 5 * time.Second
	RetryMax  = 10 * time.Minute
)

// RetryDelay is how long to wait after the given number of failed attempts.
func RetryDelay(attempts int) time.Duration {
	d := RetryBase
	for i := 1; i < attempts && d < RetryMax; i++ {
		d *= 2
	}
	return min(d, RetryMax)
}

const outgoingColumns = `key, room_id, dm_user, reply_to, replaces, msgtype, markdown, mentions, created_at, attempts,
	kind, request_id, regarding, recipient, next_attempt, given_up_at, last_error, dm_requested_at, dm_created, sending_at`

func scanOutgoing(row dbutil.Scannable) (*Outgoing, error) {
	var m Outgoing
	var room, dm, reply, replaces, mentions, kind, regarding, recipient, created string
	var createdAt, next, requested, sending int64
	var givenUp sql.NullInt64
	err := row.Scan(&m.Key, &room, &dm, &reply, &replaces, &m.MsgType, &m.Markdown, &mentions, &createdAt, &m.Attempts,
		&kind, &m.RequestID, &regarding, &recipient, &next, &givenUp, &m.LastError, &requested, &created, &sending)
	if err != nil {
		return nil, err
	}
	m.RoomID, m.DMUser, m.ReplyTo, m.Replaces = id.RoomID(room), id.UserID(dm), id.EventID(reply), id.EventID(replaces)
	m.Mentions, m.CreatedAt = splitIDs(mentions), fromMS(createdAt)
	m.Kind, m.Regarding, m.Recipient, m.DMCreated = Kind(kind), id.EventID(regarding), id.UserID(recipient), id.RoomID(created)
	m.SendingAt = fromMS(sending)
	m.NextAttempt, m.GivenUpAt, m.DMRequestedAt = fromMS(next), nullMS(givenUp), fromMS(requested)
	return &m, nil
}

func (s *Store) listOutgoing(ctx context.Context, query string, args ...any) ([]Outgoing, error) {
	rows, err := s.db.Query(ctx, query, args...)
	list, err := dbutil.NewRowIterWithError(rows, scanOutgoing, err).AsList()
	if err != nil {
		return nil, err
	}
	out := make([]Outgoing, len(list))
	for i, m := range list {
		out[i] = *m
	}
	return out, nil
}

// Unsent lists the messages still to deliver, whether due or waiting for
// their next attempt, in the order they were queued.
func (s *Store) Unsent(ctx context.Context, limit int) ([]Outgoing, error) {
	return s.listOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox
		WHERE sent_at IS NULL AND given_up_at IS NULL ORDER BY `+s.seq+` LIMIT $1`, limit)
}

// Due lists the messages to try at now, in the order they were queued: those
// whose next attempt has come, unless an earlier message to the same room
// (or person) still waits for its own, since messages to one room keep their
// order. Messages waiting for a retry neither block other rooms nor take
// room in the page.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]Outgoing, error) {
	// Without the hint SQLite walks the whole table in rowid order (ORDER
	// BY with LIMIT), delivered rows included; the partial index holds only
	// the rows still to deliver (BenchmarkOutboxDue, 20,000 delivered rows:
	// 0.25 ms a pass instead of 1.7 ms).
	list, err := s.listOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox o `+s.dueHint+`
		WHERE o.sent_at IS NULL AND o.given_up_at IS NULL AND o.next_attempt <= $1
		AND NOT EXISTS (SELECT 1 FROM outbox p
			WHERE p.sent_at IS NULL AND p.given_up_at IS NULL AND p.room_id = o.room_id AND p.dm_user = o.dm_user
			AND p.next_attempt > $1 AND p.`+s.seq+` < o.`+s.seq+`)
		ORDER BY o.`+s.seq+` LIMIT $2`, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("failed to read the outbox: %w", err)
	}
	return list, nil
}

// NextAttempt returns when the earliest message waiting for a retry after
// now is due. Messages due by now are not counted: those Due did not return
// wait behind one of these.
func (s *Store) NextAttempt(ctx context.Context, now time.Time) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.db.QueryRow(ctx, `SELECT min(next_attempt) FROM outbox WHERE sent_at IS NULL AND given_up_at IS NULL AND next_attempt > $1`,
		ms(now)).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return fromMS(next.Int64), true, nil
}

// MarkSent records delivery of a queued message.
// MarkSending records that a send of the message starts at at, before the
// request leaves (see migration 10).
func (s *Store) MarkSending(ctx context.Context, key string, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE outbox SET sending_at=$2 WHERE key=$1`, key, ms(at))
	return err
}

// MarkSent records that a message was delivered as eventID.
func (s *Store) MarkSent(ctx context.Context, key string, eventID id.EventID, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE outbox SET sent_at=$2, event_id=$3 WHERE key=$1`, key, ms(at), eventID)
	return err
}

// Failed records a failed attempt at at. A temporary failure schedules the
// next attempt RetryDelay later; a permanent one, or the MaxAttempts-th,
// gives the message up. It returns whether the message was given up now.
func (s *Store) Failed(ctx context.Context, key, reason string, at time.Time, permanent bool) (bool, error) {
	var gaveUp bool
	err := s.InTx(ctx, func(ctx context.Context) error {
		var attempts int
		var givenUp sql.NullInt64
		err := s.db.QueryRow(ctx, `SELECT attempts, given_up_at FROM outbox WHERE key=$1 AND sent_at IS NULL`, key).Scan(&attempts, &givenUp)
		if isNoRows(err) || err == nil && givenUp.Valid {
			return nil // delivered or given up meanwhile
		} else if err != nil {
			return err
		}
		attempts++
		if permanent || attempts >= MaxAttempts {
			gaveUp = true
			_, err = s.db.Exec(ctx, `UPDATE outbox SET attempts=$2, last_error=$3, given_up_at=$4 WHERE key=$1`, key, attempts, reason, ms(at))
			return err
		}
		_, err = s.db.Exec(ctx, `UPDATE outbox SET attempts=$2, last_error=$3, next_attempt=$4 WHERE key=$1`,
			key, attempts, reason, ms(at.Add(RetryDelay(attempts))))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("failed to record a delivery failure of %s: %w", key, err)
	}
	return gaveUp, nil
}

// MarkFailed records a temporary failure now (see Failed).
func (s *Store) MarkFailed(ctx context.Context, key string, reason string) error {
	_, err := s.Failed(ctx, key, reason, time.Now(), false)
	return err
}

// DMRequested records, before the request, that a direct-message room is
// being asked for to deliver a message: if the answer is lost (a timeout,
// a crash), the next attempt knows the room may exist.
func (s *Store) DMRequested(ctx context.Context, key string, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE outbox SET dm_requested_at=$2 WHERE key=$1`, key, ms(at))
	if err != nil {
		return fmt.Errorf("failed to record the room asked for %s: %w", key, err)
	}
	return nil
}

// SetDMCreated records the direct-message room opened to deliver a message,
// before anyone is invited to it: an attempt cut after the room exists
// reuses it instead of creating another.
func (s *Store) SetDMCreated(ctx context.Context, key string, room id.RoomID) error {
	_, err := s.db.Exec(ctx, `UPDATE outbox SET dm_created=$2 WHERE key=$1`, key, room)
	if err != nil {
		return fmt.Errorf("failed to record the room opened for %s: %w", key, err)
	}
	return nil
}

// CountGivenUp counts the messages given up since a time, by kind.
func (s *Store) CountGivenUp(ctx context.Context, since time.Time) (map[Kind]int, error) {
	rows, err := s.db.Query(ctx, `SELECT kind, count(*) FROM outbox WHERE given_up_at >= $1 GROUP BY kind`, ms(since))
	if err != nil {
		return nil, fmt.Errorf("failed to count given-up messages: %w", err)
	}
	defer rows.Close()
	out := map[Kind]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		out[Kind(kind)] = n
	}
	return out, rows.Err()
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

// DMUserOf returns the user whose direct-message room this is, if any.
func (s *Store) DMUserOf(ctx context.Context, room id.RoomID) (id.UserID, error) {
	var user string
	err := s.db.QueryRow(ctx, `SELECT user_id FROM dm_room WHERE room_id=$1`, room).Scan(&user)
	if isNoRows(err) {
		return "", nil
	}
	return id.UserID(user), err
}

// ForgetDMRoom forgets that room is the direct message with user (they or
// guichet left it), unless another room replaced it meanwhile.
func (s *Store) ForgetDMRoom(ctx context.Context, user id.UserID, room id.RoomID) error {
	_, err := s.db.Exec(ctx, `DELETE FROM dm_room WHERE user_id=$1 AND room_id=$2`, user, room)
	if err != nil {
		return fmt.Errorf("failed to forget the direct message with %s: %w", user, err)
	}
	return nil
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

// OutgoingByEvent returns the queued message delivered as evt, or nil.
func (s *Store) OutgoingByEvent(ctx context.Context, evt id.EventID) (*Outgoing, error) {
	m, err := scanOutgoing(s.db.QueryRow(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE event_id=$1`, evt))
	if isNoRows(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("failed to find the message sent as %s: %w", evt, err)
	}
	return m, nil
}

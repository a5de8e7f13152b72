package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
)

var _ approvals.Store = (*Store)(nil)

const requestColumns = `id, user_id, status, renewal, room_id, event_id, reason, decided_by, decided_at, created_at, updated_at, last_seen_at, partner`

const (
	latestRequestQuery = `SELECT ` + requestColumns + ` FROM access_request WHERE user_id=$1 ORDER BY id DESC LIMIT 1`
	requestByIDQuery   = `SELECT ` + requestColumns + ` FROM access_request WHERE id=$1`
	insertRequestQuery = `
		INSERT INTO access_request (user_id, status, renewal, room_id, event_id, reason, decided_by, decided_at, created_at, updated_at, last_seen_at, partner)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`
	touchRequestQuery = `UPDATE access_request SET last_seen_at=$2 WHERE id=$1`
	insertAuditQuery  = `INSERT INTO audit_log (at, actor, target, request_id, action, reason) VALUES ($1, $2, $3, $4, $5, $6)`
	insertConsent     = `INSERT INTO consent (user_id, policy_version, accepted_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	consentQuery      = `SELECT accepted_at FROM consent WHERE user_id=$1 AND policy_version=$2`
)

type scannable interface{ Scan(dest ...any) error }

// scanRequest reads requestColumns, then into extra what the query selects
// after them.
func scanRequest(row scannable, extra ...any) (*approvals.Request, error) {
	var r approvals.Request
	var user, status, room, evt, decidedBy string
	var decidedAt, created, updated, seen int64
	err := row.Scan(append([]any{&r.ID, &user, &status, &r.Renewal, &room, &evt, &r.Reason, &decidedBy, &decidedAt, &created, &updated, &seen, &r.Partner}, extra...)...)
	if isNoRows(err) {
		return nil, approvals.ErrNotFound
	} else if err != nil {
		return nil, err
	}
	r.UserID, r.Status, r.RoomID, r.EventID, r.DecidedBy = id.UserID(user), approvals.Status(status), id.RoomID(room), id.EventID(evt), id.UserID(decidedBy)
	r.DecidedAt, r.CreatedAt, r.UpdatedAt, r.LastSeenAt = fromMS(decidedAt), fromMS(created), fromMS(updated), fromMS(seen)
	return &r, nil
}

// LatestRequest implements approvals.Store.
func (s *Store) LatestRequest(ctx context.Context, user id.UserID) (*approvals.Request, error) {
	return scanRequest(s.db.QueryRow(ctx, latestRequestQuery, user))
}

// LatestRequestAndConsent implements approvals.Store.
func (s *Store) LatestRequestAndConsent(ctx context.Context, user id.UserID, version string) (*approvals.Request, bool, error) {
	var consented sql.NullInt64
	req, err := scanRequest(s.db.QueryRow(ctx, `SELECT `+requestColumns+`,
			(SELECT accepted_at FROM consent WHERE user_id=$1 AND policy_version=$2)
		FROM access_request WHERE user_id=$1 ORDER BY id DESC LIMIT 1`, user, version), &consented)
	return req, consented.Valid, err
}

// RequestByID returns one request by its number.
func (s *Store) RequestByID(ctx context.Context, reqID int64) (*approvals.Request, error) {
	return scanRequest(s.db.QueryRow(ctx, requestByIDQuery, reqID))
}

// PendingRequests lists all waiting requests, oldest first.
func (s *Store) PendingRequests(ctx context.Context) ([]*approvals.Request, error) {
	reqs, _, err := s.PendingPage(ctx, time.Time{}, -1)
	return reqs, err
}

// PendingPage lists at most limit waiting requests created before olderThan
// (zero: any), oldest first, and how many there are in all: a moderator
// reads the first fifty of ten thousand, not all of them.
func (s *Store) PendingPage(ctx context.Context, olderThan time.Time, limit int) ([]*approvals.Request, int, error) {
	cutoff := int64(1<<63 - 1)
	if !olderThan.IsZero() {
		cutoff = ms(olderThan)
	}
	var total int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM access_request WHERE status='pending' AND created_at <= $1`, cutoff).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("failed to count pending requests: %w", err)
	}
	if limit < 0 {
		limit = 1<<31 - 1 // no limit: SQLite reads a negative LIMIT so, PostgreSQL refuses it
	}
	rows, err := s.db.Query(ctx, `SELECT `+requestColumns+` FROM access_request WHERE status='pending' AND created_at <= $1 ORDER BY id LIMIT $2`, cutoff, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to list pending requests: %w", err)
	}
	defer rows.Close()
	var out []*approvals.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}

// CreateRequest implements approvals.Store.
func (s *Store) CreateRequest(ctx context.Context, r *approvals.Request) error {
	err := s.db.QueryRow(ctx, insertRequestQuery, r.UserID, r.Status, r.Renewal, r.RoomID, r.EventID, r.Reason,
		r.DecidedBy, ms(r.DecidedAt), ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.LastSeenAt), r.Partner).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("failed to insert request of %s: %w", r.UserID, err)
	}
	return nil
}

// Transition implements approvals.Store with a guarded update.
func (s *Store) Transition(ctx context.Context, reqID int64, from []approvals.Status, to approvals.Status, actor id.UserID, reason string, at time.Time) error {
	args := []any{reqID, to, actor, reason, ms(at)}
	marks := make([]string, len(from))
	for i, st := range from {
		args = append(args, st)
		marks[i] = fmt.Sprintf("$%d", len(args))
	}
	// An empty actor (consent) keeps who decided and why.
	query := `UPDATE access_request
		SET status=$2, updated_at=$5,
			decided_by=CASE WHEN $3='' THEN decided_by ELSE $3 END,
			reason=CASE WHEN $3='' THEN reason ELSE $4 END,
			decided_at=CASE WHEN $3='' THEN decided_at ELSE $5 END
		WHERE id=$1 AND status IN (` + strings.Join(marks, ", ") + `)`
	res, err := s.db.Exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("failed to move request #%d to %s: %w", reqID, to, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return approvals.ErrConflict
	}
	return nil
}

// TouchRequest implements approvals.Store.
func (s *Store) TouchRequest(ctx context.Context, reqID int64, at time.Time) error {
	_, err := s.db.Exec(ctx, touchRequestQuery, reqID, ms(at))
	return err
}

// AddAudit implements approvals.Store.
func (s *Store) AddAudit(ctx context.Context, e approvals.AuditEntry) error {
	var reqID any
	if e.RequestID != 0 {
		reqID = e.RequestID
	}
	_, err := s.db.Exec(ctx, insertAuditQuery, ms(e.At), e.Actor, e.Target, reqID, e.Action, e.Reason)
	if err != nil {
		return fmt.Errorf("failed to write audit row: %w", err)
	}
	return nil
}

// SenderOf returns who sent an event guichet recorded in its inbox ("" if
// it was never recorded or has been pruned).
func (s *Store) SenderOf(ctx context.Context, evt id.EventID) (id.UserID, error) {
	var sender string
	err := s.db.QueryRow(ctx, `SELECT sender FROM inbox WHERE event_id=$1`, evt).Scan(&sender)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id.UserID(sender), err
}

const lastAuditQuery = `SELECT at FROM audit_log WHERE target=$1 AND actor=$1 AND action=$2 ORDER BY at DESC, id DESC LIMIT 1`

// LastAudit implements approvals.Store.
func (s *Store) LastAudit(ctx context.Context, user id.UserID, action string) (time.Time, bool, error) {
	var at int64
	err := s.db.QueryRow(ctx, lastAuditQuery, user, action).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, fmt.Errorf("failed to read the last %s of %s: %w", action, user, err)
	}
	return fromMS(at), true, nil
}

// Audit returns the audit rows about target, oldest first.
func (s *Store) Audit(ctx context.Context, target id.UserID) ([]approvals.AuditEntry, error) {
	rows, err := s.db.Query(ctx, `SELECT at, actor, target, COALESCE(request_id, 0), action, reason FROM audit_log WHERE target=$1 ORDER BY id`, target)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []approvals.AuditEntry
	for rows.Next() {
		var e approvals.AuditEntry
		var at int64
		var actor, tgt string
		if err := rows.Scan(&at, &actor, &tgt, &e.RequestID, &e.Action, &e.Reason); err != nil {
			return nil, err
		}
		e.At, e.Actor, e.Target = fromMS(at), id.UserID(actor), id.UserID(tgt)
		out = append(out, e)
	}
	return out, rows.Err()
}

// RecordConsent implements approvals.Store.
func (s *Store) RecordConsent(ctx context.Context, user id.UserID, version string, at time.Time) error {
	_, err := s.db.Exec(ctx, insertConsent, user, version, ms(at))
	return err
}

// ConsentedAt implements approvals.Store.
func (s *Store) ConsentedAt(ctx context.Context, user id.UserID, version string) (time.Time, bool, error) {
	var at int64
	err := s.db.QueryRow(ctx, consentQuery, user, version).Scan(&at)
	if isNoRows(err) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, err
	}
	return fromMS(at), true, nil
}

// CountGranted implements approvals.Store: the approved and active requests
// of partner ("" : the default profile).
func (s *Store) CountGranted(ctx context.Context, partner string) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM access_request WHERE partner=$1 AND status IN ('approved', 'active')`, partner).Scan(&n)
	return n, err
}

// OldestWaitlisted implements approvals.Store: the waitlisted request of
// partner decided first (the lowest number among equals), or
// approvals.ErrNotFound.
func (s *Store) OldestWaitlisted(ctx context.Context, partner string) (*approvals.Request, error) {
	return scanRequest(s.db.QueryRow(ctx, `SELECT `+requestColumns+` FROM access_request WHERE partner=$1 AND status='waitlisted' ORDER BY decided_at, id LIMIT 1`, partner))
}

// RequestUsers implements approvals.Store: every person with a request, in
// user-id order.
func (s *Store) RequestUsers(ctx context.Context) ([]id.UserID, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT user_id FROM access_request ORDER BY user_id`)
	if err != nil {
		return nil, fmt.Errorf("failed to list requesters: %w", err)
	}
	defer rows.Close()
	var out []id.UserID
	for rows.Next() {
		var user string
		if err := rows.Scan(&user); err != nil {
			return nil, err
		}
		out = append(out, id.UserID(user))
	}
	return out, rows.Err()
}

// SetRequestPartner implements approvals.Store: it records partner on all of
// user's requests that name another one, and returns how many changed. It
// changes nothing else (not updated_at: no decision was taken).
func (s *Store) SetRequestPartner(ctx context.Context, user id.UserID, partner string) (int64, error) {
	res, err := s.db.Exec(ctx, `UPDATE access_request SET partner=$2 WHERE user_id=$1 AND partner<>$2`, user, partner)
	if err != nil {
		return 0, fmt.Errorf("failed to set the partner of %s: %w", user, err)
	}
	return res.RowsAffected()
}

// RequestByEvent returns the request opened by the message evt.
func (s *Store) RequestByEvent(ctx context.Context, evt id.EventID) (*approvals.Request, error) {
	return scanRequest(s.db.QueryRow(ctx, `SELECT `+requestColumns+` FROM access_request WHERE event_id=$1`, evt))
}

// CountByStatus counts requests per status.
func (s *Store) CountByStatus(ctx context.Context) (map[approvals.Status]int, error) {
	rows, err := s.db.Query(ctx, `SELECT status, COUNT(*) FROM access_request GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[approvals.Status]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[approvals.Status(st)] = n
	}
	return out, rows.Err()
}

// LockAccess implements approvals.Store: on PostgreSQL a lock held until
// the transaction ends; nothing on SQLite, whose transactions are immediate.
func (s *Store) LockAccess(ctx context.Context) error {
	if s.db.Dialect != dbutil.Postgres {
		return nil
	}
	_, err := s.db.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('guichet.access'))`)
	return err
}

// CountByPartner counts requests per partner ("" : the default profile) and
// status, for the moderators' list of partners. A partner or a status without
// requests is absent.
func (s *Store) CountByPartner(ctx context.Context) (map[string]map[approvals.Status]int, error) {
	rows, err := s.db.Query(ctx, `SELECT partner, status, COUNT(*) FROM access_request GROUP BY partner, status`)
	if err != nil {
		return nil, fmt.Errorf("failed to count requests by partner: %w", err)
	}
	defer rows.Close()
	out := map[string]map[approvals.Status]int{}
	for rows.Next() {
		var partner, st string
		var n int
		if err := rows.Scan(&partner, &st, &n); err != nil {
			return nil, err
		}
		if out[partner] == nil {
			out[partner] = map[approvals.Status]int{}
		}
		out[partner][approvals.Status(st)] = n
	}
	return out, rows.Err()
}

// Setting implements approvals.Store.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var value string
	err := s.db.QueryRow(ctx, `SELECT value FROM setting WHERE key=$1`, key).Scan(&value)
	if isNoRows(err) {
		return "", false, nil
	}
	return value, err == nil, err
}

// SetSetting implements approvals.Store.
func (s *Store) SetSetting(ctx context.Context, key, value string, at time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO setting (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at`, key, value, ms(at))
	return err
}

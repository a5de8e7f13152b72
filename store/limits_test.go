package store_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"go.mau.fi/util/dbutil"

	"guichet/internal/testdb"
	"guichet/ratelimit"
	"guichet/store"
)

func TestLimitState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	st, db := openPath(t, path)

	got, err := st.LimitState(ctx, alice)
	if err != nil || !equalState(got, ratelimit.State{}) {
		t.Fatalf("LimitState of an unknown agent = %+v, %v; want the zero State", got, err)
	}
	want := ratelimit.State{
		Admitted: []time.Time{t0, t0, t0.Add(1500 * time.Millisecond)},
		Bucket:   1.75, RefilledAt: t0, Day: "2026-11-02", Messages: 12, Tokens: 34567,
		WarnedMessages: true, WarnedTokens: false,
	}
	if err := st.SaveLimitState(ctx, alice, want); err != nil {
		t.Fatalf("SaveLimitState: %v", err)
	}
	// Admissions replace the saved ones as a whole.
	want.Messages, want.WarnedTokens = 13, true
	want.Admitted = append(want.Admitted[1:], t0.Add(2*time.Second))
	if err := st.SaveLimitState(ctx, alice, want); err != nil {
		t.Fatalf("SaveLimitState again: %v", err)
	}
	if err := st.SaveLimitState(ctx, bob, ratelimit.State{Day: "2026-11-01", Admitted: []time.Time{t0}}); err != nil {
		t.Fatalf("SaveLimitState(bob): %v", err)
	}
	if err := st.SaveLimitState(ctx, bob, ratelimit.State{Day: "2026-11-01"}); err != nil {
		t.Fatalf("SaveLimitState(bob) without admissions: %v", err)
	}

	// A restart: a new Store on the same file.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ = openPath(t, path)
	got, err = st.LimitState(ctx, alice)
	if err != nil {
		t.Fatalf("LimitState after reopening: %v", err)
	}
	if !equalState(got, want) {
		t.Errorf("LimitState = %+v, want %+v", got, want)
	}
	if got, _ := st.LimitState(ctx, bob); got.Day != "2026-11-01" || !got.RefilledAt.IsZero() || len(got.Admitted) != 0 {
		t.Errorf("LimitState(bob) = %+v", got)
	}
}

// equalState compares States by instant, as times read back from the
// database carry another location.
func equalState(a, b ratelimit.State) bool {
	if !slices.EqualFunc(a.Admitted, b.Admitted, time.Time.Equal) || !a.RefilledAt.Equal(b.RefilledAt) {
		return false
	}
	a.Admitted, b.Admitted, a.RefilledAt, b.RefilledAt = nil, nil, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestLimitOverride(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	tests := []struct {
		name   string
		set    ratelimit.Limits
		wantOK bool
	}{
		{"set", ratelimit.Limits{MessagesPerDay: 500}, true},
		{"replace as a whole", ratelimit.Limits{MessagesPerMinute: 10, TokensPerDay: 20000}, true},
		{"delete with the zero Limits", ratelimit.Limits{}, false},
		{"delete again", ratelimit.Limits{}, false},
		{"set after delete", ratelimit.Limits{MessagesPerMinute: 1, MessagesPerDay: 2, TokensPerDay: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.SetLimitOverride(ctx, alice, tt.set, t0); err != nil {
				t.Fatalf("SetLimitOverride: %v", err)
			}
			got, ok, err := st.LimitOverride(ctx, alice)
			if err != nil || ok != tt.wantOK || got != tt.set {
				t.Errorf("LimitOverride = %+v, %v, %v; want %+v, %v", got, ok, err, tt.set, tt.wantOK)
			}
		})
	}
	if _, ok, err := st.LimitOverride(ctx, bob); ok || err != nil {
		t.Errorf("LimitOverride(bob) = %v, %v; want none", ok, err)
	}
}

// TestLimitStateInTx checks that read-modify-write in InTx does not lose
// updates: SQLite transactions are immediate, so they queue.
func TestLimitStateInTx(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := st.InTx(ctx, func(ctx context.Context) error {
				s, err := st.LimitState(ctx, alice)
				if err != nil {
					return err
				}
				s.Messages++
				return st.SaveLimitState(ctx, alice, s)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if s, _ := st.LimitState(ctx, alice); s.Messages != 20 {
		t.Errorf("Messages = %d, want 20", s.Messages)
	}
}

// TestUpgradeFromV1 opens a database made by the first schema only, as a
// guichet from before rate limits left it, and upgrades it.
func TestUpgradeFromV1(t *testing.T) {
	testdb.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	latest, err := os.ReadFile("upgrades/00-latest.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v1 := dbutil.BuildUpgradeTable().WithFSPath(fstest.MapFS{"upgrades/00-latest.sql": {Data: latest}}, "upgrades").Finish()
	if err := db.Child(store.VersionTable, v1, dbutil.NoopLogger).Upgrade(ctx); err != nil {
		t.Fatalf("creating a v1 database: %v", err)
	}
	// Written as a v1 guichet did: the columns of that schema only.
	_, err = db.Exec(ctx, `INSERT INTO access_request (user_id, status, room_id, created_at, updated_at, last_seen_at)
		VALUES ($1, 'pending', $2, $3, $3, $3)`, alice, room, t0.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, db := openPath(t, path)
	var version int
	if err := db.QueryRow(ctx, "SELECT version FROM "+store.VersionTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 2 {
		t.Errorf("version = %d, want >= 2", version)
	}
	saved := ratelimit.State{Day: "2026-11-02", Messages: 1, Admitted: []time.Time{t0}}
	if err := st.SaveLimitState(ctx, alice, saved); err != nil {
		t.Errorf("SaveLimitState after the upgrade: %v", err)
	}
	if got, err := st.LimitState(ctx, alice); err != nil || !equalState(got, saved) {
		t.Errorf("LimitState after the upgrade = %+v, %v; want %+v", got, err, saved)
	}
	if req, err := st.LatestRequest(ctx, alice); err != nil {
		t.Errorf("the v1 data is gone: %v", err)
	} else if req.Status != "pending" || req.Partner != "" {
		t.Errorf("the v1 request after the upgrade = %+v, want pending in the default profile", req)
	}
}

// TestUpgradeToLimitWindow upgrades a v3 database holding an agent's
// counters: they are kept, with no admissions recorded yet.
func TestUpgradeToLimitWindow(t *testing.T) {
	testdb.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	v3 := fstest.MapFS{}
	for _, name := range []string{"00-latest.sql", "02-limits.sql", "03-outbox-index.sql"} {
		data, err := os.ReadFile("upgrades/" + name)
		if err != nil {
			t.Fatal(err)
		}
		v3["upgrades/"+name] = &fstest.MapFile{Data: data}
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Child(store.VersionTable, dbutil.BuildUpgradeTable().WithFSPath(v3, "upgrades").Finish(), dbutil.NoopLogger).Upgrade(ctx); err != nil {
		t.Fatalf("creating a v3 database: %v", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO limit_state (user_id, bucket, refilled_at, day, messages, tokens)
		VALUES ($1, 1.5, $2, '2026-11-02', 7, 900)`, alice, t0.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, _ := openPath(t, path)
	want := ratelimit.State{Bucket: 1.5, RefilledAt: t0, Day: "2026-11-02", Messages: 7, Tokens: 900}
	if got, err := st.LimitState(ctx, alice); err != nil || !equalState(got, want) {
		t.Errorf("LimitState after the upgrade = %+v, %v; want %+v", got, err, want)
	}
}

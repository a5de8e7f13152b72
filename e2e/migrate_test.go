package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/config"
	"guichet/internal/pgtest"
	"guichet/store"
)

// migratedState is what must cross the migration: an agent's counters and
// the Megolm sessions of her DM.
type migratedState struct {
	messages, tokens int64
	outbound         string   // guichet's session in the DM
	inbound          []string // every session it can decrypt there
}

func readMigratedState(t *testing.T, cfg config.Database, user id.UserID, dm id.RoomID) migratedState {
	t.Helper()
	db := openDB(t, cfg)
	defer db.Close()
	ctx := context.Background()
	var s migratedState
	if err := db.QueryRow(ctx, "SELECT messages, tokens FROM limit_state WHERE user_id = $1", user).Scan(&s.messages, &s.tokens); err != nil {
		t.Fatalf("%s's counters: %v", user, err)
	}
	if err := db.QueryRow(ctx, "SELECT session_id FROM crypto_megolm_outbound_session WHERE room_id = $1", dm).Scan(&s.outbound); err != nil {
		t.Fatalf("guichet's Megolm session in the DM: %v", err)
	}
	rows, err := db.Query(ctx, "SELECT session_id FROM crypto_megolm_inbound_session WHERE room_id = $1 ORDER BY session_id", dm)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			t.Fatal(err)
		}
		s.inbound = append(s.inbound, sid)
	}
	return s
}

// guichet run on SQLite, stopped, copied by migrate-db into PostgreSQL and
// started there goes on as the same device: the agent's next encrypted
// question in her existing DM is answered, with the same Megolm sessions on
// both sides; the pending request of another person and the agent's quota
// are still there. The SQLite file is moved away first, so that everything
// comes from PostgreSQL.
func TestMigrateDBKeepsDeviceSessionsAndState(t *testing.T) {
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip("PostgreSQL is needed:", err)
	}
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatalf("PostgreSQL for the tests: %v", err)
	}
	w := newWorld(t)
	// On SQLite, whatever GUICHET_TEST_DATABASE says.
	sqlitePath := filepath.Join(w.dir, "migrated.db")
	w.cfg.Database.Type, w.cfg.Database.URI = store.DialectSQLite, sqlitePath
	w.startGuichet()
	bot, mod := w.tb.Bot.UserID, w.tb.Moderator

	alice, dm := activeAgent(t, w)
	first := ask(t, w, alice, dm, "Quelles sont les étapes d'un marché public ?")
	mustContain(t, first, "Voici ma réponse")
	if !first.Encrypted {
		t.Fatal("the answer before the migration was not encrypted")
	}
	bob := w.person("bob.durand-justice.gouv.fr")
	announce(t, w, bob, "Bonjour, je voudrais accéder à l'Assistant IA")
	mustContain(t, command(t, w, mod, "!pending"), bob.UserID().String())
	quota := ask(t, w, alice, dm, "!quota")
	mustContain(t, quota, "questions : 1 sur")
	device := w.app.Bot.DeviceID()
	albertCalls := w.tb.Albert.Calls()
	w.stopGuichet()
	before := readMigratedState(t, w.cfg.Database, alice.UserID(), dm)
	if before.messages != 1 || before.tokens == 0 {
		t.Fatalf("alice's counters before the migration: %+v", before)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uri, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.MigrateSQLiteToPostgres(ctx, sqlitePath, uri, zerolog.Nop())
	if err != nil {
		t.Fatalf("migrate-db: %v", err)
	}
	t.Logf("copied %d tables, %d rows", len(m.Tables), m.Rows)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(sqlitePath+suffix, sqlitePath+suffix+".bak"); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	w.cfg.Database.Type, w.cfg.Database.URI = store.DialectPostgres, uri
	if after := readMigratedState(t, w.cfg.Database, alice.UserID(), dm); after.messages != before.messages || after.tokens != before.tokens {
		t.Errorf("alice's counters on PostgreSQL %+v, on SQLite %+v", after, before)
	}

	w.startGuichet()
	if got := w.app.Bot.DeviceID(); got != device {
		t.Errorf("device %s after the migration, want %s", got, device)
	}
	mustContain(t, ask(t, w, alice, dm, "!quota"), "questions : 1 sur")
	mustContain(t, command(t, w, mod, "!pending"), bob.UserID().String())
	answer := ask(t, w, alice, dm, "Et les délais de recours ?")
	mustContain(t, answer, "Voici ma réponse")
	if !answer.Encrypted {
		t.Error("the answer after the migration was not encrypted")
	}
	if n := w.tb.Albert.Calls(); n != albertCalls+1 {
		t.Errorf("Albert called %d times after the migration, want 1", n-albertCalls)
	}
	if n := count(alice, from(bot), contains("pas pu déchiffrer")); n != 0 {
		t.Errorf("guichet could not decrypt %d of alice's messages", n)
	}
	w.stopGuichet()

	after := readMigratedState(t, w.cfg.Database, alice.UserID(), dm)
	if after.messages != before.messages+1 {
		t.Errorf("alice's questions counted %d after one more, want %d", after.messages, before.messages+1)
	}
	if after.outbound != before.outbound {
		t.Errorf("guichet's Megolm session in the DM changed: %s, was %s", after.outbound, before.outbound)
	}
	if !slices.Equal(after.inbound, before.inbound) {
		t.Errorf("Megolm sessions of the DM %v, before the migration %v: a new one was needed", after.inbound, before.inbound)
	}
	if _, err := os.Stat(sqlitePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("guichet on PostgreSQL created a SQLite file (stat: %v)", err)
	}
}

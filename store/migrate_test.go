package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"

	"guichet/approvals"
	"guichet/internal/pgtest"
	"guichet/store"
)

// emptyPostgres returns the URI of a new, empty database on the tests'
// PostgreSQL server; the test is skipped where PostgreSQL is not installed.
func emptyPostgres(t *testing.T) string {
	t.Helper()
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip("PostgreSQL is needed to test the migration:", err)
	}
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatalf("PostgreSQL for the tests: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uri, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

var migratePickleKey = []byte("clé de chiffrement des tests")

const (
	migRoom  = id.RoomID("!dm:agent.dinum.tchap.gouv.fr")
	migAgent = id.UserID("@alice-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	migBot   = id.UserID("@assistant-ia:agent.dinum.tchap.gouv.fr")
)

// filledSQLite is a SQLite deployment with rows in every table: guichet's
// (generated from their columns), mautrix's crypto store and state store
// (through their own APIs).
type filledSQLite struct {
	path       string
	identity   id.IdentityKey
	megolm     id.SessionID
	olm        id.SessionID
	ciphertext []byte // encrypted by the outbound Megolm session
	outboxKeys []string
}

// generatedRows lists, per guichet table and column, the values of its rows
// where the generated ones would break a constraint; the table gets as many
// rows as its shortest list (3 otherwise).
var generatedRows = map[string]map[string][]any{
	"access_request":    {"status": {"pending", "approved", "rejected"}},
	"conversation_turn": {"role": {"user", "assistant", "user"}},
	// The queue order is the rowid, not the key's: seq must follow it.
	"outbox":    {"key": {"reply:$c", "ack:$a", "welcome:12"}},
	"ha_leader": {"id": {1}},
}

func fillSQLite(t *testing.T) filledSQLite {
	t.Helper()
	ctx := context.Background()
	f := filledSQLite{path: filepath.Join(t.TempDir(), "guichet.db")}
	db, err := store.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := store.New(db, zerolog.Nop()).Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	log := dbutil.ZeroLogger(zerolog.Nop())
	states := sqlstatestore.NewSQLStateStore(db, log, false)
	if err := states.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	cs := crypto.NewSQLCryptoStore(db, log, "", "GUICHETDEV", migratePickleKey)
	if err := cs.DB.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}

	// guichet's tables, from their columns.
	tables := sqliteTables(t, db.RawDB)
	for _, table := range tables {
		if isMautrixTable(table) {
			continue
		}
		generateRows(t, db.RawDB, table)
	}
	rows, err := db.RawDB.Query("SELECT key FROM outbox ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		f.outboxKeys = append(f.outboxKeys, k)
	}
	rows.Close()

	// The crypto store.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	acc := crypto.NewOlmAccount()
	acc.Shared = true
	must(cs.PutAccount(ctx, acc))
	f.identity = acc.IdentityKey()
	must(cs.PutNextBatch(ctx, "s72594_4483_1934"))
	out, err := crypto.NewOutboundGroupSession(migRoom, &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}, nil)
	must(err)
	out.Shared = true
	f.megolm = out.ID()
	in, err := crypto.NewInboundGroupSession(id.SenderKey(f.identity), acc.SigningKey(), migRoom, out.Internal.Key(), time.Hour, 100, nil, false)
	must(err)
	f.ciphertext, err = out.Encrypt([]byte("Bonjour Alice"))
	must(err)
	must(cs.AddOutboundGroupSession(ctx, out))
	must(cs.PutGroupSession(ctx, in))
	must(cs.MarkOutboundGroupSessionShared(ctx, migAgent, "aliceidentitykeyaliceidentitykeyaliceidenti", out.ID()))
	_, err = cs.ValidateMessageIndex(ctx, out.ID(), "$question", 0, time.Now().UnixMilli())
	must(err)
	must(cs.PutOlmHash(ctx, [32]byte{1, 2, 3}, time.Now()))
	peer := crypto.NewOlmAccount()
	must(peer.Internal.GenOneTimeKeys(1))
	otks, err := peer.Internal.OneTimeKeys()
	must(err)
	for _, otk := range otks {
		sess, err := acc.Internal.NewOutboundSession(peer.IdentityKey(), otk)
		must(err)
		now := time.Now()
		olmSess := &crypto.OlmSession{Internal: sess, ExpirationMixin: crypto.ExpirationMixin{TimeMixin: crypto.TimeMixin{
			CreationTime: now, LastEncryptedTime: now, LastDecryptedTime: now}}}
		f.olm = olmSess.ID()
		must(cs.AddSession(ctx, peer.IdentityKey(), olmSess))
	}
	must(cs.PutDevices(ctx, migAgent, map[id.DeviceID]*id.Device{"ALICEPHONE": {
		UserID: migAgent, DeviceID: "ALICEPHONE", IdentityKey: peer.IdentityKey(), SigningKey: peer.SigningKey(),
		Trust: id.TrustStateCrossSignedTOFU, Name: "Tchap Android",
	}}))
	must(cs.MarkTrackedUsersOutdated(ctx, []id.UserID{migAgent}))
	must(cs.PutCrossSigningKey(ctx, migBot, id.XSUsageMaster, acc.SigningKey()))
	must(cs.PutSignature(ctx, migBot, acc.SigningKey(), migBot, acc.SigningKey(), strings.Repeat("s", 88)))
	must(cs.PutSecret(ctx, id.SecretXSMaster, "graine de la clé maîtresse"))

	// The state store.
	must(states.MarkRegistered(ctx, migBot))
	must(states.SetMember(ctx, migRoom, migAgent, &event.MemberEventContent{Membership: event.MembershipJoin, Displayname: "Alice Martin"}))
	must(states.SetMembership(ctx, migRoom, migBot, event.MembershipJoin))
	must(states.SetPowerLevels(ctx, migRoom, &event.PowerLevelsEventContent{Users: map[id.UserID]int{migBot: 100}}))
	must(states.SetEncryptionEvent(ctx, migRoom, &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}))

	for _, table := range tables {
		var n int
		if err := db.RawDB.QueryRow("SELECT count(*) FROM " + pq.QuoteIdentifier(table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("the test leaves table %s empty: give it rows", table)
		}
	}
	return f
}

func isMautrixTable(table string) bool {
	return strings.HasPrefix(table, "crypto_") || strings.HasPrefix(table, "mx_") || table == store.VersionTable
}

func sqliteTables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// generateRows inserts rows in a guichet table with a value for every
// column from its declared type: ids out of sequence, booleans both ways,
// texts with what COPY must escape, NULL in nullable columns of the second
// row.
func generateRows(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	type column struct {
		name, typ string
		notNull   bool
		pk        int
	}
	rows, err := db.Query("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)", table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.pk); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	n := 3
	for _, vals := range generatedRows[table] {
		n = min(n, len(vals))
	}
	for i := range n {
		names := make([]string, len(cols))
		marks := make([]string, len(cols))
		args := make([]any, len(cols))
		for j, c := range cols {
			names[j], marks[j] = pq.QuoteIdentifier(c.name), "?"
			typ := strings.ToUpper(c.typ)
			switch {
			case generatedRows[table][c.name] != nil:
				args[j] = generatedRows[table][c.name][i]
			case i == 1 && !c.notNull && c.pk == 0:
				args[j] = nil
			case c.pk > 0 && strings.Contains(typ, "INT"):
				args[j] = 40 + 3*i // max 46: sequences must move past it
			case strings.Contains(typ, "BOOL"):
				args[j] = i % 2
			case strings.Contains(typ, "BIGINT"):
				args[j] = int64(1_700_000_000_000 + 10*i + j) // past 32 bits
			case strings.Contains(typ, "INT"):
				args[j] = 10*i + j
			case strings.Contains(typ, "REAL"), strings.Contains(typ, "DOUB"):
				args[j] = float64(i) + 0.25
			default:
				args[j] = fmt.Sprintf("%s.%s #%d: «é» \\ \t\n\"'%%", table, c.name, i)
			}
		}
		_, err := db.Exec("INSERT INTO "+pq.QuoteIdentifier(table)+" ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(marks, ", ")+")", args...)
		if err != nil {
			t.Fatalf("%s: %v (give the test values that fit its constraints in generatedRows)", table, err)
		}
	}
}

// tableContent reads a table's columns as sorted lines of normalized values.
func tableContent(t *testing.T, db *sql.DB, table string, cols []string, sqlite bool) []string {
	t.Helper()
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pq.QuoteIdentifier(c)
	}
	rows, err := db.Query("SELECT " + strings.Join(quoted, ", ") + " FROM " + pq.QuoteIdentifier(table))
	if err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	defer rows.Close()
	var out []string
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		line := make([]string, len(cols))
		for i, v := range vals {
			line[i] = cols[i] + "=" + normalize(v, sqlite)
		}
		out = append(out, strings.Join(line, " | "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// normalize writes a value so that SQLite's and PostgreSQL's compare:
// texts and blobs alike, JSON by its content, timestamps by their local
// wall clock to the microsecond (PostgreSQL's precision).
func normalize(v any, sqlite bool) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return normalize(string(x), sqlite)
	case string:
		var j any
		if (strings.HasPrefix(x, "{") || strings.HasPrefix(x, "[")) && json.Unmarshal([]byte(x), &j) == nil {
			b, _ := json.Marshal(j)
			return "json:" + string(b)
		}
		return strconv.Quote(x)
	case time.Time:
		if sqlite {
			x = x.In(time.Local).Round(time.Microsecond)
		}
		return x.Format("2006-01-02 15:04:05.999999")
	}
	return fmt.Sprintf("%T:%v", v, v)
}

func columnsOf(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		_ = rows.Scan(&c)
		cols = append(cols, c)
	}
	return cols
}

// A SQLite deployment with rows in every table is copied whole: every
// table's content is equal on PostgreSQL, the bot's keys and sessions are
// read back with its pickle key, the queue keeps its order and new rows
// get new ids.
func TestMigrateSQLiteToPostgres(t *testing.T) {
	ctx := context.Background()
	f := fillSQLite(t)
	uri := emptyPostgres(t)

	m, err := store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop())
	if err != nil {
		t.Fatalf("MigrateSQLiteToPostgres: %v", err)
	}

	src, err := sql.Open("sqlite3-fk-wal", "file:"+f.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dstDB, err := store.OpenDatabase(store.DialectPostgres, uri, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dstDB.Close()
	dst := dstDB.RawDB

	tables := sqliteTables(t, src)
	var names []string
	var total int64
	for _, mt := range m.Tables {
		names = append(names, mt.Name)
		total += mt.Rows
	}
	if !slices.Equal(names, tables) {
		t.Errorf("copied tables %v, want the SQLite file's %v", names, tables)
	}
	if total != m.Rows || m.Rows == 0 {
		t.Errorf("summary: %d rows, tables add up to %d", m.Rows, total)
	}
	for _, mt := range m.Tables {
		cols := columnsOf(t, src, mt.Name)
		want := tableContent(t, src, mt.Name, cols, true)
		got := tableContent(t, dst, mt.Name, cols, false)
		if int64(len(want)) != mt.Rows {
			t.Errorf("%s: summary says %d rows, SQLite has %d", mt.Name, mt.Rows, len(want))
		}
		if !slices.Equal(want, got) {
			t.Errorf("%s differs:\nSQLite:     %q\nPostgreSQL: %q", mt.Name, want, got)
		}
	}
	if len(m.Versions) != 3 {
		t.Errorf("versions: %+v", m.Versions)
	}

	// The outbox's queue order is SQLite's rowid order.
	var keys []string
	rows, err := dst.Query("SELECT key FROM outbox ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if !slices.Equal(keys, f.outboxKeys) {
		t.Errorf("outbox order on PostgreSQL %v, want SQLite's %v", keys, f.outboxKeys)
	}

	// The crypto store, read with the pickle key as the bot does.
	log := dbutil.ZeroLogger(zerolog.Nop())
	cs := crypto.NewSQLCryptoStore(dstDB, log, "", "GUICHETDEV", migratePickleKey)
	if err := cs.DB.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	acc, err := cs.GetAccount(ctx)
	if err != nil || acc == nil {
		t.Fatalf("GetAccount: %v, %v", acc, err)
	}
	if acc.IdentityKey() != f.identity || !acc.Shared {
		t.Errorf("account %s (shared %v), want %s, shared", acc.IdentityKey(), acc.Shared, f.identity)
	}
	if dev, err := cs.FindDeviceID(ctx); err != nil || dev != "GUICHETDEV" {
		t.Errorf("device id %q, %v", dev, err)
	}
	if tok, err := cs.GetNextBatch(ctx); err != nil || tok != "s72594_4483_1934" {
		t.Errorf("sync token %q, %v", tok, err)
	}
	in, err := cs.GetGroupSession(ctx, migRoom, f.megolm)
	if err != nil || in == nil {
		t.Fatalf("GetGroupSession: %v", err)
	}
	plain, _, err := in.Internal.Decrypt(f.ciphertext)
	if err != nil || string(plain) != "Bonjour Alice" {
		t.Errorf("the copied Megolm session decrypts %q, %v", plain, err)
	}
	out, err := cs.GetOutboundGroupSession(ctx, migRoom)
	if err != nil || out == nil || out.ID() != f.megolm || !out.Shared {
		t.Fatalf("outbound session %v, %v", out, err)
	}
	next, err := out.Encrypt([]byte("Toujours là"))
	if err != nil {
		t.Fatal(err)
	}
	if plain, idx, err := in.Internal.Decrypt(next); err != nil || string(plain) != "Toujours là" || idx != 1 {
		t.Errorf("the copied outbound session encrypts %q (index %d), %v", plain, idx, err)
	}
	var olmIDs []id.SessionID
	rows, err = dst.Query("SELECT sender_key FROM crypto_olm_session")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var key string
		_ = rows.Scan(&key)
		list, err := cs.GetSessions(ctx, id.SenderKey(key))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			olmIDs = append(olmIDs, s.ID())
		}
	}
	rows.Close()
	if !slices.Equal(olmIDs, []id.SessionID{f.olm}) {
		t.Errorf("Olm sessions %v, want %v", olmIDs, f.olm)
	}
	if devs, err := cs.GetDevices(ctx, migAgent); err != nil || devs["ALICEPHONE"] == nil || devs["ALICEPHONE"].Trust != id.TrustStateCrossSignedTOFU {
		t.Errorf("devices %v, %v", devs, err)
	}
	if outdated, err := cs.GetOutdatedTrackedUsers(ctx); err != nil || !slices.Equal(outdated, []id.UserID{migAgent}) {
		t.Errorf("outdated users %v, %v", outdated, err)
	}
	if keys, err := cs.GetCrossSigningKeys(ctx, migBot); err != nil || keys[id.XSUsageMaster].Key != acc.SigningKey() {
		t.Errorf("cross-signing keys %v, %v", keys, err)
	}
	if secret, err := cs.GetSecret(ctx, id.SecretXSMaster); err != nil || secret != "graine de la clé maîtresse" {
		t.Errorf("secret %q, %v", secret, err)
	}

	// The state store.
	states := sqlstatestore.NewSQLStateStore(dstDB, log, false)
	if err := states.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	if pl, err := states.GetPowerLevels(ctx, migRoom); err != nil || pl == nil || pl.GetUserLevel(migBot) != 100 {
		t.Errorf("power levels %v, %v", pl, err)
	}
	if enc, err := states.IsEncrypted(ctx, migRoom); err != nil || !enc {
		t.Errorf("encrypted %v, %v", enc, err)
	}
	if member, err := states.GetMember(ctx, migRoom, migAgent); err != nil || member.Displayname != "Alice Martin" || member.Membership != event.MembershipJoin {
		t.Errorf("member %+v, %v", member, err)
	}
	if !states.IsInRoom(ctx, migRoom, migBot) {
		t.Error("the bot is not in its room any more")
	}

	// guichet on PostgreSQL: new rows after the copied ones.
	st := store.New(dstDB, zerolog.Nop())
	if err := st.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := &approvals.Request{UserID: "@nouveau-dinum.gouv.fr:agent.dinum.tchap.gouv.fr", Status: approvals.StatusPending,
		RoomID: migRoom, EventID: "$nouveau", CreatedAt: now, UpdatedAt: now, LastSeenAt: now}
	if err := st.CreateRequest(ctx, req); err != nil {
		t.Fatalf("a new request after the migration: %v", err)
	}
	if req.ID <= 46 {
		t.Errorf("new request id %d, want past the copied ones (46)", req.ID)
	}
	if err := st.Enqueue(ctx, store.Outgoing{Key: "reply:$nouveau", RoomID: migRoom, MsgType: "m.text", Markdown: "Réponse", CreatedAt: now}); err != nil {
		t.Fatalf("Enqueue after the migration: %v", err)
	}
	var last string
	if err := dst.QueryRow("SELECT key FROM outbox ORDER BY seq DESC LIMIT 1").Scan(&last); err != nil || last != "reply:$nouveau" {
		t.Errorf("last queued %q, %v: a new message must come after the copied ones", last, err)
	}

	// The SQLite file is left as it was, and can be used again.
	src.Close()
	if _, err := store.MigrateSQLiteToPostgres(ctx, f.path, emptyPostgres(t), zerolog.Nop()); err != nil {
		t.Errorf("a second migration from the same file: %v", err)
	}
}

// A PostgreSQL database with rows is refused before anything is written.
func TestMigrateRefusesATargetWithRows(t *testing.T) {
	ctx := context.Background()
	f := fillSQLite(t)
	uri := emptyPostgres(t)
	if _, err := store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	_, err := store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop())
	if !errors.Is(err, store.ErrTargetNotEmpty) {
		t.Fatalf("second migration into the same database: %v, want ErrTargetNotEmpty", err)
	}
	if !strings.Contains(err.Error(), "access_request") || !strings.Contains(err.Error(), "crypto_account") {
		t.Errorf("the error does not name the tables with rows: %v", err)
	}

	// Another application's rows count too.
	other := emptyPostgres(t)
	db, err := sql.Open("postgres", other)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE invoices (n INTEGER); INSERT INTO invoices VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.MigrateSQLiteToPostgres(ctx, f.path, other, zerolog.Nop()); !errors.Is(err, store.ErrTargetNotEmpty) {
		t.Fatalf("migration into a database with another table's rows: %v, want ErrTargetNotEmpty", err)
	}
	var exists bool
	if err := db.QueryRow("SELECT to_regclass('access_request') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("guichet's tables were created in a refused database (%v, %v)", exists, err)
	}
}

// A SQLite file another connection holds open (a running guichet) is
// refused; a missing file is not created.
func TestMigrateRefusesASourceInUseOrMissing(t *testing.T) {
	ctx := context.Background()
	f := fillSQLite(t)
	uri := emptyPostgres(t)
	running, err := store.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.New(running, zerolog.Nop()).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop())
	if !errors.Is(err, store.ErrSourceInUse) {
		t.Errorf("migration of a file in use: %v, want ErrSourceInUse", err)
	}
	running.Close()

	missing := filepath.Join(t.TempDir(), "absent.db")
	if _, err := store.MigrateSQLiteToPostgres(ctx, missing, uri, zerolog.Nop()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("migration of a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing file was created: %v", err)
	}

	// A SQLite file that is not guichet's is refused, without guichet's tables added.
	foreign := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite3-fk-wal", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE notes (n TEXT)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.MigrateSQLiteToPostgres(ctx, foreign, uri, zerolog.Nop()); !errors.Is(err, store.ErrNotGuichetDatabase) {
		t.Errorf("migration of another application's file: %v, want ErrNotGuichetDatabase", err)
	}
	db, err = sql.Open("sqlite3-fk-wal", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if got := sqliteTables(t, db); !slices.Equal(got, []string{"notes"}) {
		t.Errorf("another application's file has tables %v after the refusal", got)
	}
	db.Close()

	// Once the file is free, the migration goes through.
	if _, err := store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop()); err != nil {
		t.Errorf("migration once guichet stopped: %v", err)
	}
}

// A value PostgreSQL refuses fails the whole copy: nothing is left in the
// target, and the command can be run again once the value is fixed.
func TestMigrateRollsBackAFailedCopy(t *testing.T) {
	ctx := context.Background()
	f := fillSQLite(t)
	uri := emptyPostgres(t)
	db, err := store.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL's text cannot hold a NUL character; SQLite's can.
	var key, value string
	if err := db.RawDB.QueryRow("SELECT key, value FROM setting LIMIT 1").Scan(&key, &value); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RawDB.Exec("UPDATE setting SET value = ? WHERE key = ?", "avant\x00après", key); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop())
	var copyErr *store.CopyError
	if !errors.As(err, &copyErr) || !strings.Contains(err.Error(), "setting") {
		t.Fatalf("copy of a NUL character: %v, want a CopyError naming the table", err)
	}
	pg, err := sql.Open("postgres", uri)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, table := range []string{"access_request", "crypto_account", "mx_room_state", "setting"} {
		var n int
		if err := pg.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows left after the failed copy (%v)", table, n, err)
		}
	}

	db, err = store.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RawDB.Exec("UPDATE setting SET value = ? WHERE key = ?", value, key); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.MigrateSQLiteToPostgres(ctx, f.path, uri, zerolog.Nop()); err != nil {
		t.Errorf("the migration run again: %v", err)
	}
}

package app

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"guichet/config"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	return &config.Config{
		Matrix:      config.Matrix{Homeserver: "http://127.0.0.1:1", UserID: "@bot:example.org", Password: "mot-de-passe", PickleKey: "0123456789abcdef"},
		SupportRoom: "#support:example.org",
		Albert:      config.Albert{BaseURL: "http://127.0.0.1:1/v1", APIKey: "k", Model: "m"},
		Limits:      config.Limits{Timezone: "Europe/Paris"},
		Database:    config.Database{URI: filepath.Join(t.TempDir(), "guichet.db")},
	}
}

// metrics.listen is bound when guichet is built, so that a port already
// taken stops the start with a clear error; empty, nothing is bound.
func TestMetricsListen(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	a, err := New(ctx, cfg, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if addr := a.MetricsAddr(); addr != "" {
		t.Errorf("MetricsAddr = %q with metrics.listen empty", addr)
	}
	_ = a.close()

	cfg = testConfig(t)
	cfg.Metrics.Listen = "127.0.0.1:0"
	a, err = New(ctx, cfg, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.metrics.Close(); _ = a.close() })
	addr := a.MetricsAddr()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("MetricsAddr = %q, want the port bound", addr)
	}

	taken := testConfig(t)
	taken.Metrics.Listen = addr
	if _, err := New(ctx, taken, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Errorf("New with %s taken: %v, want an error naming the metrics", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Error("the first guichet no longer holds its metrics port")
	}
}

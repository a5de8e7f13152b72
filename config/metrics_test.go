package config_test

import (
	"slices"
	"testing"

	"guichet/config"
)

// metrics.listen is off by default, and otherwise a host:port.
func TestMetricsListen(t *testing.T) {
	tests := []struct {
		name   string
		listen *string // nil: not set
		want   string
		bad    bool
	}{
		{name: "off by default", want: ""},
		{name: "loopback", listen: metricsAddr("127.0.0.1:9750"), want: "127.0.0.1:9750"},
		{name: "every interface", listen: metricsAddr(":9750"), want: ":9750"},
		{name: "IPv6 loopback", listen: metricsAddr("[::1]:9750"), want: "[::1]:9750"},
		{name: "any free port", listen: metricsAddr("127.0.0.1:0"), want: "127.0.0.1:0"},
		{name: "no port", listen: metricsAddr("127.0.0.1"), bad: true},
		{name: "a URL", listen: metricsAddr("http://127.0.0.1:9750"), bad: true},
		{name: "port by name", listen: metricsAddr("localhost:http"), bad: true},
		{name: "port out of range", listen: metricsAddr("127.0.0.1:70000"), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := secretEnv()
			if tt.listen != nil {
				env["GUICHET_METRICS_LISTEN"] = *tt.listen
			}
			c, err := config.Load(writeFile(t, baseYAML), lookup(env))
			if tt.bad {
				if got := problemKeys(t, err); !slices.Equal(got, []string{"metrics.listen"}) {
					t.Errorf("problems = %q, want metrics.listen", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Metrics.Listen != tt.want {
				t.Errorf("Listen = %q, want %q", c.Metrics.Listen, tt.want)
			}
		})
	}
}

func metricsAddr(s string) *string { return &s }

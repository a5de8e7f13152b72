package ratelimit

import (
	"errors"
	"testing"
)

func TestParseOverride(t *testing.T) {
	tests := []struct {
		in   string
		want Limits
	}{
		{"500/jour", Limits{MessagesPerDay: 500}},
		{"500/j", Limits{MessagesPerDay: 500}},
		{"500 / jour", Limits{MessagesPerDay: 500}},
		{"500 par jour", Limits{MessagesPerDay: 500}},
		{"500 messages", Limits{MessagesPerDay: 500}},
		{"500 Messages par jour", Limits{MessagesPerDay: 500}},
		{"500 questions/jour", Limits{MessagesPerDay: 500}},
		{"500 msg/j", Limits{MessagesPerDay: 500}},
		{"10/min", Limits{MessagesPerMinute: 10}},
		{"10/minute", Limits{MessagesPerMinute: 10}},
		{"10 par minute", Limits{MessagesPerMinute: 10}},
		{"10 messages/min", Limits{MessagesPerMinute: 10}},
		{"50000", Limits{TokensPerDay: 50000}},
		{"20000 tokens", Limits{TokensPerDay: 20000}},
		{"20000 tokens/jour", Limits{TokensPerDay: 20000}},
		{"20000 jetons", Limits{TokensPerDay: 20000}},
		{"50 000 tokens", Limits{TokensPerDay: 50000}},
		{"50\u00a0000 tokens", Limits{TokensPerDay: 50000}},
		{"50\u202f000", Limits{TokensPerDay: 50000}},
		{"1 000 000 tokens", Limits{TokensPerDay: 1000000}},
		{"50k tokens", Limits{TokensPerDay: 50000}},
		{"50k", Limits{TokensPerDay: 50000}},
		{"2k/jour", Limits{MessagesPerDay: 2000}},
		{"500/jour 50000 tokens", Limits{MessagesPerDay: 500, TokensPerDay: 50000}},
		{"500/jour, 10/min, 50000 tokens", Limits{10, 500, 50000}},
		{"500/jour et 10/min", Limits{MessagesPerMinute: 10, MessagesPerDay: 500}},
		{"500/jour + 20000", Limits{MessagesPerDay: 500, TokensPerDay: 20000}},
		{"  500/JOUR  ", Limits{MessagesPerDay: 500}},
		{"défaut", Limits{}},
		{"defaut", Limits{}},
		{"Default", Limits{}},
		{"aucun", Limits{}},
		{"reset", Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOverride(tt.in)
			if err != nil {
				t.Fatalf("ParseOverride(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseOverride(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseOverrideErrors(t *testing.T) {
	for _, in := range []string{
		"", "   ", "beaucoup", "500/semaine", "500 heures", "0/jour", "0", "-5/jour",
		"100 tokens/min", "500/jour 600/j", "10 tokens 20 jetons", "99999999999999999999",
		"/jour", "500 500/jour tokens", "1e6",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseOverride(in)
			if !errors.Is(err, ErrBadOverride) {
				t.Errorf("ParseOverride(%q) = %+v, %v; want ErrBadOverride", in, got, err)
			}
		})
	}
}

func FuzzParseOverride(f *testing.F) {
	for _, s := range []string{"500/jour", "50 000 tokens", "10/min, 2k/j", "défaut", "1 2 3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lim, err := ParseOverride(s)
		if err != nil {
			if !errors.Is(err, ErrBadOverride) {
				t.Fatalf("error %v does not wrap ErrBadOverride", err)
			}
			return
		}
		if lim.MessagesPerMinute < 0 || lim.MessagesPerDay < 0 || lim.TokensPerDay < 0 {
			t.Fatalf("ParseOverride(%q) = %+v: negative", s, lim)
		}
	})
}

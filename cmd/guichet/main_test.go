package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodesAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	secretEnv := func(k string) (string, bool) {
		if k == "GUICHET_ALBERT_API_KEY" {
			return "sk-secret-value-123", true
		}
		return "", false
	}
	tests := []struct {
		name     string
		args     []string
		env      func(string) (string, bool)
		wantCode int
		want     []string
		never    string
	}{
		{"bad flag", []string{"-nope"}, noEnv, exitUsage, []string{"flag provided but not defined"}, ""},
		{"missing file", []string{"-config", filepath.Join(dir, "absent.yaml")}, noEnv, exitConfig, []string{"failed to read config file"}, ""},
		{"every bad key at once", []string{"-config", empty}, secretEnv, exitConfig,
			[]string{"matrix.homeserver", "matrix.user_id", "matrix.pickle_key", "support_room", "policy.url", "GUICHET_MATRIX_PASSWORD"},
			"sk-secret-value-123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tt.args, tt.env, &stderr); code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tt.never != "" && strings.Contains(stderr.String(), tt.never) {
				t.Errorf("stderr shows a secret:\n%s", stderr.String())
			}
			if n := strings.Count(stderr.String(), "invalid configuration"); n > 1 {
				t.Errorf("%d error messages, want one", n)
			}
		})
	}
}

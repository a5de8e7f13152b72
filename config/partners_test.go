package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"guichet/config"
)

const justiceYAML = `
partners:
  - id: justice
    name: "Ministère de la Justice"
    match: ["@*-justice.gouv.fr:*"]
    albert:
      model: ministral-3-8b-instruct-2512
      system_prompt: "Tu es l'assistant des agents de la Justice."
    retrieval:
      collections: [4211, 4212]
    limits:
      per_user: {messages_per_day: 500}
      global: {max_concurrent: 4, requests_per_minute: 50}
    access:
      auto_approve: true
      max_active_users: 30
  - id: ville-paris
    name: "Ville de Paris"
    match: ["@*-paris.fr:*"]
    albert:
      base_url: https://albert.paris.fr/v1
`

func partnerEnv() map[string]string {
	return merge(secretEnv(), map[string]string{
		"GUICHET_PARTNERS_JUSTICE_ALBERT_API_KEY":     "justice-sk-0123456789",
		"GUICHET_PARTNERS_VILLE_PARIS_ALBERT_API_KEY": "paris-sk-0123456789",
	})
}

// A partner's settings fall back to the top-level ones key by key; its
// Albert key is its own, from the environment.
func TestPartnerProfiles(t *testing.T) {
	c, err := config.Load(writeFile(t, baseYAML+justiceYAML), lookup(partnerEnv()))
	if err != nil {
		t.Fatal(err)
	}
	profiles := c.Profiles()
	if len(profiles) != 3 || profiles[0].ID != "" || profiles[1].ID != "justice" || profiles[2].ID != "ville-paris" {
		t.Fatalf("profiles = %+v", profiles)
	}
	def, justice, paris := profiles[0], profiles[1], profiles[2]
	checks := []struct {
		name      string
		got, want any
	}{
		{"default key", def.Albert.APIKey, testAPIKey},
		{"justice key", justice.Albert.APIKey, "justice-sk-0123456789"},
		{"justice base url (top-level)", justice.Albert.BaseURL, "https://albert.api.etalab.gouv.fr/v1"},
		{"justice model", justice.Albert.Model, "ministral-3-8b-instruct-2512"},
		{"justice system prompt", justice.Albert.SystemPrompt, "Tu es l'assistant des agents de la Justice."},
		{"justice collections", justice.Retrieval.Collections, []int{4211, 4212}},
		{"justice retrieval method (top-level)", justice.Retrieval.Method, "semantic"},
		{"justice messages per day", justice.PerUser.MessagesPerDay, 500},
		{"justice messages per minute (top-level)", justice.PerUser.MessagesPerMinute, 5},
		{"justice max concurrent", justice.Global.MaxConcurrent, 4},
		{"justice requests per minute", justice.Global.RequestsPerMinute, 50},
		{"justice queue size (top-level)", justice.Global.QueueSize, 200},
		{"justice auto-approve", justice.Access.AutoApprove, true},
		{"justice cap", justice.Access.MaxActiveUsers, 30},
		{"justice match", justice.Match, []string{"@*-justice.gouv.fr:*"}},
		{"paris base url", paris.Albert.BaseURL, "https://albert.paris.fr/v1"},
		{"paris model (top-level)", paris.Albert.Model, "mistral-medium-2508"},
		{"paris timeout (top-level)", paris.Albert.Timeout, 120 * time.Second},
		{"paris collections (none of its own)", len(paris.Retrieval.Collections), 0},
		{"paris auto-approve", paris.Access.AutoApprove, false},
		{"default name", def.Name, config.DefaultProfileName},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]int); ok {
		bs, _ := b.([]int)
		return slices.Equal(as, bs)
	}
	if as, ok := a.([]string); ok {
		bs, _ := b.([]string)
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestPartnerKeyFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "justice-key")
	if err := os.WriteFile(file, []byte("justice-from-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := partnerEnv()
	delete(env, "GUICHET_PARTNERS_JUSTICE_ALBERT_API_KEY")
	env["GUICHET_PARTNERS_JUSTICE_ALBERT_API_KEY_FILE"] = file
	c, err := config.Load(writeFile(t, baseYAML+justiceYAML), lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Profiles()[1].Albert.APIKey; got != "justice-from-file-0123" {
		t.Errorf("key = %q", got)
	}
	if got := config.PartnerKeyEnv("ville-paris"); got != "GUICHET_PARTNERS_VILLE_PARIS_ALBERT_API_KEY" {
		t.Errorf("PartnerKeyEnv = %q", got)
	}
}

// Start-up names every partner whose key is missing or whose settings are
// invalid, each problem under the partner's id.
func TestPartnerValidation(t *testing.T) {
	partner := func(body string) string { return "\npartners:\n" + body }
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"valid", justiceYAML, partnerEnv(), nil},
		{"missing key", justiceYAML, secretEnv(), []string{"partners.justice.albert.api_key", "partners.ville-paris.albert.api_key"}},
		{"key in the file", partner(`
  - id: justice
    name: Justice
    match: ["@*:justice"]
    albert: {api_key: in-the-file-0123}
`), secretEnv(), nil},
		{"duplicate id", partner(`
  - {id: justice, name: A, match: ["@*:a"], albert: {api_key: k}}
  - {id: justice, name: B, match: ["@*:b"], albert: {api_key: k}}
`), secretEnv(), []string{"partners.justice.id"}},
		{"bad id", partner(`
  - {id: "Justice!", name: A, match: ["@*:a"], albert: {api_key: k}}
`), secretEnv(), []string{"partners.Justice!.id"}},
		{"id of digits only", partner(`
  - {id: "75", name: A, match: ["@*:a"], albert: {api_key: k}}
`), secretEnv(), []string{"partners.75.id"}},
		{"id default", partner(`
  - {id: default, name: A, match: ["@*:a"], albert: {api_key: k}}
`), secretEnv(), []string{"partners.default.id"}},
		{"missing id and name", partner(`
  - {match: ["@*:a"], albert: {api_key: k}}
`), secretEnv(), []string{"partners[0].id", "partners[0].name"}},
		{"bad glob", partner(`
  - {id: justice, name: A, match: ["@[*:a"], albert: {api_key: k}}
`), secretEnv(), []string{"partners.justice.match"}},
		{"glob without server", partner(`
  - {id: justice, name: A, match: ["*-justice.gouv.fr"], albert: {api_key: k}}
`), secretEnv(), []string{"partners.justice.match"}},
		{"no glob", partner(`
  - {id: justice, name: A, albert: {api_key: k}}
`), secretEnv(), []string{"partners.justice.match"}},
		{"collection of an unknown type", partner(`
  - {id: justice, name: A, match: ["@*:a"], albert: {api_key: k}, retrieval: {collections: [4211, "justice-docs"]}}
`), secretEnv(), []string{"partners.justice.retrieval.collections"}},
		{"collection zero", partner(`
  - {id: justice, name: A, match: ["@*:a"], albert: {api_key: k}, retrieval: {collections: [0]}}
`), secretEnv(), []string{"partners.justice.retrieval.collections"}},
		{"negative limit", partner(`
  - {id: justice, name: A, match: ["@*:a"], albert: {api_key: k}, limits: {global: {max_concurrent: -1}}}
`), secretEnv(), []string{"partners.justice.limits.global.max_concurrent"}},
		{"negative cap", partner(`
  - {id: justice, name: A, match: ["@*:a"], albert: {api_key: k}, access: {max_active_users: -1}}
`), secretEnv(), []string{"partners.justice.access.max_active_users"}},
		{"bad base url", partner(`
  - {id: justice, name: A, match: ["@*:a"], albert: {api_key: k, base_url: "albert.justice.fr"}}
`), secretEnv(), []string{"partners.justice.albert.base_url"}},
		{"not a list", "\npartners: justice\n", secretEnv(), []string{"partners"}},
		{"key both ways", justiceYAML, merge(partnerEnv(), map[string]string{"GUICHET_PARTNERS_JUSTICE_ALBERT_API_KEY_FILE": "/nonexistent"}),
			[]string{"partners.justice.albert.api_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeFile(t, baseYAML+tt.yaml), lookup(tt.env))
			var got []string
			if err != nil {
				got = problemKeys(t, err)
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems = %v, want %v (error: %v)", got, want, err)
			}
			if err != nil && strings.Contains(err.Error(), "justice-sk-0123456789") {
				t.Error("the error shows a partner's key")
			}
		})
	}
}

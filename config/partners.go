package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/viper"
)

// Partner is an administration with its own access to the assistant: its
// own Albert key (it funds its inference), models, system prompt, document
// collections, limits and cap. An agent belongs to the first partner, in
// file order, one of whose Match globs matches their user id; agents who
// match none use the top-level settings (the default profile).
type Partner struct {
	// ID names the partner in commands, metrics and billing: [a-z0-9-]+.
	ID   string `mapstructure:"id"`
	Name string `mapstructure:"name"`
	// Match are user-id globs (path.Match syntax), e.g. "@*-justice.gouv.fr:*".
	Match     []string         `mapstructure:"match"`
	Albert    PartnerAlbert    `mapstructure:"albert"`
	Retrieval PartnerRetrieval `mapstructure:"retrieval"`
	Limits    PartnerLimits    `mapstructure:"limits"`
	Access    PartnerAccess    `mapstructure:"access"`
}

// PartnerAlbert is the partner's Albert account. Every key but APIKey falls
// back to the top-level albert.* value; APIKey is the partner's own
// (GUICHET_PARTNERS_<ID>_ALBERT_API_KEY, see PartnerKeyEnv).
type PartnerAlbert struct {
	BaseURL      string   `mapstructure:"base_url"`
	APIKey       string   `mapstructure:"api_key"`
	Model        string   `mapstructure:"model"`
	Models       []string `mapstructure:"models"`
	SystemPrompt string   `mapstructure:"system_prompt"`
}

// PartnerRetrieval are the partner's collections; the method, limit,
// threshold and timeout are the top-level retrieval.* ones.
type PartnerRetrieval struct {
	// Collections are offered to the partner's agents instead of the
	// top-level ones (none: the partner's agents get no retrieval).
	Collections []int `mapstructure:"collections"`
}

// PartnerLimits override limits.per_user and limits.global for the
// partner's key; a key left out keeps the top-level value.
type PartnerLimits struct {
	PerUser PartnerPerUser `mapstructure:"per_user"`
	Global  PartnerGlobal  `mapstructure:"global"`
}

// PartnerPerUser overrides limits.per_user (nil: the top-level value).
type PartnerPerUser struct {
	MessagesPerMinute *int `mapstructure:"messages_per_minute"`
	Burst             *int `mapstructure:"burst"`
	MessagesPerDay    *int `mapstructure:"messages_per_day"`
	TokensPerDay      *int `mapstructure:"tokens_per_day"`
}

// PartnerGlobal overrides limits.global for the partner's key (nil: the
// top-level value).
type PartnerGlobal struct {
	MaxConcurrent     *int `mapstructure:"max_concurrent"`
	QueueSize         *int `mapstructure:"queue_size"`
	RequestsPerMinute *int `mapstructure:"requests_per_minute"`
	TokensPerMinute   *int `mapstructure:"tokens_per_minute"`
}

// PartnerAccess are the partner's access rules.
type PartnerAccess struct {
	// AutoApprove approves the partner's agents as soon as they ask.
	AutoApprove bool `mapstructure:"auto_approve"`
	// MaxActiveUsers caps the partner's agents holding access, with its own
	// waitlist (0: no cap); !capacity ID N overrides it.
	MaxActiveUsers int `mapstructure:"max_active_users"`
}

// Profile is the resolved settings of one Albert key: the default profile
// (ID "") or a partner's, with the top-level values filled in.
type Profile struct {
	ID, Name  string
	Albert    Albert
	Retrieval Retrieval
	PerUser   PerUserLimits
	Global    GlobalLimits
	Access    PartnerAccess
	Match     []string
}

// DefaultProfileName names the top-level settings' profile to people.
const DefaultProfileName = "Profil par défaut"

// Profiles returns the default profile first, then each partner's with the
// top-level values where it sets none.
func (c *Config) Profiles() []Profile {
	out := []Profile{{
		Name: DefaultProfileName, Albert: c.Albert, Retrieval: c.Retrieval,
		PerUser: c.Limits.PerUser, Global: c.Limits.Global,
		Access: PartnerAccess{MaxActiveUsers: c.Access.MaxActiveUsers},
	}}
	for _, p := range c.Partners {
		pr := Profile{ID: p.ID, Name: p.Name, Albert: c.Albert, Retrieval: c.Retrieval, PerUser: c.Limits.PerUser,
			Global: c.Limits.Global, Access: p.Access, Match: p.Match}
		pr.Albert.APIKey = p.Albert.APIKey
		pr.Albert.BaseURL = cmpOr(p.Albert.BaseURL, c.Albert.BaseURL)
		pr.Albert.Model = cmpOr(p.Albert.Model, c.Albert.Model)
		pr.Albert.SystemPrompt = cmpOr(p.Albert.SystemPrompt, c.Albert.SystemPrompt)
		if len(p.Albert.Models) > 0 {
			pr.Albert.Models = p.Albert.Models
		} else if p.Albert.Model != "" {
			// A partner that names its model without a list offers that one.
			pr.Albert.Models = nil
		}
		pr.Retrieval.Collections = p.Retrieval.Collections
		setIf(&pr.PerUser.MessagesPerMinute, p.Limits.PerUser.MessagesPerMinute)
		setIf(&pr.PerUser.Burst, p.Limits.PerUser.Burst)
		setIf(&pr.PerUser.MessagesPerDay, p.Limits.PerUser.MessagesPerDay)
		setIf(&pr.PerUser.TokensPerDay, p.Limits.PerUser.TokensPerDay)
		setIf(&pr.Global.MaxConcurrent, p.Limits.Global.MaxConcurrent)
		setIf(&pr.Global.QueueSize, p.Limits.Global.QueueSize)
		setIf(&pr.Global.RequestsPerMinute, p.Limits.Global.RequestsPerMinute)
		setIf(&pr.Global.TokensPerMinute, p.Limits.Global.TokensPerMinute)
		out = append(out, pr)
	}
	return out
}

func setIf(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// partnerID: lower-case letters, digits and hyphens, at least one letter
// (an id of digits only would read as a number in "!capacity 75").
var partnerID = regexp.MustCompile(`^[a-z0-9-]*[a-z][a-z0-9-]*$`)

// PartnerKeyEnv is the environment variable holding a partner's Albert key:
// GUICHET_PARTNERS_<ID>_ALBERT_API_KEY, the id upper-cased with hyphens as
// underscores ("ville-paris" -> GUICHET_PARTNERS_VILLE_PARIS_ALBERT_API_KEY).
// With FileSuffix it names a file holding the key.
func PartnerKeyEnv(id string) string {
	return EnvPrefix + "_PARTNERS_" + strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + "_ALBERT_API_KEY"
}

// decodePartners reads the partners list (file only: a list has no
// environment form), converting each partner's collections like
// retrieval.collections, and applies the partners' key variables.
func decodePartners(v *viper.Viper, lookupEnv func(string) (string, bool)) ([]Partner, []Problem) {
	var raw []any
	switch value := v.Get("partners").(type) {
	case nil:
		return nil, nil
	case []any:
		raw = value
	case []map[string]any:
		for _, m := range value {
			raw = append(raw, m)
		}
	case string:
		if strings.TrimSpace(value) == "" {
			return nil, nil
		}
		return nil, []Problem{{"partners", "a list of partners in the configuration file (id, name, match, albert, retrieval, limits, access)"}}
	default:
		return nil, []Problem{{"partners", "a list of partners (id, name, match, albert, retrieval, limits, access)"}}
	}
	var problems []Problem
	partners := make([]Partner, 0, len(raw))
	for i, item := range raw {
		m, ok := item.(map[string]any)
		key := fmt.Sprintf("partners[%d]", i)
		if !ok {
			problems = append(problems, Problem{key, "a partner: id, name, match, albert, retrieval, limits, access"})
			continue
		}
		if id, ok := m["id"].(string); ok && id != "" {
			key = "partners." + id
		}
		sub := viper.New()
		if err := sub.MergeConfigMap(m); err != nil {
			problems = append(problems, Problem{key, err.Error()})
			continue
		}
		problems = append(problems, intList(sub, "retrieval.collections", key+".retrieval.collections")...)
		var p Partner
		if err := sub.Unmarshal(&p); err != nil {
			problems = append(problems, Problem{key, fmt.Sprintf("unreadable: %v", err)})
			continue
		}
		p.Match = splitList(p.Match)
		p.Albert.Models = splitList(p.Albert.Models)
		if p.ID != "" {
			envKey := PartnerKeyEnv(p.ID)
			value, set := lookupEnv(envKey)
			file, fromFile := lookupEnv(envKey + FileSuffix)
			switch {
			case set && fromFile:
				problems = append(problems, Problem{key + ".albert.api_key", fmt.Sprintf("set by %s or %s, not both", envKey, envKey+FileSuffix)})
			case set:
				p.Albert.APIKey = value
			case fromFile:
				b, err := os.ReadFile(file)
				if err != nil {
					problems = append(problems, Problem{key + ".albert.api_key", fmt.Sprintf("%s names a file that cannot be read: %v", envKey+FileSuffix, err)})
				} else {
					p.Albert.APIKey = strings.TrimSpace(string(b))
				}
			}
		}
		partners = append(partners, p)
	}
	return partners, problems
}

// validatePartners checks each partner; problems name the partner.
func (c *Config) validatePartners(bad func(key, want string)) {
	seen := map[string]bool{}
	for i, p := range c.Partners {
		key := fmt.Sprintf("partners[%d]", i)
		if p.ID != "" {
			key = "partners." + p.ID
		}
		switch {
		case !partnerID.MatchString(p.ID):
			bad(key+".id", fmt.Sprintf("required, lower-case letters, digits and hyphens with at least one letter (e.g. justice), got %q", p.ID))
		case seen[p.ID]:
			bad(key+".id", "unique: another partner has this id")
		case p.ID == "default":
			bad(key+".id", "not \"default\", which names the top-level profile")
		}
		seen[p.ID] = true
		if strings.TrimSpace(p.Name) == "" {
			bad(key+".name", "required, the administration's name as agents and moderators read it")
		}
		if len(p.Match) == 0 {
			bad(key+".match", "at least one user-id glob, e.g. @*-justice.gouv.fr:*")
		}
		if g, ok := badUserGlob(p.Match); ok {
			bad(key+".match", fmt.Sprintf("user-id globs like @*-justice.gouv.fr:*, got %q", g))
		}
		if p.Albert.APIKey == "" {
			bad(key+".albert.api_key", fmt.Sprintf("required, the partner's own Albert key (better through %s)", PartnerKeyEnv(p.ID)))
		}
		if p.Albert.BaseURL != "" && !isHTTPURL(p.Albert.BaseURL) {
			bad(key+".albert.base_url", "empty (albert.base_url) or an http(s) URL ending in /v1")
		}
		if cid, ok := badCollection(p.Retrieval.Collections); ok {
			bad(key+".retrieval.collections", fmt.Sprintf("distinct positive collection ids, got %d", cid))
		}
		for _, lim := range []struct {
			name string
			v    *int
		}{
			{"limits.per_user.messages_per_minute", p.Limits.PerUser.MessagesPerMinute},
			{"limits.per_user.burst", p.Limits.PerUser.Burst},
			{"limits.per_user.messages_per_day", p.Limits.PerUser.MessagesPerDay},
			{"limits.per_user.tokens_per_day", p.Limits.PerUser.TokensPerDay},
			{"limits.global.max_concurrent", p.Limits.Global.MaxConcurrent},
			{"limits.global.queue_size", p.Limits.Global.QueueSize},
			{"limits.global.requests_per_minute", p.Limits.Global.RequestsPerMinute},
			{"limits.global.tokens_per_minute", p.Limits.Global.TokensPerMinute},
		} {
			if lim.v != nil && *lim.v < 0 {
				bad(key+"."+lim.name, "0 (unlimited) or a positive number")
			}
		}
		if p.Access.MaxActiveUsers < 0 {
			bad(key+".access.max_active_users", "0 (no cap) or a positive number of agents")
		}
	}
}

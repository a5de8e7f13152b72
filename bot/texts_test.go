package bot

import (
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/approvals"
	"guichet/conversation"
	"guichet/ratelimit"
	"guichet/store"
)

func TestTextPromotedAgreesWithTheNumberOfAgents(t *testing.T) {
	one := render(textPromoted([]string{"@a:b"})).body
	if want := "Place libérée : @a:b sort de la liste d'attente ; je lui écris en message privé."; one != want {
		t.Errorf("one agent: %q, want %q", one, want)
	}
	two := render(textPromoted([]string{"@a:b", "@c:d"})).body
	if want := "Places libérées : @a:b, @c:d sortent de la liste d'attente ; je leur écris en message privé."; two != want {
		t.Errorf("two agents: %q, want %q", two, want)
	}
}

var (
	textsNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	textsMod = id.UserID("@moderatrice:hs.example")
)

// In !pending, the moderator reads and copies other people's ids: they
// must be the ids, not Markdown made of them.
func TestPendingShowsIDsLiterally(t *testing.T) {
	user := id.UserID("@a._und_.b:hs")
	reqs := []*approvals.Request{{ID: 1, UserID: user, Status: approvals.StatusPending, CreatedAt: textsNow.Add(-time.Hour)}}
	got := render(textPendingList(reqs, 1, textsNow))
	if !strings.Contains(got.body, "@a._und_.b:hs") {
		t.Errorf("body %q lacks the id", got.body)
	}
	if !strings.Contains(got.html, "@a._und_.b:hs") || strings.Contains(got.html, "<em>") {
		t.Errorf("HTML %q does not show the id as it is", got.html)
	}
}

// Every text that shows a value from outside shows it literally, and its
// structure (elements, links) is the one it has with an ordinary value.
func TestTextsShowUntrustedValuesLiterally(t *testing.T) {
	user := func(s string) id.UserID { return id.UserID("@" + s + ":hs.example") }
	req := func(s string) *approvals.Request {
		return &approvals.Request{ID: 3, UserID: user(s), Status: approvals.StatusRejected, DecidedBy: textsMod,
			DecidedAt: textsNow.Add(-time.Minute), CreatedAt: textsNow.Add(-time.Hour)}
	}
	withReason := func(s string) *approvals.Request {
		r := req("agent")
		r.Reason = s
		return r
	}
	pending := func(s string) []*approvals.Request {
		r := req(s)
		r.Status, r.DecidedBy = approvals.StatusPending, ""
		return []*approvals.Request{r, {ID: 4, UserID: "@autre:hs.example", CreatedAt: textsNow}}
	}
	quota := ratelimit.Quota{Limits: ratelimit.Limits{MessagesPerDay: 10}, ResetAt: textsNow.Add(time.Hour)}
	standing := approvals.Standing{Request: &approvals.Request{ID: 3, Status: approvals.StatusActive}, Consented: true}
	audit := func(action, actor, reason string) []approvals.AuditEntry {
		return []approvals.AuditEntry{{At: textsNow, Actor: id.UserID(actor), Action: action, Reason: reason}}
	}
	models := []string{"albert-large", "albert-small"}
	const policy = "https://exemple.gouv.fr/politique"

	// want says how the value must read: as given, or as a user id built
	// from it, or cut to a bound.
	asUser := func(s string) string { return shown(user(s).String()) }
	cut := func(n int) func(string) string {
		return func(s string) string { return shown(clip(strings.TrimSpace(s), n)) }
	}
	for _, tt := range []struct {
		name string
		text func(s string) string
		want func(s string) string
	}{
		// Mentions of the person concerned.
		{"textAcknowledged", func(s string) string { return textAcknowledged(user(s), req(s)) }, asUser},
		{"textAutoApproved", func(s string) string { return textAutoApproved(user(s), req(s)) }, asUser},
		{"textDenied", func(s string) string { return textDenied(user(s)) }, asUser},
		{"textAutoWaitlisted", func(s string) string { return textAutoWaitlisted(user(s), req(s)) }, asUser},
		{"textWaitlistedNotice", func(s string) string { return textWaitlistedNotice(user(s)) }, asUser},
		{"textNotModeratorReaction", func(s string) string { return textNotModeratorReaction(user(s)) }, asUser},
		{"textRejectedNotice/user", func(s string) string { return textRejectedNotice(user(s), "motif") }, asUser},
		{"textRevokedNotice/user", func(s string) string { return textRevokedNotice(user(s), "motif") }, asUser},

		// Ids shown to moderators as text.
		{"textApproved", func(s string) string { return textApproved(user(s), req(s), false) }, asUser},
		{"textApproved/pre", func(s string) string { return textApproved(user(s), req(s), true) }, asUser},
		{"textRejected/user", func(s string) string { return textRejected(user(s), req(s)) }, asUser},
		{"textRevoked/user", func(s string) string { return textRevoked(user(s), req(s)) }, asUser},
		{"textAlreadyDecided/user", func(s string) string { return textAlreadyDecided(req(s), textsNow) }, asUser},
		{"textAlreadyDecided/moderator", func(s string) string {
			r := req("agent")
			r.DecidedBy = user(s)
			return textAlreadyDecided(r, textsNow)
		}, asUser},
		{"textNoRequest", func(s string) string { return textNoRequest(user(s)) }, asUser},
		{"textIsModerator", func(s string) string { return textIsModerator(user(s)) }, asUser},
		{"textApprovedWaitlisted/overload", func(s string) string { return textApprovedWaitlisted(user(s), req(s), 0, 0) }, asUser},
		{"textApprovedWaitlisted/full", func(s string) string { return textApprovedWaitlisted(user(s), req(s), 5, 5) }, asUser},
		{"textPromoted/one", func(s string) string { return textPromoted([]string{user(s).String()}) }, asUser},
		{"textPromoted/two", func(s string) string { return textPromoted([]string{"@x:hs.example", user(s).String()}) }, asUser},
		{"textNotGranted", func(s string) string { return textNotGranted(req(s)) }, asUser},
		{"textUnknownUser", func(s string) string { return textUnknownUser(user(s)) }, asUser},
		{"textPendingList", func(s string) string { return textPendingList(pending(s), 2, textsNow) }, asUser},
		{"textReminder", func(s string) string { return textReminder(pending(s), 2, time.Hour, textsNow) }, asUser},
		{"textInfo/user", func(s string) string {
			return textInfo(user(s), standing, nil, store.UsageTotals{}, time.UTC)
		}, asUser},
		{"textInfo/no request", func(s string) string {
			return textInfo(user(s), approvals.Standing{}, nil, store.UsageTotals{}, time.UTC)
		}, asUser},
		{"textInfo/actor", func(s string) string {
			return textInfo("@agent:hs.example", standing, audit(approvals.ActionReject, user(s).String(), "motif"), store.UsageTotals{}, time.UTC)
		}, asUser},
		{"textQuotaOf", func(s string) string { return textQuotaOf(user(s), quota, time.UTC) }, asUser},

		// A moderator's reason or note.
		{"textRejectedNotice/reason", func(s string) string { return textRejectedNotice("@agent:hs.example", s) }, cut(maxFreeText)},
		{"textRevokedNotice/reason", func(s string) string { return textRevokedNotice("@agent:hs.example", s) }, cut(maxFreeText)},
		{"textRejectedStatus", func(s string) string { return textRejectedStatus(withReason(s)) }, cut(maxFreeText)},
		{"textRevokedStatus", func(s string) string { return textRevokedStatus(withReason(s)) }, cut(maxFreeText)},
		{"textRejected/reason", func(s string) string { return textRejected("@agent:hs.example", withReason(s)) }, cut(maxFreeText)},
		{"textRevoked/reason", func(s string) string { return textRevoked("@agent:hs.example", withReason(s)) }, cut(maxFreeText)},
		{"textInfo/reason", func(s string) string {
			return textInfo("@agent:hs.example", standing, audit(approvals.ActionReject, textsMod.String(), s), store.UsageTotals{}, time.UTC)
		}, cut(maxFreeText)},
		{"textInfo/consent version", func(s string) string {
			return textInfo("@agent:hs.example", standing, audit(approvals.ActionConsent, "@agent:hs.example", s), store.UsageTotals{}, time.UTC)
		}, shown},
		{"textInfo/unknown action", func(s string) string {
			return textInfo("@agent:hs.example", standing, audit(s, textsMod.String(), ""), store.UsageTotals{}, time.UTC)
		}, shown},
		{"textInfo/rule", func(s string) string {
			return textInfo("@agent:hs.example", standing, audit(approvals.ActionDeny, "@agent:hs.example", s), store.UsageTotals{}, time.UTC)
		}, shown},
		{"textAlreadyDecided/rule", func(s string) string {
			r := req("agent")
			r.DecidedBy, r.Reason = "", s
			return textAlreadyDecided(r, textsNow)
		}, shown},

		// What someone typed, echoed.
		{"textUnknownCommand", func(s string) string { return textUnknownCommand(s) }, func(s string) string { return shown(clip("!"+s, maxEchoed)) }},
		{"textBadTargets", func(s string) string { return textBadTargets([]string{"x", s}) }, cut(maxEchoed)},
		{"textNoTarget", func(s string) string { return textNoTarget(s) }, func(s string) string { return shown("!" + clip(s, maxEchoed)) }},
		{"textModelUnknown", func(s string) string { return textModelUnknown(s, models) }, cut(maxEchoed)},

		// Model names and error classes from Albert, configured values.
		{"textModels", func(s string) string { return textModels([]string{"albert-large", s}, s) }, shown},
		{"textModelChosen", func(s string) string { return textModelChosen(s) }, shown},
		{"textModelGone", func(s string) string { return textModelGone(s, "albert-large") }, shown},
		{"textOpsIncident", func(s string) string {
			return textOpsIncident("", false, &albert.Error{Class: albert.Class(s), Status: 503})
		}, shown},
		{"textOpsResolved", func(s string) string { return textOpsResolved("", false, albert.Class(s), time.Hour) }, shown},

		// A partner's name (configuration) and what Albert says of documents.
		{"textOpsIncident/partner", func(s string) string {
			return textOpsIncident(s, true, &albert.Error{Class: albert.ClassBusy, Status: 503})
		}, shown},
		{"textKeyPaused", func(s string) string { return textKeyPaused(s, true, albert.ClassBudget, textsNow, textsNow, time.UTC) }, shown},
		{"textModsKeyPaused", func(s string) string {
			return textModsKeyPaused(s, true, albert.ClassBudget, textsNow, textsNow, time.UTC)
		}, shown},
		{"textModsKeyResumed", func(s string) string { return textModsKeyResumed(s, true, albert.ClassBudget) }, shown},
		{"textBreakerOpened", func(s string) string { return textBreakerOpened(s, true) }, shown},
		{"textInfoPartner", func(s string) string { return textInfoPartner(s, "justice") }, shown},
		{"textPartners", func(s string) string {
			return textPartners([]partnerRow{{id: "justice", name: s}}, textsNow, time.UTC)
		}, shown},
		{"textSourcesDetail", func(s string) string {
			return textSourcesDetail([]conversation.Source{{N: 1, Document: s, Collection: "c", Content: "extrait"}})
		}, shown},
		{"textCollections", func(s string) string {
			return textCollections([]conversation.Offered{{Collection: albert.Collection{ID: 3, Name: s}, Known: true}})
		}, shown},
		{"textStats", func(s string) string {
			return textStats(store.Stats{ErrorsByClass: map[string]int{s: 2}}, ratelimit.GateStats{}, ratelimit.BreakerClosed, false, 0, 0)
		}, shown},
		{"textWelcome", func(s string) string { return textWelcome(policy, s) }, shown},
		{"textPolicyChanged", func(s string) string { return textPolicyChanged(policy, s) }, shown},
		{"textConditions", func(s string) string { return textConditions(policy, s, textsNow, true, time.UTC) }, shown},
	} {
		for _, h := range hostile {
			t.Run(tt.name+"/"+h.name, func(t *testing.T) {
				checkLiteral(t, tt.text(h.s), tt.text(benign), collapse(tt.want(h.s)))
			})
		}
	}
}

// A code span must keep its backticks: echoed values that hold some are
// shown whole, not with quotes in their place.
func TestEchoedCommandKeepsItsBackticks(t *testing.T) {
	got := render(textUnknownCommand("a`b"))
	if !strings.Contains(got.html, "<code>!a`b</code>") {
		t.Errorf("HTML %q lacks the command as typed", got.html)
	}
}

// A rule's decision is recognised by having no decider; a moderator's
// reason is shown to the agent whatever it says, even "access.…".
func TestReasonsOfRulesAndModerators(t *testing.T) {
	rule := func(status approvals.Status, reason string) *approvals.Request {
		return &approvals.Request{ID: 3, UserID: "@agent:hs.example", Status: status, Reason: reason, DecidedAt: textsNow}
	}
	byMod := func(status approvals.Status, reason string) *approvals.Request {
		r := rule(status, reason)
		r.DecidedBy = textsMod
		return r
	}
	for _, tt := range []struct {
		name    string
		text    string
		want    []string
		notWant []string
	}{
		{"agent, rule's refusal", textRejectedStatus(rule(approvals.StatusRejected, "access.deny")), nil, []string{"access.deny", "motif"}},
		{"agent, moderator's refusal", textRejectedStatus(byMod(approvals.StatusRejected, "access.refusé : compte personnel")),
			[]string{"(motif : access.refusé : compte personnel)"}, nil},
		{"agent, moderator's revocation", textRevokedStatus(byMod(approvals.StatusRevoked, "access. retiré à la demande du service")),
			[]string{"(motif : access. retiré à la demande du service)"}, nil},
		{"agent, revocation without reason", textRevokedStatus(byMod(approvals.StatusRevoked, "")), nil, []string{"motif"}},
		{"agent, notice", textRejectedNotice("@agent:hs.example", "access.auto_approve ne s'applique pas"),
			[]string{"(motif : access.auto_approve ne s'applique pas)"}, nil},
		{"moderators, refusal", textRejected("@agent:hs.example", byMod(approvals.StatusRejected, "access.x")),
			[]string{"(motif : access.x)"}, nil},
		{"moderators, revocation", textRevoked("@agent:hs.example", byMod(approvals.StatusRevoked, "access.x")),
			[]string{"(motif : access.x)"}, nil},
		{"moderators, already decided by a rule", textAlreadyDecided(rule(approvals.StatusRejected, "access.deny"), textsNow),
			[]string{"déjà refusée par la règle `access.deny`"}, nil},
		{"moderators, already decided by a moderator", textAlreadyDecided(byMod(approvals.StatusRejected, "access.deny"), textsNow),
			[]string{"déjà refusée par @moderatrice:hs.example"}, []string{"règle"}},
		{"moderators, history", textInfo("@agent:hs.example", approvals.Standing{}, []approvals.AuditEntry{
			{At: textsNow, Actor: "@agent:hs.example", Action: approvals.ActionDeny, Reason: "access.deny"},
			{At: textsNow, Actor: textsMod, Action: approvals.ActionReject, Reason: "access.compte de test"},
		}, store.UsageTotals{}, time.UTC),
			[]string{"refus automatique (règle `access.deny`)", "refus par @moderatrice:hs.example (motif : access.compte de test)"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := render(tt.text).body
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%q lacks %q", body, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("%q shows %q", body, w)
				}
			}
		})
	}
}

// The Sources list names each document once, with the numbers of its
// excerpts; a name or link from a document's metadata is shown literally and
// linked only when it is a web address.
func TestTextSources(t *testing.T) {
	sources := []conversation.Source{
		{N: 1, CollectionID: 3, DocumentID: 7, Document: "Congé de maternité", Collection: "fiches", URL: "https://www.service-public.fr/F519"},
		{N: 2, CollectionID: 3, DocumentID: 8, Document: "*Télétravail* [x](javascript:alert(1))", Collection: "fiches", URL: "javascript:alert(1)"},
		{N: 3, CollectionID: 3, DocumentID: 7, Document: "Congé de maternité", Collection: "fiches", URL: "https://www.service-public.fr/F519"},
		{N: 4, CollectionID: 9, DocumentID: 7, Collection: "autre"},
	}
	got := render(textSources(sources))
	wantBody := "**Sources**\n\n* [1] [3] [Congé de maternité](https://www.service-public.fr/F519) — fiches\n* [2] *Télétravail* [x](javascript:alert(1)) — fiches\n* [4] document n° 7 — autre"
	if strings.TrimSpace(got.body) != wantBody {
		t.Errorf("body = %q, want %q", got.body, wantBody)
	}
	if strings.Count(got.html, "<a ") != 1 || !strings.Contains(got.html, `href="https://www.service-public.fr/F519"`) || strings.Contains(got.html, "javascript") && strings.Contains(got.html, "href=\"javascript") {
		t.Errorf("html = %s", got.html)
	}
}

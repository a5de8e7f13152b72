package e2e

import (
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/internal/mxclient"
)

// showsLiterally checks that a message reads want as it is, in its body and
// in its formatted body (HTML-escaped there), with none of tags in the HTML.
func showsLiterally(t *testing.T, what string, m mxclient.Message, want string, tags ...string) {
	t.Helper()
	if !strings.Contains(m.Body, want) {
		t.Errorf("%s: body %q lacks %q", what, m.Body, want)
	}
	if m.Format != event.FormatHTML {
		return
	}
	escaped := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(want)
	if !strings.Contains(m.FormattedBody, escaped) {
		t.Errorf("%s: formatted body %q lacks %q", what, m.FormattedBody, escaped)
	}
	for _, tag := range tags {
		if strings.Contains(m.FormattedBody, tag) {
			t.Errorf("%s: formatted body %q holds %s", what, m.FormattedBody, tag)
		}
	}
}

// An account whose id holds Markdown (@a._und_.b) is shown to moderators
// as its id, not in italics; a moderator's reason full of Markdown and HTML
// reaches the agent as written, and pings no one else.
func TestEscapingOfIdsAndReasons(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	room, mod, bot := w.tb.SupportRoom, w.tb.Moderator, w.tb.Bot.UserID
	agent := w.person("a._und_.b")
	user := agent.UserID()
	if !strings.HasPrefix(user.String(), "@a._und_.b:") {
		t.Fatalf("Dendrite registered %s", user)
	}

	w.joinSupport(agent)
	ask := w.send(agent, room, "Bonjour, je voudrais l'Assistant IA")
	ack := w.expect(agent, "the acknowledgement", from(bot), in(room), replyTo(ask))
	showsLiterally(t, "acknowledgement", ack, user.String(), "<em>")

	list := w.send(mod, room, "!pending")
	pending := w.expect(mod, "the pending list", from(bot), in(room), replyTo(list))
	if pending.Format != event.FormatHTML {
		t.Errorf("the pending list has no formatted body: %+v", pending)
	}
	showsLiterally(t, "!pending", pending, user.String(), "<em>")

	const reason = "*pas* agent <b>public</b> [lien](https://evil.example) _x_ ~~barré~~ ||secret|| &amp; @room fin"
	rej := w.send(mod, room, "!reject "+user.String()+" "+reason)
	confirm := w.expect(mod, "the confirmation", from(bot), in(room), replyTo(rej))
	showsLiterally(t, "confirmation", confirm, user.String(), "<em>")
	showsLiterally(t, "confirmation", confirm, reason, "<em>", "<b>", "<del>", "<span", "evil.example\"")

	told := w.expect(agent, "the rejection", from(bot), in(room), mentions(user), contains("n'a pas été acceptée"))
	showsLiterally(t, "rejection", told, "motif : "+reason, "<em>", "<b>", "<del>", "<span", "evil.example\"")
	if want := []id.UserID{user}; !slices.Equal(told.Mentions, want) {
		t.Errorf("the rejection mentions %v, want %v", told.Mentions, want)
	}
}

package e2e

import (
	"html"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/approvals"
	"guichet/internal/mxclient"
)

// Messages as real clients send them (issue 9, item 1): Tchap's own
// permalinks, commands and questions sent as replies with the fallback that
// older clients add, decomposed accents and invisible messages.

// sendContent has p send content to room.
func sendContent(t testing.TB, w *world, p *mxclient.Person, room id.RoomID, content *event.MessageEventContent) id.EventID {
	t.Helper()
	evt, err := p.Send(w.ctx(), room, content)
	if err != nil {
		t.Fatalf("%s could not send %q: %v", p.UserID(), content.Body, err)
	}
	return evt
}

// withFallback makes content a reply to quoted (sent by sender with the
// text quotedText) the way older clients do: the quoted lines before the
// body, an <mx-reply> before the HTML, and the m.in_reply_to relation.
func withFallback(content *event.MessageEventContent, room id.RoomID, quoted id.EventID, sender id.UserID, quotedText string) *event.MessageEventContent {
	formatted := content.FormattedBody
	if content.Format != event.FormatHTML {
		formatted = html.EscapeString(content.Body)
	}
	lines := strings.Split(quotedText, "\n")
	content.Body = "> <" + string(sender) + "> " + strings.Join(lines, "\n> ") + "\n\n" + content.Body
	content.Format = event.FormatHTML
	content.FormattedBody = `<mx-reply><blockquote><a href="https://matrix.to/#/` + string(room) + "/" + string(quoted) + `">In reply to</a> ` +
		`<a href="https://matrix.to/#/` + string(sender) + `">` + string(sender) + `</a><br>` + html.EscapeString(quotedText) +
		`</blockquote></mx-reply>` + formatted
	content.RelatesTo = &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: quoted}}
	return content
}

// status is user's latest request status in guichet's store.
func status(t testing.TB, w *world, user id.UserID) approvals.Status {
	t.Helper()
	req, err := w.app.Store.LatestRequest(w.ctx(), user)
	if err != nil {
		t.Fatalf("no request for %s: %v", user, err)
	}
	return req.Status
}

// A moderator's commands are read whatever the client: a mention pill on
// Tchap's permalink prefix, a command sent as a reply with its fallback
// (HTML and body, or body alone), a name typed with a combining accent.
func TestParsingModeratorCommands(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	bob := w.person("bob.leroy-dinum.gouv.fr")
	carol := w.person("carol.durand-education.gouv.fr")
	announce(t, w, alice, "Bonjour, je souhaite accéder à l'Assistant IA")
	bobAsk, _ := announce(t, w, bob, "Bonjour,\nje voudrais l'assistant")
	carolAsk, _ := announce(t, w, carol, "Bonjour")

	// Tchap's web client builds pills on its own prefix, not matrix.to.
	pill := sendContent(t, w, mod, room, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "!approve Alice Martin", Format: event.FormatHTML,
		FormattedBody: `!approve <a href="https://tchap.gouv.fr/#/user/` + alice.UserID().String() + `">Alice Martin</a>`,
		Mentions:      &event.Mentions{UserIDs: []id.UserID{alice.UserID()}},
	})
	w.expect(mod, "the answer to the Tchap pill", from(bot), in(room), replyTo(pill))
	w.expect(alice, "the welcome", from(bot), notInRoom(room), contains("!accepter"))
	if got := status(t, w, alice.UserID()); got != approvals.StatusApproved {
		t.Errorf("after !approve with a Tchap pill, alice's request is %s", got)
	}

	// A reply to bob's request with both fallbacks and a matrix.to pill.
	reply := sendContent(t, w, mod, room, withFallback(&event.MessageEventContent{
		MsgType: event.MsgText, Body: "!approve Bob", Format: event.FormatHTML,
		FormattedBody: `!approve <a href="https://matrix.to/#/` + bob.UserID().String() + `">Bob</a>`,
	}, room, bobAsk, bob.UserID(), "Bonjour,\nje voudrais l'assistant"))
	w.expect(mod, "the answer to the command sent as a reply", from(bot), in(room), replyTo(reply))
	w.expect(bob, "the welcome", from(bot), notInRoom(room), contains("!accepter"))
	if got := status(t, w, bob.UserID()); got != approvals.StatusApproved {
		t.Errorf("after !approve sent as a reply, bob's request is %s", got)
	}

	// A reply to carol's request whose fallback is in the body only.
	bodyOnly := sendContent(t, w, mod, room, &event.MessageEventContent{
		MsgType:   event.MsgText,
		Body:      "> <" + carol.UserID().String() + "> Bonjour\n\n!reject " + carol.UserID().String() + " compte de test",
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: carolAsk}},
	})
	w.expect(mod, "the answer to the command after a body fallback", from(bot), in(room), replyTo(bodyOnly))
	w.expect(carol, "the rejection", from(bot), mentions(carol.UserID()), contains("compte de test"))
	if got := status(t, w, carol.UserID()); got != approvals.StatusRejected {
		t.Errorf("after !reject after a body fallback, carol's request is %s", got)
	}

	// "é" as "e" and a combining acute accent, as some keyboards send it.
	revoke := w.send(mod, room, "!re\u0301voquer "+alice.UserID().String()+" fin de mission")
	w.expect(mod, "the answer to !re\u0301voquer", from(bot), in(room), replyTo(revoke))
	w.expect(alice, "the revocation", from(bot), notInRoom(room), contains("fin de mission"))
	if got := status(t, w, alice.UserID()); got != approvals.StatusRevoked {
		t.Errorf("after !re\\u0301voquer, alice's request is %s", got)
	}
}

// In a DM, a message that shows nothing is not a question, and a question
// sent as a reply reaches Albert without the quoted text (the quoted turn
// is in the context once, as a turn).
func TestParsingDMQuestions(t *testing.T) {
	w := newWorld(t)
	const answer = "Rome est la capitale de l'Italie."
	w.tb.Albert.SetReply(func(fakealbert.Request) string { return answer })
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice, dm := activeAgent(t, w)

	first := ask(t, w, alice, dm, "Quelle est la capitale de l'Italie ?")
	calls := w.tb.Albert.Calls()
	asked, err := w.app.Store.CountQuestions(w.ctx(), alice.UserID())
	if err != nil {
		t.Fatal(err)
	}

	var invisible []id.EventID
	for _, text := range []string{"\u200b", "\u200c\u200d\u2060\ufeff", "\ufe0f\u202e\u00a0", "\u3164"} {
		invisible = append(invisible, w.send(alice, dm, text))
	}
	// A later exchange: the invisible messages had their chance to be answered.
	mustContain(t, ask(t, w, alice, dm, "!aide"), "!reset")
	for i, evt := range invisible {
		if n := count(alice, from(bot), replyTo(evt)); n != 0 {
			t.Errorf("invisible message %d was answered %d times", i, n)
		}
	}
	if got := w.tb.Albert.Calls(); got != calls {
		t.Errorf("invisible messages reached Albert: %d calls, want %d", got, calls)
	}
	if n, err := w.app.Store.CountQuestions(w.ctx(), alice.UserID()); err != nil || n != asked {
		t.Errorf("invisible messages counted as questions: %d, want %d (err %v)", n, asked, err)
	}

	// A question sent as a reply to the answer, with both fallbacks.
	quoted := first.EventID
	if first.ReplaceOf != "" {
		quoted = first.ReplaceOf
	}
	const question = "Et celle de l'Espagne ?"
	q := sendContent(t, w, alice, dm, withFallback(&event.MessageEventContent{MsgType: event.MsgText, Body: question}, dm, quoted, bot, answer))
	finalReply(t, w, alice, q)
	checkReplyPrompt(t, w, question, answer, 1)

	// The same with the fallback in the body only (no formatted_body),
	// which mautrix's RemoveReplyFallback leaves in place.
	const again = "Et celle du Portugal ?"
	q = sendContent(t, w, alice, dm, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "> <" + bot.String() + "> " + answer + "\n\n" + again,
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: quoted}},
	})
	finalReply(t, w, alice, q)
	checkReplyPrompt(t, w, again, answer, 2) // the fake gave the same answer twice
}

// checkReplyPrompt asserts that Albert's last request ends with question as
// sent, and that neither a reply fallback nor the quoted text is inside a
// question.
func checkReplyPrompt(t testing.TB, w *world, question, quoted string, wantCopies int) {
	t.Helper()
	reqs := w.tb.Albert.Requests()
	msgs := reqs[len(reqs)-1].Messages
	if got := msgs[len(msgs)-1].Content; got != question {
		t.Errorf("Albert was asked %q, want %q", got, question)
	}
	copies := 0
	for _, m := range msgs {
		if strings.Contains(m.Content, "> <") || strings.Contains(m.Content, "In reply to") {
			t.Errorf("a reply fallback reached Albert: %s %q", m.Role, m.Content)
		}
		if m.Role == "user" && strings.Contains(m.Content, quoted) {
			t.Errorf("the quoted answer reached Albert inside a question: %q", m.Content)
		}
		if strings.Contains(m.Content, quoted) {
			copies++
		}
	}
	// The answer replied to is in the context as its turn in the window,
	// not again as the quoted turn.
	if copies != wantCopies {
		t.Errorf("the quoted text reached Albert %d times, want %d", copies, wantCopies)
	}
}

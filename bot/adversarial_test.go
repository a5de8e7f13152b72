package bot

// Adversarial instances of the kinds of issue 9, other than the ones the
// fixes were tested with: what held is kept as a regression test, what
// failed is marked BUG and skipped (see the QA report on issue 9).

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/store"
)

// Targets as moderators write them at the end of a sentence or after a
// pill, in forms the existing tables do not try.
func TestAdversarialTargetsThatHold(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want target
	}{
		{name: "closing parenthesis and semicolon", arg: "@a:b);", want: target{User: "@a:b"}},
		{name: "square brackets", arg: "[@a:b]", want: target{User: "@a:b"}},
		{name: "French quotes with no-break spaces", arg: "«\u00a0@a:b\u00a0»", want: target{User: "@a:b"}},
		{name: "matrix.to with a user segment", arg: "https://matrix.to/#/user/@a:b", want: target{User: "@a:b"}},
		{name: "matrix.to with via and a full stop", arg: "https://matrix.to/#/@a:b?via=b.", want: target{User: "@a:b"}},
		{name: "matrix.to with the colon alone encoded", arg: "https://matrix.to/#/@a%3Ab", want: target{User: "@a:b"}},
		{name: "matrix.to with a trailing slash", arg: "https://matrix.to/#/@a:b/", want: target{User: "@a:b"}},
		{name: "Tchap link with via", arg: "https://tchap.gouv.fr/#/user/@a:b?via=x", want: target{User: "@a:b"}},
		{name: "matrix URI with via and action", arg: "matrix:u/a:b?via=b&action=chat", want: target{User: "@a:b"}},
		{name: "request number and a full stop", arg: "#42.", want: target{RequestID: 42}},
		{name: "request number as guichet writes it, full stop", arg: "n°42.", want: target{RequestID: 42}},
		{name: "request number in capitals", arg: "N°42", want: target{RequestID: 42}},
		{name: "mathematical digits", arg: "#𝟒𝟐", want: target{RequestID: 42}},
		{name: "user in a code span with a comma", arg: "`@a:b`,", want: target{User: "@a:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.arg)
			if err != nil || got != tt.want {
				t.Errorf("parseTarget(%q) = %+v, %v; want %+v", tt.arg, got, err, tt.want)
			}
		})
	}
}

// A sentence's last punctuation is not part of the id: "!approve
// @alice:agent.x.tchap.gouv.fr." must designate alice, not a phantom
// account on the server "agent.x.tchap.gouv.fr.".
func TestAdversarialTargetsAtTheEndOfASentence(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want target
	}{
		{name: "full stop", arg: "@alice:agent.interieur.tchap.gouv.fr.", want: target{User: "@alice:agent.interieur.tchap.gouv.fr"}},
		{name: "ellipsis", arg: "@a:b…", want: target{User: "@a:b"}},
		{name: "three dots", arg: "@a:b...", want: target{User: "@a:b"}},
		{name: "colon after a pill", arg: "@a:b:", want: target{User: "@a:b"}},
		{name: "request number and a colon", arg: "#42:", want: target{RequestID: 42}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.arg)
			if err != nil || got != tt.want {
				t.Errorf("parseTarget(%q) = %+v, %v; want %+v", tt.arg, got, err, tt.want)
			}
		})
	}
}

// A pill followed by a colon ("!reject Alice: compte perso") reaches the
// parser glued to it.
func TestAdversarialPillFollowedByAColon(t *testing.T) {
	content := event.MessageEventContent{MsgType: event.MsgText, Body: "!reject Alice: compte perso",
		Format: event.FormatHTML, FormattedBody: `!reject <a href="https://matrix.to/#/@alice:b">Alice</a>: compte perso`}
	cmd, ok := parseCommand(messageText(context.Background(), &content))
	if !ok {
		t.Fatal("not a command")
	}
	targets, bad, rest := splitTargets(cmd.Args)
	if len(targets) != 1 || targets[0].User != "@alice:b" || len(bad) != 0 || rest != "compte perso" {
		t.Errorf("splitTargets(%q) = %+v, %q, %q; want @alice:b and the reason", cmd.Args, targets, bad, rest)
	}
}

// Messages as clients send them, read as the commands they are.
func TestAdversarialMessageTextThatHolds(t *testing.T) {
	html := func(formatted string) event.MessageEventContent {
		return event.MessageEventContent{MsgType: event.MsgText, Body: "!approve Alice", Format: event.FormatHTML, FormattedBody: formatted}
	}
	tests := []struct {
		name    string
		content event.MessageEventContent
		want    string
	}{
		{name: "paragraph around the command", content: html(`<p>!approve <a href="https://matrix.to/#/@alice:b">Alice</a></p>`), want: "!approve @alice:b"},
		{name: "line break before the pill", content: html(`!approve<br><a href="https://matrix.to/#/@alice:b">Alice</a>`), want: "!approve\n@alice:b"},
		{name: "pill with a nested span", content: html(`!approve <a href="https://matrix.to/#/@alice:b"><span>Alice</span></a>`), want: "!approve @alice:b"},
		{name: "single-quoted href", content: html(`!approve <a href='https://matrix.to/#/@alice:b'>Alice</a>`), want: "!approve @alice:b"},
		{name: "Element X pill text with an at sign", content: html(`<p>!approve <a href="https://matrix.to/#/@alice:b" data-mx-pill>@Alice</a></p>`), want: "!approve @alice:b"},
		{name: "two link forms joined by et", content: html(`!approve <a href="https://matrix.to/#/%40alice%3Ab?via=b">@Alice</a> et <a href="https://tchap.gouv.fr/#/user/@bob:b">Bob</a>`), want: "!approve @alice:b et @bob:b"},
		{name: "at sign as an entity", content: html(`!approve &#64;alice:b`), want: "!approve @alice:b"},
		{name: "reply fallback and a paragraph", content: event.MessageEventContent{MsgType: event.MsgText, Body: "> <@x:b> hi\n\n!approve",
			RelatesTo: replyTo("$q"), Format: event.FormatHTML, FormattedBody: `<mx-reply><blockquote>hi</blockquote></mx-reply><p>!approve</p>`}, want: "!approve"},
		{name: "emote of a command", content: event.MessageEventContent{MsgType: event.MsgEmote, Body: "!aide"}, want: "!aide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := messageText(context.Background(), &tt.content); got != tt.want {
				t.Errorf("messageText() = %q, want %q", got, tt.want)
			}
		})
	}
}

// Command names typed with look-alikes that fold to a command.
func TestAdversarialCommandNamesThatHold(t *testing.T) {
	tests := []struct{ text, want string }{
		{"!İNFO #3", "info"},
		{"!𝐚𝐩𝐩𝐫𝐨𝐯𝐞 @a:b", "approve"},
		{"!ⓐⓘⓓⓔ", "aide"},
		{"!appro\u00adve @a:b", "approve"},
		{"!approve\t@a:b", "approve"},
		{"! approve @a:b", "approve"},
		{"!CAPACITÉ 10", "capacité"},
		{"!Re\u0301voquer #3", "révoquer"},
	}
	for _, tt := range tests {
		cmd, ok := parseCommand(tt.text)
		if !ok || cmd.Name != tt.want || moderatorCommands.find(cmd.Name) == nil {
			t.Errorf("parseCommand(%q) = %q, %v; want the command %q", tt.text, cmd.Name, ok, tt.want)
		}
	}
}

// A name spelled with Cyrillic or Greek letters that look like Latin ones
// reads, on screen, as the command: "Je ne connais pas la commande
// !аpprove" tells the moderator that !approve does not exist.
func TestAdversarialHomoglyphCommandNames(t *testing.T) {
	for _, text := range []string{"!аpprove #3", "!rejеct #3", "!рending", "!іnfo #3", "!αide"} {
		cmd, ok := parseCommand(text)
		if !ok {
			t.Fatalf("parseCommand(%q) is not a command", text)
		}
		if moderatorCommands.find(cmd.Name) == nil {
			t.Errorf("%q: name %q matches no command; the answer reads %q", text, cmd.Name, render(textUnknownCommand(cmd.Name)).body)
		}
	}
}

// A command with more targets than it takes is not a command without a
// target: "Pour qui ?" after "!reject #3 #4" is wrong.
func TestAdversarialTooManyTargets(t *testing.T) {
	b := &Bot{}
	many := make([]string, 51)
	for i := range many {
		many[i] = "#" + strconv.Itoa(i+1)
	}
	for _, tt := range []struct{ name, text string }{
		{"reject", "!reject #3 #4 spam"},
		{"revoke", "!revoke @a:b @c:d"},
		{"approve", "!approve " + strings.Join(many, " ")},
	} {
		cmd, _ := parseCommand(tt.text)
		spec := moderatorCommands.find(cmd.Name)
		evt := &event.Event{Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: tt.text}}}
		_, problem, err := b.parseInvocation(context.Background(), spec, evt, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if problem == "" || strings.Contains(problem, "Pour qui") {
			t.Errorf("%s: %q, want a sentence saying how many targets the command takes", tt.name, problem)
		}
	}
}

// Texts that the existing table does not render with hostile values.
func TestAdversarialMoreTextsShowValuesLiterally(t *testing.T) {
	user := func(s string) id.UserID { return id.UserID("@" + s + ":hs.example") }
	req := func(s string) *approvals.Request {
		return &approvals.Request{ID: 3, UserID: user(s), Status: approvals.StatusApproved, DecidedBy: textsMod,
			DecidedAt: textsNow.Add(-time.Minute), CreatedAt: textsNow.Add(-time.Hour)}
	}
	asUser := func(s string) string { return shown(user(s).String()) }
	for _, tt := range []struct {
		name string
		text func(s string) string
		want func(s string) string
	}{
		{"textNotLatest", func(s string) string { return textNotLatest(3, user(s)) }, asUser},
		{"textNothingToReverse", func(s string) string { return textNothingToReverse(req(s)) }, asUser},
		{"textReversed", func(s string) string { return textReversed(req(s)) }, asUser},
		{"textModsUndelivered", func(s string) string {
			return textModsUndelivered(user(s), store.KindWelcome, 3, failureGone)
		}, asUser},
		{"textModelClosed/model", func(s string) string { return textModelClosed(s, "albert-large") }, shown},
		{"textModelClosed/fallback", func(s string) string { return textModelClosed("albert-large", s) }, shown},
		{"textAlreadyDecided/waitlisted", func(s string) string {
			r := req(s)
			r.Status = approvals.StatusWaitlisted
			return textAlreadyDecided(r, textsNow)
		}, asUser},
	} {
		for _, h := range hostile {
			t.Run(tt.name+"/"+h.name, func(t *testing.T) {
				checkLiteral(t, tt.text(h.s), tt.text(benign), collapse(tt.want(h.s)))
			})
		}
	}
}

// README: targets may be listed "with spaces, commas, et": a list typed
// with commas and no spaces is one word to the parser.
func TestAdversarialTargetsJoinedByCommasWithoutSpaces(t *testing.T) {
	tests := []struct {
		args string
		want []target
		rest string
	}{
		{"#1,#2,#3 spam", []target{{RequestID: 1}, {RequestID: 2}, {RequestID: 3}}, "spam"},
		{"@a:b,@c:d ok", []target{{User: "@a:b"}, {User: "@c:d"}}, "ok"},
		{"#1;#2", []target{{RequestID: 1}, {RequestID: 2}}, ""},
		{"n°1,n°2", []target{{RequestID: 1}, {RequestID: 2}}, ""},
	}
	for _, tt := range tests {
		targets, bad, rest := splitTargets(strings.Fields(tt.args))
		if !slices.Equal(targets, tt.want) || len(bad) != 0 || rest != tt.rest {
			t.Errorf("splitTargets(%q) = %+v, %q, %q; want %+v, none, %q", tt.args, targets, bad, rest, tt.want, tt.rest)
		}
	}
}

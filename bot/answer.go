package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/ratelimit"
	"guichet/store"
)

// Delays of the streaming display. An answer complete before
// Config.FirstMessageAfter (and before a first sentence) is one message, one
// room event; a slower one shows guichet typing from typingAfter, then its
// first message once a first sentence is there or at FirstMessageAfter with
// the text so far, then edits no more often than editInterval.
//
// typingAfter: the typing notice costs two homeserver calls (on, off); an
// answer ready within 150 ms does not need it (the fake LLM of the peer
// bench answers in 510 ms: one typing pair, one message, 3 calls).
const (
	typingAfter   = 150 * time.Millisecond
	typingTimeout = 60 * time.Second
	// maxEditStretch bounds how far a slow homeserver widens the interval
	// between edits (times Config.EditInterval).
	maxEditStretch = 4
)

// firstSentence reports whether text holds a first piece worth a message:
// a sentence (or a line, a list item) of some length, or a long run of text.
func firstSentence(text string) bool {
	t := strings.TrimSpace(text)
	n := utf8.RuneCountInString(t)
	if n >= 160 {
		return true
	}
	if n < 20 {
		return false
	}
	return strings.Contains(t, ". ") || strings.Contains(t, "! ") || strings.Contains(t, "? ") ||
		strings.Contains(t, ".\n") || strings.Contains(t, ":\n") || strings.Contains(t, "\n\n")
}

// sent records how long the homeserver took to accept a message
// (exponentially weighted: the last sends count most).
func (b *Bot) sent(d time.Duration) {
	for {
		old := b.sendLatency.Load()
		next := int64(d)
		if old != 0 {
			next = old - old/5 + int64(d)/5
		}
		if b.sendLatency.CompareAndSwap(old, next) {
			return
		}
	}
}

// editInterval is the pause between two edits of a growing answer:
// Config.EditInterval, widened while the homeserver is slow to take
// messages (four times its recent send latency), up to maxEditStretch times
// EditInterval: a saturated homeserver gets fewer events from guichet. The
// final text does not wait for it.
func (b *Bot) editInterval() time.Duration {
	return min(max(b.cfg.EditInterval, 4*time.Duration(b.sendLatency.Load())), maxEditStretch*b.cfg.EditInterval)
}

// answer is the outcome of one question.
type answer struct {
	text        string     // Markdown shown to the agent
	placeholder id.EventID // the message the final text replaces, if any
	model       string
	tokens      int           // prompt and completion tokens used (estimated when Albert did not say)
	waited      time.Duration // in Albert's calls and the backoff between them, nothing else
	ok          bool          // false: the agent got an error sentence instead of an answer
	cut         bool          // the answer stopped in the middle (ok is false)
	notices     []string
	usage       []store.Usage // the calls made, written when the question is finished
}

// stream shows the answer while it is generated. Its methods are called from
// the Albert stream and from its own goroutine.
type stream struct {
	b      *Bot
	room   id.RoomID
	reply  id.EventID // the question
	sender id.UserID
	key    string

	mu          sync.Mutex
	text        string
	shown       string
	placeholder id.EventID
	lastSend    time.Time
	waiting     bool // the display waits for new text: update wakes it
	full        bool // the placeholder shows all one message can hold: it stops growing

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// newStream starts the display of the answer to evt; placeholder is the
// message an earlier attempt at the same question showed, which it edits
// instead of sending another.
func (b *Bot) newStream(ctx context.Context, evt *event.Event, key string, placeholder id.EventID) *stream {
	s := &stream{b: b, room: evt.RoomID, reply: evt.ID, sender: evt.Sender, key: key, placeholder: placeholder,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(ctx)
	return s
}

// update records the text so far (called by the Albert client for each
// piece). It wakes the display only when the display waits for text: most
// pieces arrive while an edit is not yet due and cost nothing more.
func (s *stream) update(text string) {
	s.mu.Lock()
	s.text = text
	wake := s.waiting
	s.waiting = false
	s.mu.Unlock()
	if wake {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// wait reports whether the display has nothing new to show; if so, the next
// update wakes it.
func (s *stream) wait() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = s.text == s.shown || s.full
	return s.waiting
}

// waitForMore makes the next update wake the display, whatever it shows.
func (s *stream) waitForMore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = true
}

// shownAny reports whether the answer has a message in the room.
func (s *stream) shownAny() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.placeholder != ""
}

// useful reports whether the text so far is worth a first message.
func (s *stream) useful() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return firstSentence(s.text)
}

func (s *stream) run(ctx context.Context) {
	defer close(s.done)
	typing := time.NewTimer(typingAfter)
	defer typing.Stop()
	typed := false // typingAfter has passed: the answer is not instant
	first := time.NewTimer(s.b.cfg.FirstMessageAfter)
	defer first.Stop()
	// An earlier attempt's message (a restart) is edited at once.
	firstDue := s.shownAny()
	s.waitForMore()
	var next <-chan time.Time // when the next display may happen
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		case <-typing.C:
			typed = true
			if !s.shownAny() {
				s.startTyping(ctx)
			}
			if next == nil {
				next = time.After(0) // a first sentence may be there already
			}
		case <-first.C:
			firstDue = true
			if next == nil {
				next = time.After(0)
			}
		case <-s.wake:
			if next == nil {
				next = time.After(0)
			}
		case <-next:
			next = nil
			// Not before typingAfter: an answer streamed in a few
			// milliseconds is one message, whatever its sentences.
			if !firstDue && !s.shownAny() && (!typed || !s.useful()) {
				s.waitForMore() // the next piece, or the first timer, tries again
				continue
			}
			if s.show(ctx) {
				next = time.After(s.b.editInterval())
			} else if !s.wait() {
				next = time.After(0)
			}
		}
	}
}

// startTyping shows guichet typing until the display stops. One goroutine
// sends the "on" and then, once the display stopped, the "off": sent from
// two goroutines, as before, the "off" could reach the homeserver first and
// leave guichet typing for typingTimeout after its answer. Not waited for
// by the answer: under load a typing request can take longer than the
// answer it announces.
func (s *stream) startTyping(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	s.b.work.Add(1)
	go func() {
		defer s.b.work.Done()
		select {
		case <-s.stop:
			return // the answer came first: no need to type
		default:
		}
		onCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.b.client.UserTyping(onCtx, s.room, true, typingTimeout)
		cancel()
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Msg("Failed to show typing")
		}
		<-s.stop
		offCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := s.b.client.UserTyping(offCtx, s.room, false, 0); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to stop typing")
		}
	}()
}

// show sends the placeholder or an edit with the text so far; it reports
// whether it tried (so that the next edit waits editInterval), or had
// nothing new to show. The placeholder's send is recorded before it leaves
// and its event id once known (see placeholderOf), so that a stop or a crash
// at any point never leaves a second placeholder. Once the text outgrows
// one message, the placeholder shows the first part and stops growing: the
// rest comes as continuations with the final answer.
func (s *stream) show(ctx context.Context) bool {
	s.mu.Lock()
	text, shown, placeholder, full := s.text, s.shown, s.placeholder, s.full
	s.mu.Unlock()
	if placeholder != "" && (text == shown || full) {
		return false
	}
	if placeholder == "" && strings.TrimSpace(text) == "" {
		return false // the first message carries text: typing says guichet works
	}
	display := strings.TrimSpace(text)
	if display != "" && !fits(display+" …", s.room) {
		display = splitAnswer(display+" …", s.room)[0]
		display = strings.TrimSuffix(strings.TrimSuffix(display, "…"), " ")
		full = true
	}
	if display == "" {
		display = "…"
	} else {
		display += " …"
	}
	log := zerolog.Ctx(ctx)
	var content event.Content
	txn := txnID(fmt.Sprintf("%s:%d", s.key, len(text)))
	if placeholder == "" {
		content.Parsed = answerContent(display, s.reply, "")
		content.Raw = map[string]any{placeholderMarker: s.reply.String()}
		txn = txnID(s.key + ":placeholder")
		if err := s.b.store.PlaceholderSending(ctx, s.reply, s.room, s.sender, s.b.now()); err != nil {
			log.Err(err).Msg("Failed to record a placeholder before sending it")
			return true
		}
	} else {
		content.Parsed = answerContent(display, "", placeholder)
	}
	if err := s.b.fenced(ctx); err != nil {
		log.Warn().Err(err).Msg("Not showing a partial answer")
		return true
	}
	sendStart := time.Now()
	resp, err := s.b.client.SendMessageEvent(ctx, s.room, event.EventMessage, &content, mautrix.ReqSendEvent{TransactionID: txn})
	s.b.sent(time.Since(sendStart))
	if err != nil {
		log.Warn().Err(err).Msg("Failed to show partial answer")
		return true // tried: the next attempt waits editInterval too
	}
	if placeholder == "" {
		if err := s.b.store.SetPlaceholder(context.WithoutCancel(ctx), s.reply, resp.EventID); err != nil {
			log.Err(err).Msg("Failed to record a placeholder")
		}
	}
	s.mu.Lock()
	s.shown = text
	s.full = full
	if s.placeholder == "" {
		s.placeholder = resp.EventID
	}
	s.lastSend = time.Now()
	s.mu.Unlock()
	return true
}

// placeholderMarker is a field of a placeholder's content naming its
// question, so that a placeholder whose send was cut by a crash is found.
const placeholderMarker = "guichet.placeholder_of"

// placeholderOf is the placeholder an earlier attempt at evt showed: the one
// recorded, else, when a send may have reached the homeserver without its
// answer being recorded (a crash, a stop, a timeout), guichet's own
// message in the room that says it is the placeholder of evt ("" if none).
// The homeserver's transaction ids do not cover that case: a send cut
// in flight is not recognised when repeated (kill -9 loop, Dendrite).
func (b *Bot) placeholderOf(ctx context.Context, evt *event.Event, q store.QuestionState) id.EventID {
	log := zerolog.Ctx(ctx)
	if q.Placeholder != "" || q.PlaceholderAt.IsZero() {
		return q.Placeholder
	}
	found, err := b.findPlaceholder(ctx, evt)
	if err != nil {
		// Not found is better than a guess: a second placeholder at worst.
		log.Warn().Err(err).Msg("Failed to look for a placeholder sent before a stop")
		return ""
	}
	if found != "" {
		log.Info().Stringer("placeholder", found).Msg("Found the placeholder of an interrupted answer")
		if err := b.store.SetPlaceholder(ctx, evt.ID, found); err != nil {
			log.Err(err).Msg("Failed to record a placeholder")
		}
	}
	return found
}

// maxPlaceholderLookup bounds the events read after a question while
// looking for its placeholder.
const maxPlaceholderLookup = 500

// findPlaceholder reads guichet's own messages after evt in its room and
// returns the one marked as evt's placeholder.
func (b *Bot) findPlaceholder(ctx context.Context, evt *event.Event) (id.EventID, error) {
	return b.findOwnMarked(ctx, evt.RoomID, evt.ID, placeholderMarker, evt.ID.String())
}

// findOwnMarked returns guichet's own message after the event after in
// room whose content has marker set to value, decrypting those that reply
// to after (their relation is in clear); "" if there is none among the
// first maxPlaceholderLookup of guichet's messages. It is how a send that a
// crash may have cut after the homeserver stored it is recognised.
func (b *Bot) findOwnMarked(ctx context.Context, room id.RoomID, after id.EventID, marker, value string) (id.EventID, error) {
	filter := &mautrix.FilterPart{Senders: []id.UserID{b.client.UserID}, Types: []event.Type{event.EventMessage, event.EventEncrypted}}
	resp, err := b.client.Context(ctx, room, after, filter, 100)
	if err != nil {
		return "", fmt.Errorf("failed to read the events after %s: %w", after, err)
	}
	events, from := resp.EventsAfter, resp.End
	for seen := 0; ; {
		for _, e := range events {
			if b.isMarked(ctx, room, e, after, marker, value) {
				return e.ID, nil
			}
		}
		seen += len(events)
		if from == "" || len(events) == 0 || seen >= maxPlaceholderLookup {
			return "", nil
		}
		page, err := b.client.Messages(ctx, room, from, "", mautrix.DirectionForward, filter, 100)
		if err != nil {
			return "", fmt.Errorf("failed to read the events after %s: %w", after, err)
		}
		events, from = page.Chunk, page.End
	}
}

// isMarked tells whether e is guichet's own message replying to replyTo
// with marker set to value in its content.
func (b *Bot) isMarked(ctx context.Context, room id.RoomID, e *event.Event, replyTo id.EventID, marker, value string) bool {
	if e.Sender != b.client.UserID {
		return false
	}
	if e.RoomID == "" {
		e.RoomID = room
	}
	if e.Type == event.EventEncrypted {
		if err := e.Content.ParseRaw(e.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			return false
		}
		enc, ok := e.Content.Parsed.(*event.EncryptedEventContent)
		// The relation is in clear: only replies to replyTo are decrypted.
		if !ok || enc.RelatesTo == nil || enc.RelatesTo.GetReplyTo() != replyTo || enc.RelatesTo.GetReplaceID() != "" || b.crypto == nil {
			return false
		}
		dec, err := b.crypto.Decrypt(ctx, e)
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Stringer("candidate", e.ID).Msg("Failed to decrypt one of guichet's own messages")
			return false
		}
		e = dec
	}
	got, _ := e.Content.Raw[marker].(string)
	return got == value
}

// finish stops the display (and typing, see startTyping) and returns the
// placeholder to replace, if any.
func (s *stream) finish() id.EventID {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.placeholder
}

// maxRetryWait bounds a retry's wait: when Albert asks for longer
// (Retry-After, x-ratelimit-reset-*), the agent is told at once instead.
const maxRetryWait = 15 * time.Second

// ask sends the question with its context to the assistant, retrying what is
// worth retrying before the first token, and returns what to show. Each call
// holds its own breaker ticket and reports its outcome on it.
func (b *Bot) ask(ctx context.Context, pr *profile, evt *event.Event, q store.QuestionState, msgs []albert.Message, model string) (result answer) {
	log := zerolog.Ctx(ctx)
	disp := b.newStream(ctx, evt, "reply:"+evt.ID.String(), b.placeholderOf(ctx, evt, q))
	result.model = model
	// result.waited is summed up call by call: it must not include this
	// stop of the display, which may wait for an edit to be sent.
	defer func() { result.placeholder = disp.finish() }()

	var last *albert.Error // the previous attempt's failure
	for attempt := 0; ; attempt++ {
		if text, paused := b.pausedText(pr); paused {
			result.text = text
			return result
		}
		var ticket ratelimit.Ticket
		if attempt == 0 {
			var err error
			if ticket, err = b.takeTicket(ctx, pr, evt); err != nil {
				if ctx.Err() == nil {
					result.text = textAlbertError(albert.ClassBusy)
				}
				return result
			}
		} else {
			// An overload that opened the breaker is not fought with retries.
			var ok bool
			if ticket, ok, _ = pr.breaker.Allow(); !ok {
				if isOverload(last.Class) {
					pr.alerts.failed(ctx, last)
				}
				result.text = textAlbertError(albert.ClassBusy)
				return result
			}
		}
		callCtx, cancel := context.WithTimeout(ctx, b.cfg.AlbertTimeout)
		start := b.now()
		got, err := pr.assistant.Stream(callCtx, model, msgs, b.firstToken(start, disp.update))
		cancel()
		result.waited += b.now().Sub(start)
		aerr := albert.Classify(err)
		b.metrics.AlbertTokens(got.Usage.PromptTokens, got.Usage.CompletionTokens)
		result.usage = b.usage(result.usage, pr, evt, model, got, b.now().Sub(start), aerr)
		result.tokens += got.Usage.PromptTokens + got.Usage.CompletionTokens
		if aerr == nil {
			ticket.Success()
			b.keyWorks(ctx, pr, start)
			pr.alerts.resolved(ctx)
			text := strings.TrimSpace(strings.ReplaceAll(got.Text, "\x00", "")) // PostgreSQL refuses NUL in text
			if text == "" {
				result.text = textEmptyAnswer
				return result
			}
			result.text, result.ok = text, true
			return result
		}
		if ctx.Err() != nil || aerr.Class == albert.ClassCanceled {
			ticket.Release()
			result.text = ""
			return result
		}
		log.Warn().Err(aerr).Int("attempt", attempt).Str("model", model).Str("partner", pr.id).Msg("Albert call failed")
		b.metrics.AlbertError(string(aerr.Class))
		if aerr.Class == albert.ClassDailyLimit && model != pr.model {
			// Albert's limits are per model: the daily window of the model
			// this agent picked stops that model, not the service. Back to
			// the default one, and they are told.
			ticket.Release()
			if err := pr.conv.SetModel(ctx, evt.Sender, ""); err != nil {
				log.Err(err).Msg("Failed to reset model choice")
			}
			result.notices = append(result.notices, textModelDailyLimit(model, pr.model))
			model, result.model = pr.model, pr.model
			last = aerr
			continue
		}
		if pausesKey(aerr.Class) {
			// Not an overload, and no retry gets past it.
			ticket.Release()
			pr.alerts.failed(ctx, aerr)
			result.text = b.pauseKey(ctx, pr, aerr)
			return result
		}
		ticket.Failure(isOverload(aerr.Class))
		if (aerr.Class == albert.ClassNotFound || aerr.Class == albert.ClassModelClosed) && model != pr.model {
			// The agent's model disappeared, or is closed to the key: back
			// to the default one, and they are told.
			if err := pr.conv.SetModel(ctx, evt.Sender, ""); err != nil {
				log.Err(err).Msg("Failed to reset model choice")
			}
			notice := textModelGone(model, pr.model)
			if aerr.Class == albert.ClassModelClosed {
				notice = textModelClosed(model, pr.model)
			}
			result.notices = append(result.notices, notice)
			model, result.model = pr.model, pr.model
			last = aerr
			continue
		}
		if aerr.Partial {
			pr.alerts.failed(ctx, aerr)
			result.text, result.cut = strings.TrimSpace(got.Text)+"\n\n"+textAnswerCut, true
			return result
		}
		if aerr.Retryable() && attempt < b.cfg.MaxRetries && !(aerr.Class == albert.ClassTimeout && attempt >= 1) &&
			aerr.RetryAfter <= maxRetryWait {
			slept := b.now()
			err := sleep(ctx, backoff(attempt, aerr.RetryAfter))
			result.waited += b.now().Sub(slept)
			if err != nil {
				return result
			}
			last = aerr
			continue
		}
		if aerr.Class == albert.ClassNotFound && model == pr.model {
			// The default model itself is gone: every agent is without
			// answers and nobody can fall back. An incident, not the
			// agent's mistake.
			pr.alerts.page(ctx, aerr)
			result.text = textAlbertError(albert.ClassAuth)
			return result
		}
		pr.alerts.failed(ctx, aerr)
		result.text = textAlbertFailure(aerr.Class)
		return result
	}
}

// firstToken passes each piece of an answer to onDelta, and reports the
// time from start to the first one.
func (b *Bot) firstToken(start time.Time, onDelta func(string)) func(string) {
	var once sync.Once
	return func(text string) {
		once.Do(func() { b.metrics.AlbertFirstToken(b.now().Sub(start)) })
		onDelta(text)
	}
}

// backoff waits longer after each failure, with jitter so that agents hit
// by the same incident do not retry in step; Retry-After (or
// x-ratelimit-reset-*) wins when given.
func backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryWait)
	}
	base := 400 * time.Millisecond << attempt
	return base/2 + rand.N(base)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// usage adds a call to the assistant to the question's usage, which is
// written with the answer, once (see finish).
func (b *Bot) usage(acc []store.Usage, pr *profile, evt *event.Event, model string, got albert.Answer, latency time.Duration, aerr *albert.Error) []store.Usage {
	outcome := "ok"
	if aerr != nil {
		outcome = string(aerr.Class)
		if aerr.Class == albert.ClassCanceled {
			return acc
		}
	}
	return append(acc, store.Usage{
		UserID: evt.Sender, RoomID: evt.RoomID, Model: model,
		PromptTokens: got.Usage.PromptTokens, CompletionTokens: got.Usage.CompletionTokens, Estimated: got.Usage.Estimated,
		Latency: latency, Outcome: outcome, At: b.now(), Question: evt.ID,
		Partner: pr.id, Cost: got.Usage.Cost, KWh: got.Usage.KWh, KgCO2eq: got.Usage.KgCO2eq,
	})
}

// alerts tells operators about Albert incidents once, not once per message:
// the first failure of a class opens an incident, a success closes them all.
type alerts struct {
	b    *Bot
	p    *profile
	mu   sync.Mutex
	open map[albert.Class]time.Time
}

// agentErrors are failures about one request, not incidents.
var agentErrors = map[albert.Class]bool{albert.ClassInvalid: true, albert.ClassNotFound: true}

func (a *alerts) failed(ctx context.Context, err *albert.Error) {
	if agentErrors[err.Class] {
		zerolog.Ctx(ctx).Error().Err(err).Msg("Albert refused a request")
		return
	}
	a.page(ctx, err)
}

// page opens an incident for err's class, once until the next success.
func (a *alerts) page(ctx context.Context, err *albert.Error) {
	a.mu.Lock()
	_, seen := a.open[err.Class]
	if !seen {
		a.open[err.Class] = a.b.now()
	}
	a.mu.Unlock()
	if seen {
		return
	}
	zerolog.Ctx(ctx).Error().Err(err).Str("partner", a.p.id).Str("incident", string(err.Class)).Msg("Albert incident started")
	a.b.alertOps(ctx, fmt.Sprintf("alert:%s%s:%d", partnerKey(a.p), err.Class, a.b.now().UnixMilli()), textOpsIncident(a.p.name, a.p.partner(), err))
}

func (a *alerts) resolved(ctx context.Context) {
	a.mu.Lock()
	if len(a.open) == 0 {
		a.mu.Unlock()
		return
	}
	open := a.open
	a.open = map[albert.Class]time.Time{}
	a.mu.Unlock()
	for class, since := range open {
		zerolog.Ctx(ctx).Info().Str("partner", a.p.id).Str("incident", string(class)).Dur("duration", a.b.now().Sub(since)).Msg("Albert incident resolved")
		a.b.alertOps(ctx, fmt.Sprintf("resolved:%s%s:%d", partnerKey(a.p), class, a.b.now().UnixMilli()), textOpsResolved(a.p.name, a.p.partner(), class, a.b.now().Sub(since)))
	}
}

// alertOps queues a notice for operators in ops_room, if configured.
func (b *Bot) alertOps(ctx context.Context, key, text string) {
	if b.opsRoom == "" {
		return
	}
	if err := b.store.Enqueue(context.WithoutCancel(ctx), outgoingNotice(key, b.opsRoom, "", text, b.now())); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to queue operator alert")
		return
	}
	b.nudge()
}

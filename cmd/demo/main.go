// Command demo shows guichet at work with nothing but this machine: a local
// Dendrite, a fake Albert (or the real one when GUICHET_ALBERT_API_KEY is
// set), the real guichet binary with a generated configuration, and scripted
// people (agents, a moderator, a stranger) whose screens are printed. With
// the fake Albert, a partner administration (the Ministère de la Justice)
// has its own fake Albert and key.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/config"
	"guichet/internal/mxclient"
	"guichet/internal/testbed"
)

func main() {
	binary := flag.String("guichet", "bin/guichet", "the guichet binary to run")
	keep := flag.Bool("keep", false, "keep the working directory")
	flag.Parse()
	if err := run(*binary, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

const step = 30 * time.Second

// The partner of the demo: the Ministère de la Justice, on a fake Albert of
// its own, with its own key, model and collection.
const (
	partnerID         = "justice"
	partnerName       = "Ministère de la Justice"
	partnerMatch      = "@*-justice.gouv.fr:*"
	partnerKey        = "cle-justice-0123"
	partnerModel      = "openai/gpt-oss-120b"
	partnerCollection = 150277
)

func run(binary string, keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "guichet-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("Working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logFile, err := os.Create(filepath.Join(dir, "infra.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()

	fmt.Println("▶ Starting a local Dendrite homeserver and a fake Albert API…")
	tb, err := testbed.Start(ctx, testbed.Options{Dir: dir, Log: logFile, ServerName: "tchap.localhost", ClientLog: zerolog.Nop()})
	if err != nil {
		return err
	}
	defer tb.Close()

	cfg := tb.Config(filepath.Join(dir, "guichet.db"))
	env := os.Environ()
	// The testbed always starts a fake Albert; the script uses it (to make
	// it fail, to check what it received) only when guichet talks to it.
	s := &script{ctx: ctx, tb: tb, bot: tb.Bot.UserID}
	if key := os.Getenv("GUICHET_ALBERT_API_KEY"); key != "" {
		fmt.Println("  GUICHET_ALBERT_API_KEY is set: answers come from the real Albert API.")
		fmt.Println("  No partner is configured: its part would need a second real key.")
		cfg.Albert.BaseURL, cfg.Albert.APIKey = "https://albert.api.etalab.gouv.fr/v1", ""
		if u := os.Getenv("GUICHET_ALBERT_BASE_URL"); u != "" {
			cfg.Albert.BaseURL = u
		}
	} else {
		s.fake = tb.Albert
		env = append(env, "GUICHET_ALBERT_API_KEY="+cfg.Albert.APIKey)
		cfg.Albert.APIKey = ""
		fmt.Printf("▶ Starting a second fake Albert API, for the partner %q (its own key and model)…\n", partnerName)
		s.justice = fakealbert.Start()
		defer s.justice.Close()
		s.justice.SetAPIKey(partnerKey)
		// Its answers say whose key and which model served them, so that
		// the transcript shows it.
		s.justice.SetReply(func(req fakealbert.Request) string {
			return strings.Replace(fakealbert.DefaultReply(req), "**Albert** (fake)",
				"**Albert** (fake, clé du "+partnerName+", modèle "+req.Model+")", 1)
		})
		cfg.Partners = []config.Partner{{
			ID: partnerID, Name: partnerName, Match: []string{partnerMatch},
			Albert:    config.PartnerAlbert{BaseURL: s.justice.URL, Model: partnerModel},
			Retrieval: config.PartnerRetrieval{Collections: []int{partnerCollection}},
			Access:    config.PartnerAccess{AutoApprove: true},
		}}
		// Its key goes through the environment too, as in production.
		env = append(env, config.PartnerKeyEnv(partnerID)+"="+partnerKey)
	}
	// Secrets go through the environment, as in production.
	env = append(env, "GUICHET_MATRIX_PASSWORD="+cfg.Matrix.Password, "GUICHET_MATRIX_PICKLE_KEY="+cfg.Matrix.PickleKey)
	cfg.Matrix.Password, cfg.Matrix.PickleKey = "", ""
	cfg.Log.Level = "info"
	cfg.Albert.EditInterval = 400 * time.Millisecond
	// Answers grounded in two of Albert's public collections (service-public.fr
	// fiches, Légifrance). The threshold keeps excerpts that merely share a
	// word or two with the question ("une", "pour") out of the answers to
	// questions the collections do not cover, as an operator would.
	cfg.Retrieval.Collections = []int{150281, 139226}
	cfg.Retrieval.ScoreThreshold = 0.5
	configPath := filepath.Join(dir, "config.yaml")
	if err := writeConfig(configPath, cfg); err != nil {
		return err
	}

	fmt.Println("▶ Starting guichet:", binary, "-config", configPath)
	guichet, err := startGuichet(ctx, binary, configPath, env, filepath.Join(dir, "guichet.log"))
	if err != nil {
		return err
	}
	defer guichet.stop()

	if err := s.play(); err != nil {
		return err
	}
	if err := guichet.stop(); err != nil {
		return fmt.Errorf("guichet did not stop cleanly: %w", err)
	}
	s.printTranscripts()
	fmt.Println("\n✔ Demo finished: every step happened as expected.")
	return nil
}

func writeConfig(path string, cfg *config.Config) error {
	out := toYAML(cfg)
	// The partners are read from the file apart from the rest (their
	// field is tagged "-"): written under their key, as operators do.
	if m, ok := out.(map[string]any); ok && len(cfg.Partners) > 0 {
		m["partners"] = toYAML(cfg.Partners)
	}
	raw, err := yaml.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}

// toYAML turns the config struct into the key names of config.example.yaml,
// read from its mapstructure tags, so the demo writes what operators write.
func toYAML(v any) any {
	return yamlValue(reflect.ValueOf(v))
}

func yamlValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return yamlValue(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			tag := v.Type().Field(i).Tag.Get("mapstructure")
			f := v.Field(i)
			// "-" is not a key of the file; a nil pointer is a key left
			// out (a partner's limit that keeps the top-level value).
			if tag == "" || tag == "-" || f.Kind() == reflect.Pointer && f.IsNil() {
				continue
			}
			out[tag] = yamlValue(f)
		}
		return out
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = yamlValue(v.Index(i))
		}
		return out
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	return v.Interface()
}

type process struct {
	cmd  *exec.Cmd
	done chan error
}

func startGuichet(ctx context.Context, binary, configPath string, env []string, logPath string) (*process, error) {
	// In the demo's folder, so that relative paths of the configuration
	// stay there; the binary's path is made absolute first (a relative
	// Path is read from Dir).
	if abs, err := filepath.Abs(binary); err == nil {
		binary = abs
	}
	cmd := exec.Command(binary, "-config", configPath)
	cmd.Dir = filepath.Dir(configPath)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s (run make build first): %w", binary, err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			fmt.Fprintf(logFile, "%s\n", line)
			var entry struct {
				Message string  `json:"message"`
				Startup float64 `json:"startup"`
			}
			if json.Unmarshal(line, &entry) == nil && entry.Message == "guichet is ready" {
				ready <- time.Duration(entry.Startup * float64(time.Millisecond))
			} else if !json.Valid(line) {
				fmt.Fprintf(os.Stderr, "  guichet: %s\n", line)
			}
		}
		logFile.Close()
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case d := <-ready:
		fmt.Printf("  guichet is ready (start-up %d ms).\n", d.Milliseconds())
	case err := <-p.done:
		return nil, fmt.Errorf("guichet exited during start-up: %v (log: %s)", err, logPath)
	case <-time.After(step):
		p.stop()
		return nil, errors.New("guichet was not ready in time")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	return p, nil
}

func (p *process) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		return errors.New("killed after 10 s")
	}
}

// script plays the people's side and checks what they see.
type script struct {
	ctx    context.Context
	tb     *testbed.Testbed
	bot    id.UserID
	people []*actor
	rooms  map[id.RoomID]string
	// fake is the default profile's fake Albert and justice the partner's;
	// both nil when guichet talks to the real Albert.
	fake, justice *fakealbert.Server
}

type actor struct {
	name   string
	person *mxclient.Person
}

func (s *script) newActor(name, localpart string) (*actor, error) {
	p, err := s.tb.NewPerson(s.ctx, localpart)
	if err != nil {
		return nil, err
	}
	a := &actor{name: name, person: p}
	s.people = append(s.people, a)
	return a, nil
}

func (s *script) say(a *actor, room id.RoomID, text string) (id.EventID, error) {
	fmt.Printf("  %s écrit dans %s : %s\n", a.name, s.roomName(room), text)
	return a.person.SendText(s.ctx, room, text)
}

func (s *script) expect(a *actor, what string, match func(mxclient.Message) bool) (mxclient.Message, error) {
	ctx, cancel := context.WithTimeout(s.ctx, step)
	defer cancel()
	m, err := a.person.WaitMessage(ctx, func(m mxclient.Message) bool { return m.Sender == s.bot && match(m) })
	if err != nil {
		return m, fmt.Errorf("%s never saw %s", a.name, what)
	}
	return m, nil
}

func (s *script) roomName(room id.RoomID) string {
	if room == s.tb.SupportRoom {
		return "le salon de support"
	}
	if name, ok := s.rooms[room]; ok {
		return name
	}
	return "un message privé"
}

func replyTo(evt id.EventID) func(mxclient.Message) bool {
	return func(m mxclient.Message) bool { return m.InReplyTo == evt }
}

func (s *script) play() error {
	s.rooms = map[id.RoomID]string{}
	alice, err := s.newActor("Alice (agente)", "alice.martin-interieur.gouv.fr")
	if err != nil {
		return err
	}
	mod := &actor{name: "Modérateur", person: s.tb.Moderator}
	s.people = append(s.people, mod)
	for _, step := range []struct {
		title string
		run   func() error
	}{
		{"1. Alice demande l'accès dans le salon de support", func() error { return s.announce(alice) }},
		{"2. Le modérateur valide Alice ; elle reçoit un message privé chiffré", func() error { return s.approve(mod, alice) }},
		{"3. Alice accepte les conditions et pose une question (réponse en flux, par modifications)", func() error { return s.firstQuestion(alice) }},
		{"4. Albert répond une fois 503 : guichet réessaie, Alice ne voit que la réponse", func() error { return s.recoveredError(alice) }},
		{"5. Nouvelle conversation : la réponse cite les documents de référence, !sources montre les extraits", func() error { return s.sourcedAnswer(alice) }},
		{"6. Carole, non validée, écrit à guichet, puis tente !approve", func() error { return s.stranger(mod) }},
		{"7. Capacité à 1 : Bruno, validé d'une réaction ✅, passe en liste d'attente", func() error { return s.waitlist(mod) }},
		{"8. David est refusé avec un motif", func() error { return s.reject(mod) }},
		{"9. La capacité passe à 2 : Bruno sort de la liste d'attente", func() error { return s.raiseCapacity(mod) }},
		{"10. Élise, du Ministère de la Justice (partenaire), est validée automatiquement et servie sur la clé de son ministère", func() error { return s.partnerAgent() }},
		{"11. Le budget de la Justice est épuisé : Élise et le support sont prévenus, Alice est toujours servie ; !partenaires", func() error { return s.partnerPaused(mod, alice) }},
	} {
		fmt.Printf("\n▶ %s\n", step.title)
		if err := step.run(); err != nil {
			return fmt.Errorf("%s: %w", step.title, err)
		}
	}
	return nil
}

func (s *script) announce(a *actor) error {
	if err := s.tb.JoinSupport(s.ctx, a.person); err != nil {
		return err
	}
	ask, err := s.say(a, s.tb.SupportRoom, "Bonjour, je souhaite accéder à l'Assistant IA")
	if err != nil {
		return err
	}
	_, err = s.expect(a, "the acknowledgement", replyTo(ask))
	return err
}

func (s *script) command(mod *actor, text string) (mxclient.Message, error) {
	cmd, err := s.say(mod, s.tb.SupportRoom, text)
	if err != nil {
		return mxclient.Message{}, err
	}
	return s.expect(mod, "the answer to "+text, replyTo(cmd))
}

func (s *script) approve(mod, a *actor) error {
	if _, err := s.command(mod, "!approve "+a.person.UserID().String()); err != nil {
		return err
	}
	welcome, err := s.expect(a, "the welcome", func(m mxclient.Message) bool { return m.RoomID != s.tb.SupportRoom })
	if err != nil {
		return err
	}
	s.rooms[welcome.RoomID] = "son message privé avec guichet"
	return nil
}

func (s *script) dmOf(a *actor) id.RoomID {
	for _, m := range a.person.Messages() {
		if m.Sender == s.bot && m.RoomID != s.tb.SupportRoom {
			return m.RoomID
		}
	}
	return ""
}

// answer waits for the final reply to question: a message, or the last edit
// of the placeholder that replied to it.
func (s *script) answer(a *actor, question id.EventID) (mxclient.Message, error) {
	first, err := s.expect(a, "a reply", replyTo(question))
	if err != nil || !strings.HasSuffix(first.Body, "…") {
		return first, err
	}
	return s.expect(a, "the final edit", func(m mxclient.Message) bool {
		return m.ReplaceOf == first.EventID && !strings.HasSuffix(m.Body, "…")
	})
}

func (s *script) firstQuestion(alice *actor) error {
	dm := s.dmOf(alice)
	acc, err := s.say(alice, dm, "!accepter")
	if err != nil {
		return err
	}
	if _, err := s.expect(alice, "the consent confirmation", replyTo(acc)); err != nil {
		return err
	}
	if s.fake != nil {
		s.fake.SetTokenDelay(50 * time.Millisecond)
		defer s.fake.SetTokenDelay(0)
	}
	q, err := s.say(alice, dm, "Comment rédiger une note de synthèse ?")
	if err != nil {
		return err
	}
	_, err = s.answer(alice, q)
	return err
}

func (s *script) recoveredError(alice *actor) error {
	if s.fake == nil {
		fmt.Println("  (sauté : avec le vrai Albert, on ne provoque pas d'erreur)")
		return nil
	}
	s.fake.FailNext(1, 503, "Model is busy, retry later.")
	q, err := s.say(alice, s.dmOf(alice), "Et pour une note de service ?")
	if err != nil {
		return err
	}
	m, err := s.answer(alice, q)
	if err != nil {
		return err
	}
	if !strings.Contains(m.Body, "Voici ma réponse") {
		return fmt.Errorf("the 503 was not recovered: %q", m.Body)
	}
	fmt.Printf("  (Albert a reçu %d appels : le premier a échoué, le second a répondu)\n", s.fake.Calls()-1)
	return nil
}

// sourcedAnswer: in a new conversation (a short question right after the
// notes would be searched together with them), a question the collections
// answer; the answer cites [1] and ends with its sources, !sources shows the
// excerpts and !collections the collections searched. With the real Albert,
// what it finds is not known in advance: only the replies are awaited.
func (s *script) sourcedAnswer(alice *actor) error {
	dm := s.dmOf(alice)
	fake := s.fake != nil
	reply := func(text string, want ...string) (mxclient.Message, error) {
		evt, err := s.say(alice, dm, text)
		if err != nil {
			return mxclient.Message{}, err
		}
		m, err := s.expect(alice, "the answer to "+text, replyTo(evt))
		if err != nil {
			return m, err
		}
		return m, lacks(fake, text, m.Body, want...)
	}
	if _, err := reply("!nouveau"); err != nil {
		return err
	}
	q, err := s.say(alice, dm, "Combien de semaines dure le congé de maternité d'une fonctionnaire ?")
	if err != nil {
		return err
	}
	m, err := s.answer(alice, q)
	if err != nil {
		return err
	}
	if err := lacks(fake, "the answer", m.Body, "[1]", "Sources", "Congé de maternité d'une fonctionnaire",
		"mediatech-fiches-service-public"); err != nil {
		return err
	}
	if _, err := reply("!sources", "[1]", "Congé de maternité d'une fonctionnaire", "pertinence", "16 semaines"); err != nil {
		return err
	}
	_, err = reply("!collections", "150281", "mediatech-fiches-service-public", "139226", "mediatech-legifrance")
	return err
}

// lacks says which of want body lacks; only with the fake Albert, whose
// library and answers are known.
func lacks(fake bool, what, body string, want ...string) error {
	if !fake {
		return nil
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			return fmt.Errorf("%s lacks %q: %q", what, w, body)
		}
	}
	return nil
}

func (s *script) stranger(mod *actor) error {
	carol, err := s.newActor("Carole (non validée)", "carole.petit-education.gouv.fr")
	if err != nil {
		return err
	}
	carolDM, err := carol.person.CreateDM(s.ctx, s.bot)
	if err != nil {
		return err
	}
	s.rooms[carolDM] = "son message privé avec guichet"
	if err := carol.person.WaitMember(s.ctx, carolDM, s.bot); err != nil {
		return err
	}
	hello, err := s.say(carol, carolDM, "Bonjour, tu peux m'aider ?")
	if err != nil {
		return err
	}
	if _, err := s.expect(carol, "how to ask", replyTo(hello)); err != nil {
		return err
	}
	if err := s.tb.JoinSupport(s.ctx, carol.person); err != nil {
		return err
	}
	spoof, err := s.say(carol, s.tb.SupportRoom, "!approve "+carol.person.UserID().String())
	if err != nil {
		return err
	}
	if _, err := s.expect(carol, "the refusal", replyTo(spoof)); err != nil {
		return err
	}
	list, err := s.command(mod, "!pending")
	if err != nil {
		return err
	}
	if !strings.Contains(list.Body, "Aucune demande") {
		return fmt.Errorf("a non-moderator's !approve changed something: %q", list.Body)
	}
	return nil
}

func (s *script) waitlist(mod *actor) error {
	if _, err := s.command(mod, "!capacity 1"); err != nil {
		return err
	}
	// Not of the partner's ministry: he would be approved at once.
	bruno, err := s.newActor("Bruno (agent)", "bruno.moreau-culture.gouv.fr")
	if err != nil {
		return err
	}
	if err := s.tb.JoinSupport(s.ctx, bruno.person); err != nil {
		return err
	}
	ask, err := s.say(bruno, s.tb.SupportRoom, "Bonjour, je travaille dans une DRAC et voudrais l'Assistant IA")
	if err != nil {
		return err
	}
	ack, err := s.expect(mod, "Bruno's acknowledgement", replyTo(ask))
	if err != nil {
		return err
	}
	fmt.Printf("  Modérateur réagit ✅ à l'accusé de réception de Bruno\n")
	if _, err := mod.person.Client.SendReaction(s.ctx, s.tb.SupportRoom, ack.EventID, "✅"); err != nil {
		return err
	}
	if _, err := s.expect(mod, "the waitlist notice", func(m mxclient.Message) bool {
		return m.InReplyTo == ack.EventID && strings.Contains(m.Body, "liste d'attente")
	}); err != nil {
		return err
	}
	_, err = s.expect(bruno, "being told he waits", func(m mxclient.Message) bool { return strings.Contains(m.Body, "liste d'attente") })
	return err
}

func (s *script) reject(mod *actor) error {
	david, err := s.newActor("David (non éligible)", "david.simon-gmail.com")
	if err != nil {
		return err
	}
	if err := s.announce(david); err != nil {
		return err
	}
	if _, err := s.command(mod, "!reject "+david.person.UserID().String()+" adresse personnelle, merci d'utiliser votre compte professionnel"); err != nil {
		return err
	}
	_, err = s.expect(david, "the rejection", func(m mxclient.Message) bool { return strings.Contains(m.Body, "n'a pas été acceptée") })
	return err
}

func (s *script) raiseCapacity(mod *actor) error {
	if _, err := s.command(mod, "!capacite 2"); err != nil {
		return err
	}
	for _, a := range s.people {
		if strings.HasPrefix(a.name, "Bruno") {
			welcome, err := s.expect(a, "the welcome", func(m mxclient.Message) bool { return strings.Contains(m.Body, "!accepter") })
			if err == nil {
				s.rooms[welcome.RoomID] = "son message privé avec guichet"
			}
			return err
		}
	}
	return errors.New("no Bruno")
}

// skipPartner says why the partner's steps are skipped with the real Albert.
func (s *script) skipPartner(why string) bool {
	if s.justice == nil {
		fmt.Println("  (sauté : " + why + ")")
		return true
	}
	return false
}

// partnerAgent: an agent of the partner asks in the support room, is
// approved by the partner's rule at once, accepts the conditions and is
// answered on the partner's key, model and collection, never on the
// default key.
func (s *script) partnerAgent() error {
	if s.skipPartner("avec le vrai Albert, le partenaire aurait besoin d'une seconde vraie clé, celle de son ministère ;\n" +
		"   la démo ne le configure qu'avec les faux Albert") {
		return nil
	}
	elise, err := s.newActor("Élise (agente, Justice)", "elise.bernard-justice.gouv.fr")
	if err != nil {
		return err
	}
	if err := s.tb.JoinSupport(s.ctx, elise.person); err != nil {
		return err
	}
	ask, err := s.say(elise, s.tb.SupportRoom, "Bonjour, je suis greffière et souhaite accéder à l'Assistant IA")
	if err != nil {
		return err
	}
	if _, err := s.expect(elise, "the automatic approval", func(m mxclient.Message) bool {
		return m.InReplyTo == ask && strings.Contains(m.Body, "automatiquement")
	}); err != nil {
		return err
	}
	welcome, err := s.expect(elise, "the welcome", func(m mxclient.Message) bool {
		return m.RoomID != s.tb.SupportRoom && strings.Contains(m.Body, "!accepter")
	})
	if err != nil {
		return err
	}
	dm := welcome.RoomID
	s.rooms[dm] = "son message privé avec guichet"
	acc, err := s.say(elise, dm, "!accepter")
	if err != nil {
		return err
	}
	if _, err := s.expect(elise, "the consent confirmation", replyTo(acc)); err != nil {
		return err
	}
	defaultCalls := s.fake.Calls()
	q, err := s.say(elise, dm, "Combien dure le congé de maternité d'une salariée ?")
	if err != nil {
		return err
	}
	m, err := s.answer(elise, q)
	if err != nil {
		return err
	}
	if err := lacks(true, "the partner's answer", m.Body, "Voici ma réponse", partnerName, partnerModel); err != nil {
		return err
	}
	reqs := s.justice.Requests()
	if len(reqs) != 1 || reqs[0].Model != partnerModel || reqs[0].Header.Get("Authorization") != "Bearer "+partnerKey {
		return fmt.Errorf("the partner's Albert got %d calls (%+v), want one with its key and model", len(reqs), reqs)
	}
	if n := s.fake.Calls(); n != defaultCalls {
		return fmt.Errorf("the default Albert got %d calls for the partner's agent", n-defaultCalls)
	}
	searches := s.justice.SearchRequests()
	if len(searches) != 1 || !reflect.DeepEqual(searches[0].CollectionIDs, []int{partnerCollection}) {
		return fmt.Errorf("the partner's searches = %+v, want one in its collection %d", searches, partnerCollection)
	}
	fmt.Printf("  (le faux Albert de la Justice a reçu l'appel, avec sa clé %s et le modèle %s, et a cherché dans sa collection %d ;\n",
		partnerKey, partnerModel, partnerCollection)
	fmt.Println("   le faux Albert par défaut n'a rien reçu)")
	return nil
}

// partnerPaused: the partner's key has no budget left. Its agent is told
// that their administration's access is paused, the support room gets one
// notice naming the partner, the default profile's agent is still answered,
// and !partenaires shows the pause.
func (s *script) partnerPaused(mod, alice *actor) error {
	if s.skipPartner("pas de partenaire avec le vrai Albert, voir l'étape 10") {
		return nil
	}
	var elise *actor
	for _, a := range s.people {
		if strings.HasPrefix(a.name, "Élise") {
			elise = a
		}
	}
	if elise == nil {
		return errors.New("no Élise")
	}
	fmt.Println("  (le budget de la clé Albert de la Justice est épuisé : son Albert répond 400 « Insufficient budget. »)")
	s.justice.FailAlways(fakealbert.InsufficientBudget())
	q, err := s.say(elise, s.dmOf(elise), "Et pour une salariée qui adopte un enfant ?")
	if err != nil {
		return err
	}
	m, err := s.answer(elise, q)
	if err != nil {
		return err
	}
	if err := lacks(true, "Élise's answer", m.Body, "votre administration", partnerName); err != nil {
		return err
	}
	notice := func(m mxclient.Message) bool {
		return m.RoomID == s.tb.SupportRoom && strings.Contains(m.Body, "budget") && strings.Contains(m.Body, partnerName)
	}
	if _, err := s.expect(mod, "the notice naming the partner", notice); err != nil {
		return err
	}
	start := time.Now()
	q, err = s.say(alice, s.dmOf(alice), "Et à partir du troisième enfant ?")
	if err != nil {
		return err
	}
	if m, err = s.answer(alice, q); err != nil {
		return err
	}
	if err := lacks(true, "Alice's answer", m.Body, "Voici ma réponse"); err != nil {
		return err
	}
	fmt.Printf("  (Alice, du profil par défaut, a sa réponse en %.1f s : la pause de la Justice ne la ralentit pas)\n", time.Since(start).Seconds())
	list, err := s.command(mod, "!partenaires")
	if err != nil {
		return err
	}
	if err := lacks(true, "!partenaires", list.Body, partnerName, partnerID, "en pause", "1 avec accès"); err != nil {
		return err
	}
	n := 0
	for _, m := range mod.person.Messages() {
		if m.Sender == s.bot && notice(m) && !strings.Contains(m.Body, "Administrations partenaires") {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%d notices about the partner's budget in the support room, want 1", n)
	}
	return nil
}

func (s *script) printTranscripts() {
	for _, a := range s.people {
		fmt.Printf("\n══ Ce qu'a vu %s (%s) ══\n", a.name, a.person.UserID())
		for _, m := range a.person.Messages() {
			who := string(m.Sender)
			switch {
			case m.Sender == s.bot:
				who = "guichet"
			case m.Sender == a.person.UserID():
				who = "moi"
			}
			lock := ""
			if m.Encrypted {
				lock = " 🔒"
			}
			kind := ""
			if m.MsgType == event.MsgNotice {
				kind = " (notice)"
			}
			if m.ReplaceOf != "" && strings.HasSuffix(m.Body, "…") {
				fmt.Printf("[%s]%s %s modifie sa réponse en cours (%d caractères affichés)\n", s.roomName(m.RoomID), lock, who, len([]rune(m.Body)))
				continue
			}
			if m.ReplaceOf != "" {
				kind += " (réponse complète, modification finale)"
			} else if strings.HasSuffix(m.Body, "…") {
				kind += " (début de réponse)"
			}
			fmt.Printf("[%s]%s %s%s :\n", s.roomName(m.RoomID), lock, who, kind)
			for _, line := range strings.Split(strings.TrimSpace(m.Body), "\n") {
				fmt.Printf("    %s\n", line)
			}
		}
	}
}

// Package jsagent drives e2e/jsagent/agent.mjs: a person on Matrix whose
// client is matrix-js-sdk with its Rust crypto, the stack of Tchap's web
// client. What it sees is reported with the same Message type as mxclient.
//
// The agent is a node process speaking JSON lines: commands on its stdin,
// replies and events on its stdout, logs on its stderr. It joins every room
// it is invited to and reports every m.room.message from other users once
// decrypted, except those of its first sync.
package jsagent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/internal/mxclient"
)

// Message is what the person saw of one message (once decrypted). At is when
// the driver received the report. For an edit, ReplaceOf is the edited event
// and Body, Format and FormattedBody come from m.new_content.
type Message = mxclient.Message

// Invite is a room invitation the person received (and then joined).
type Invite struct {
	RoomID   id.RoomID
	Inviter  id.UserID
	IsDirect bool
}

// DecryptError is an encrypted message the person could not decrypt, at
// least at first: when the key arrives later the message is reported too.
type DecryptError struct {
	RoomID  id.RoomID
	EventID id.EventID
	Sender  id.UserID
	Error   string
}

// Options configures an agent.
type Options struct {
	Dir         string // the folder of agent.mjs; default <repo>/e2e/jsagent (see Dir)
	BaseURL     string // homeserver URL
	UserID      id.UserID
	AccessToken string
	DeviceID    id.DeviceID
	Log         io.Writer // node's stderr; nil discards
}

// Agent is a running matrix-js-sdk client. Its methods are safe for
// concurrent use.
type Agent struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	user  id.UserID
	log   io.Writer

	writeMu sync.Mutex

	mu        sync.Mutex
	cond      *sync.Cond
	messages  []Message
	consumed  []bool // parallel to messages: returned by WaitMessage
	invites   []Invite
	joined    []joinedRoom
	decErrs   []DecryptError
	replies   map[int]reply
	nextID    int
	exited    error // set once node is gone
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type joinedRoom struct {
	room      id.RoomID
	viaInvite bool
	consumed  bool
}

type reply struct {
	OK      bool            `json:"ok"`
	Error   string          `json:"error"`
	EventID string          `json:"eventId"`
	Result  json.RawMessage `json:"result"`
}

// line is any line node writes on stdout: a reply (with id) or an event.
type line struct {
	ID            *int    `json:"id"`
	OK            *bool   `json:"ok"`
	Error         string  `json:"error"`
	Event         string  `json:"event"`
	RoomID        string  `json:"roomId"`
	EventID       string  `json:"eventId"`
	Sender        string  `json:"sender"`
	Inviter       *string `json:"inviter"`
	IsDirect      bool    `json:"isDirect"`
	ViaInvite     bool    `json:"viaInvite"`
	MsgType       string  `json:"msgtype"`
	Body          string  `json:"body"`
	Format        string  `json:"format"`
	FormattedBody string  `json:"formattedBody"`
	Encrypted     bool    `json:"encrypted"`
	ReplaceOf     *string `json:"replaceOf"`
	InReplyTo     *string `json:"inReplyTo"`
	TS            int64   `json:"ts"`
	// Result is a command's structured answer (device_status).
	Result json.RawMessage `json:"result"`
}

// Dir finds e2e/jsagent: the nearest folder holding go.mod, walking up from
// the working directory, then e2e/jsagent.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "e2e", "jsagent"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Available says why the agent cannot run from dir (no node, no npm
// install), or nil. An empty dir means Dir().
func Available(dir string) error {
	if dir == "" {
		var err error
		if dir, err = Dir(); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not installed: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.mjs")); err != nil {
		return fmt.Errorf("no agent.mjs in %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "matrix-js-sdk", "package.json")); err != nil {
		return fmt.Errorf("matrix-js-sdk is not installed in %s (run make jsdeps): %w", dir, err)
	}
	return nil
}

// Start runs node agent.mjs, logs the person in with the Rust crypto and
// returns once the first sync is done (about a second).
func Start(ctx context.Context, opts Options) (*Agent, error) {
	if opts.Dir == "" {
		dir, err := Dir()
		if err != nil {
			return nil, err
		}
		opts.Dir = dir
	}
	if err := Available(opts.Dir); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	cmd := exec.Command("node", "agent.mjs")
	cmd.Dir = opts.Dir
	cmd.Stderr = log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start node: %w", err)
	}
	a := &Agent{cmd: cmd, stdin: stdin, user: opts.UserID, log: log, replies: map[int]reply{}, done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.read(stdout)
	_, err = a.call(ctx, map[string]any{
		"cmd": "start", "baseUrl": opts.BaseURL, "userId": opts.UserID,
		"accessToken": opts.AccessToken, "deviceId": opts.DeviceID,
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("matrix-js-sdk did not start: %w", err)
	}
	return a, nil
}

func (a *Agent) read(stdout io.Reader) {
	r := bufio.NewReader(stdout)
	for {
		raw, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(raw)) > 0 {
			a.handle(raw)
		}
		if err != nil {
			break
		}
	}
	err := a.cmd.Wait()
	a.mu.Lock()
	if err == nil {
		a.exited = errors.New("node exited")
	} else {
		a.exited = fmt.Errorf("node exited: %w", err)
	}
	a.cond.Broadcast()
	a.mu.Unlock()
	close(a.done)
}

func (a *Agent) handle(raw []byte) {
	var l line
	if err := json.Unmarshal(raw, &l); err != nil || (l.OK == nil && l.Event == "") {
		fmt.Fprintf(a.log, "jsagent: unexpected line on stdout: %s", raw)
		return
	}
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case l.OK != nil:
		if l.ID != nil {
			a.replies[*l.ID] = reply{OK: *l.OK, Error: l.Error, EventID: l.EventID, Result: l.Result}
		} else if !*l.OK {
			fmt.Fprintf(a.log, "jsagent: error without id: %s\n", l.Error)
		}
	case l.Event == "message":
		a.messages = append(a.messages, Message{
			RoomID: id.RoomID(l.RoomID), EventID: id.EventID(l.EventID), Sender: id.UserID(l.Sender),
			MsgType: event.MessageType(l.MsgType), Body: l.Body, Format: event.Format(l.Format), FormattedBody: l.FormattedBody,
			Encrypted: l.Encrypted, ReplaceOf: id.EventID(str(l.ReplaceOf)), InReplyTo: id.EventID(str(l.InReplyTo)),
			At: time.Now(),
		})
		a.consumed = append(a.consumed, false)
	case l.Event == "decrypt_error":
		a.decErrs = append(a.decErrs, DecryptError{RoomID: id.RoomID(l.RoomID), EventID: id.EventID(l.EventID), Sender: id.UserID(l.Sender), Error: l.Error})
	case l.Event == "invite":
		a.invites = append(a.invites, Invite{RoomID: id.RoomID(l.RoomID), Inviter: id.UserID(str(l.Inviter)), IsDirect: l.IsDirect})
	case l.Event == "joined":
		a.joined = append(a.joined, joinedRoom{room: id.RoomID(l.RoomID), viaInvite: l.ViaInvite})
	default:
		return
	}
	a.cond.Broadcast()
}

// waitFor blocks until check (called with a.mu held) holds, node exits or
// ctx ends.
func (a *Agent) waitFor(ctx context.Context, check func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		a.mu.Lock()
		a.cond.Broadcast()
		a.mu.Unlock()
	})
	defer stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	for !check() {
		if a.exited != nil {
			return a.exited
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.cond.Wait()
	}
	return nil
}

func (a *Agent) call(ctx context.Context, cmd map[string]any) (reply, error) {
	a.mu.Lock()
	if a.exited != nil {
		err := a.exited
		a.mu.Unlock()
		return reply{}, err
	}
	a.nextID++
	n := a.nextID
	a.mu.Unlock()
	cmd["id"] = n
	raw, err := json.Marshal(cmd)
	if err != nil {
		return reply{}, err
	}
	a.writeMu.Lock()
	_, err = a.stdin.Write(append(raw, '\n'))
	a.writeMu.Unlock()
	if err != nil {
		return reply{}, fmt.Errorf("failed to write to node: %w", err)
	}
	var res reply
	err = a.waitFor(ctx, func() bool {
		r, ok := a.replies[n]
		if ok {
			res = r
			delete(a.replies, n)
		}
		return ok
	})
	if err != nil {
		return res, fmt.Errorf("%s: %w", cmd["cmd"], err)
	}
	if !res.OK {
		return res, fmt.Errorf("%s: %s", cmd["cmd"], res.Error)
	}
	return res, nil
}

// UserID is the person's Matrix id.
func (a *Agent) UserID() id.UserID { return a.user }

// Join joins a room by id or alias.
func (a *Agent) Join(ctx context.Context, room string) error {
	_, err := a.call(ctx, map[string]any{"cmd": "join", "roomId": room})
	return err
}

// Send sends an m.text message (encrypted if the room is).
func (a *Agent) Send(ctx context.Context, room id.RoomID, body string) (id.EventID, error) {
	res, err := a.call(ctx, map[string]any{"cmd": "send", "roomId": room, "body": body})
	return id.EventID(res.EventID), err
}

// SendText is Send, named as in mxclient.
func (a *Agent) SendText(ctx context.Context, room id.RoomID, body string) (id.EventID, error) {
	return a.Send(ctx, room, body)
}

// SendContent sends an m.room.message with any content (a reply, HTML...).
func (a *Agent) SendContent(ctx context.Context, room id.RoomID, content *event.MessageEventContent) (id.EventID, error) {
	res, err := a.call(ctx, map[string]any{"cmd": "send", "roomId": room, "content": content})
	return id.EventID(res.EventID), err
}

// DeviceStatus is how matrix-js-sdk judges another device, as Element
// shows it (crypto.getDeviceVerificationStatus).
type DeviceStatus struct {
	// Known is false while the device is not in the person's crypto store,
	// which tracks the users she shares an encrypted room with.
	Known bool `json:"known"`
	// SignedByOwner: cross-signed by its owner's self-signing key, signed by
	// the owner's master key; Element shows such a device as verified by
	// its owner.
	SignedByOwner bool `json:"signedByOwner"`
	// CrossSigningVerified: signed by its owner, whom this person verified.
	CrossSigningVerified bool `json:"crossSigningVerified"`
	LocallyVerified      bool `json:"locallyVerified"`
	Verified             bool `json:"verified"`
}

// DeviceStatus returns how the person's client judges device of user.
func (a *Agent) DeviceStatus(ctx context.Context, user id.UserID, device id.DeviceID) (DeviceStatus, error) {
	res, err := a.call(ctx, map[string]any{"cmd": "device_status", "userId": user, "deviceId": device})
	if err != nil {
		return DeviceStatus{}, err
	}
	var st DeviceStatus
	if err := json.Unmarshal(res.Result, &st); err != nil {
		return DeviceStatus{}, fmt.Errorf("failed to decode device_status: %w", err)
	}
	return st, nil
}

// WaitMessage returns the first message, in arrival order, that matches and
// that no earlier WaitMessage returned; messages that arrived before the call
// count. It fails when ctx ends or node exits.
func (a *Agent) WaitMessage(ctx context.Context, match func(Message) bool) (Message, error) {
	var found Message
	err := a.waitFor(ctx, func() bool {
		for i, m := range a.messages {
			if !a.consumed[i] && match(m) {
				a.consumed[i] = true
				found = m
				return true
			}
		}
		return false
	})
	return found, err
}

// Messages returns every message seen so far, in arrival order.
func (a *Agent) Messages() []Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.messages)
}

// Invites returns the invitations received so far.
func (a *Agent) Invites() []Invite {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.invites)
}

// DecryptErrors returns the decryption failures seen so far (some of those
// messages may have been decrypted later).
func (a *Agent) DecryptErrors() []DecryptError {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.decErrs)
}

// WaitJoined returns the first room joined after an invite that no earlier
// WaitJoined returned, waiting for one if needed.
func (a *Agent) WaitJoined(ctx context.Context) (id.RoomID, error) {
	var room id.RoomID
	err := a.waitFor(ctx, func() bool {
		for i := range a.joined {
			if j := &a.joined[i]; j.viaInvite && !j.consumed {
				j.consumed = true
				room = j.room
				return true
			}
		}
		return false
	})
	return room, err
}

// WaitInRoom waits until the person has joined room, however.
func (a *Agent) WaitInRoom(ctx context.Context, room id.RoomID) error {
	return a.waitFor(ctx, func() bool {
		return slices.ContainsFunc(a.joined, func(j joinedRoom) bool { return j.room == room })
	})
}

// Stop asks node to stop, waits for it (killing it after 5 s) and returns
// how it ended: nil for a clean exit. Later calls return the same.
func (a *Agent) Stop() error {
	a.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = a.call(ctx, map[string]any{"cmd": "stop"})
		_ = a.stdin.Close()
		select {
		case <-a.done:
		case <-ctx.Done():
			_ = a.cmd.Process.Kill()
			<-a.done
			a.closeErr = errors.New("node did not stop within 5s: killed")
			return
		}
		if state := a.cmd.ProcessState; state != nil && !state.Success() {
			a.closeErr = fmt.Errorf("node exited: %s", state)
		}
	})
	return a.closeErr
}

// Close is Stop without its result, for t.Cleanup and defer.
func (a *Agent) Close() { _ = a.Stop() }

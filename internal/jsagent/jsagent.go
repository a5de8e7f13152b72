// Package jsagent drives e2e/jsagent/agent.mjs: a person on Matrix whose
// client is matrix-js-sdk with its Rust crypto, the stack of Tchap's web
// client. What it sees is reported with the same Message type as mxclient.
package jsagent

import (
	"bufio"
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

// Options configures an agent.
type Options struct {
	Dir         string // the folder of agent.mjs; default <repo>/e2e/jsagent
	BaseURL     string
	UserID      id.UserID
	AccessToken string
	DeviceID    id.DeviceID
	Log         io.Writer // node's stderr; nil discards
}

// Agent is a running matrix-js-sdk client.
type Agent struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	user  id.UserID

	mu       sync.Mutex
	cond     *sync.Cond
	messages []mxclient.Message
	joined   []id.RoomID
	replies  map[int]response
	nextID   int
	exited   error
	done     chan struct{}
}

type response struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	EventID string `json:"eventId"`
}

type line struct {
	response
	ID            *int   `json:"id"`
	Event         string `json:"event"`
	RoomID        string `json:"roomId"`
	EventIDField  string `json:"eventId"`
	Sender        string `json:"sender"`
	MsgType       string `json:"msgtype"`
	Body          string `json:"body"`
	Format        string `json:"format"`
	FormattedBody string `json:"formattedBody"`
	Encrypted     bool   `json:"encrypted"`
	ReplaceOf     string `json:"replaceOf"`
	InReplyTo     string `json:"inReplyTo"`
}

// Dir finds e2e/jsagent from the working directory.
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

// Available says why the agent cannot run here (no node, no npm install).
func Available(dir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not installed: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "matrix-js-sdk", "package.json")); err != nil {
		return fmt.Errorf("matrix-js-sdk is not installed in %s (run make jsdeps): %w", dir, err)
	}
	return nil
}

// Start runs node agent.mjs and logs the person in with encryption.
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
	cmd := exec.Command("node", "agent.mjs")
	cmd.Dir = opts.Dir
	cmd.Stderr = opts.Log
	if cmd.Stderr == nil {
		cmd.Stderr = io.Discard
	}
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
	a := &Agent{cmd: cmd, stdin: stdin, user: opts.UserID, replies: map[int]response{}, done: make(chan struct{})}
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
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue
		}
		l.response.EventID = l.EventIDField
		a.mu.Lock()
		switch {
		case l.ID != nil:
			a.replies[*l.ID] = l.response
		case l.Event == "message":
			a.messages = append(a.messages, mxclient.Message{
				RoomID: id.RoomID(l.RoomID), EventID: id.EventID(l.EventIDField), Sender: id.UserID(l.Sender),
				MsgType: event.MessageType(l.MsgType), Body: l.Body, Format: event.Format(l.Format), FormattedBody: l.FormattedBody,
				Encrypted: l.Encrypted, ReplaceOf: id.EventID(l.ReplaceOf), InReplyTo: id.EventID(l.InReplyTo), At: time.Now(),
			})
		case l.Event == "joined":
			if !slices.Contains(a.joined, id.RoomID(l.RoomID)) {
				a.joined = append(a.joined, id.RoomID(l.RoomID))
			}
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
	err := a.cmd.Wait()
	a.mu.Lock()
	a.exited = fmt.Errorf("node exited: %v", err)
	a.cond.Broadcast()
	a.mu.Unlock()
	close(a.done)
}

// waitFor blocks until check holds, node exits or ctx ends.
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

func (a *Agent) call(ctx context.Context, cmd map[string]any) (response, error) {
	a.mu.Lock()
	a.nextID++
	n := a.nextID
	a.mu.Unlock()
	cmd["id"] = n
	raw, _ := json.Marshal(cmd)
	if _, err := a.stdin.Write(append(raw, '\n')); err != nil {
		return response{}, err
	}
	var res response
	err := a.waitFor(ctx, func() bool {
		r, ok := a.replies[n]
		res = r
		return ok
	})
	if err != nil {
		return res, err
	}
	if !res.OK {
		return res, errors.New(res.Error)
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

// SendText sends a text message (encrypted if the room is).
func (a *Agent) SendText(ctx context.Context, room id.RoomID, body string) (id.EventID, error) {
	res, err := a.call(ctx, map[string]any{"cmd": "send", "roomId": room, "body": body})
	return id.EventID(res.EventID), err
}

// WaitMessage returns the first message seen, from the start, that matches.
func (a *Agent) WaitMessage(ctx context.Context, match func(mxclient.Message) bool) (mxclient.Message, error) {
	var found mxclient.Message
	err := a.waitFor(ctx, func() bool {
		for _, m := range a.messages {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found, err
}

// Messages returns what the person saw so far.
func (a *Agent) Messages() []mxclient.Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.messages)
}

// WaitJoined waits until the person joined room.
func (a *Agent) WaitJoined(ctx context.Context, room id.RoomID) error {
	return a.waitFor(ctx, func() bool { return slices.Contains(a.joined, room) })
}

// Close stops the client and node.
func (a *Agent) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = a.call(ctx, map[string]any{"cmd": "stop"})
	_ = a.stdin.Close()
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// Command streamfloor is a baseline for make bench: it reads answers from an
// OpenAI-compatible chat stream, one after another, with go-openai alone, and
// prints the CPU time it used per answer. Run next to guichet on the same fake
// Albert, it gives the floor under guichet's CPU per answer: what receiving the
// stream costs a Go process on this machine, before any Matrix work.
//
// Output, one JSON line: {"answers": n, "cpu_ns": total, "chars": total}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

func main() {
	base := flag.String("url", "", "API root including /v1")
	key := flag.String("key", "", "API key")
	model := flag.String("model", "", "model id")
	n := flag.Int("n", 10, "answers to read after one warm-up")
	flag.Parse()
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1) // as cmd/guichet
	}
	cfg := openai.DefaultConfig(*key)
	cfg.BaseURL = *base
	c := openai.NewClientWithConfig(cfg)
	ctx := context.Background()

	if _, err := read(ctx, c, *model); err != nil {
		fail(err)
	}
	before := cpu()
	chars := 0
	for range *n {
		got, err := read(ctx, c, *model)
		if err != nil {
			fail(err)
		}
		chars += got
	}
	out, _ := json.Marshal(map[string]int64{"answers": int64(*n), "cpu_ns": int64(cpu() - before), "chars": int64(chars)})
	fmt.Println(string(out))
}

// read streams one answer and returns its length.
func read(ctx context.Context, c *openai.Client, model string) (int, error) {
	s, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{
		Model:         model,
		Messages:      []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Comment rédiger une note de synthèse ?"}},
		Stream:        true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
	})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	text := 0
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return text, nil
		}
		if err != nil {
			return text, err
		}
		for _, ch := range r.Choices {
			text += len(ch.Delta.Content)
		}
	}
}

// cpu is the CPU time this process used, all threads, user and system.
func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "streamfloor:", err)
	os.Exit(1)
}

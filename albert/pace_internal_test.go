package albert

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// sizedReader returns reads of the given sizes, then io.EOF.
type sizedReader struct{ sizes []int }

func (r *sizedReader) Read(p []byte) (int, error) {
	if len(r.sizes) == 0 {
		return 0, io.EOF
	}
	n := min(r.sizes[0], len(p))
	r.sizes = r.sizes[1:]
	return n, nil
}

func (r *sizedReader) Close() error { return nil }

// Reads are held only after a small one (the stream caught up): after a
// large one more may be waiting, and a held read would slow a fast stream.
func TestPaceHoldsOnlyAfterSmallReads(t *testing.T) {
	const hour = time.Hour // a held read would never return in the test
	tests := []struct {
		name  string
		sizes []int
		held  bool // the last read is held
	}{
		{"first read", []int{10}, false},
		{"after large reads", []int{4096, 4096, paceBacklog, 10}, false},
		{"after a small read", []int{4096, paceBacklog - 1, 10}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b := &teeBody{rc: &sizedReader{sizes: tt.sizes}, c: &call{pace: hour}, ctx: ctx}
			p := make([]byte, 4096)
			for range len(tt.sizes) - 1 {
				if _, err := b.Read(p); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { _, err := b.Read(p); done <- err }()
			if !tt.held {
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("last read held, want it at once")
				}
				return
			}
			select {
			case err := <-done:
				t.Fatalf("last read returned (%v), want it held", err)
			case <-time.After(100 * time.Millisecond):
			}
			cancel() // a held read ends with its call
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("held read ended with %v, want context.Canceled", err)
			}
		})
	}
}

package bot

import (
	"context"
	"time"
)

// background runs fn outside the caller's path; Run waits for it on stop.
func (b *Bot) background(ctx context.Context, fn func(ctx context.Context)) {
	b.work.Add(1)
	go func() {
		defer b.work.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		fn(ctx)
	}()
}

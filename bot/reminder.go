package bot

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"guichet/store"
)

// settingLastReminder records when the room was last reminded, so that a
// restart does not remind it again within the interval.
const settingLastReminder = "reminder.last"

// retention is how long handled events and delivered messages are kept
// for deduplication: far longer than any sync replay or restart.
const retention = 14 * 24 * time.Hour

// textRetention is privacy.retention (30 days unless configured).
func (b *Bot) textRetention() time.Duration {
	if b.cfg.Retention > 0 {
		return b.cfg.Retention
	}
	return 30 * 24 * time.Hour
}

// housekeeping reminds the room of stale requests and prunes old
// deduplication rows, on a ticker.
func (b *Bot) housekeeping(ctx context.Context) {
	ticker := time.NewTicker(b.cfg.ReminderCheck)
	defer ticker.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if b.cfg.ReminderAfter > 0 {
			if err := b.remind(ctx); err != nil && ctx.Err() == nil {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to check for stale requests")
			}
		}
		if now := b.now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			if n, err := b.store.Prune(ctx, now.Add(-retention)); err != nil && ctx.Err() == nil {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to prune old rows")
			} else if n > 0 {
				zerolog.Ctx(ctx).Info().Int64("rows", n).Msg("Pruned old deduplication rows")
			}
			if n, err := b.store.ExpireTexts(ctx, now.Add(-b.textRetention())); err != nil && ctx.Err() == nil {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to delete expired texts")
			} else if n > 0 {
				zerolog.Ctx(ctx).Info().Int64("rows", n).Msg("Deleted texts older than privacy.retention")
			}
		}
	}
}

// remind lists, in one notice, the requests that waited longer than
// ReminderAfter, at most once per ReminderAfter.
func (b *Bot) remind(ctx context.Context) error {
	sent := false
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		now := b.now()
		last, ok, err := b.store.Setting(ctx, settingLastReminder)
		if err != nil {
			return err
		}
		if ms, perr := strconv.ParseInt(last, 10, 64); ok && perr == nil && now.Sub(time.UnixMilli(ms)) < b.cfg.ReminderAfter {
			return nil
		}
		stale, total, err := b.store.PendingPage(ctx, now.Add(-b.cfg.ReminderAfter), maxListed)
		if err != nil || total == 0 {
			return err
		}
		key := fmt.Sprintf("reminder:%d", now.UnixMilli())
		msg := outgoingNotice(key, b.supportRoom, "", textReminder(stale, total, b.cfg.ReminderAfter, now), now)
		msg.Kind = store.KindReminder
		if err := b.store.Enqueue(ctx, msg); err != nil {
			return err
		}
		sent = true
		return b.store.SetSetting(ctx, settingLastReminder, strconv.FormatInt(now.UnixMilli(), 10), now)
	})
	if sent {
		b.nudge()
	}
	return err
}

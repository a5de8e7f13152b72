package bot

import (
	"testing"
	"time"
)

func TestOTKToGenerate(t *testing.T) {
	tests := []struct {
		name                           string
		capacity, server, local, aband int
		want                           int
	}{
		{"server full", 100, 100, 100, 0, 0},
		{"above the refill mark: one upload per batch, not per claim", 100, 80, 100, 0, 0},
		{"burst: claimed keys are kept, none is generated", 100, 20, 100, 0, 0},
		{"claimed keys used: fill the server again", 100, 20, 20, 0, 80},
		{"some claims still on their way: only what fits", 100, 30, 70, 0, 30},
		{"abandoned claims may be discarded", 100, 30, 100, 10, 10},
		{"never more than what the server misses", 100, 50, 50, 40, 50},
		{"fresh account", 100, 0, 0, 0, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := otkToGenerate(tt.capacity, tt.server, tt.local, tt.aband); got != tt.want {
				t.Errorf("otkToGenerate(%d, %d, %d, %d) = %d, want %d", tt.capacity, tt.server, tt.local, tt.aband, got, tt.want)
			}
		})
	}
}

func TestOTKAbandonedClaims(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	k := &otkKeeper{now: func() time.Time { return now }}
	step := func(d time.Duration, claimed int) {
		now = now.Add(d)
		k.track(claimed)
	}
	step(0, 5)
	step(time.Minute, 40) // a burst: claims on their way
	step(time.Minute, 3)  // most were used
	if k.abandoned != 0 {
		t.Fatalf("abandoned = %d before a whole window passed", k.abandoned)
	}
	step(otkAbandonAfter, 7)
	if k.abandoned != 3 {
		t.Errorf("abandoned = %d after a window whose fewest unused claims was 3, want 3", k.abandoned)
	}
	step(time.Minute, 0) // the client finally wrote: a new window starts from here
	step(otkAbandonAfter, 0)
	if k.abandoned != 0 {
		t.Errorf("abandoned = %d after a window with no unused claim, want 0", k.abandoned)
	}
}

package benchutil

import (
	"os"
	"reflect"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var s Samples
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0.1: time.Millisecond} {
		if got := s.Percentile(p); got != want {
			t.Errorf("P%v = %v, want %v", p, got, want)
		}
	}
	if got := s[:50].P99(); got != 100*time.Millisecond {
		t.Errorf("P99 of 50 samples = %v, want the largest", got)
	}
	if got := (Samples{}).P50(); got != 0 {
		t.Errorf("P50 of nothing = %v", got)
	}
}

func TestTagMap(t *testing.T) {
	type inner struct {
		Level   string        `mapstructure:"level"`
		Timeout time.Duration `mapstructure:"timeout"`
		Unset   int           `mapstructure:"unset"`
	}
	type outer struct {
		Room  string   `mapstructure:"support_room"`
		Users []string `mapstructure:"users"`
		Log   inner    `mapstructure:"log"`
		Plain string
	}
	got := TagMap(outer{Room: "#s:x", Users: []string{"@a:x"}, Log: inner{Level: "info", Timeout: time.Minute}, Plain: "no tag"})
	want := map[string]any{"support_room": "#s:x", "users": []string{"@a:x"}, "log": map[string]any{"level": "info", "timeout": "1m0s"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TagMap = %#v, want %#v", got, want)
	}
}

func TestProc(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Errorf("RSS = %d, %v", rss, err)
	}
	if m, err := Memory(os.Getpid()); err != nil || m.Peak < m.RSS || m.RSS <= 0 {
		t.Errorf("Memory = %+v, %v", m, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Errorf("CPUTime: %v", err)
	}
	if _, err := FindProcess("no-such-process-" + time.Now().String()); err == nil {
		t.Error("FindProcess found a process that does not exist")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Errorf("ModuleRoot = %q, %v", root, err)
	}
	if _, err := os.Stat(root + "/go.mod"); err != nil {
		t.Errorf("no go.mod in %s", root)
	}
}

func TestTable(t *testing.T) {
	tab := NewTable("title", "a", "bbb")
	tab.Row("1", "2")
	want := "\ntitle\n  a  bbb\n  1  2"
	if got := tab.String(); got != want {
		t.Errorf("table = %q, want %q", got, want)
	}
	if got := Ratio(3, 2); got != "×1.50" {
		t.Errorf("Ratio = %q", got)
	}
	if got := Ratio(1, 0); got != "-" {
		t.Errorf("Ratio by zero = %q", got)
	}
}

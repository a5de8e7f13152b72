// Package benchutil holds what guichet's benchmarks share: latency samples
// and their percentiles, a printed table of figures, and what Linux's /proc
// says about a process (memory, CPU time, command line).
package benchutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Samples are measured latencies.
type Samples []time.Duration

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest sample that at least p % of the samples do not exceed. With 50
// samples, P99 is the largest one.
func (s Samples) Percentile(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// P50 is the median.
func (s Samples) P50() time.Duration { return s.Percentile(50) }

// P99 is the 99th percentile.
func (s Samples) P99() time.Duration { return s.Percentile(99) }

// Ms is d in milliseconds, for b.ReportMetric and tables.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// FormatMs prints d in milliseconds with one decimal.
func FormatMs(d time.Duration) string { return strconv.FormatFloat(Ms(d), 'f', 1, 64) + " ms" }

// FormatMB prints a byte count in mebibytes with one decimal.
func FormatMB(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB" }

// Ratio prints a/b as "×1.23", or "-" when b is zero.
func Ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return "×" + strconv.FormatFloat(a/b, 'f', 2, 64)
}

// Table is a small aligned table of figures for a benchmark's log.
type Table struct {
	title string
	rows  [][]string
}

// NewTable starts a table with a title and column headers.
func NewTable(title string, header ...string) *Table {
	return &Table{title: title, rows: [][]string{header}}
}

// Row appends one row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// String renders the table, starting with a newline so that it stands on its
// own under the benchmark's log prefix.
func (t *Table) String() string {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "\n%s\n", t.title)
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintf(w, "  %s\n", strings.Join(r, "\t"))
	}
	_ = w.Flush()
	return strings.TrimRight(buf.String(), "\n")
}

// RSS returns the resident set size of process pid (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	m, err := Memory(pid)
	return m.RSS, err
}

// Mem is what /proc/<pid>/status says of a process's memory, in bytes.
type Mem struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the most it was resident ("high water mark")
}

// Memory reads VmRSS and VmHWM of process pid.
func Memory(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	var m Mem
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var dst *int64
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if ok {
			dst = &m.RSS
		} else if rest, ok = strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			dst = &m.Peak
		} else {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("bad line %q: %w", sc.Text(), err)
		}
		*dst = kb << 10
		found++
	}
	if err := sc.Err(); err != nil {
		return Mem{}, err
	}
	if found < 2 {
		return Mem{}, fmt.Errorf("no VmRSS or VmHWM for process %d", pid)
	}
	return m, nil
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPUTime returns the user plus system CPU time process pid has used.
func CPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start after it.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// FindProcess returns the id of a process, other than this one, whose
// command line contains substr (e.g. a homeserver started with a config
// file in a known folder).
func FindProcess(substr string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone, or not ours to read
		}
		if strings.Contains(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})), substr) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process with %q in its command line", substr)
}

// ModuleRoot returns the nearest folder holding go.mod, walking up from the
// working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// TagMap turns a configuration struct into nested maps keyed by its
// mapstructure tags (the keys of config.example.yaml), ready for YAML.
// Durations become strings such as "1m0s"; zero values are left out, so the
// loader's defaults apply to them.
func TagMap(v any) map[string]any {
	out := map[string]any{}
	rv := reflect.Indirect(reflect.ValueOf(v))
	rt := rv.Type()
	for i := range rt.NumField() {
		key := rt.Field(i).Tag.Get("mapstructure")
		field := rv.Field(i)
		if key == "" || key == "-" || !rt.Field(i).IsExported() || field.IsZero() {
			continue
		}
		switch val := field.Interface().(type) {
		case time.Duration:
			out[key] = val.String()
		default:
			if field.Kind() == reflect.Struct {
				out[key] = TagMap(val)
			} else {
				out[key] = val
			}
		}
	}
	return out
}

// Command guichet runs the Assistant IA's access desk and conversation front
// on Tchap.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"guichet"
	"guichet/app"
	"guichet/bot"
	"guichet/config"
)

// Exit codes, one per kind of failure.
const (
	exitOK = iota
	exitUsage
	exitConfig
	exitStartup
	exitRuntime
	exitExpired
)

func main() {
	// guichet waits on the network nearly all the time. One thread running
	// Go code is enough, and saves what the scheduler spends waking idle
	// threads for each streamed piece of an answer (make bench, 100 agents:
	// 4.7 vs 5.2 ms of CPU per answer, 35.5 vs 42.5 MB peak RSS). The
	// GOMAXPROCS environment variable still decides when set.
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
	// guichet's live heap is small (about 4 MB at 100 agents answered at
	// once) and what it allocates per answer dies young: collecting when
	// the heap grew by half rather than doubled keeps the peak lower for
	// CPU the load did not show (peer kit, 100 agents, E2EE: 38.0 vs
	// 40.7 MB peak RSS; CPU per answer within the runs' noise). The GOGC
	// environment variable still decides when set.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(50)
	}
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "usage" {
		return runUsage(args[1:], lookupEnv, stdout, stderr) // the billing report, see usage.go
	}
	if len(args) > 0 && args[0] == "migrate-db" {
		return runMigrateDB(args[1:], lookupEnv, stdout, stderr) // SQLite to PostgreSQL, see migratedb.go
	}
	flags := flag.NewFlagSet("guichet", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configFile := flags.String("config", "config.yaml", "YAML configuration file; GUICHET_* environment variables, or GUICHET_*_FILE naming a file that holds the value, override it")
	cpuProfile := flags.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	memProfile := flags.String("memprofile", "", "write a heap profile to this file at exit (live objects after a GC, and every allocation of the run; for go tool pprof)")
	showVersion := flags.Bool("version", false, "print guichet's, Go's and mautrix's versions and exit")
	generateConfig := flags.Bool("generate-config", false, "print the documented example configuration and exit")
	checkConfig := flags.Bool("check-config", false, "validate the configuration (-config and GUICHET_* variables) and exit: 0 valid, 2 not; connects to nothing")
	if err := flags.Parse(args); err != nil {
		return exitUsage
	}
	if countTrue(*showVersion, *generateConfig, *checkConfig) > 1 {
		fmt.Fprintln(stderr, "guichet: -version, -generate-config and -check-config go alone")
		return exitUsage
	}
	switch {
	case *showVersion:
		info, _ := debug.ReadBuildInfo()
		return write(stdout, stderr, readVersions(version, info).String()+"\n")
	case *generateConfig:
		return write(stdout, stderr, guichet.ExampleConfig())
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "guichet: cannot write the CPU profile:", err)
			return exitUsage
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			fmt.Fprintln(stderr, "guichet: cannot write the heap profile:", err)
			return exitUsage
		}
		defer func() {
			runtime.GC() // live objects as of the last GC: make that now
			if err := pprof.WriteHeapProfile(f); err != nil {
				fmt.Fprintln(stderr, "guichet: cannot write the heap profile:", err)
			}
			f.Close()
		}()
	}
	start := time.Now()
	cfg, err := config.Load(*configFile, lookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "guichet:", err)
		return exitConfig
	}
	if *checkConfig {
		// Nothing more: no database opened, no homeserver nor Albert
		// called, so that a deployment can check before it restarts.
		return write(stdout, stderr, fmt.Sprintf("guichet: %s and the environment make a valid configuration\n", *configFile))
	}
	log := newLogger(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = log.WithContext(ctx)

	for {
		var a *app.App
		a, err = app.New(ctx, cfg, log, app.Options{})
		if err != nil {
			log.Err(err).Msg("Failed to start")
			return exitStartup
		}
		go func() {
			select {
			case <-a.Bot.Ready():
				log.Info().Dur("startup", time.Since(start)).Msg("guichet is ready")
			case <-ctx.Done():
			}
		}()
		err = a.Run(ctx)
		if !errors.Is(err, app.ErrLostLeadership) {
			break
		}
		// Another process took over, or is about to: stand by again, with
		// everything read afresh from the database (the new leader moves it
		// on). Four tries of the others go first, so that a process cut from
		// the database does not take the lock straight back.
		log.Warn().Msg("Lost the leadership: standing by again")
		select {
		case <-ctx.Done():
		case <-time.After(4 * cfg.HA.Retry):
		}
		start = time.Now()
	}
	switch {
	case errors.Is(err, bot.ErrExpiredAccount):
		log.Error().Err(err).Msg("Stopped")
		return exitExpired
	case err != nil:
		log.Err(err).Msg("Stopped")
		return exitRuntime
	}
	log.Info().Msg("Stopped cleanly")
	return exitOK
}

// write prints an operator flag's output; a failure (a full disk, a closed
// pipe) must not exit 0.
func write(stdout, stderr io.Writer, text string) int {
	if _, err := io.WriteString(stdout, text); err != nil {
		fmt.Fprintln(stderr, "guichet: failed to write the output:", err)
		return exitRuntime
	}
	return exitOK
}

func countTrue(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
}

func newLogger(cfg config.Log, out io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	if cfg.Format == "pretty" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

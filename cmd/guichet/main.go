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
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/rs/zerolog"

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
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stderr))
}

func run(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	flags := flag.NewFlagSet("guichet", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configFile := flags.String("config", "config.yaml", "YAML configuration file; GUICHET_* environment variables override it")
	cpuProfile := flags.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	if err := flags.Parse(args); err != nil {
		return exitUsage
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
	start := time.Now()
	cfg, err := config.Load(*configFile, lookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "guichet:", err)
		return exitConfig
	}
	log := newLogger(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = log.WithContext(ctx)

	a, err := app.New(ctx, cfg, log, app.Options{})
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

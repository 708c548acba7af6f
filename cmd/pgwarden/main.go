// Command pgwarden is the SQL-rewriting warehouse proxy and its ticket service.
//
//	pgwarden serve --config F [--only proxy|tickets]
//	pgwarden demo [--dir D] [--port N] [--http-port N]
//	pgwarden explain --config F --tenant T [--groups a,b] [--attr k=v1,v2] [--role R] [--warehouse W] "SQL"
//	pgwarden ticket --config F --tenant T --external-id X [--groups a,b] [--attr k=v1,v2] [--session]
//	pgwarden revoke --config F [--] SESSION_ID
//	pgwarden keygen --dir D [--if-missing] | keygen --api-key
//	pgwarden policy check --config F | policy check FILE
//	pgwarden content list|write --config F [--warehouse W]
//	pgwarden login --service URL [--no-browser] [--pgpass FILE | --env]
//	pgwarden renew --service URL --token TOKEN
//	pgwarden admin --service URL --token T VERB [ARGS]
//	pgwarden version
//
// This package parses flags, builds the logger and wires the packages
// together; it holds no logic of its own beyond that.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `pgwarden: a SQL-rewriting warehouse proxy for embedded analytics

Usage:
  pgwarden serve   --config FILE [--only proxy|tickets]   run the proxy and the ticket service
  pgwarden demo    [--dir DIR] [--port N] [--http-port N]  everything on one machine with demo data
  pgwarden explain --config FILE --tenant T [flags] SQL    show how a statement is rewritten for a session
  pgwarden ticket  --config FILE --tenant T --external-id X [flags]   mint a web-ticket (or --session token)
  pgwarden revoke  --config FILE SESSION_ID               end a session and close its connections
  pgwarden keygen  --dir DIR [--if-missing] | --api-key   write an Ed25519 key pair, or make an API key
  pgwarden policy check --config FILE | FILE             validate policy files against their schema
  pgwarden content list|write --config FILE [--warehouse W]   statements learned for viewers; write adds them to the policy
  pgwarden login   --service URL [--pgpass FILE | --env]  sign in (SSO) for an internal pgwarden session
  pgwarden renew   --service URL --token TOKEN            renew a session token
  pgwarden admin   --service URL --token T VERB [ARGS]    admin API: sessions, connections, cancel, revoke, audit, policies, keys, act-as, explain
  pgwarden version

Run "pgwarden COMMAND -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 success, 1 a
// failure, 2 a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"serve":   cmdServe,
		"demo":    cmdDemo,
		"explain": cmdExplain,
		"ticket":  cmdTicket,
		"revoke":  cmdRevoke,
		"keygen":  cmdKeygen,
		"policy":  cmdPolicy,
		"content": cmdContent,
		"version": cmdVersion,
		"login":   cmdLogin,
		"renew":   cmdRenew,
		"admin":   cmdAdmin,
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "pgwarden: unknown command %q\n\n%s", name, usage)
		return 2
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "pgwarden %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "pgwarden %s: %v\n", name, err)
		return 1
	}
}

// usageError marks errors in the command line itself (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pgwarden "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "pgwarden %s\n", buildVersion())
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// selfCommand is how a user at this shell runs this binary again: "pgwarden"
// when that is what PATH finds, else its path relative to the working
// directory (./bin/pgwarden after make), else its absolute path. The demo and
// ticket print it in the commands they suggest.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	if onPath, err := exec.LookPath("pgwarden"); err == nil && sameFile(onPath, exe) {
		return "pgwarden"
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			return "./" + rel
		}
	}
	return exe
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// parseInterspersed parses flags anywhere among args (`pgwarden admin
// connections --tenant acme`) and returns the other arguments in order;
// everything after "--" is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

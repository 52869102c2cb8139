// Command tailseal is the audit-log sidecar agent and its operator CLI.
//
// It is where the program is assembled: the agent, the sinks beside it
// (sinks.go) and the store they read (sinkstore.go), the metrics registry.
// Imports go one way, down the data flow: cmd/... may import every package
// of the module and nothing else imports cmd/...; agent/... produces and
// imports no sinks/...; signer/... defines and checks what is produced and
// imports no agent/... but agent/atomicfile, and no sinks/...; sinks/...
// consume and import no agent/... but agent/atomicfile. imports_test.go
// holds these rules and checks every import of the module against them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tailseal/tailseal/agent/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal now kills the process at once
	}()
	err := Run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err))
}

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes (DESIGN.md): 0 success, 1 a finding, 2 usage or configuration.
var (
	errUsage   = errors.New("usage")
	errFinding = errors.New("finding")
	errHelp    = errors.New("help shown") // --help: exit 0, do nothing else
	// errInterrupted: SIGINT or SIGTERM stopped a read command before it
	// answered; exit 130, as shells report a command ended by Ctrl-C.
	errInterrupted = errors.New("interrupted")
)

func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errInterrupted):
		return 130
	case errors.Is(err, errFinding):
		return 1
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

const usage = `tailseal: tamper-evident audit-log sidecar

Usage:
  tailseal run        tail $TAILSEAL_SOURCE into the signed store in $TAILSEAL_DATA_DIR
  tailseal collect    store the fleet's records from NATS JetStream, one store per origin
  tailseal keygen     make the signing keys and print the verification keys
  tailseal verify     check the integrity of the whole store (alias: integrity)
  tailseal query      find events: --lead, --type, --workflow, --subject, --last 24h ...
  tailseal stats      counts by type and workflow, errors, first/last event, per day
  tailseal errors     recent errors with their messages (--verbose: tracebacks)
  tailseal performance  duration percentiles per operation
  tailseal export     --format csv|json|jsonl --output FILE, with the query filters (--proofs: verifiable alone)
  tailseal prove      --seq N: an inclusion proof of a record; --from M: a consistency proof
  tailseal verify-proof FILE  check a proof or an export with proofs with the checkpoint verifier key alone
  tailseal report     self-contained HTML reports per day or week
  tailseal config     the effective configuration, where each value came from, and its problems
  tailseal version    print the version
  tailseal help       this text

Each command has --help. Configuration comes from TAILSEAL_* environment
variables (TAILSEAL_DATA_DIR, or --data-dir DIR, alone points a command at
a store; tailseal config shows what is set); see README.md. On a collector's data dir (one with origins/), verify and the
read commands cover every origin, or those named by --origin NAME.
`

// Run dispatches a subcommand.
func Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "run":
		return runAgent(ctx, args[1:])
	case "collect":
		return runCollect(ctx, args[1:])
	case "keygen":
		return runKeygen(ctx, args[1:])
	case "verify", "integrity":
		return runVerify(ctx, args[1:])
	case "query":
		return runQuery(ctx, args[1:])
	case "stats":
		return runStats(ctx, args[1:])
	case "errors":
		return runErrors(ctx, args[1:])
	case "performance":
		return runPerformance(ctx, args[1:])
	case "export":
		return runExport(ctx, args[1:])
	case "prove":
		return runProve(ctx, args[1:])
	case "verify-proof":
		return runVerifyProof(ctx, args[1:])
	case "report":
		return runReport(ctx, args[1:])
	case "config":
		return runConfig(ctx, args[1:])
	case "version", "--version":
		fmt.Println("tailseal", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "tailseal: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// loadConfig loads the environment and the flags that win over it; a
// bad value is a one-line usage error.
func loadConfig(flags config.Flags) (*config.Config, error) {
	cfg, err := config.LoadWith(flags)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal:", err)
		return nil, errUsage
	}
	return cfg, nil
}

// dataDirFlag registers --data-dir, which every command takes: it wins
// over TAILSEAL_DATA_DIR.
func dataDirFlag(fs *flag.FlagSet, flags *config.Flags) {
	fs.StringVar(&flags.DataDir, "data-dir", "", "the data `DIR`ectory (default $TAILSEAL_DATA_DIR, else ./data); wins over the variable")
}

// interrupted ends a read command whose context ended (Ctrl-C): it says
// so, and the caller writes nothing more.
func interrupted(ctx context.Context, cmd string) error {
	if ctx.Err() == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "tailseal %s: interrupted; nothing written\n", cmd)
	return errInterrupted
}

// parseFlags parses a command's flags. --help prints the command's help
// (exit 0); any other mistake prints one line that points to it (exit 2),
// not the whole help, which would push the mistake off the screen.
func parseFlags(fs *flag.FlagSet, args []string) error {
	help := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(nil)
	fs.Usage = help
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return errHelp
	}
	fmt.Fprintf(os.Stderr, "tailseal %s: %s; see tailseal %s --help\n", fs.Name(), flagMessage(err), fs.Name())
	return errUsage
}

// flagMessage says what the flag package found wrong, with flags written
// as the help writes them (--limit).
func flagMessage(err error) string {
	msg := err.Error()
	for _, m := range []struct{ prefix, say string }{
		{"flag provided but not defined: -", "unknown flag --%s"},
		{"flag needs an argument: -", "flag --%s needs a value"},
	} {
		if name, ok := strings.CutPrefix(msg, m.prefix); ok {
			return fmt.Sprintf(m.say, strings.TrimPrefix(name, "-"))
		}
	}
	return strings.Replace(msg, " for flag -", " for flag --", 1) // invalid value "x" for flag -limit: …
}

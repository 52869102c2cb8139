package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/tailseal/tailseal/agent"
)

func runKeygen(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal keygen

Creates the signing keys in $TAILSEAL_DATA_DIR before the first start: the
initial epoch key K0 (the agent keeps only later keys) and the Ed25519
checkpoint key pair. Prints, once, what verification needs; keep it off this
host and give it to 'tailseal verify' as TAILSEAL_VERIFY_KEY and
TAILSEAL_VERIFIER. Refuses a data dir that is not empty or that an agent
is running on: it never overwrites keys.
`)
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	k0, vkey, err := agent.Keygen(cfg.DataDir, cfg.Epoch, time.Now())
	if errors.Is(err, agent.ErrNotNew) {
		fmt.Fprintln(os.Stderr, "tailseal keygen:", err)
		return errUsage
	}
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Printf(`Keys created in %s.
Keep these two values off this host; they are not stored here and not printed again.

TAILSEAL_VERIFY_KEY=%s
TAILSEAL_VERIFIER=%s
`, cfg.DataDir, k0, vkey)
	return nil
}

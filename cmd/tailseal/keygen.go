package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"filippo.io/age"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
)

func runKeygen(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	ageKey := fs.Bool("age", false, "print a new age identity for the auditor and its recipient (TAILSEAL_VERIFY_RECIPIENT); touches no data dir")
	var flags config.Flags
	dataDirFlag(fs, &flags)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal keygen [--age] [--data-dir DIR]

With --age: prints a new age X25519 identity, in the format of age-keygen
(its recipient in a comment), for the auditor to keep off the cluster:
  tailseal keygen --age > auditor.key
Agents given the recipient (TAILSEAL_VERIFY_RECIPIENT=age1…) seal the K0
of every new store to it; 'tailseal verify --identity auditor.key' opens it.

Without --age: creates the signing keys in $TAILSEAL_DATA_DIR before the first start: the
initial epoch key K0 (the agent keeps only later keys) and the Ed25519
checkpoint key pair. Prints, once, what verification needs; keep it off this
host and give it to 'tailseal verify' as TAILSEAL_VERIFY_KEY and
TAILSEAL_VERIFIER. Refuses a data dir that is not empty or that an agent
is running on: it never overwrites keys. Warns about TAILSEAL_ variables it
does not read (a misspelled TAILSEAL_DATA_DIR would put the keys elsewhere).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tailseal keygen: unexpected argument %q; see tailseal keygen --help\n", fs.Arg(0))
		return errUsage
	}
	if *ageKey {
		return ageKeygen()
	}
	cfg, err := loadConfig(flags)
	if err != nil {
		return err
	}
	for _, w := range config.Warnings() {
		fmt.Fprintln(os.Stderr, "tailseal keygen: warning:", w)
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

// ageKeygen prints a new age identity and its recipient: the identity file
// on stdout, the recipient also on stderr, as age-keygen does.
func ageKeygen() error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	r := id.Recipient().String()
	fmt.Printf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), r, id)
	fmt.Fprintf(os.Stderr, "Public key (the agents' TAILSEAL_VERIFY_RECIPIENT): %s\n", r)
	return nil
}

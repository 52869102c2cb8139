package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/sinks/email"
)

// Every command checks the configuration the same way: what run refuses,
// a read command refuses too, with the same message naming every problem,
// and exit 2 before touching the data directory.
func TestEveryCommandRefusesTheSameConfig(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	bad := []string{"TAILSEAL_DATA_DIR=" + dataDir, "TAILSEAL_RETENTION_DAYS=300000", "TAILSEAL_LISTEN=nowhere",
		"TAILSEAL_DISCORD_WEBHOOK=discord.com/api/webhooks/1/sEcReT", "TAILSEAL_VERIFY_KEY=zz"}
	want := []string{"TAILSEAL_RETENTION_DAYS must be at most 36500", `TAILSEAL_LISTEN "nowhere": want host:port`,
		"TAILSEAL_DISCORD_WEBHOOK is not an http or https URL", "TAILSEAL_VERIFY_KEY: bad key: not hex"}
	for _, args := range [][]string{
		{"run"}, {"collect"}, {"keygen"}, {"verify"}, {"query"}, {"stats"}, {"errors"}, {"performance"},
		{"export", "--format", "jsonl", "--output", filepath.Join(t.TempDir(), "out.jsonl")},
		{"report", "--output", t.TempDir()},
	} {
		t.Run(args[0], func(t *testing.T) {
			cmd := exec.Command(binPath, args...)
			cmd.Env = append(withoutTailsealEnv(), bad...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; stderr:\n%s", err, stderr.String())
			}
			for _, w := range want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "sEcReT") {
				t.Errorf("a secret appears in stderr:\n%s", stderr.String())
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("tailseal %s created %s with a configuration it refused", args[0], dataDir)
			}
		})
	}
}

// withoutTailsealEnv is the test's environment without TAILSEAL_ variables.
func withoutTailsealEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAILSEAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// TAILSEAL_SMTP_TLS has its names twice, in config (which checks the
// variable) and in sinks/email (which acts on it), because sinks import no
// agent package: they must stay the same.
func TestSMTPTLSNamesAgree(t *testing.T) {
	cfgNames := []string{config.SMTPTLSMandatory, config.SMTPTLSImplicit, config.SMTPTLSOpportunistic, config.SMTPTLSNone}
	mailNames := []string{email.TLSMandatory, email.TLSImplicit, email.TLSOpportunistic, email.TLSNone}
	if strings.Join(cfgNames, ",") != strings.Join(mailNames, ",") {
		t.Fatalf("config %v, email %v", cfgNames, mailNames)
	}
}

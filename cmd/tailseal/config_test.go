package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{"report", "--output", t.TempDir()}, {"config"},
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

// runCLI runs tailseal with exactly env (no variable of the test's own
// but PATH and HOME) and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	return runOutputs(t, cmd)
}

// runOutputs runs cmd and returns its stdout, stderr and exit code; it
// fails the test only when cmd cannot run at all.
func runOutputs(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

// tailseal config prints every variable with its value and where it came
// from; secrets and URLs only as set or unset; --data-dir wins over the
// variable; a misspelled variable is a warning naming the right one.
func TestConfigShowsTheEffectiveConfiguration(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "token")
	os.WriteFile(secretFile, []byte("sEcReT-from-file\n"), 0o600)
	env := []string{"TAILSEAL_DATA_DIR=" + filepath.Join(dir, "env-data"), "TAILSEAL_SOURCE=" + filepath.Join(dir, "audit.log"),
		"TAILSEAL_RETENTION_DAYS=30", "TAILSEAL_HMAC_KEY=" + strings.Repeat("ab", 32), "TAILSEAL_WEBHOOK_TOKEN_FILE=" + secretFile,
		"TAILSEAL_WEBHOOK_URLS=https://user:sEcReT@siem.example.com/in?key=sEcReT", "TAILSEAL_SLACK_WEBHOOK=https://hooks.slack.com/services/sEcReT",
		"TAILSEAL_VERIFY_RECIPENT=age1nothing", "TAILSEAL_LISTEN="}
	flagDir := filepath.Join(dir, "flag-data")
	stdout, stderr, code := runCLI(t, env, "config", "--data-dir", flagDir)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	for _, row := range [][]string{
		{"TAILSEAL_DATA_DIR", flagDir, "flag --data-dir"},
		{"TAILSEAL_SOURCE", filepath.Join(dir, "audit.log"), "env"},
		{"TAILSEAL_RETENTION_DAYS", "30", "env"},
		{"TAILSEAL_SEGMENT_MAX_MB", "50", "default"},
		{"TAILSEAL_LISTEN", `""`, "env"},
		{"TAILSEAL_HMAC_KEY", "set", "env"},
		{"TAILSEAL_VERIFY_KEY", "unset", "default"},
		{"TAILSEAL_WEBHOOK_TOKEN", "set", "file TAILSEAL_WEBHOOK_TOKEN_FILE=" + secretFile},
		{"TAILSEAL_WEBHOOK_URLS", "set", "env"},
		{"TAILSEAL_SLACK_WEBHOOK", "set", "env"},
	} {
		if !hasRow(stdout, row) {
			t.Errorf("no row %q in:\n%s", row, stdout)
		}
	}
	for _, leak := range []string{"sEcReT", strings.Repeat("ab", 32)} {
		if strings.Contains(stdout+stderr, leak) {
			t.Errorf("the output shows a secret (%s):\n%s\n%s", leak, stdout, stderr)
		}
	}
	if want := "warning: TAILSEAL_VERIFY_RECIPENT is not a tailseal variable; did you mean TAILSEAL_VERIFY_RECIPIENT?"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	if _, err := os.Stat(flagDir); err == nil {
		t.Error("tailseal config created the data dir")
	}

	stdout, _, code = runCLI(t, env, "config", "--json")
	var out struct {
		Variables []struct{ Name, Value, Source, From string }
		Warnings  []struct{ Variable, Did_You_Mean string }
		Problems  []string
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || code != 0 {
		t.Fatalf("exit %d, %v: %s", code, err, stdout)
	}
	if len(out.Warnings) != 1 || out.Warnings[0].Did_You_Mean != "TAILSEAL_VERIFY_RECIPIENT" || out.Problems == nil || len(out.Problems) > 0 {
		t.Errorf("--json warnings %+v, problems %q", out.Warnings, out.Problems)
	}
	found := false
	for _, v := range out.Variables {
		if v.Name == "TAILSEAL_DATA_DIR" {
			found = v.Value == filepath.Join(dir, "env-data") && v.Source == "env"
		}
	}
	if !found || strings.Contains(stdout, "sEcReT") {
		t.Errorf("--json: %s", stdout)
	}
}

// hasRow reports whether a line of out holds the cells, in order,
// separated by nothing but spaces.
func hasRow(out string, cells []string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.Join(f, " ") == strings.Join(cells, " ") {
			return true
		}
	}
	return false
}

// Every problem at once, exit 2: the values, and what the agent would
// refuse at start (a source that is a directory, another store's origin,
// an SMTP CA file that is not there).
func TestConfigListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	env := []string{"TAILSEAL_DATA_DIR=" + filepath.Join(dir, "data"), "TAILSEAL_SOURCE=" + dir, "TAILSEAL_RETENTION_DAYS=-1",
		"TAILSEAL_LISTEN=nowhere", "TAILSEAL_VERIFY_KEY=zz"}
	stdout, stderr, code := runCLI(t, env, "config")
	if code != 2 || !strings.Contains(stdout, "TAILSEAL_RETENTION_DAYS") {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"TAILSEAL_RETENTION_DAYS must be 0 (keep forever) or more", `TAILSEAL_LISTEN "nowhere": want host:port`,
		"TAILSEAL_VERIFY_KEY: bad key", "TAILSEAL_SOURCE: " + dir + " is a directory", "4 problems"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Values that load, on a store of another origin, with a CA file
	// that is not there.
	e := newEnv(t, "TAILSEAL_ORIGIN=first")
	p := e.start()
	e.waitStored(0)
	waitFor(t, "the genesis", 10*time.Second, func() bool { _, err := os.Stat(filepath.Join(e.dataDir, "genesis.json")); return err == nil })
	p.stop(t)
	env = []string{"TAILSEAL_DATA_DIR=" + e.dataDir, "TAILSEAL_ORIGIN=second", "TAILSEAL_SMTP_ADDR=127.0.0.1:2525",
		"TAILSEAL_SMTP_FROM=a@example.com", "TAILSEAL_SMTP_TO=b@example.com", "TAILSEAL_SMTP_CA_FILE=" + filepath.Join(dir, "nope.pem")}
	_, stderr, code = runCLI(t, env, "config", "--json")
	for _, want := range []string{`created as origin "first", and TAILSEAL_ORIGIN is "second"`, "TAILSEAL_SMTP_CA_FILE"} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
}

// The agent warns in its log about a misspelled variable, naming the
// right one, and --data-dir wins over TAILSEAL_DATA_DIR.
func TestRunWarnsAboutUnknownVariables(t *testing.T) {
	e := newEnv(t, "TAILSEAL_EPCOH=1m", "TAILSEAL_PII_KEY_FILE=") // a _FILE variant is known
	flagDir := filepath.Join(e.dir, "flag-data")
	p := e.start("run", "--data-dir", flagDir)
	w := newWriter(t, e.source)
	w.write(3)
	waitFor(t, "3 events stored in the --data-dir", 20*time.Second, func() bool {
		return len(readStore(t, flagDir).events()) == 3
	})
	if _, err := p.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	logged := p.stderr.String()
	if !strings.Contains(logged, `"msg":"TAILSEAL_EPCOH is not a tailseal variable; did you mean TAILSEAL_EPOCH?"`) ||
		!strings.Contains(logged, `"did_you_mean":"TAILSEAL_EPOCH"`) || strings.Contains(logged, "TAILSEAL_PII_KEY_FILE is not") {
		t.Errorf("log:\n%s", logged)
	}
	if _, err := os.Stat(e.dataDir); err == nil {
		t.Errorf("the agent wrote into TAILSEAL_DATA_DIR despite --data-dir")
	}
}

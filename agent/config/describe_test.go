package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// clearEnv unsets every TAILSEAL_ variable for the test (t.Setenv
// restores them), and the unprefixed names envconfig falls back to.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), Prefix+"_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	for _, v := range variables {
		if _, ok := os.LookupEnv(v.key); ok {
			t.Setenv(v.key, "")
			os.Unsetenv(v.key)
		}
	}
}

func describe(t *testing.T, flags Flags) map[string]Variable {
	t.Helper()
	out := map[string]Variable{}
	for _, v := range Describe(flags) {
		out[v.Name] = v
	}
	return out
}

// Every field of Config is listed, with its default, the environment's
// value, a flag's, or the file its _FILE names; secrets and URLs show
// only whether they are set.
func TestDescribe(t *testing.T) {
	clearEnv(t)
	if n, want := len(Describe(Flags{})), reflect.TypeFor[Config]().NumField(); n != want {
		t.Errorf("Describe lists %d variables; Config has %d fields", n, want)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600)
	setenv(t, "TAILSEAL_RETENTION_DAYS=30", "TAILSEAL_DATA_DIR=/from/env", "TAILSEAL_HMAC_KEY="+hexKey,
		"TAILSEAL_WEBHOOK_SECRET_FILE="+secretFile, "TAILSEAL_WEBHOOK_URLS="+okHook, "TAILSEAL_LISTEN=", "EPOCH=1h")
	got := describe(t, Flags{})
	for _, want := range []Variable{
		{Name: "TAILSEAL_SOURCE", Value: "./logs/audit.log", Source: SourceDefault},
		{Name: "TAILSEAL_DATA_DIR", Value: "/from/env", Source: SourceEnv},
		{Name: "TAILSEAL_RETENTION_DAYS", Value: "30", Source: SourceEnv},
		{Name: "TAILSEAL_LISTEN", Value: "", Source: SourceEnv},
		{Name: "TAILSEAL_EPOCH", Value: "1h", Source: SourceEnv, From: "EPOCH (without the TAILSEAL_ prefix)"},
		{Name: "TAILSEAL_HMAC_KEY", Value: "set", Source: SourceEnv, Secret: true},
		{Name: "TAILSEAL_VERIFY_KEY", Value: "unset", Source: SourceDefault, Secret: true},
		{Name: "TAILSEAL_WEBHOOK_SECRET", Value: "set", Source: SourceFile, From: "TAILSEAL_WEBHOOK_SECRET_FILE=" + secretFile, Secret: true},
		{Name: "TAILSEAL_WEBHOOK_URLS", Value: "set", Source: SourceEnv, Secret: true},
		{Name: "TAILSEAL_SLACK_WEBHOOK", Value: "unset", Source: SourceDefault, Secret: true},
	} {
		if got[want.Name] != want {
			t.Errorf("got %+v\nwant %+v", got[want.Name], want)
		}
	}
	for _, v := range got {
		if strings.Contains(v.Value, hexKey) || strings.Contains(v.Value, "sEcReT") || strings.Contains(v.Value, "whsec_") {
			t.Errorf("%s shows its secret: %q", v.Name, v.Value)
		}
	}
	if d := describe(t, Flags{DataDir: "/from/flag"})["TAILSEAL_DATA_DIR"]; d != (Variable{Name: "TAILSEAL_DATA_DIR", Value: "/from/flag", Source: SourceFlag, From: "--data-dir"}) {
		t.Errorf("with --data-dir: %+v", d)
	}
	c, err := LoadWith(Flags{DataDir: "/from/flag"})
	if err != nil || c.DataDir != "/from/flag" || c.Epoch.String() != "1h0m0s" {
		t.Errorf("LoadWith: %v, %+v", err, c)
	}
}

// A variable tailseal does not read gets a warning naming the closest
// known one; the _FILE of a secret is known; an unprefixed variable that
// envconfig reads in place of an unset TAILSEAL_ one is named too.
func TestWarnings(t *testing.T) {
	clearEnv(t)
	setenv(t, "TAILSEAL_VERIFY_RECIPENT=age1x", "TAILSEAL_DATADIR=/x", "TAILSEAL_EPCOH=1m", "TAILSEAL_WEBHOOK_URL=x",
		"tailseal_source=/y", "TAILSEAL_SOMETHING_ELSE_ENTIRELY=1", "TAILSEAL_PII_KEY_FILE=/k", "TAILSEAL_WEBHOOK_URLS_FILE=/u",
		"TAILSEAL_SMTP_CA_FILE=/ca", "TAILSEAL_DATA_DIR=/d", "LOG_LEVEL=debug")
	want := map[string]string{
		"TAILSEAL_VERIFY_RECIPENT":         "TAILSEAL_VERIFY_RECIPENT is not a tailseal variable; did you mean TAILSEAL_VERIFY_RECIPIENT?",
		"TAILSEAL_DATADIR":                 "TAILSEAL_DATADIR is not a tailseal variable; did you mean TAILSEAL_DATA_DIR?",
		"TAILSEAL_EPCOH":                   "TAILSEAL_EPCOH is not a tailseal variable; did you mean TAILSEAL_EPOCH?",
		"TAILSEAL_WEBHOOK_URL":             "TAILSEAL_WEBHOOK_URL is not a tailseal variable; did you mean TAILSEAL_WEBHOOK_URLS?",
		"tailseal_source":                  "tailseal_source is not read: tailseal's variables are upper case; did you mean TAILSEAL_SOURCE?",
		"TAILSEAL_SOMETHING_ELSE_ENTIRELY": "TAILSEAL_SOMETHING_ELSE_ENTIRELY is not a tailseal variable (tailseal config lists them)",
		"LOG_LEVEL":                        "LOG_LEVEL is set, and tailseal reads it as TAILSEAL_LOG_LEVEL",
	}
	ws := Warnings()
	for _, w := range ws {
		msg, ok := want[w.Variable]
		if !ok {
			t.Errorf("unexpected warning: %s", w)
			continue
		}
		if !strings.HasPrefix(w.Message, msg) {
			t.Errorf("got  %s\nwant %s", w.Message, msg)
		}
		delete(want, w.Variable)
	}
	for v := range want {
		t.Errorf("no warning about %s", v)
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"RECIPENT", "RECIPIENT", 1}, {"kitten", "sitting", 3}, {"", "abc", 3}} {
		if got := distance(c.a, c.b); got != c.d {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "logs/audit.log" || c.DataDir != "data" || c.SegmentMaxMB != 50 || c.RetentionDays != 90 ||
		c.MaxLineBytes != 1<<20 || c.PIIMode != "hash" || c.Listen != "127.0.0.1:9464" || len(c.PIIFields) != 7 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	tests := []struct{ env, value, want string }{
		{"TAILSEAL_SEGMENT_MAX_MB", "abc", `TAILSEAL_SEGMENT_MAX_MB="abc" is not a valid whole number`},
		{"TAILSEAL_EPOCH", "soon", `TAILSEAL_EPOCH="soon" is not a valid duration`},
		{"TAILSEAL_EPOCH", "10ms", "TAILSEAL_EPOCH must be at least 1s"},
		{"TAILSEAL_PII_MODE", "hush", "TAILSEAL_PII_MODE must be hash, redact, mask or off"},
		{"TAILSEAL_LOG_LEVEL", "loud", "TAILSEAL_LOG_LEVEL must be"},
		{"TAILSEAL_MAX_LINE_BYTES", "10", "TAILSEAL_MAX_LINE_BYTES must be at least 1024"},
		{"TAILSEAL_HMAC_KEY_FILE", "/nonexistent/key", "read TAILSEAL_HMAC_KEY_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			_, err := Load()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pii.key")
	os.WriteFile(path, []byte("  abcd\n"), 0o600)
	t.Setenv("TAILSEAL_PII_KEY_FILE", path)
	c, err := Load()
	if err != nil || c.PIIKey != "abcd" {
		t.Fatalf("got %q, %v", c.PIIKey, err)
	}
	t.Setenv("TAILSEAL_PII_KEY", "ef01")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("value and file both set: %v", err)
	}
	if strings.Contains(errString(Load()), "abcd") {
		t.Error("a secret's content appears in an error")
	}
}

func errString(_ *Config, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

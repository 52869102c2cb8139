// Package config owns tailseal's configuration: one struct, loaded once from
// TAILSEAL_* environment variables (defaults, then env, then validation) and
// passed down. No other package reads the environment.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the environment variable prefix (fixed by the public contract).
const Prefix = "TAILSEAL"

// ErrInvalid marks a configuration the user must fix; commands exit 2 on it.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole configuration of the agent and the CLI.
type Config struct {
	Source  string `envconfig:"SOURCE" default:"./logs/audit.log"`
	DataDir string `envconfig:"DATA_DIR" default:"./data"`

	SegmentMaxMB   int           `envconfig:"SEGMENT_MAX_MB" default:"50"`
	SegmentMaxAge  time.Duration `envconfig:"SEGMENT_MAX_AGE" default:"24h"`
	RetentionDays  int           `envconfig:"RETENTION_DAYS" default:"90"`
	CommitInterval time.Duration `envconfig:"COMMIT_INTERVAL" default:"5ms"`
	MaxLineBytes   int           `envconfig:"MAX_LINE_BYTES" default:"1048576"`
	PollInterval   time.Duration `envconfig:"POLL_INTERVAL" default:"1s"`

	// HMACKey is the hex-encoded static signing key; empty means "use or
	// generate $DATA_DIR/keys/hmac.key".
	HMACKey string `envconfig:"HMAC_KEY"`

	// Epoch is how long one forward-secure signing key lives.
	Epoch time.Duration `envconfig:"EPOCH" default:"15m"`
	// VerifyKey is K0 (hex) for `tailseal verify`; Verifier the checkpoint
	// verifier key (signed-note format).
	VerifyKey string `envconfig:"VERIFY_KEY"`
	Verifier  string `envconfig:"VERIFIER"`
	// Checkpoints are signed every CheckpointEvery records or
	// CheckpointInterval, at segment rotation and at shutdown.
	CheckpointEvery    int           `envconfig:"CHECKPOINT_EVERY" default:"10000"`
	CheckpointInterval time.Duration `envconfig:"CHECKPOINT_INTERVAL" default:"1m"`
	Origin             string        `envconfig:"ORIGIN" default:"tailseal"`
	// CheckpointKey is the signed-note signer key (PRIVATE+KEY+…); empty:
	// keys/checkpoint.key, generated on first start.
	CheckpointKey string `envconfig:"CHECKPOINT_KEY"`

	// PII: what personal data becomes (hash, redact, mask, off), the
	// pseudonymization key (hex; generated into keys/pii.key when empty),
	// fields replaced whole and fields never touched.
	PIIMode       string   `envconfig:"PII_MODE" default:"hash"`
	PIIKey        string   `envconfig:"PII_KEY"`
	PIIFields     []string `envconfig:"PII_FIELDS" default:"name,first_name,last_name,full_name,address,phone,email"`
	PIIKeepFields []string `envconfig:"PII_KEEP_FIELDS" default:"lead_id,crm_id,workflow,event_type,timestamp"`

	// Sinks (all off by default). Webhooks stream every stored record;
	// alerts go to Slack, Discord and email.
	WebhookURLs       []string      `envconfig:"WEBHOOK_URLS"`
	WebhookSecret     string        `envconfig:"WEBHOOK_SECRET"` // whsec_<base64>
	WebhookToken      string        `envconfig:"WEBHOOK_TOKEN"`  // Authorization: Bearer
	WebhookTypes      []string      `envconfig:"WEBHOOK_TYPES"`  // only these event types
	WebhookBatch      int           `envconfig:"WEBHOOK_BATCH" default:"500"`
	WebhookBatchBytes int           `envconfig:"WEBHOOK_BATCH_BYTES" default:"1048576"`
	WebhookBatchAge   time.Duration `envconfig:"WEBHOOK_BATCH_AGE" default:"1s"`
	HTTPTimeout       time.Duration `envconfig:"HTTP_TIMEOUT" default:"10s"`
	RetryMaxWait      time.Duration `envconfig:"RETRY_MAX_WAIT" default:"5m"`

	SlackWebhook   string   `envconfig:"SLACK_WEBHOOK"`
	DiscordWebhook string   `envconfig:"DISCORD_WEBHOOK"`
	SMTPAddr       string   `envconfig:"SMTP_ADDR"`
	SMTPFrom       string   `envconfig:"SMTP_FROM"`
	SMTPTo         []string `envconfig:"SMTP_TO"`
	SMTPUsername   string   `envconfig:"SMTP_USERNAME"`
	SMTPPassword   string   `envconfig:"SMTP_PASSWORD"`
	SMTPTLS        string   `envconfig:"SMTP_TLS" default:"mandatory"`
	SMTPCAFile     string   `envconfig:"SMTP_CA_FILE"`

	AlertThreshold        int           `envconfig:"ALERT_THRESHOLD" default:"10"`
	AlertWindow           time.Duration `envconfig:"ALERT_WINDOW" default:"5m"`
	AlertCooldown         time.Duration `envconfig:"ALERT_COOLDOWN" default:"300s"`
	PerfDegradationFactor float64       `envconfig:"PERF_DEGRADATION_FACTOR" default:"2"`

	// Listen is the address of /metrics, /healthz and /readyz ("" disables).
	Listen   string `envconfig:"LISTEN" default:"127.0.0.1:9464"`
	LogLevel string `envconfig:"LOG_LEVEL" default:"info"`
}

// secrets lists the variables that may also be given as a file path in
// NAME_FILE (Kubernetes Secret mounts).
var secrets = []struct {
	name string
	dst  func(*Config) *string
}{
	{"HMAC_KEY", func(c *Config) *string { return &c.HMACKey }},
	{"VERIFY_KEY", func(c *Config) *string { return &c.VerifyKey }},
	{"VERIFIER", func(c *Config) *string { return &c.Verifier }},
	{"CHECKPOINT_KEY", func(c *Config) *string { return &c.CheckpointKey }},
	{"PII_KEY", func(c *Config) *string { return &c.PIIKey }},
	{"WEBHOOK_SECRET", func(c *Config) *string { return &c.WebhookSecret }},
	{"WEBHOOK_TOKEN", func(c *Config) *string { return &c.WebhookToken }},
	{"SLACK_WEBHOOK", func(c *Config) *string { return &c.SlackWebhook }},
	{"DISCORD_WEBHOOK", func(c *Config) *string { return &c.DiscordWebhook }},
	{"SMTP_PASSWORD", func(c *Config) *string { return &c.SMTPPassword }},
}

// WebhookURLsFile: the comma-separated URLs can carry tokens, so they can
// come from a file too (TAILSEAL_WEBHOOK_URLS_FILE).
const webhookURLsFile = "WEBHOOK_URLS"

// Load reads the environment, applies defaults and validates.
func Load() (*Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s=%q is not a valid %s", ErrInvalid, pe.KeyName, pe.Value, typeName(pe.TypeName))
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, s := range secrets {
		if err := loadSecretFile(s.name, s.dst(&c)); err != nil {
			return nil, err
		}
	}
	var urls string
	if err := loadSecretFile(webhookURLsFile, &urls); err != nil {
		return nil, err
	}
	if urls != "" {
		if len(c.WebhookURLs) > 0 {
			return nil, fmt.Errorf("%w: set either %s_%s or %s_%s_FILE, not both", ErrInvalid, Prefix, webhookURLsFile, Prefix, webhookURLsFile)
		}
		c.WebhookURLs = strings.FieldsFunc(urls, func(r rune) bool { return r == ',' || r == '\n' })
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func loadSecretFile(name string, dst *string) error {
	env := Prefix + "_" + name + "_FILE"
	path := os.Getenv(env)
	if path == "" {
		return nil
	}
	if *dst != "" {
		return fmt.Errorf("%w: set either %s_%s or %s, not both", ErrInvalid, Prefix, name, env)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path is not secret; the content is never printed.
		return fmt.Errorf("%w: read %s (%s): %v", ErrInvalid, env, path, err)
	}
	*dst = strings.TrimSpace(string(b))
	return nil
}

// typeName says what a value should look like, for people.
func typeName(t string) string {
	switch t {
	case "int":
		return "whole number"
	case "Duration", "time.Duration":
		return "duration (for example 500ms, 15m, 24h)"
	case "bool":
		return "boolean (true or false)"
	case "float64":
		return "number"
	}
	return t
}

// Validate checks ranges and fills derived defaults.
func (c *Config) Validate() error {
	var errs []string
	if c.Source == "" {
		errs = append(errs, "TAILSEAL_SOURCE must not be empty")
	}
	if c.DataDir == "" {
		errs = append(errs, "TAILSEAL_DATA_DIR must not be empty")
	}
	if c.SegmentMaxMB < 1 {
		errs = append(errs, "TAILSEAL_SEGMENT_MAX_MB must be at least 1")
	}
	if c.SegmentMaxAge <= 0 {
		errs = append(errs, "TAILSEAL_SEGMENT_MAX_AGE must be positive (for example 24h)")
	}
	if c.RetentionDays < 0 {
		errs = append(errs, "TAILSEAL_RETENTION_DAYS must be 0 (keep forever) or more")
	}
	if c.CommitInterval <= 0 || c.CommitInterval > time.Minute {
		errs = append(errs, "TAILSEAL_COMMIT_INTERVAL must be between 1ns and 1m (for example 5ms)")
	}
	if c.MaxLineBytes < 1024 {
		errs = append(errs, "TAILSEAL_MAX_LINE_BYTES must be at least 1024")
	}
	if c.Epoch < time.Second {
		errs = append(errs, "TAILSEAL_EPOCH must be at least 1s (default 15m)")
	}
	if c.CheckpointEvery < 1 || c.CheckpointInterval < 100*time.Millisecond {
		errs = append(errs, "TAILSEAL_CHECKPOINT_EVERY must be at least 1 and TAILSEAL_CHECKPOINT_INTERVAL at least 100ms")
	}
	if c.Origin == "" || strings.ContainsAny(c.Origin, "\n") {
		errs = append(errs, "TAILSEAL_ORIGIN must be one non-empty line")
	}
	switch strings.ToLower(c.PIIMode) {
	case "hash", "redact", "mask", "off":
	default:
		errs = append(errs, "TAILSEAL_PII_MODE must be hash, redact, mask or off")
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, "TAILSEAL_POLL_INTERVAL must be at least 10ms")
	}
	if c.WebhookBatch < 1 || c.WebhookBatchBytes < 1024 || c.WebhookBatchAge <= 0 {
		errs = append(errs, "TAILSEAL_WEBHOOK_BATCH must be at least 1, TAILSEAL_WEBHOOK_BATCH_BYTES at least 1024 and TAILSEAL_WEBHOOK_BATCH_AGE positive")
	}
	if c.HTTPTimeout <= 0 || c.RetryMaxWait < time.Second {
		errs = append(errs, "TAILSEAL_HTTP_TIMEOUT must be positive and TAILSEAL_RETRY_MAX_WAIT at least 1s")
	}
	if c.AlertThreshold < 1 || c.AlertWindow < time.Second || c.AlertCooldown < 0 {
		errs = append(errs, "TAILSEAL_ALERT_THRESHOLD must be at least 1, TAILSEAL_ALERT_WINDOW at least 1s and TAILSEAL_ALERT_COOLDOWN not negative")
	}
	if c.PerfDegradationFactor != 0 && c.PerfDegradationFactor <= 1 {
		errs = append(errs, "TAILSEAL_PERF_DEGRADATION_FACTOR must be above 1 (or 0 to turn the rule off)")
	}
	switch strings.ToLower(c.SMTPTLS) {
	case "mandatory", "implicit", "opportunistic", "none":
	default:
		errs = append(errs, "TAILSEAL_SMTP_TLS must be mandatory, implicit, opportunistic or none")
	}
	if c.SMTPAddr != "" && (c.SMTPFrom == "" || len(c.SMTPTo) == 0) {
		errs = append(errs, "TAILSEAL_SMTP_ADDR needs TAILSEAL_SMTP_FROM and TAILSEAL_SMTP_TO")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		errs = append(errs, "TAILSEAL_LOG_LEVEL must be debug, info, warn or error")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	c.Source = filepath.Clean(c.Source)
	c.DataDir = filepath.Clean(c.DataDir)
	return nil
}

// SegmentMaxBytes is the size at which the active segment is rotated.
func (c *Config) SegmentMaxBytes() int64 { return int64(c.SegmentMaxMB) << 20 }

// Retention is how long rotated segments are kept (0: forever).
func (c *Config) Retention() time.Duration {
	return time.Duration(c.RetentionDays) * 24 * time.Hour
}

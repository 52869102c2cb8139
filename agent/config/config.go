// Package config owns tailseal's configuration: one struct, loaded once from
// TAILSEAL_* environment variables (defaults, then env, then validation) and
// passed down. No other package reads the environment.
package config

import (
	"errors"
	"fmt"
	"os"
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

	SegmentMaxMB  int           `envconfig:"SEGMENT_MAX_MB" default:"50"`
	SegmentMaxAge time.Duration `envconfig:"SEGMENT_MAX_AGE" default:"24h"`
	RetentionDays int           `envconfig:"RETENTION_DAYS" default:"90"`
	// Compression of rotated segments: gzip (.jsonl.gz, zcat reads it) or
	// zstd (.jsonl.zst: reads several times faster, see store.Compression).
	Compression    string        `envconfig:"COMPRESSION" default:"gzip"`
	CommitInterval time.Duration `envconfig:"COMMIT_INTERVAL" default:"5ms"`
	MaxLineBytes   int           `envconfig:"MAX_LINE_BYTES" default:"1048576"`
	PollInterval   time.Duration `envconfig:"POLL_INTERVAL" default:"1s"`

	// HMACKey is a static signing key (64 hex digits) that signs every
	// record, without forward security. Empty (the default) means
	// forward-secure epoch keys: the current key is kept in
	// $DATA_DIR/state/seal.json and evolves every Epoch. Its start, K0, comes
	// from `tailseal keygen` (which prints it and does not store it) or, on a
	// first start without keygen, is generated and kept in
	// $DATA_DIR/keys/verify.key for `tailseal verify`.
	HMACKey string `envconfig:"HMAC_KEY"`

	// Epoch is how long one forward-secure signing key lives.
	Epoch time.Duration `envconfig:"EPOCH" default:"15m"`
	// VerifyKey is K0 (hex) for `tailseal verify`; Verifier the checkpoint
	// verifier key (signed-note format).
	VerifyKey string `envconfig:"VERIFY_KEY"`
	Verifier  string `envconfig:"VERIFIER"`
	// VerifyRecipient is the auditor's age recipient (age1…): a new store
	// seals K0 to it in its genesis record and never keeps K0 on the host.
	// VerifyIdentityFile is the matching identity, for `tailseal verify`.
	VerifyRecipient    string `envconfig:"VERIFY_RECIPIENT"`
	VerifyIdentityFile string `envconfig:"VERIFY_IDENTITY_FILE"`
	// Checkpoints are signed every CheckpointEvery records or
	// CheckpointInterval, at segment rotation and at shutdown.
	CheckpointEvery    int           `envconfig:"CHECKPOINT_EVERY" default:"10000"`
	CheckpointInterval time.Duration `envconfig:"CHECKPOINT_INTERVAL" default:"1m"`
	// Origin names the store, fixed when it is created (its genesis
	// record); empty: the store's own, or for a new store the host name.
	Origin string `envconfig:"ORIGIN"`
	// CheckpointKey is the signed-note signer key (PRIVATE+KEY+…); empty:
	// keys/checkpoint.key, generated on first start.
	CheckpointKey string `envconfig:"CHECKPOINT_KEY"`
	// Witnesses (C2SP tlog-witness) cosign the checkpoints: WitnessURLs
	// are their submission prefixes, WitnessKeys their cosignature
	// verifier keys in the same order (commas or newlines), and
	// WitnessQuorum how many of them a checkpoint needs for verify
	// (0: all of those WitnessKeys lists).
	WitnessURLs   []string `envconfig:"WITNESS_URLS"`
	WitnessKeys   string   `envconfig:"WITNESS_KEYS"`
	WitnessQuorum int      `envconfig:"WITNESS_QUORUM"`

	// PII: what personal data becomes (hash, redact, mask, off), the
	// pseudonymization key (hex; generated into keys/pii.key when empty),
	// fields replaced whole and fields never touched.
	PIIMode       string   `envconfig:"PII_MODE" default:"hash"`
	PIIKey        string   `envconfig:"PII_KEY"`
	PIIFields     []string `envconfig:"PII_FIELDS" default:"name,first_name,last_name,full_name,address,phone,email"`
	PIIKeepFields []string `envconfig:"PII_KEEP_FIELDS" default:"lead_id,crm_id,workflow,event_type,timestamp"`
	// PIIPhoneRegions are the regions (two-letter codes) whose national
	// phone numbers, written without a country code, are found in free
	// text; empty finds only international (+…) and separated numbers.
	PIIPhoneRegions []string `envconfig:"PII_PHONE_REGIONS" default:"US,GB,DE,FR,ES,NL,PL,IT"`

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
	// DrainTimeout is how long a stop waits, once everything the
	// application wrote is stored, for the sinks to deliver it; 0 does
	// not wait. What is left stays in the store for the next start.
	DrainTimeout time.Duration `envconfig:"DRAIN_TIMEOUT" default:"20s"`

	// NATS JetStream, the fleet's transport (DESIGN.md, Fleet), the same
	// settings for the agent's sink and for tailseal collect. The sink is
	// on when NATSURL is set: every stored record is
	// published, exactly once per origin, into the stream NATSStream
	// (created when missing with these settings). One of the credentials
	// file, the NKey seed file or the token authenticates; NATSCAFile
	// trusts a private CA for tls:// servers.
	NATSURL             string        `envconfig:"NATS_URL"` // comma-separated, as nats.Connect takes them
	NATSCredsFile       string        `envconfig:"NATS_CREDS_FILE"`
	NATSNKeyFile        string        `envconfig:"NATS_NKEY_FILE"`
	NATSToken           string        `envconfig:"NATS_TOKEN"`
	NATSCAFile          string        `envconfig:"NATS_CA_FILE"`
	NATSStream          string        `envconfig:"NATS_STREAM" default:"TAILSEAL"`
	NATSReplicas        int           `envconfig:"NATS_REPLICAS" default:"1"`
	NATSDuplicateWindow time.Duration `envconfig:"NATS_DUPLICATE_WINDOW" default:"2m"`

	SlackWebhook   string   `envconfig:"SLACK_WEBHOOK"`
	DiscordWebhook string   `envconfig:"DISCORD_WEBHOOK"`
	SMTPAddr       string   `envconfig:"SMTP_ADDR"`
	SMTPFrom       string   `envconfig:"SMTP_FROM"`
	SMTPTo         []string `envconfig:"SMTP_TO"`
	SMTPUsername   string   `envconfig:"SMTP_USERNAME"`
	SMTPPassword   string   `envconfig:"SMTP_PASSWORD"`
	SMTPTLS        string   `envconfig:"SMTP_TLS" default:"mandatory"`
	SMTPCAFile     string   `envconfig:"SMTP_CA_FILE"`

	// AlertmanagerURLs are the base URLs of Alertmanagers (every one of a
	// cluster: each gets every alert); alerts go to <url>/api/v2/alerts.
	AlertmanagerURLs []string `envconfig:"ALERTMANAGER_URL"`
	// AlertLink, when set, goes into every alert (a dashboard, a
	// runbook); {origin} in it becomes the alert's origin.
	AlertLink string `envconfig:"ALERT_LINK"`

	AlertThreshold        int           `envconfig:"ALERT_THRESHOLD" default:"10"`
	AlertWindow           time.Duration `envconfig:"ALERT_WINDOW" default:"5m"`
	AlertCooldown         time.Duration `envconfig:"ALERT_COOLDOWN" default:"300s"`
	PerfDegradationFactor float64       `envconfig:"PERF_DEGRADATION_FACTOR" default:"2"`

	// tailseal collect: the durable consumer's name, how many messages
	// one group commit takes, how long the server waits for an ack
	// before it redelivers, and which share of the origins this
	// collector keeps (partition k of n, by a hash of the origin).
	CollectConsumer   string        `envconfig:"COLLECT_CONSUMER" default:"tailseal-collect"`
	CollectBatch      int           `envconfig:"COLLECT_BATCH" default:"1000"`
	CollectAckWait    time.Duration `envconfig:"COLLECT_ACK_WAIT" default:"1m"`
	CollectPartitions int           `envconfig:"COLLECT_PARTITIONS" default:"1"`
	CollectPartition  int           `envconfig:"COLLECT_PARTITION" default:"0"`

	// Listen is the address of /metrics, /healthz and /readyz ("" disables).
	Listen string `envconfig:"LISTEN" default:"127.0.0.1:9464"`
	// MetricTypes are the event types tailseal_events_by_type_total
	// counts under their own label, the rest as "other"; empty: the first
	// DefaultMetricTypes types seen.
	MetricTypes []string `envconfig:"METRIC_TYPES"`
	// NewStore lets `tailseal run` start a new store (seq 1) in a data dir
	// whose store lost records that its checkpoints cover; the old files
	// are moved aside, not deleted. Without it the agent refuses to start.
	NewStore bool   `envconfig:"NEW_STORE"`
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
	{"VERIFY_RECIPIENT", func(c *Config) *string { return &c.VerifyRecipient }}, // public, but kept in the same Secret
	{"CHECKPOINT_KEY", func(c *Config) *string { return &c.CheckpointKey }},
	{"WITNESS_KEYS", func(c *Config) *string { return &c.WitnessKeys }}, // public, but a list may be kept in a file
	{"PII_KEY", func(c *Config) *string { return &c.PIIKey }},
	{"WEBHOOK_SECRET", func(c *Config) *string { return &c.WebhookSecret }},
	{"WEBHOOK_TOKEN", func(c *Config) *string { return &c.WebhookToken }},
	{"SLACK_WEBHOOK", func(c *Config) *string { return &c.SlackWebhook }},
	{"DISCORD_WEBHOOK", func(c *Config) *string { return &c.DiscordWebhook }},
	{"SMTP_PASSWORD", func(c *Config) *string { return &c.SMTPPassword }},
	{"NATS_TOKEN", func(c *Config) *string { return &c.NATSToken }},
}

// secretLists lists the comma-separated URL lists that may carry tokens or
// credentials, and so may come from a file too (NAME_FILE, commas or
// lines).
var secretLists = []struct {
	name string
	dst  func(*Config) *[]string
}{
	{"WEBHOOK_URLS", func(c *Config) *[]string { return &c.WebhookURLs }},
	{"ALERTMANAGER_URL", func(c *Config) *[]string { return &c.AlertmanagerURLs }},
}

// Load reads the environment, applies defaults and validates. A value of
// the wrong type (a word where a number goes) stops it at once, because the
// rest cannot be checked meaningfully; otherwise the error lists every
// problem (see Error).
func Load() (*Config, error) { return LoadWith(Flags{}) }

// LoadWith is Load with command-line flags, which win over the
// environment.
func LoadWith(flags Flags) (*Config, error) {
	c, err := Inspect(flags)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Inspect is LoadWith for `tailseal config`, which checks more than
// values: it returns the configuration even when it is not valid, as
// loaded (nil only when a value of the wrong type stopped loading), with
// the error that lists what is wrong.
func Inspect(flags Flags) (*Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Problems: []error{fmt.Errorf("%s=%q is not a valid %s", pe.KeyName, pe.Value, typeName(pe.TypeName))}}
		}
		return nil, &Error{Problems: []error{err}}
	}
	var problems []error
	for _, s := range secrets {
		if err := loadSecretFile(s.name, s.dst(&c)); err != nil {
			problems = append(problems, err)
		}
	}
	for _, l := range secretLists {
		var urls string
		if err := loadSecretFile(l.name, &urls); err != nil {
			problems = append(problems, err)
		}
		if urls != "" {
			if dst := l.dst(&c); len(*dst) > 0 {
				problems = append(problems, fmt.Errorf("set either %s_%s or %s_%s_FILE, not both", Prefix, l.name, Prefix, l.name))
			} else {
				*dst = strings.FieldsFunc(urls, func(r rune) bool { return r == ',' || r == '\n' })
			}
		}
	}
	if flags.DataDir != "" {
		c.DataDir = flags.DataDir
	}
	if err := c.Validate(); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return &c, err
		}
		problems = append(problems, e.Problems...)
	}
	if len(problems) > 0 {
		return &c, &Error{Problems: problems}
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
		return fmt.Errorf("set either %s_%s or %s, not both", Prefix, name, env)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path is not secret; the content is never printed.
		return fmt.Errorf("read %s (%s): %w", env, path, err)
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

// NATSServers are the servers of TAILSEAL_NATS_URL, one per entry; none
// when the sink is off.
func (c *Config) NATSServers() []string {
	var urls []string
	for _, u := range strings.Split(c.NATSURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// SegmentMaxBytes is the size at which the active segment is rotated.
func (c *Config) SegmentMaxBytes() int64 { return int64(c.SegmentMaxMB) << 20 }

// StoreCompression is TAILSEAL_COMPRESSION in lower case, gzip or zstd
// (Validate has checked it): the name store.Compression takes.
func (c *Config) StoreCompression() string { return strings.ToLower(c.Compression) }

// Retention is how long rotated segments are kept (0: forever).
func (c *Config) Retention() time.Duration {
	return time.Duration(c.RetentionDays) * 24 * time.Hour
}

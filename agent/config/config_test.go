package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/pii"
)

func TestDefaults(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "logs/audit.log" || c.DataDir != "data" || c.SegmentMaxMB != 50 || c.RetentionDays != 90 ||
		c.MaxLineBytes != 1<<20 || c.PIIMode != "hash" || c.Listen != "127.0.0.1:9464" || len(c.PIIFields) != 7 ||
		c.DrainTimeout != 20*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

const (
	hexKey  = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
	whsec   = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes
	okHook  = "https://hooks.example.com/T0/B0/sEcReT"
	smtpEnv = "TAILSEAL_SMTP_ADDR=smtp.example.com:587"
	vkeyA   = "tailseal+3b4d69e4+AbGr5NL6kfaGWVClLPUsJMO66MSxjz8zJ6UGcexVnYGW" // a checkpoint verifier key
)

// setenv sets "NAME=value" pairs for the test.
func setenv(t *testing.T, kvs ...string) {
	t.Helper()
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Each check is one row: a bad value and the message, which names the
// variable. secret marks a value that must not appear in the message.
// witnessKey is a witness's cosignature/v1 verifier key (litewitness's).
const witnessKey = "witness.example/w1+aa4a09d1+BOpKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"

func TestErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		env    []string
		want   string
		secret string
	}{
		{env: []string{"TAILSEAL_SEGMENT_MAX_MB=abc"}, want: `TAILSEAL_SEGMENT_MAX_MB="abc" is not a valid whole number`},
		{env: []string{"TAILSEAL_EPOCH=soon"}, want: `TAILSEAL_EPOCH="soon" is not a valid duration`},
		{env: []string{"TAILSEAL_PERF_DEGRADATION_FACTOR=two"}, want: `TAILSEAL_PERF_DEGRADATION_FACTOR="two" is not a valid number`},
		{env: []string{"TAILSEAL_HMAC_KEY_FILE=/nonexistent/key"}, want: "read TAILSEAL_HMAC_KEY_FILE"},
		{env: []string{"TAILSEAL_SOURCE="}, want: "TAILSEAL_SOURCE must not be empty"},
		{env: []string{"TAILSEAL_DATA_DIR="}, want: "TAILSEAL_DATA_DIR must not be empty"},

		{env: []string{"TAILSEAL_SEGMENT_MAX_MB=0"}, want: "TAILSEAL_SEGMENT_MAX_MB must be at least 1"},
		{env: []string{"TAILSEAL_SEGMENT_MAX_MB=9223372036854775807"}, want: "TAILSEAL_SEGMENT_MAX_MB must be at most 1048576"},
		{env: []string{"TAILSEAL_SEGMENT_MAX_AGE=0s"}, want: "TAILSEAL_SEGMENT_MAX_AGE must be positive"},
		{env: []string{"TAILSEAL_RETENTION_DAYS=-1"}, want: "TAILSEAL_RETENTION_DAYS must be 0 (keep forever) or more"},
		{env: []string{"TAILSEAL_RETENTION_DAYS=300000"}, want: "TAILSEAL_RETENTION_DAYS must be at most 36500"},
		{env: []string{"TAILSEAL_COMMIT_INTERVAL=2m"}, want: "TAILSEAL_COMMIT_INTERVAL must be between 1ns and 1m"},
		{env: []string{"TAILSEAL_MAX_LINE_BYTES=10"}, want: "TAILSEAL_MAX_LINE_BYTES must be at least 1024"},
		{env: []string{"TAILSEAL_MAX_LINE_BYTES=9223372036854775807"}, want: "TAILSEAL_MAX_LINE_BYTES must be at most 16777216"},
		{env: []string{"TAILSEAL_POLL_INTERVAL=1ms"}, want: "TAILSEAL_POLL_INTERVAL must be at least 10ms"},

		{env: []string{"TAILSEAL_HMAC_KEY=zz" + hexKey[2:]}, want: "TAILSEAL_HMAC_KEY: bad key: not hex", secret: hexKey[2:]},
		{env: []string{"TAILSEAL_HMAC_KEY=" + hexKey[:62]}, want: "TAILSEAL_HMAC_KEY: bad key: 31 bytes, want 32", secret: hexKey[:62]},
		{env: []string{"TAILSEAL_VERIFY_KEY=" + hexKey[:62]}, want: "TAILSEAL_VERIFY_KEY: bad key: 31 bytes, want 32", secret: hexKey[:62]},
		{env: []string{"TAILSEAL_PII_KEY=abcd"}, want: "TAILSEAL_PII_KEY: bad key: 2 bytes, want 32", secret: "abcd"},
		{env: []string{"TAILSEAL_EPOCH=10ms"}, want: "TAILSEAL_EPOCH must be at least 1s"},
		{env: []string{"TAILSEAL_CHECKPOINT_EVERY=0"}, want: "TAILSEAL_CHECKPOINT_EVERY must be at least 1"},
		{env: []string{"TAILSEAL_CHECKPOINT_INTERVAL=10ms"}, want: "TAILSEAL_CHECKPOINT_INTERVAL must be at least 100ms"},
		{env: []string{"TAILSEAL_ORIGIN=a\nb"}, want: "TAILSEAL_ORIGIN: an origin has no spaces, control or invisible formatting characters"},
		{env: []string{"TAILSEAL_ORIGIN=web\u200b-1"}, want: `"web\u200b-1"`},
		{env: []string{"TAILSEAL_ORIGIN=web\u202e-1"}, want: "invisible formatting characters"},
		{env: []string{"TAILSEAL_VERIFY_RECIPIENT=age1nope"}, want: "TAILSEAL_VERIFY_RECIPIENT is not an age recipient", secret: "age1nope"},
		{env: []string{"TAILSEAL_VERIFY_RECIPIENT=AGE-SECRET-KEY-1QQQQSECRETQQQQ"}, want: "TAILSEAL_VERIFY_RECIPIENT holds an age identity", secret: "SECRETQQQQ"},
		{env: []string{"TAILSEAL_VERIFY_RECIPIENT=# created: x\n# public key: age1abc\nAGE-SECRET-KEY-1QQQQSECRETQQQQ"}, want: "holds an age identity", secret: "SECRETQQQQ"},
		{env: []string{"TAILSEAL_CHECKPOINT_KEY=PRIVATE+KEY+tailseal+00000000+sEcReT"},
			want: "TAILSEAL_CHECKPOINT_KEY is not a signed-note signer key", secret: "sEcReT"},
		{env: []string{"TAILSEAL_VERIFIER=tailseal+1234+notbase64"}, want: "TAILSEAL_VERIFIER is not a signed-note verifier key"},
		{env: []string{"TAILSEAL_VERIFIER=" + vkeyA + ",tailseal+1234+notbase64"}, want: "TAILSEAL_VERIFIER: entry 2: malformed verifier id: not a signed-note verifier key"},
		{env: []string{"TAILSEAL_VERIFIER=# " + vkeyA + "\n" + vkeyA + "\n\nnope"}, want: "TAILSEAL_VERIFIER: entry 2: "},
		{env: []string{"TAILSEAL_VERIFIER= , ,"}, want: "TAILSEAL_VERIFIER holds no key"},
		{env: []string{"TAILSEAL_PII_MODE=hush"}, want: "TAILSEAL_PII_MODE must be hash, redact, mask or off"},
		{env: []string{"TAILSEAL_COMPRESSION=xz"}, want: "TAILSEAL_COMPRESSION must be gzip or zstd (default gzip)"},
		{env: []string{"TAILSEAL_COMPRESSION="}, want: "TAILSEAL_COMPRESSION must be gzip or zstd (default gzip)"},
		{env: []string{"TAILSEAL_PII_PHONE_REGIONS=US,XX"}, want: `TAILSEAL_PII_PHONE_REGIONS: entry 2 ("XX") is not a two-letter region code`},
		{env: []string{"TAILSEAL_PII_PHONE_REGIONS=DEU"}, want: `TAILSEAL_PII_PHONE_REGIONS: entry 1 ("DEU") is not a two-letter region code`},
		{env: []string{"TAILSEAL_PII_PHONE_REGIONS=de;fr"}, want: `TAILSEAL_PII_PHONE_REGIONS: entry 1 ("de;fr") is not a two-letter region code`},
		{env: []string{"TAILSEAL_PII_PHONE_REGIONS="}, want: `TAILSEAL_PII_PHONE_REGIONS is set but empty: unset it for the default (US,GB,DE,FR,ES,NL,PL,IT), or set it to none`},
		{env: []string{"TAILSEAL_PII_PHONE_REGIONS= , "}, want: `TAILSEAL_PII_PHONE_REGIONS is set but empty`},
		{env: []string{"TAILSEAL_PII_PHONE_REGIONS=none,US"}, want: `TAILSEAL_PII_PHONE_REGIONS: entry 1 ("none") is not a two-letter region code`},

		{env: []string{"TAILSEAL_WEBHOOK_URLS=" + okHook + ",ftp://example.com/sEcReT"},
			want: "TAILSEAL_WEBHOOK_URLS: entry 2 is not an http or https URL", secret: "sEcReT"},
		{env: []string{"TAILSEAL_WEBHOOK_SECRET=sEcReT"}, want: "TAILSEAL_WEBHOOK_SECRET: a webhook secret starts with whsec_", secret: "sEcReT"},
		{env: []string{"TAILSEAL_WEBHOOK_SECRET=whsec_c0VjUmVU"}, want: "TAILSEAL_WEBHOOK_SECRET: a webhook secret is whsec_ and at least 24 bytes",
			secret: "c0VjUmVU"},
		{env: []string{"TAILSEAL_WEBHOOK_TOKEN=sEcReT\r\nX-Evil: 1"}, want: "TAILSEAL_WEBHOOK_TOKEN must not contain spaces or control characters",
			secret: "sEcReT"},
		{env: []string{"TAILSEAL_WEBHOOK_BATCH=0"}, want: "TAILSEAL_WEBHOOK_BATCH must be at least 1"},
		{env: []string{"TAILSEAL_WEBHOOK_BATCH_BYTES=10"}, want: "TAILSEAL_WEBHOOK_BATCH_BYTES must be at least 1024"},
		{env: []string{"TAILSEAL_WEBHOOK_BATCH_AGE=0s"}, want: "TAILSEAL_WEBHOOK_BATCH_AGE must be positive"},
		{env: []string{"TAILSEAL_HTTP_TIMEOUT=-1s"}, want: "TAILSEAL_HTTP_TIMEOUT must be positive"},
		{env: []string{"TAILSEAL_RETRY_MAX_WAIT=100ms"}, want: "TAILSEAL_RETRY_MAX_WAIT must be at least 1s"},
		{env: []string{"TAILSEAL_DRAIN_TIMEOUT=-1s"}, want: "TAILSEAL_DRAIN_TIMEOUT must not be negative"},
		{env: []string{"TAILSEAL_DRAIN_TIMEOUT=20"}, want: `TAILSEAL_DRAIN_TIMEOUT="20" is not a valid duration`},
		{env: []string{"TAILSEAL_SLACK_WEBHOOK=hooks.slack.com/services/sEcReT"}, want: "TAILSEAL_SLACK_WEBHOOK is not an http or https URL", secret: "sEcReT"},
		{env: []string{"TAILSEAL_DISCORD_WEBHOOK=discord.com/api/webhooks/1/sEcReT"}, want: "TAILSEAL_DISCORD_WEBHOOK is not an http or https URL", secret: "sEcReT"},

		{env: []string{"TAILSEAL_SMTP_TLS=starttls"}, want: "TAILSEAL_SMTP_TLS must be mandatory, implicit, opportunistic or none"},
		{env: []string{smtpEnv}, want: "TAILSEAL_SMTP_ADDR needs TAILSEAL_SMTP_FROM and TAILSEAL_SMTP_TO"},
		{env: []string{"TAILSEAL_SMTP_ADDR=smtp.example.com", "TAILSEAL_SMTP_FROM=a@example.com", "TAILSEAL_SMTP_TO=b@example.com"},
			want: `TAILSEAL_SMTP_ADDR "smtp.example.com": want host:port`},
		{env: []string{"TAILSEAL_SMTP_ADDR=smtp.example.com:submission", "TAILSEAL_SMTP_FROM=a@example.com", "TAILSEAL_SMTP_TO=b@example.com"},
			want: `TAILSEAL_SMTP_ADDR "smtp.example.com:submission": the port must be a number from 1 to 65535`},
		{env: []string{"TAILSEAL_SMTP_ADDR=:587", "TAILSEAL_SMTP_FROM=a@example.com", "TAILSEAL_SMTP_TO=b@example.com"},
			want: `TAILSEAL_SMTP_ADDR ":587": want host:port with a host`},
		{env: []string{smtpEnv, "TAILSEAL_SMTP_FROM=tailseal", "TAILSEAL_SMTP_TO=b@example.com"},
			want: `TAILSEAL_SMTP_FROM "tailseal" is not an email address`},
		{env: []string{smtpEnv, "TAILSEAL_SMTP_FROM=a@example.com", "TAILSEAL_SMTP_TO=b@example.com,ops"},
			want: `TAILSEAL_SMTP_TO: entry 2 ("ops") is not an email address`},

		{env: []string{"TAILSEAL_NATS_URL=nats://127.0.0.1:4222,http://nats.example.com"}, want: "TAILSEAL_NATS_URL: entry 2 must use nats://, tls://, ws:// or wss://"},
		{env: []string{"TAILSEAL_NATS_URL=nats://"}, want: "TAILSEAL_NATS_URL: entry 1 is not a NATS server URL"},
		{env: []string{"TAILSEAL_NATS_URL=nats://a.example.com:4222,"}, want: "TAILSEAL_NATS_URL: entry 2 is empty"},
		{env: []string{"TAILSEAL_NATS_URL=nats://tailseal:sEcReT@nats.example.com:4222"},
			want: "TAILSEAL_NATS_URL: entry 1 carries credentials: give them in TAILSEAL_NATS_CREDS_FILE", secret: "sEcReT"},
		{env: []string{"TAILSEAL_NATS_URL=nats.example.com", "TAILSEAL_NATS_TOKEN=sEcReT", "TAILSEAL_NATS_CREDS_FILE=/etc/tailseal/nats.creds"},
			want: "TAILSEAL_NATS_CREDS_FILE, TAILSEAL_NATS_TOKEN: set one way to authenticate to NATS, not 2", secret: "sEcReT"},
		{env: []string{"TAILSEAL_NATS_TOKEN=sEcReT"}, want: "TAILSEAL_NATS_TOKEN is set but TAILSEAL_NATS_URL is not", secret: "sEcReT"},
		{env: []string{"TAILSEAL_NATS_CA_FILE=/etc/tailseal/ca.pem"}, want: "TAILSEAL_NATS_CA_FILE is set but TAILSEAL_NATS_URL is not"},
		{env: []string{"TAILSEAL_NATS_STREAM=audit.records"}, want: "TAILSEAL_NATS_STREAM must be a JetStream stream name"},
		{env: []string{"TAILSEAL_NATS_STREAM="}, want: "TAILSEAL_NATS_STREAM must be a JetStream stream name"},
		{env: []string{"TAILSEAL_NATS_REPLICAS=0"}, want: "TAILSEAL_NATS_REPLICAS must be at least 1"},
		{env: []string{"TAILSEAL_NATS_REPLICAS=7"}, want: "TAILSEAL_NATS_REPLICAS must be at most 5"},
		{env: []string{"TAILSEAL_NATS_DUPLICATE_WINDOW=0s"}, want: "TAILSEAL_NATS_DUPLICATE_WINDOW must be at least 100ms"},

		{env: []string{"TAILSEAL_ALERT_THRESHOLD=0"}, want: "TAILSEAL_ALERT_THRESHOLD must be at least 1"},
		{env: []string{"TAILSEAL_ALERT_WINDOW=500ms"}, want: "TAILSEAL_ALERT_WINDOW must be at least 1s"},
		{env: []string{"TAILSEAL_ALERT_COOLDOWN=-1s"}, want: "TAILSEAL_ALERT_COOLDOWN must not be negative"},
		{env: []string{"TAILSEAL_PERF_DEGRADATION_FACTOR=1"}, want: "TAILSEAL_PERF_DEGRADATION_FACTOR must be a number above 1"},
		{env: []string{"TAILSEAL_PERF_DEGRADATION_FACTOR=NaN"}, want: "TAILSEAL_PERF_DEGRADATION_FACTOR must be a number above 1"},
		{env: []string{"TAILSEAL_PERF_DEGRADATION_FACTOR=Inf"}, want: "TAILSEAL_PERF_DEGRADATION_FACTOR must be a number above 1"},
		{env: []string{"TAILSEAL_PERF_DEGRADATION_FACTOR=-Inf"}, want: "TAILSEAL_PERF_DEGRADATION_FACTOR must be a number above 1"},

		{env: []string{"TAILSEAL_ALERTMANAGER_URL=http://am-0:9093,am-1.example.com:9093/sEcReT"},
			want: "TAILSEAL_ALERTMANAGER_URL: entry 2 is not an http or https URL", secret: "sEcReT"},
		{env: []string{"TAILSEAL_ALERTMANAGER_URL=http://user:sEcReT@am:9093/api/v2/alerts"},
			want: "TAILSEAL_ALERTMANAGER_URL: entry 1 ends in the API path; give the base URL", secret: "sEcReT"},
		{env: []string{"TAILSEAL_ALERTMANAGER_URL=http://am:9093/api/v1/alerts/"}, want: "TAILSEAL_ALERTMANAGER_URL: entry 1 ends in the API path"},
		{env: []string{"TAILSEAL_ALERTMANAGER_URL=http://am:9093/?token=sEcReT"},
			want: "TAILSEAL_ALERTMANAGER_URL: entry 1 has a query or a fragment", secret: "sEcReT"},
		{env: []string{"TAILSEAL_ALERTMANAGER_URL=http://am:9093,"}, want: "TAILSEAL_ALERTMANAGER_URL: entry 2 is not an http or https URL"},
		{env: []string{"TAILSEAL_ALERT_LINK=grafana.example.com/d/tailseal"}, want: "TAILSEAL_ALERT_LINK is not an http or https URL"},
		{env: []string{"TAILSEAL_METRIC_TYPES=error,,lead_ingested"}, want: "TAILSEAL_METRIC_TYPES: entry 2 is empty"},
		{env: []string{"TAILSEAL_METRIC_TYPES=" + strings.Repeat("t,", 100) + "t"}, want: "TAILSEAL_METRIC_TYPES names 101 types; at most 100"},
		{env: []string{"TAILSEAL_NATS_URL=nats://a:4222", "TAILSEAL_NATS_TOKEN=sEcReT x"}, want: "TAILSEAL_NATS_TOKEN must not contain spaces", secret: "sEcReT"},
		{env: []string{"TAILSEAL_COLLECT_CONSUMER=c>"}, want: "TAILSEAL_COLLECT_CONSUMER: \"c>\" has a space"},
		{env: []string{"TAILSEAL_COLLECT_BATCH=0"}, want: "TAILSEAL_COLLECT_BATCH must be at least 1"},
		{env: []string{"TAILSEAL_COLLECT_ACK_WAIT=100ms"}, want: "TAILSEAL_COLLECT_ACK_WAIT must be at least 1s"},
		{env: []string{"TAILSEAL_COLLECT_PARTITIONS=0"}, want: "TAILSEAL_COLLECT_PARTITIONS must be at least 1"},
		{env: []string{"TAILSEAL_COLLECT_PARTITIONS=3", "TAILSEAL_COLLECT_PARTITION=3"}, want: "TAILSEAL_COLLECT_PARTITION must be from 0 to TAILSEAL_COLLECT_PARTITIONS-1 (2)"},
		{env: []string{"TAILSEAL_COLLECT_PARTITION=-1"}, want: "TAILSEAL_COLLECT_PARTITION must be from 0"},

		{env: []string{"TAILSEAL_LISTEN=localhost"}, want: `TAILSEAL_LISTEN "localhost": want host:port`},
		{env: []string{"TAILSEAL_LISTEN=127.0.0.1:99999"}, want: `TAILSEAL_LISTEN "127.0.0.1:99999": the port must be a number from 0 to 65535`},
		{env: []string{"TAILSEAL_LISTEN=127.0.0.1:-1"}, want: `TAILSEAL_LISTEN "127.0.0.1:-1": the port must be a number from 0 to 65535`},
		{env: []string{"TAILSEAL_LOG_LEVEL=loud"}, want: "TAILSEAL_LOG_LEVEL must be debug, info, warn or error"},

		{env: []string{"TAILSEAL_WITNESS_URLS=http://w1:7380", "TAILSEAL_WITNESS_KEYS=" + vkeyA}, want: "TAILSEAL_WITNESS_KEYS: entry 1: not a cosignature/v1 verifier key"},
		{env: []string{"TAILSEAL_WITNESS_KEYS=witness.example/w1+aa4a09d2+BOpKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"}, want: "TAILSEAL_WITNESS_KEYS: entry 1: not a cosignature/v1 verifier key: its hash"},
		{env: []string{"TAILSEAL_WITNESS_URLS=http://w1:7380,http://w2:7380", "TAILSEAL_WITNESS_KEYS=" + witnessKey},
			want: "TAILSEAL_WITNESS_URLS has 2 witnesses and TAILSEAL_WITNESS_KEYS 1 keys"},
		{env: []string{"TAILSEAL_WITNESS_URLS=w1:7380", "TAILSEAL_WITNESS_KEYS=" + witnessKey}, want: "TAILSEAL_WITNESS_URLS: entry 1 is not an http or https URL"},
		{env: []string{"TAILSEAL_WITNESS_KEYS=" + witnessKey, "TAILSEAL_WITNESS_QUORUM=2"}, want: "TAILSEAL_WITNESS_QUORUM is 2"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			setenv(t, tt.env...)
			_, err := Load()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an ErrInvalid containing %q", err, tt.want)
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("the message repeats the secret value: %v", err)
			}
		})
	}
}

// One run names every problem, not just the first.
func TestAllProblemsAtOnce(t *testing.T) {
	setenv(t, "TAILSEAL_RETENTION_DAYS=300000", "TAILSEAL_PERF_DEGRADATION_FACTOR=NaN", "TAILSEAL_LISTEN=nowhere",
		"TAILSEAL_WEBHOOK_URLS=ftp://example.com", "TAILSEAL_HMAC_KEY=zz", "TAILSEAL_EPOCH=10ms", "TAILSEAL_PII_MODE=hush",
		"TAILSEAL_VERIFY_KEY_FILE=/nonexistent/k0", "TAILSEAL_ALERTMANAGER_URL=am:9093,http://am:9093/api/v2/alerts", "TAILSEAL_ALERT_LINK=nolink")
	_, err := Load()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing secret file's cause is not wrapped: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 11 {
		t.Errorf("want 11 problems, got %v", err)
	}
	for _, v := range []string{"TAILSEAL_RETENTION_DAYS", "TAILSEAL_PERF_DEGRADATION_FACTOR", "TAILSEAL_LISTEN",
		"TAILSEAL_WEBHOOK_URLS", "TAILSEAL_HMAC_KEY", "TAILSEAL_EPOCH", "TAILSEAL_PII_MODE", "TAILSEAL_VERIFY_KEY_FILE",
		"TAILSEAL_ALERTMANAGER_URL: entry 1", "TAILSEAL_ALERTMANAGER_URL: entry 2", "TAILSEAL_ALERT_LINK"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("%s missing from %v", v, err)
		}
	}
}

// Values that work today keep working: those of the tests, the deploy
// files and the README, and the extremes of each range.
func TestAcceptsWorkingValues(t *testing.T) {
	skey, vkey, err := signer.GenerateNoteKey("tailseal")
	if err != nil {
		t.Fatal(err)
	}
	tests := [][]string{
		{"TAILSEAL_LISTEN="}, {"TAILSEAL_LISTEN=127.0.0.1:0"}, {"TAILSEAL_LISTEN=0.0.0.0:9464"}, {"TAILSEAL_LISTEN=:9464"},
		{"TAILSEAL_LISTEN=[::1]:65535"}, {"TAILSEAL_LISTEN=localhost:9464"},
		{"TAILSEAL_SEGMENT_MAX_MB=1"}, {"TAILSEAL_SEGMENT_MAX_MB=1048576"},
		{"TAILSEAL_RETENTION_DAYS=0"}, {"TAILSEAL_RETENTION_DAYS=36500"},
		{"TAILSEAL_MAX_LINE_BYTES=1024"}, {"TAILSEAL_MAX_LINE_BYTES=16777216"},
		{"TAILSEAL_EPOCH=1s", "TAILSEAL_CHECKPOINT_EVERY=500", "TAILSEAL_CHECKPOINT_INTERVAL=100ms", "TAILSEAL_POLL_INTERVAL=100ms"},
		{"TAILSEAL_PII_PHONE_REGIONS=us,gb, BR"}, {"TAILSEAL_PII_PHONE_REGIONS=none"}, {"TAILSEAL_PII_PHONE_REGIONS= None "},
		{"TAILSEAL_COMPRESSION=gzip"}, {"TAILSEAL_COMPRESSION=zstd"}, {"TAILSEAL_COMPRESSION=ZSTD"},
		{"TAILSEAL_PII_MODE=hash"}, {"TAILSEAL_PII_MODE=redact"}, {"TAILSEAL_PII_MODE=mask"}, {"TAILSEAL_PII_MODE=off"}, {"TAILSEAL_PII_MODE=Mask"},
		{"TAILSEAL_HMAC_KEY=" + hexKey, "TAILSEAL_VERIFY_KEY=" + strings.ToUpper(hexKey), "TAILSEAL_PII_KEY=" + hexKey},
		{"TAILSEAL_CHECKPOINT_KEY=" + skey, "TAILSEAL_VERIFIER=" + vkey}, {"TAILSEAL_VERIFIER=" + vkey + "\n"},
		{"TAILSEAL_VERIFIER=" + vkey + "," + vkeyA}, {"TAILSEAL_VERIFIER=# the fleet's agents\n" + vkey + "\n\n " + vkeyA + " \n"},
		{"TAILSEAL_WEBHOOK_URLS=https://siem.example.com/ingest,http://127.0.0.1:8080/hook", "TAILSEAL_WEBHOOK_SECRET=" + whsec,
			"TAILSEAL_WEBHOOK_TOKEN=abc.def-ghi_jkl~=", "TAILSEAL_WEBHOOK_BATCH=40", "TAILSEAL_WEBHOOK_BATCH_AGE=20ms", "TAILSEAL_RETRY_MAX_WAIT=1s"},
		{"TAILSEAL_SLACK_WEBHOOK=" + okHook, "TAILSEAL_DISCORD_WEBHOOK=https://discord.com/api/webhooks/1/x"},
		{smtpEnv, "TAILSEAL_SMTP_FROM=tailseal@example.com", "TAILSEAL_SMTP_TO=ops@example.com,security@example.com",
			"TAILSEAL_SMTP_USERNAME=tailseal", "TAILSEAL_SMTP_TLS=mandatory"},
		{"TAILSEAL_SMTP_ADDR=127.0.0.1:2525", "TAILSEAL_SMTP_FROM=Tailseal <tailseal@example.com>", "TAILSEAL_SMTP_TO=ops@example.com",
			"TAILSEAL_SMTP_TLS=implicit"},
		{"TAILSEAL_SMTP_TLS=opportunistic"}, {"TAILSEAL_SMTP_TLS=none"},
		{"TAILSEAL_NATS_URL=nats://a.example.com:4222,tls://b.example.com:4222, c.example.com:4222", "TAILSEAL_NATS_CREDS_FILE=/etc/tailseal/nats.creds",
			"TAILSEAL_NATS_CA_FILE=/etc/tailseal/ca.pem", "TAILSEAL_NATS_STREAM=AUDIT_1", "TAILSEAL_NATS_REPLICAS=3", "TAILSEAL_NATS_DUPLICATE_WINDOW=1s"},
		{"TAILSEAL_NATS_URL=wss://nats.example.com", "TAILSEAL_NATS_NKEY_FILE=/etc/tailseal/nats.nk"},
		{"TAILSEAL_NATS_URL=127.0.0.1:4222", "TAILSEAL_NATS_TOKEN=s3cr3t", "TAILSEAL_NATS_REPLICAS=5"},
		{"TAILSEAL_NATS_TOKEN=", "TAILSEAL_NATS_CREDS_FILE="}, // the Kubernetes Secret's empty keys: the sink is off
		{"TAILSEAL_ALERT_THRESHOLD=10", "TAILSEAL_ALERT_WINDOW=4s", "TAILSEAL_ALERT_COOLDOWN=0s"},
		{"TAILSEAL_ALERTMANAGER_URL=http://alertmanager-0.alertmanager:9093,https://user:pw@am.example.com/alertmanager/"},
		{"TAILSEAL_ALERT_LINK=https://grafana.example.com/d/tailseal?var-origin={origin}&orgId=1"},
		{"TAILSEAL_METRIC_TYPES=error, lead_ingested,performance"},
		{"TAILSEAL_DRAIN_TIMEOUT=0"}, {"TAILSEAL_DRAIN_TIMEOUT=2m30s"},
		{"TAILSEAL_PERF_DEGRADATION_FACTOR=0"}, {"TAILSEAL_PERF_DEGRADATION_FACTOR=1.5"},
		{"TAILSEAL_LOG_LEVEL=debug"}, {"TAILSEAL_LOG_LEVEL=WARNING"},
		{"TAILSEAL_NATS_URL=nats://10.0.0.1:4222, tls://nats.example.com:4222,127.0.0.1:4222", "TAILSEAL_NATS_TOKEN=s3cr3t",
			"TAILSEAL_NATS_CA_FILE=/etc/ca.pem", "TAILSEAL_NATS_STREAM=AUDIT_2", "TAILSEAL_COLLECT_CONSUMER=collect-eu_1"},
		{"TAILSEAL_NATS_URL=wss://nats.example.com", "TAILSEAL_NATS_CREDS_FILE=/etc/user.creds", "TAILSEAL_COLLECT_BATCH=1",
			"TAILSEAL_COLLECT_ACK_WAIT=5s", "TAILSEAL_COLLECT_PARTITIONS=4", "TAILSEAL_COLLECT_PARTITION=3"},
		{"TAILSEAL_WITNESS_URLS=http://127.0.0.1:7380,https://witness.example/w2", "TAILSEAL_WITNESS_KEYS=" + witnessKey + "\n" + witnessKey},
		{"TAILSEAL_WITNESS_KEYS=" + witnessKey + "," + witnessKey, "TAILSEAL_WITNESS_QUORUM=1"},
	}
	for _, env := range tests {
		t.Run(strings.Join(env, " "), func(t *testing.T) {
			setenv(t, env...)
			if _, err := Load(); err != nil {
				t.Error(err)
			}
		})
	}
}

// Alertmanager URLs can carry credentials, so they may come from a file,
// one a line or comma-separated, but not from both.
func TestAlertmanagerURLFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "am")
	os.WriteFile(path, []byte("http://am-0:9093\nhttp://am-1:9093\n"), 0o600)
	t.Setenv("TAILSEAL_ALERTMANAGER_URL_FILE", path)
	c, err := Load()
	if err != nil || strings.Join(c.AlertmanagerURLs, " ") != "http://am-0:9093 http://am-1:9093" {
		t.Fatalf("got %q, %v", c.AlertmanagerURLs, err)
	}
	t.Setenv("TAILSEAL_ALERTMANAGER_URL", "http://am-2:9093")
	if _, err := Load(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not both") {
		t.Errorf("value and file both set: %v", err)
	}
}

func TestEventTypeLabels(t *testing.T) {
	if got := (&Config{}).EventTypeLabels(); got != nil {
		t.Errorf("unset: %q, want nil (the first types seen)", got)
	}
	if got := (&Config{MetricTypes: []string{" error", "lead_ingested ", "error"}}).EventTypeLabels(); strings.Join(got, ",") != "error,lead_ingested" {
		t.Errorf("got %q", got)
	}
}

func TestPhoneRegions(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.PhoneRegions(), ","); got != strings.Join(pii.DefaultPhoneRegions, ",") {
		t.Errorf("default regions %s, want pii's %v", got, pii.DefaultPhoneRegions)
	}
	setenv(t, "TAILSEAL_PII_PHONE_REGIONS=none")
	if c, err = Load(); err != nil || c.PhoneRegions() == nil || len(c.PhoneRegions()) != 0 {
		t.Errorf("none: %v, %#v", err, c)
	}
	setenv(t, "TAILSEAL_PII_PHONE_REGIONS= br ,jp")
	if c, err = Load(); err != nil || strings.Join(c.PhoneRegions(), ",") != "BR,JP" {
		t.Errorf("br, jp: %v, %v", err, c.PhoneRegions())
	}
}

// The largest accepted values convert without wrapping around: a retention
// that overflowed would delete every rotated segment at start.
func TestNoOverflow(t *testing.T) {
	c := Config{RetentionDays: MaxRetentionDays, SegmentMaxMB: MaxSegmentMB}
	if got := c.Retention(); got < 100*365*24*time.Hour {
		t.Errorf("Retention() = %v for %d days", got, MaxRetentionDays)
	}
	if got := c.SegmentMaxBytes(); got != 1<<40 {
		t.Errorf("SegmentMaxBytes() = %d for %d MB", got, MaxSegmentMB)
	}
}

func TestSecretFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pii.key")
	os.WriteFile(path, []byte("  "+hexKey+"\n"), 0o600)
	t.Setenv("TAILSEAL_PII_KEY_FILE", path)
	c, err := Load()
	if err != nil || c.PIIKey != hexKey {
		t.Fatalf("got %q, %v", c.PIIKey, err)
	}
	t.Setenv("TAILSEAL_PII_KEY", hexKey)
	if _, err := Load(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not both") {
		t.Errorf("value and file both set: %v", err)
	}
	// A bad key in a file: named by its variable, its content not shown.
	os.WriteFile(path, []byte("sEcReT\n"), 0o600)
	t.Setenv("TAILSEAL_PII_KEY", "")
	if msg := errString(Load()); !strings.Contains(msg, "TAILSEAL_PII_KEY: bad key") || strings.Contains(msg, "sEcReT") {
		t.Errorf("bad key in a file: %q", msg)
	}
}

func errString(_ *Config, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestPIIMode(t *testing.T) {
	for name, want := range map[string]pii.Mode{"hash": pii.Hash, "Redact": pii.Redact, "mask": pii.Mask, "OFF": pii.Off, "hush": pii.Hash} {
		if got := (&Config{PIIMode: name}).PII(); got != want {
			t.Errorf("PII() for %q = %v, want %v", name, got, want)
		}
	}
}

// TAILSEAL_NATS_URL is split into servers, trimmed; unset is none.
func TestNATSServers(t *testing.T) {
	setenv(t, "TAILSEAL_NATS_URL=nats://a.example.com:4222, tls://b.example.com:4222")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.NATSServers(); len(got) != 2 || got[0] != "nats://a.example.com:4222" || got[1] != "tls://b.example.com:4222" {
		t.Errorf("servers %q", got)
	}
	if got := (&Config{}).NATSServers(); got != nil {
		t.Errorf("servers of an unset variable: %q", got)
	}
}

// TAILSEAL_COMPRESSION is given to the store in lower case, the names
// store.Compression takes (cmd/tailseal TestZstdThenGzip runs the agent
// on it).
func TestStoreCompression(t *testing.T) {
	for in, want := range map[string]string{"gzip": "gzip", "ZSTD": "zstd", "Zstd": "zstd"} {
		if got := (&Config{Compression: in}).StoreCompression(); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/pii"
	"golang.org/x/mod/sumdb/note"
)

// Error is every problem found in a configuration, each naming its
// variable. errors.Is(err, ErrInvalid) holds, and so does errors.Is for a
// problem's own cause (a secret file that does not exist, say).
type Error struct {
	Problems []error
}

// Error lists the problems on one line, "; "-separated, so that a log
// line or a terminal shows them all.
func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return ErrInvalid.Error() + ": " + strings.Join(msgs, "; ")
}

// Unwrap gives ErrInvalid and then the problems.
func (e *Error) Unwrap() []error { return append([]error{ErrInvalid}, e.Problems...) }

// Upper bounds, where a larger value would break an arithmetic conversion
// or an allocation rather than just be unusual.
const (
	// MaxRetentionDays keeps RetentionDays × 24h far inside time.Duration
	// (about 106,000 days): 100 years.
	MaxRetentionDays = 36500
	// MaxSegmentMB keeps SegmentMaxMB << 20 far inside int64: 1 TiB.
	MaxSegmentMB = 1 << 20
	// MaxLineBytes keeps a stored record (the line plus its envelope and
	// pseudonyms) below the line limit of the store's segment reader
	// (store.MaxLineBytes), and the tailer's MaxLine + buffer size inside
	// an int: 16 MiB.
	MaxLineBytes = 16 << 20
	// MaxMetricTypes bounds TAILSEAL_METRIC_TYPES: each type is a series
	// of tailseal_events_by_type_total.
	MaxMetricTypes = 100
)

// DefaultMetricTypes is how many distinct event types
// tailseal_events_by_type_total counts under their own label when
// TAILSEAL_METRIC_TYPES is empty: the first ones seen.
const DefaultMetricTypes = 20

// SMTP TLS modes (TAILSEAL_SMTP_TLS); sinks/email maps them to go-mail
// policies.
const (
	SMTPTLSMandatory     = "mandatory"     // STARTTLS required (the default)
	SMTPTLSImplicit      = "implicit"      // TLS from the first byte, port 465
	SMTPTLSOpportunistic = "opportunistic" // STARTTLS when offered
	SMTPTLSNone          = "none"          // plain text
)

// problems collects what Validate finds.
type problems []error

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// ints checks lo <= v <= hi; the messages name the variable.
func (p *problems) ints(name string, v, lo, hi int) {
	switch {
	case v < lo:
		p.add("%s must be at least %d", name, lo)
	case v > hi:
		p.add("%s must be at most %d", name, hi)
	}
}

// positive checks that a duration is above zero.
func (p *problems) positive(name string, d time.Duration, example string) {
	if d <= 0 {
		p.add("%s must be positive (for example %s)", name, example)
	}
}

// atLeast checks that a duration is at least min.
func (p *problems) atLeast(name string, d, min time.Duration, hint string) {
	if d < min {
		p.add("%s must be at least %s%s", name, min, hint)
	}
}

// Validate checks the shape of every value (not whether a file exists or
// an address can be bound: that is found out where it is used), collects
// every problem into an *Error, and on success fills derived defaults.
func (c *Config) Validate() error {
	var p problems
	if c.Source == "" {
		p.add("TAILSEAL_SOURCE must not be empty")
	}
	if c.DataDir == "" {
		p.add("TAILSEAL_DATA_DIR must not be empty")
	}
	p.ints("TAILSEAL_SEGMENT_MAX_MB", c.SegmentMaxMB, 1, MaxSegmentMB)
	p.positive("TAILSEAL_SEGMENT_MAX_AGE", c.SegmentMaxAge, "24h")
	if c.RetentionDays < 0 {
		p.add("TAILSEAL_RETENTION_DAYS must be 0 (keep forever) or more")
	} else if c.RetentionDays > MaxRetentionDays {
		p.add("TAILSEAL_RETENTION_DAYS must be at most %d (100 years; 0 keeps forever)", MaxRetentionDays)
	}
	if c.CommitInterval <= 0 || c.CommitInterval > time.Minute {
		p.add("TAILSEAL_COMMIT_INTERVAL must be between 1ns and 1m (for example 5ms)")
	}
	p.ints("TAILSEAL_MAX_LINE_BYTES", c.MaxLineBytes, 1024, MaxLineBytes)
	p.atLeast("TAILSEAL_POLL_INTERVAL", c.PollInterval, 10*time.Millisecond, "")

	c.validateKeys(&p)
	p.atLeast("TAILSEAL_EPOCH", c.Epoch, time.Second, " (default 15m)")
	p.ints("TAILSEAL_CHECKPOINT_EVERY", c.CheckpointEvery, 1, math.MaxInt)
	p.atLeast("TAILSEAL_CHECKPOINT_INTERVAL", c.CheckpointInterval, 100*time.Millisecond, "")
	if c.Origin != "" {
		if err := CheckOrigin(c.Origin); err != nil {
			p.add("TAILSEAL_ORIGIN: %w", err)
		}
	}
	if comp := c.StoreCompression(); comp != "gzip" && comp != "zstd" {
		p.add("TAILSEAL_COMPRESSION must be gzip or zstd (default gzip)")
	}
	// pii.ParseMode owns the names; it reads "" as hash for its library
	// callers, but a variable set to nothing is a mistake here.
	if _, err := pii.ParseMode(c.PIIMode); err != nil || c.PIIMode == "" {
		p.add("TAILSEAL_PII_MODE must be hash, redact, mask or off")
	}
	// Set to nothing, it would turn off national numbers unannounced
	// (E.164 and field rules still apply): that takes "none".
	if regions := c.PhoneRegions(); len(regions) == 0 && !c.noPhoneRegions() {
		p.add("TAILSEAL_PII_PHONE_REGIONS is set but empty: unset it for the default (%s), or set it to none to look for no national phone numbers", strings.Join(pii.DefaultPhoneRegions, ","))
	} else if !c.noPhoneRegions() {
		for i, r := range c.PIIPhoneRegions {
			if r = strings.TrimSpace(r); r != "" && !pii.KnownPhoneRegion(r) {
				p.add("TAILSEAL_PII_PHONE_REGIONS: entry %d (%q) is not a two-letter region code that libphonenumber knows (for example US, DE, FR), or none alone", i+1, r)
			}
		}
	}

	c.validateSinks(&p)
	c.validateNATS(&p)
	p.ints("TAILSEAL_ALERT_THRESHOLD", c.AlertThreshold, 1, math.MaxInt)
	p.atLeast("TAILSEAL_ALERT_WINDOW", c.AlertWindow, time.Second, "")
	if c.AlertCooldown < 0 {
		p.add("TAILSEAL_ALERT_COOLDOWN must not be negative")
	}
	if f := c.PerfDegradationFactor; math.IsNaN(f) || math.IsInf(f, 0) || f != 0 && f <= 1 {
		p.add("TAILSEAL_PERF_DEGRADATION_FACTOR must be a number above 1 (or 0 to turn the rule off)")
	}

	if len(c.MetricTypes) > MaxMetricTypes {
		p.add("TAILSEAL_METRIC_TYPES names %d types; at most %d (each is a series; the rest are counted as other)", len(c.MetricTypes), MaxMetricTypes)
	}
	for i, typ := range c.MetricTypes {
		if strings.TrimSpace(typ) == "" {
			p.add("TAILSEAL_METRIC_TYPES: entry %d is empty", i+1)
		}
	}
	if c.Listen != "" {
		if _, err := hostPort(c.Listen, 0); err != nil {
			p.add("TAILSEAL_LISTEN %q: %w (or empty to turn the endpoint off)", c.Listen, err)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		p.add("TAILSEAL_LOG_LEVEL must be debug, info, warn or error")
	}
	if len(p) > 0 {
		return &Error{Problems: p}
	}
	c.Source = filepath.Clean(c.Source)
	c.DataDir = filepath.Clean(c.DataDir)
	return nil
}

// EventTypeLabels is TAILSEAL_METRIC_TYPES trimmed, without repeats; nil
// when it is empty (the first DefaultMetricTypes types seen are counted).
func (c *Config) EventTypeLabels() []string {
	var types []string
	for _, t := range c.MetricTypes {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types
}

// PhoneRegions is TAILSEAL_PII_PHONE_REGIONS for pii.Options.PhoneRegions:
// upper case, without empty entries, and not nil (nil would mean pii's
// defaults); "none" is none.
func (c *Config) PhoneRegions() []string {
	regions := []string{}
	if c.noPhoneRegions() {
		return regions
	}
	for _, r := range c.PIIPhoneRegions {
		if r = strings.ToUpper(strings.TrimSpace(r)); r != "" {
			regions = append(regions, r)
		}
	}
	return regions
}

// noPhoneRegions reports whether TAILSEAL_PII_PHONE_REGIONS is "none".
func (c *Config) noPhoneRegions() bool {
	return len(c.PIIPhoneRegions) == 1 && strings.EqualFold(strings.TrimSpace(c.PIIPhoneRegions[0]), "none")
}

// PII is the anonymization mode that TAILSEAL_PII_MODE names. Validate
// refuses any other name; a Config that skipped Validate gets the default,
// Hash, for an unknown one.
func (c *Config) PII() pii.Mode {
	m, err := pii.ParseMode(c.PIIMode)
	if err != nil {
		return pii.Hash
	}
	return m
}

// validateKeys checks the key material's shape. Key values are secrets:
// the messages never repeat them.
func (c *Config) validateKeys(p *problems) {
	for _, k := range []struct{ name, value string }{
		{"TAILSEAL_HMAC_KEY", c.HMACKey}, {"TAILSEAL_VERIFY_KEY", c.VerifyKey}, {"TAILSEAL_PII_KEY", c.PIIKey},
	} {
		if k.value == "" {
			continue
		}
		if _, err := signer.ParseHexKey(k.value); err != nil {
			p.add("%s: %w", k.name, err)
		}
	}
	if c.CheckpointKey != "" {
		// note's errors name no part of the key, but keep to a fixed text.
		if _, err := note.NewSigner(c.CheckpointKey); err != nil {
			p.add("TAILSEAL_CHECKPOINT_KEY is not a signed-note signer key (PRIVATE+KEY+name+hash+base64)")
		}
	}
	if c.VerifyRecipient != "" {
		// age's errors quote the value, which may be the identity pasted
		// by mistake: the messages never repeat it.
		switch _, err := signer.ParseRecipient(c.VerifyRecipient); {
		case strings.Contains(strings.ToUpper(c.VerifyRecipient), "AGE-SECRET-KEY-"):
			p.add("TAILSEAL_VERIFY_RECIPIENT holds an age identity (AGE-SECRET-KEY-1…), the auditor's secret: give its recipient instead " +
				"(the age1… on the \"# public key:\" line that `tailseal keygen --age` writes), and keep the identity off this host")
		case err != nil:
			p.add("TAILSEAL_VERIFY_RECIPIENT is not an age recipient (one age1… or age1pq1… key, from `tailseal keygen --age` or age-keygen)")
		}
		if c.HMACKey != "" {
			p.add("TAILSEAL_VERIFY_RECIPIENT and TAILSEAL_HMAC_KEY exclude each other: a static key is configured, not sealed")
		}
	}
	if c.Verifier != "" {
		// A trusted list: keys separated by commas or newlines (one per
		// line in TAILSEAL_VERIFIER_FILE), # comment lines. A verifier key
		// is public: its error may say what is wrong.
		vs, err := signer.ParseVerifiers(c.Verifier)
		switch {
		case err != nil && !strings.ContainsAny(strings.TrimSpace(c.Verifier), ",\n"):
			p.add("TAILSEAL_VERIFIER is not a signed-note verifier key (name+hash+base64): %w", errors.Unwrap(err))
		case err != nil:
			p.add("TAILSEAL_VERIFIER: %w: not a signed-note verifier key (name+hash+base64; several separated by commas or newlines)", err)
		case len(vs) == 0:
			p.add("TAILSEAL_VERIFIER holds no key (name+hash+base64; several separated by commas or newlines)")
		}
	}
	c.validateWitnesses(p)
}

// validateWitnesses checks the witness variables: a key for each URL, in
// the same order, and a quorum that can be met.
func (c *Config) validateWitnesses(p *problems) {
	keys, err := signer.ParseWitnessKeys(c.WitnessKeys)
	if err != nil {
		p.add("TAILSEAL_WITNESS_KEYS: %w (from the witness: litewitness logs it as its verifier key)", err)
		return
	}
	for i, u := range c.WitnessURLs {
		if !httpURL(u) {
			p.add("TAILSEAL_WITNESS_URLS: entry %d is not an http or https URL", i+1)
		}
	}
	switch {
	case len(c.WitnessURLs) > 0 && len(keys) != len(c.WitnessURLs):
		p.add("TAILSEAL_WITNESS_URLS has %d witnesses and TAILSEAL_WITNESS_KEYS %d keys: give each witness's cosignature key, in the same order", len(c.WitnessURLs), len(keys))
	case c.WitnessQuorum < 0 || c.WitnessQuorum > len(keys):
		p.add("TAILSEAL_WITNESS_QUORUM is %d: it counts witnesses of TAILSEAL_WITNESS_KEYS (%d), 0 for all of them", c.WitnessQuorum, len(keys))
	}
}

// Witnesses returns the witness cosignature verifier keys (checked by
// Validate) and the quorum a checkpoint needs: WitnessQuorum, or all.
func (c *Config) Witnesses() ([]note.Verifier, int) {
	keys, _ := signer.ParseWitnessKeys(c.WitnessKeys)
	q := c.WitnessQuorum
	if q == 0 {
		q = len(keys)
	}
	return keys, q
}

// validateSinks checks the webhooks and the alert channels. URLs carry
// tokens: the messages never repeat them.
func (c *Config) validateSinks(p *problems) {
	for i, u := range c.WebhookURLs {
		if !httpURL(u) {
			p.add("TAILSEAL_WEBHOOK_URLS: entry %d is not an http or https URL", i+1)
		}
	}
	if c.WebhookSecret != "" {
		if _, err := ParseWebhookSecret(c.WebhookSecret); err != nil {
			p.add("TAILSEAL_WEBHOOK_SECRET: %w", err)
		}
	}
	if strings.ContainsFunc(c.WebhookToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// It goes into an Authorization header, where every request would fail.
		p.add("TAILSEAL_WEBHOOK_TOKEN must not contain spaces or control characters")
	}
	p.ints("TAILSEAL_WEBHOOK_BATCH", c.WebhookBatch, 1, math.MaxInt)
	p.ints("TAILSEAL_WEBHOOK_BATCH_BYTES", c.WebhookBatchBytes, 1024, math.MaxInt)
	p.positive("TAILSEAL_WEBHOOK_BATCH_AGE", c.WebhookBatchAge, "1s")
	p.positive("TAILSEAL_HTTP_TIMEOUT", c.HTTPTimeout, "10s")
	p.atLeast("TAILSEAL_RETRY_MAX_WAIT", c.RetryMaxWait, time.Second, "")
	if c.DrainTimeout < 0 {
		p.add("TAILSEAL_DRAIN_TIMEOUT must not be negative (0 stops without waiting for the sinks)")
	}
	for _, s := range []struct{ name, url string }{
		{"TAILSEAL_SLACK_WEBHOOK", c.SlackWebhook}, {"TAILSEAL_DISCORD_WEBHOOK", c.DiscordWebhook},
	} {
		if s.url != "" && !httpURL(s.url) {
			p.add("%s is not an http or https URL", s.name)
		}
	}

	for i, u := range c.AlertmanagerURLs {
		if msg := alertmanagerURL(u); msg != "" {
			p.add("TAILSEAL_ALERTMANAGER_URL: entry %d %s", i+1, msg)
		}
	}
	if c.AlertLink != "" && !httpURL(strings.ReplaceAll(c.AlertLink, "{origin}", "origin")) {
		p.add("TAILSEAL_ALERT_LINK is not an http or https URL")
	}

	switch strings.ToLower(c.SMTPTLS) {
	case SMTPTLSMandatory, SMTPTLSImplicit, SMTPTLSOpportunistic, SMTPTLSNone:
	default:
		p.add("TAILSEAL_SMTP_TLS must be mandatory, implicit, opportunistic or none")
	}
	if c.SMTPAddr == "" {
		return
	}
	if host, err := hostPort(c.SMTPAddr, 1); err != nil {
		p.add("TAILSEAL_SMTP_ADDR %q: %w", c.SMTPAddr, err)
	} else if host == "" {
		p.add("TAILSEAL_SMTP_ADDR %q: want host:port with a host", c.SMTPAddr)
	}
	if c.SMTPFrom == "" || len(c.SMTPTo) == 0 {
		p.add("TAILSEAL_SMTP_ADDR needs TAILSEAL_SMTP_FROM and TAILSEAL_SMTP_TO")
	}
	if c.SMTPFrom != "" {
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			p.add("TAILSEAL_SMTP_FROM %q is not an email address", c.SMTPFrom)
		}
	}
	for i, to := range c.SMTPTo {
		if _, err := mail.ParseAddress(to); err != nil {
			p.add("TAILSEAL_SMTP_TO: entry %d (%q) is not an email address", i+1, to)
		}
	}
}

// alertmanagerURL says what is wrong with an Alertmanager base URL, ""
// when nothing is. It may carry credentials: the message never repeats it.
func alertmanagerURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !httpURL(raw):
		return "is not an http or https URL"
	case u.RawQuery != "" || u.Fragment != "":
		return "has a query or a fragment; give the base URL, as Prometheus's alerting configuration does"
	case strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/api/v2/alerts") || strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/api/v1/alerts"):
		return "ends in the API path; give the base URL (for example http://alertmanager:9093): the agent adds /api/v2/alerts"
	}
	return ""
}

// MaxNATSReplicas is JetStream's largest replica count.
const MaxNATSReplicas = 5

// validateNATS checks the JetStream sink. The token is a secret and a
// URL could carry one: the messages repeat neither.
func (c *Config) validateNATS(p *problems) {
	for i, u := range strings.Split(c.NATSURL, ",") {
		if c.NATSURL == "" {
			break
		}
		if err := checkNATSURL(u); err != nil {
			p.add("TAILSEAL_NATS_URL: entry %d %w", i+1, err)
		}
	}
	auth := []string{}
	for _, a := range []struct{ name, value string }{
		{"TAILSEAL_NATS_CREDS_FILE", c.NATSCredsFile}, {"TAILSEAL_NATS_NKEY_FILE", c.NATSNKeyFile}, {"TAILSEAL_NATS_TOKEN", c.NATSToken},
	} {
		if a.value != "" {
			auth = append(auth, a.name)
		}
	}
	if len(auth) > 1 {
		p.add("%s: set one way to authenticate to NATS, not %d", strings.Join(auth, ", "), len(auth))
	}
	if c.NATSURL == "" {
		if c.NATSCAFile != "" {
			auth = append(auth, "TAILSEAL_NATS_CA_FILE")
		}
		for _, name := range auth {
			p.add("%s is set but TAILSEAL_NATS_URL is not: set the servers to turn the JetStream sink on, or unset it", name)
		}
	}
	if n := c.NATSStream; n == "" || len(n) > 255 || strings.ContainsFunc(n, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(".*>/\\", r)
	}) {
		p.add("TAILSEAL_NATS_STREAM must be a JetStream stream name: 1 to 255 bytes without spaces, '.', '*', '>', '/' or '\\' (default TAILSEAL)")
	}
	p.ints("TAILSEAL_NATS_REPLICAS", c.NATSReplicas, 1, MaxNATSReplicas)
	p.atLeast("TAILSEAL_NATS_DUPLICATE_WINDOW", c.NATSDuplicateWindow, 100*time.Millisecond, " (default 2m)")
	if strings.ContainsFunc(c.NATSToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.add("TAILSEAL_NATS_TOKEN must not contain spaces or control characters")
	}
	// tailseal collect's own.
	if err := natsName(c.CollectConsumer); err != nil {
		p.add("TAILSEAL_COLLECT_CONSUMER: %w", err)
	}
	p.ints("TAILSEAL_COLLECT_BATCH", c.CollectBatch, 1, MaxCollectBatch)
	p.atLeast("TAILSEAL_COLLECT_ACK_WAIT", c.CollectAckWait, time.Second, " (default 1m)")
	p.ints("TAILSEAL_COLLECT_PARTITIONS", c.CollectPartitions, 1, MaxCollectPartitions)
	if c.CollectPartition < 0 || c.CollectPartitions >= 1 && c.CollectPartition >= c.CollectPartitions {
		p.add("TAILSEAL_COLLECT_PARTITION must be from 0 to TAILSEAL_COLLECT_PARTITIONS-1 (%d)", c.CollectPartitions-1)
	}
}

// checkNATSURL says what is wrong with one server of TAILSEAL_NATS_URL:
// nats://, tls://, ws:// or wss:// (or a bare host:port) with a host and
// no user information, which would reach logs and errors.
func checkNATSURL(raw string) error {
	if raw = strings.TrimSpace(raw); raw == "" {
		return errors.New("is empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Hostname() == "":
		return errors.New("is not a NATS server URL (nats://host:4222, tls://host:4222 or host:port)")
	case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
		return errors.New("must use nats://, tls://, ws:// or wss://")
	case u.User != nil:
		return errors.New("carries credentials: give them in TAILSEAL_NATS_CREDS_FILE, TAILSEAL_NATS_NKEY_FILE or TAILSEAL_NATS_TOKEN(_FILE) instead, so that they never reach a log")
	}
	return nil
}

func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// hostPort checks "host:port" with a numeric port from minPort to 65535
// and returns the host, which may be empty (for a listener: every
// interface).
func hostPort(addr string, minPort int) (host string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", errors.New("want host:port, for example 127.0.0.1:9464")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 {
		return "", fmt.Errorf("the port must be a number from %d to 65535", minPort)
	}
	return host, nil
}

// ParseWebhookSecret reads a Standard Webhooks secret: "whsec_" and at
// least 24 bytes in standard base64. This is the one home of that format:
// Validate checks it and sinks/webhook signs with the key it returns.
func ParseWebhookSecret(s string) ([]byte, error) {
	raw, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("a webhook secret starts with whsec_ (Standard Webhooks)")
	}
	k, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(k) < 24 {
		return nil, errors.New("a webhook secret is whsec_ and at least 24 bytes in base64")
	}
	return k, nil
}

// CheckOrigin says what is wrong with an origin: it is the first line of
// every checkpoint and names the store in webhooks, alerts and the fleet,
// so it is 1 to 255 bytes of UTF-8 without spaces or control characters
// (a host or pod name, or a schema-less URL such as example.com/app).
func CheckOrigin(origin string) error {
	switch {
	case origin == "":
		return errors.New("an origin is not empty")
	case len(origin) > 255:
		return fmt.Errorf("an origin is at most 255 bytes, not %d", len(origin))
	case !utf8.ValidString(origin):
		return errors.New("an origin is UTF-8 text")
	case strings.ContainsFunc(origin, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		// Cf: zero-width and bidirectional controls, which would make one
		// origin look like another in alerts and terminals.
		return fmt.Errorf("an origin has no spaces, control or invisible formatting characters: %+q "+
			"(a store named so before this check keeps its origin when TAILSEAL_ORIGIN is unset)", origin)
	}
	return nil
}

// Bounds of the collector's settings.
const (
	// MaxCollectBatch bounds one fetch (JetStream's own limit on a pull
	// request's batch is far above; memory is the concern here).
	MaxCollectBatch = 100000
	// MaxCollectPartitions bounds how many collectors share the fleet.
	MaxCollectPartitions = 1024
)

// CheckCollect says what `tailseal collect` needs beyond what Validate
// checks: a NATS server to consume from.
func (c *Config) CheckCollect() error {
	if c.NATSURL == "" {
		return &Error{Problems: []error{errors.New("TAILSEAL_NATS_URL must name the NATS servers to collect from (for example nats://127.0.0.1:4222)")}}
	}
	return nil
}

// natsName checks a JetStream stream or consumer name: not empty, at most
// 255 bytes, none of the characters NATS reserves.
func natsName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > 255:
		return errors.New("at most 255 bytes")
	case strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) || !unicode.IsPrint(r)
	}):
		return fmt.Errorf("%q has a space, a control character or one of . * > / \\", name)
	}
	return nil
}

package alert

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Rules.
const (
	RuleErrorThreshold = "error_threshold"
	RulePerformance    = "performance:" // and the operation's name
)

// Severities, for routing (Alertmanager's severity label).
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// Severity is critical for the error threshold (the application fails)
// and warning for a slow operation.
func (a Alert) Severity() string {
	if strings.HasPrefix(a.Rule, RulePerformance) {
		return SeverityWarning
	}
	return SeverityCritical
}

// Fact names, as the channels label them.
const (
	FactOrigin = "Origin"
	FactHost   = "Host"
	FactRule   = "Rule"
	FactStatus = "Status"
	FactCount  = "Count"
	FactWindow = "Window"
	FactFirst  = "First event"
	FactLast   = "Last event"
	FactSince  = "Started" // when the rule began to fire
	FactLink   = "Link"
)

// Fact is one named fact of an alert.
type Fact struct{ Name, Value string }

// Facts say where and what, in the order every channel shows them: the
// origin and the host, the rule and its status, the count and the
// window, the first and last event counted (for a resolved alert, those
// of the time it fired), when it began to fire, and the link. A fact that
// is unknown (no event timestamps, no link configured) is left out.
func (a Alert) Facts() []Fact {
	count := strconv.Itoa(a.Count)
	if a.AtLeast {
		count = "at least " + count
	}
	facts := []Fact{{FactOrigin, a.Origin}, {FactHost, a.Host}, {FactRule, a.Rule}, {FactStatus, a.Status},
		{FactCount, count}, {FactWindow, a.Window}, {FactFirst, a.First}, {FactLast, a.Last}, {FactSince, ""}, {FactLink, a.Link}}
	if !a.Since.IsZero() {
		facts[8].Value = a.Since.UTC().Format(time.RFC3339)
	}
	out := facts[:0]
	for _, f := range facts {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	return out
}

// link is the configured link with {origin} replaced by the origin,
// query-escaped (a dashboard's variable, a runbook's anchor).
func link(template, origin string) string {
	return strings.ReplaceAll(template, "{origin}", url.QueryEscape(origin))
}

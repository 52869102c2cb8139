package record

import (
	"math"
	"strconv"
)

// Detail keys that readers look for in application events, first match
// wins: what a performance event timed and how long, what an error was.
var (
	OperationKeys = []string{"operation", "op", "name"}
	DurationKey   = "duration_ms"
	ErrorTypeKeys = []string{"error_type", "exception", "error_class", "type"}
	MessageKeys   = []string{"error_message", "message", "error", "msg"}
	TracebackKeys = []string{"traceback", "stack_trace", "stacktrace", "stack"}
)

// FirstString returns the value of the first of keys in the JSON object obj
// that holds a non-empty string, decoded.
func FirstString(obj []byte, keys []string) string {
	for _, k := range keys {
		if v := Field(obj, k); len(v) > 2 && v[0] == '"' {
			return Text(v[1 : len(v)-1])
		}
	}
	return ""
}

// Duration is the finite number in details.duration_ms.
func Duration(details []byte) (float64, bool) {
	d, err := strconv.ParseFloat(string(Field(details, DurationKey)), 64)
	return d, err == nil && !math.IsNaN(d) && !math.IsInf(d, 0)
}

// Operation names what a performance event timed: details.operation (or
// op, name), else the workflow.
func (h *Head) Operation() string {
	if op := FirstString(h.Details, OperationKeys); op != "" {
		return op
	}
	return Text(h.Workflow)
}

// Percentile is the nearest-rank percentile of sorted values: the smallest
// value with at least p% of the values at or below it. Exact, no sketch.
// `tailseal performance` and the alert rules report this one.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

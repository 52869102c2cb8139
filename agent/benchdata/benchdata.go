// Package benchdata owns the realistic audit lines the benchmarks ingest,
// so that the in-process and end-to-end benchmarks measure the same input.
package benchdata

import "fmt"

var types = []string{"lead_ingested", "crm_write", "email_sent", "workflow_started", "performance", "error"}

// Line returns the n-th line (no newline): mixed event types, personal data
// (email, phone, client IP) in half of them, one in a thousand malformed.
func Line(n int) string {
	if n%1000 == 999 {
		return fmt.Sprintf("WARN plain text line %d from a misconfigured logger", n)
	}
	details := fmt.Sprintf(`"source":"web_form","campaign":"spring_2026","duration_ms":%d,"status":"ok"`, n%900+20)
	if n%2 == 0 {
		details = fmt.Sprintf(`"source":"web_form","email":"lead%d@example.com","phone":"+1 555 %03d %04d","ip":"203.0.%d.%d","duration_ms":%d`,
			n%50000, n%1000, n%10000, n%256, (n/256)%256, n%900+20)
	}
	return fmt.Sprintf(`{"timestamp":"2026-02-04T20:%02d:%02d.%06dZ","event_type":"%s","actor":"system","lead_id":"LEAD-%07d","workflow":"sales_lead_management","details":{%s}}`,
		n/60000%60, n/1000%60, n%1000000, types[n%len(types)], n, details)
}

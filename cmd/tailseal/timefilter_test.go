package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// A relative window ends now: an event dated in the year 9999 is not "in
// the last day"; an explicit --until reaches it; a window too long for a
// duration is a usage error, not a wrap-around.
func TestTimeFiltersAtTheEdges(t *testing.T) {
	e := newEnv(t)
	p := e.start()
	now := time.Now().UTC()
	lines := []string{
		fmt.Sprintf(`{"timestamp":%q,"event_type":"recent","lead_id":"L1"}`, now.Add(-time.Hour).Format(time.RFC3339)),
		`{"timestamp":"9999-01-01T00:00:00Z","event_type":"future","lead_id":"L2"}`,
		fmt.Sprintf(`{"timestamp":%q,"event_type":"old","lead_id":"L3"}`, now.AddDate(0, 0, -3).Format(time.RFC3339)),
	}
	if err := os.WriteFile(e.source, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitStored(3)
	p.stop(t)
	types := func(args ...string) string {
		t.Helper()
		out, errOut, code := cli(t, e.dataDir, append([]string{"query", "--json"}, args...)...)
		if code != 0 && code != 1 {
			t.Fatalf("query %v: exit %d: %s", args, code, errOut)
		}
		var got []string
		for _, typ := range []string{"recent", "future", "old"} {
			if strings.Contains(out, `"event_type":"`+typ+`"`) {
				got = append(got, typ)
			}
		}
		return strings.Join(got, ",")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--last", "1d"}, "recent"},
		{[]string{"--last", "7d"}, "recent,old"},
		{[]string{"--since", now.AddDate(0, 0, -1).Format(time.DateOnly)}, "recent,future"},
		{[]string{"--since", "2000-01-01", "--until", "9999-12-31"}, "recent,future,old"},
	} {
		if got := types(c.args...); got != c.want {
			t.Errorf("query %v: %s, want %s", c.args, got, c.want)
		}
	}
	for _, args := range [][]string{{"--last", "100000w"}, {"--last", "9223372036854775807d"}, {"--last", "2562048h"}, {"--last", "1d", "--until", "2030-01-01"}} {
		_, errOut, code := cli(t, e.dataDir, append([]string{"query"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--last") {
			t.Errorf("query %v: exit %d, %q; want exit 2 naming --last", args, code, errOut)
		}
	}
}

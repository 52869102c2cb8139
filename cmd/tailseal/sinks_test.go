package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks/sinkstest"
)

// receiver is a webhook endpoint that verifies Standard Webhooks
// signatures and the origin each body and id names, and fails every third
// request with a 500.
type receiver struct {
	t      *testing.T
	secret []byte
	origin string
	srv    *httptest.Server
	mu     sync.Mutex
	calls  int
	bodies map[string][]byte   // webhook-id -> body
	ids    map[uint64][]string // seq -> ids it arrived under
	lines  map[uint64]string   // seq -> record
}

const hookPath = "/hooks/tok-Zq81x"

func newReceiver(t *testing.T, secret []byte, origin string) *receiver {
	r := &receiver{t: t, secret: secret, origin: origin, bodies: map[string][]byte{}, ids: map[uint64][]string{}, lines: map[uint64]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || int64(len(body)) != req.ContentLength {
		return // the agent was killed while it sent the request: no request came
	}
	id, ts, sig := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	m := hmac.New(sha256.New, r.secret)
	fmt.Fprintf(m, "%s.%s.", id, ts)
	m.Write(body)
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if req.URL.Path != hookPath || sig != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		r.t.Errorf("bad request: path %q, id %q, signature %q", req.URL.Path, id, sig)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls++; r.calls%3 == 0 {
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	if prev, ok := r.bodies[id]; ok && !bytes.Equal(prev, body) {
		r.t.Errorf("webhook-id %s came again with another body", id)
	}
	r.bodies[id] = body
	var batch struct {
		Origin  string   `json:"origin"`
		First   uint64   `json:"first_seq"`
		Last    uint64   `json:"last_seq"`
		Records []string `json:"records"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		r.t.Errorf("body: %v", err)
		return
	}
	wantID := fmt.Sprintf("msg_%s_%d_%d", base64.RawURLEncoding.EncodeToString([]byte(r.origin)), batch.First, batch.Last)
	if batch.Origin != r.origin || id != wantID {
		r.t.Errorf("webhook-id %s, body origin %q; want %s, %q", id, batch.Origin, wantID, r.origin)
	}
	for _, l := range batch.Records {
		seq, _ := record.Seq([]byte(l))
		if old, ok := r.lines[seq]; ok && old != l {
			r.t.Errorf("seq %d arrived with two contents", seq)
		}
		r.lines[seq] = l
		r.ids[seq] = append(r.ids[seq], id)
	}
	// Taken, but answered late: a kill now makes the agent send it again.
	r.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	r.mu.Lock()
}

// Every stored record reaches the webhook byte for byte through kill -9 of
// the agent and a receiver that fails a third of the time; a record comes
// twice only under the same webhook-id.
func TestWebhookThroughKill9(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(secret)
	recv := newReceiver(t, secret, "web-7")
	e := newEnv(t, "TAILSEAL_ORIGIN=web-7", "TAILSEAL_WEBHOOK_URLS="+recv.srv.URL+hookPath, "TAILSEAL_WEBHOOK_SECRET="+whsec,
		"TAILSEAL_WEBHOOK_BATCH=40", "TAILSEAL_WEBHOOK_BATCH_AGE=20ms", "TAILSEAL_RETRY_MAX_WAIT=1s", "TAILSEAL_SEGMENT_MAX_MB=1")
	w := newWriter(t, e.source)
	rng := rand.New(rand.NewPCG(3, 4))
	var stderr []string
	for range 8 {
		p := e.start()
		for range 5 {
			w.write(60)
			time.Sleep(20 * time.Millisecond) // the application's pace
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // a random moment to kill
		p.kill9(t)
		stderr = append(stderr, p.stderr.String())
	}
	p := e.start()
	s := e.waitStored(w.next)
	waitFor(t, "every stored record at the webhook", 60*time.Second, func() bool {
		s = readStore(t, e.dataDir)
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for _, m := range s.meta {
			if _, ok := recv.lines[m.Seq]; !ok {
				return false
			}
		}
		return true
	})
	if _, err := p.stop(t); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	stderr = append(stderr, p.stderr.String())
	recv.mu.Lock()
	defer recv.mu.Unlock()
	dups := 0
	for i, m := range s.meta {
		if recv.lines[m.Seq] != string(s.line[i]) {
			t.Fatalf("seq %d differs at the webhook", m.Seq)
		}
		if ids := recv.ids[m.Seq]; len(ids) > 1 {
			dups++
			for _, id := range ids[1:] {
				if id != ids[0] {
					t.Errorf("seq %d came under webhook-ids %v", m.Seq, ids)
				}
			}
		}
	}
	t.Logf("%d records, %d requests, %d records delivered more than once (same id)", len(s.meta), recv.calls, dups)
	for _, secretText := range []string{hookPath, whsec, "tok-Zq81x"} {
		for _, out := range stderr {
			if strings.Contains(out, secretText) {
				t.Errorf("stderr contains the secret %q", secretText)
			}
		}
	}
}

var alertID = regexp.MustCompile(`alert-[0-9]+`)

// errorLine is an application error event, stamped now.
func errorLine(i int) string {
	return fmt.Sprintf(`{"timestamp":%q,"event_type":"error","lead_id":"LEAD-%d","details":{"error_type":"TimeoutError","message":"CRM timeout %d for lead@example.com"}}`,
		time.Now().UTC().Format(time.RFC3339Nano), i, i)
}

func appendLines(t *testing.T, path string, lines ...string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// alertCursor is the last seq the alert engine evaluated.
func alertCursor(t *testing.T, dataDir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dataDir, "state", "sink-alerts.json"))
	if err != nil {
		return 0
	}
	var c struct{ Delivered uint64 }
	json.Unmarshal(b, &c)
	return c.Delivered
}

// Threshold 10: 25 errors in a second give exactly one alert per channel
// (Slack, Discord, email); kill -9 and a restart inside the cooldown give
// none; after the cooldown, with errors still coming, one more; when they
// stop, one resolved notice.
func TestAlertsThroughKill9(t *testing.T) {
	slackSrv, discordSrv := sinkstest.NewChat(t, false), sinkstest.NewChat(t, true)
	smtpSrv := sinkstest.NewSMTP(t, false)
	e := newEnv(t, "TAILSEAL_ORIGIN=web-7", "TAILSEAL_SLACK_WEBHOOK="+slackSrv.URL(), "TAILSEAL_DISCORD_WEBHOOK="+discordSrv.URL(),
		"TAILSEAL_SMTP_ADDR="+smtpSrv.Addr, "TAILSEAL_SMTP_FROM=tailseal@example.com", "TAILSEAL_SMTP_TO=ops@example.com",
		"TAILSEAL_SMTP_USERNAME=alerts", "TAILSEAL_SMTP_PASSWORD="+sinkstest.Password, "TAILSEAL_SMTP_CA_FILE="+smtpSrv.CAFile,
		"TAILSEAL_ALERT_THRESHOLD=10", "TAILSEAL_ALERT_WINDOW=4s", "TAILSEAL_ALERT_COOLDOWN=8s", "TAILSEAL_RETRY_MAX_WAIT=1s")
	// Alerts are counted by their id: delivery is at least once, and an
	// alert sent again after a crash carries the same id.
	distinct := func(payloads []string) int {
		ids := map[string]bool{}
		for _, p := range payloads {
			ids[alertID.FindString(p)] = true
		}
		return len(ids)
	}
	counts := func() (int, int, int) {
		var s, d, m []string
		for _, b := range slackSrv.Accepted() {
			s = append(s, string(b))
		}
		for _, b := range discordSrv.Accepted() {
			d = append(d, string(b))
		}
		for _, msg := range smtpSrv.Messages() {
			m = append(m, msg.Data)
		}
		return distinct(s), distinct(d), distinct(m)
	}
	want := func(what string, n int) {
		t.Helper()
		waitFor(t, what, 30*time.Second, func() bool {
			s, d, m := counts()
			return s >= n && d >= n && m >= n
		})
		if s, d, m := counts(); s != n || d != n || m != n {
			t.Fatalf("%s: slack %d, discord %d, email %d notifications, want %d each", what, s, d, m, n)
		}
	}
	var stderr []string
	p := e.start()
	waitFor(t, "the alert engine to start", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.dataDir, "state", "sink-alerts.json"))
		return err == nil
	})
	n := 0
	var lines []string
	for range 25 {
		lines = append(lines, errorLine(n))
		n++
	}
	appendLines(t, e.source, lines...)
	want("the first alert", 1)
	firstAt := time.Now()
	waitFor(t, "the first alert recorded as delivered", 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.dataDir, "state", "alerts.json"))
		return bytes.Contains(b, []byte(`"outbox":[]`)) || bytes.Contains(b, []byte(`"outbox":null`))
	})

	// kill -9, restart inside the cooldown, more errors: no second alert.
	p.kill9(t)
	stderr = append(stderr, p.stderr.String())
	p = e.start()
	lines = nil
	for range 10 {
		lines = append(lines, errorLine(n))
		n++
	}
	appendLines(t, e.source, lines...)
	waitFor(t, "the alert engine to evaluate the new errors", 20*time.Second, func() bool {
		s := readStore(t, e.dataDir)
		return len(s.meta) > 0 && alertCursor(t, e.dataDir) >= s.meta[len(s.meta)-1].Seq
	})
	if time.Since(firstAt) >= 8*time.Second {
		t.Fatal("the machine was too slow: the cooldown passed before the check")
	}
	want("no second alert inside the cooldown", 1)

	// Errors keep coming past the cooldown: one reminder.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := n; ; i += 4 {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			appendLines(t, e.source, errorLine(i), errorLine(i+1), errorLine(i+2), errorLine(i+3))
		}
	}()
	want("one reminder after the cooldown", 2)
	close(stop)
	<-done
	// Errors stop: one resolved notice once the window empties.
	want("the resolved notice", 3)
	acc := slackSrv.Accepted()
	var last struct {
		Text string `json:"text"`
	}
	json.Unmarshal(acc[len(acc)-1], &last)
	if !strings.Contains(last.Text, "resolved") || !bytes.Contains(bytes.Join(acc, nil), []byte("still firing")) || !strings.Contains(string(acc[0]), "CRM timeout") {
		t.Errorf("slack got:\n%s", bytes.Join(acc, []byte("\n")))
	}
	// Every alert names the agent: the origin and the host it runs on.
	host, _ := os.Hostname()
	for _, m := range []string{string(acc[0]), string(discordSrv.Accepted()[0]), smtpSrv.Messages()[0].Data} {
		if !strings.Contains(m, "web-7") || !strings.Contains(m, host) {
			t.Errorf("an alert lacks the origin web-7 or the host %s:\n%s", host, m)
		}
	}
	if _, err := p.stop(t); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	stderr = append(stderr, p.stderr.String())
	for _, secretText := range []string{sinkstest.SecretPath, "sEcReT", sinkstest.Password} {
		for _, out := range stderr {
			if strings.Contains(out, secretText) {
				t.Errorf("stderr contains the secret %q", secretText)
			}
		}
	}
}

// A sink URL that is not http(s) stops the agent at start with a clear
// message that does not repeat the URL (it is a secret).
func TestBadSinkURL(t *testing.T) {
	e := newEnv(t, "TAILSEAL_DISCORD_WEBHOOK=discord.com/api/webhooks/1/sEcReT")
	p := e.start()
	err := <-p.done
	p.done <- err
	out := p.stderr.String()
	if code := p.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(out, "TAILSEAL_DISCORD_WEBHOOK is not an http or https URL") || strings.Contains(out, "sEcReT") {
		t.Fatalf("exit %d, stderr:\n%s", code, out)
	}
}

package sinkstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// AlertmanagerBinary is where Debian's prometheus-alertmanager package
// puts the binary; .ci/run installs it.
const AlertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// Alertmanager is a real Prometheus Alertmanager, run as a process on a
// free loopback port with its own configuration and storage in a temporary
// directory, clustering off. Its one route sends every group, resolved
// ones too, to a webhook of the test: what Alertmanager itself notifies.
type Alertmanager struct {
	URL string // the base URL, as TAILSEAL_ALERTMANAGER_URL takes it

	t     testing.TB
	mu    sync.Mutex
	notes []Notification
}

// AlertmanagerOptions tune the configuration.
type AlertmanagerOptions struct {
	// ResolveTimeout is global.resolve_timeout: how long Alertmanager
	// keeps an alert that came without endsAt firing; 0 is its default, 5m.
	ResolveTimeout time.Duration
	// Port, if set, is the port to listen on (a test that sends before
	// Alertmanager is up picks it with FreePort); 0 picks a free one.
	Port int
}

// AMAlert is an alert as Alertmanager's API (GET /api/v2/alerts) and its
// webhook notifications show it.
type AMAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       json.RawMessage   `json:"status"` // {"state":"active",…} in the API, "firing" or "resolved" in a notification
}

// State is the API's status.state (active, suppressed, unprocessed).
func (a AMAlert) State() string {
	var s struct{ State string }
	json.Unmarshal(a.Status, &s)
	return s.State
}

// Notification is one webhook notification Alertmanager sent.
type Notification struct {
	Status string    `json:"status"` // firing or resolved
	Alerts []AMAlert `json:"alerts"`
}

// NotifiedStatus is a notified alert's status, firing or resolved.
func (a AMAlert) NotifiedStatus() string {
	var s string
	json.Unmarshal(a.Status, &s)
	return s
}

// NewAlertmanager starts one. Without the binary the test fails: CI
// must run against the real thing, never skip it.
func NewAlertmanager(t testing.TB, opt AlertmanagerOptions) *Alertmanager {
	t.Helper()
	bin := AlertmanagerBinary
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Fatalf("no Alertmanager: %s is missing (apt-get install prometheus-alertmanager; .ci/run installs it)", AlertmanagerBinary)
		}
	}
	am := &Alertmanager{t: t}
	hook := httptest.NewServer(http.HandlerFunc(am.serveWebhook))
	t.Cleanup(hook.Close)

	dir := t.TempDir()
	global := ""
	if opt.ResolveTimeout > 0 {
		global = fmt.Sprintf("global:\n  resolve_timeout: %dms\n", opt.ResolveTimeout.Milliseconds())
	}
	conf := global + `route:
  receiver: test
  group_by: [alertname, origin]
  group_wait: 100ms
  group_interval: 300ms
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: ` + hook.URL + `/
        send_resolved: true
`
	confPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// A free port can be taken by another process before Alertmanager
	// binds it: try a few.
	for try := 0; ; try++ {
		port := opt.Port
		if port == 0 {
			port = FreePort(t)
		}
		am.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(bin, "--config.file="+confPath, "--storage.path="+filepath.Join(dir, "data"),
			"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--cluster.listen-address=", "--log.level=warn")
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("alertmanager output:\n%s", out.String())
			}
		})
		if am.waitReady(exited) {
			return am
		}
		if try == 2 || opt.Port != 0 {
			t.Fatalf("alertmanager did not become ready:\n%s", out.String())
		}
		cmd.Process.Kill()
	}
}

// FreePort is a loopback port that nothing listens on now.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady polls /-/ready until it answers 200, the process exits, or
// 20 s pass.
func (am *Alertmanager) waitReady(exited <-chan struct{}) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := http.Get(am.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (am *Alertmanager) serveWebhook(w http.ResponseWriter, r *http.Request) {
	var n Notification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		am.t.Errorf("alertmanager webhook: %v", err)
		return
	}
	am.mu.Lock()
	am.notes = append(am.notes, n)
	am.mu.Unlock()
}

// Alerts are the alerts Alertmanager holds as firing (GET /api/v2/alerts;
// it leaves out the resolved ones).
func (am *Alertmanager) Alerts() []AMAlert {
	am.t.Helper()
	resp, err := http.Get(am.URL + "/api/v2/alerts")
	if err != nil {
		am.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var alerts []AMAlert
	if resp.StatusCode != 200 || json.Unmarshal(body, &alerts) != nil {
		am.t.Fatalf("GET /api/v2/alerts: %d %s", resp.StatusCode, body)
	}
	return alerts
}

// Notified is every alert Alertmanager notified, in order.
func (am *Alertmanager) Notified() []AMAlert {
	am.mu.Lock()
	defer am.mu.Unlock()
	var out []AMAlert
	for _, n := range am.notes {
		out = append(out, n.Alerts...)
	}
	return out
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

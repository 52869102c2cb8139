package nats_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	natssink "github.com/tailseal/tailseal/sinks/nats"
	"github.com/tailseal/tailseal/sinks/nats/natstest"
	"github.com/tailseal/tailseal/sinks/sinkstest"
)

const token = "s3cr3t-T0ken-4f9a"

// The sink authenticates with a token or an NKey seed file and trusts a
// private CA for TLS; a refused token is retried, and never appears in the
// log.
func TestAuthAndTLS(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(t.TempDir(), "tailseal.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, caPEM := sinkstest.SelfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		configure func(*server.Options)
		opt       func(*natssink.Options)
	}{
		{"token", func(o *server.Options) { o.Authorization = token }, func(o *natssink.Options) { o.Token = token }},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, func(o *natssink.Options) { o.NKeyFile = seedFile }},
		{"tls with a private CA", func(o *server.Options) {
			o.TLS, o.TLSConfig = true, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}, func(o *natssink.Options) { o.CAFile = caFile }},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := natstest.StartWith(t, t.TempDir(), c.configure)
			opt := options(srv.URL(), "auth")
			c.opt(&opt)
			st := storeOf(20, "a")
			a := run(t, opt, st, t.TempDir())
			a.waitCursor(t, 20)
		})
	}

	srv := natstest.StartWith(t, t.TempDir(), func(o *server.Options) { o.Authorization = token })
	opt := options(srv.URL(), "auth")
	opt.Token = token + "-wrong"
	a := run(t, opt, storeOf(5, "a"), t.TempDir())
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.logs.String(), "will retry") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	a.stop()
	logs := a.logs.String()
	if !strings.Contains(logs, "resume failed; will retry") || !strings.Contains(strings.ToLower(logs), "authorization") {
		t.Errorf("a refused token is not retried with a reason:\n%s", logs)
	}
	if strings.Contains(logs, token) {
		t.Errorf("the token is in the log:\n%s", logs)
	}
}

// Files that cannot be used are reported when the sink is made, naming
// the variable, before the agent starts.
func TestNewChecksTheFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	for _, c := range []struct {
		opt  natssink.Options
		want string
	}{
		{natssink.Options{CredsFile: filepath.Join(dir, "missing.creds")}, "TAILSEAL_NATS_CREDS_FILE"},
		{natssink.Options{NKeyFile: bad}, "TAILSEAL_NATS_NKEY_FILE"},
		{natssink.Options{CAFile: bad}, "TAILSEAL_NATS_CA_FILE"},
	} {
		if _, err := natssink.New(c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want an error naming %s", c.opt, err, c.want)
		}
	}
}

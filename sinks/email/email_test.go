package email

import (
	"context"
	"errors"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
	"github.com/tailseal/tailseal/sinks/sinkstest"
)

func sample() alert.Alert {
	return alert.Alert{ID: "alert-7", Origin: "web-1", Host: "node-a", Rule: "error_threshold", Status: alert.Firing, Title: "25 errors in 1m0s (threshold 10)",
		Text: "Rule error_threshold is firing.", Count: 25, Window: "1m0s", First: "2026-02-04T20:30:45Z", Last: "2026-02-04T20:31:40Z",
		Recent: []string{"TimeoutError for <email:3f9a1c0b2d4e> & <b>bold</b>"}, Time: time.Now()}
}

func notifier(t *testing.T, srv *sinkstest.SMTP, tlsMode string) *Notifier {
	n, err := New(Options{Addr: srv.Addr, From: "tailseal@example.com", To: []string{"ops@example.com", "sec@example.com"},
		Username: "alerts", Password: sinkstest.Password, TLS: tlsMode, CAFile: srv.CAFile, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), sinkstest.Password) {
		t.Errorf("the SMTP password leaked into an error: %v", err)
	}
}

func TestEmail(t *testing.T) {
	ctx := context.Background()
	t.Run("delivered over STARTTLS with AUTH PLAIN, text and HTML", func(t *testing.T) {
		srv := sinkstest.NewSMTP(t, false)
		if err := notifier(t, srv, "mandatory").Notify(ctx, sample()); err != nil {
			t.Fatal(err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 || !msgs[0].TLS || len(msgs[0].To) != 2 {
			t.Fatalf("messages: %+v", msgs)
		}
		d := msgs[0].Data
		for _, want := range []string{"Subject: [tailseal web-1] firing: 25 errors in 1m0s", "text/plain", "text/html", "X-Tailseal-Alert: alert-7", "&lt;b&gt;bold&lt;/b&gt;"} {
			if !strings.Contains(d, want) {
				t.Errorf("the mail lacks %q:\n%s", want, d)
			}
		}
		if total, clear := srv.Auths(); total != 1 || clear != 0 {
			t.Errorf("%d logins, %d in clear", total, clear)
		}
	})
	t.Run("names the origin in the subject, and the origin and the host once each in both parts", func(t *testing.T) {
		srv := sinkstest.NewSMTP(t, false)
		a := sample()
		a.Origin, a.Host = "origin-Qx7", "host-Rv3"
		if err := notifier(t, srv, "mandatory").Notify(ctx, a); err != nil {
			t.Fatal(err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%d mails", len(msgs))
		}
		subject, parts := readMail(t, msgs[0].Data)
		if want := "[tailseal origin-Qx7] firing: 25 errors in 1m0s (threshold 10)"; subject != want {
			t.Errorf("subject %q, want %q", subject, want)
		}
		if len(parts) != 2 {
			t.Fatalf("parts %v, want text/plain and text/html", slices.Collect(maps.Keys(parts)))
		}
		for typ, body := range parts {
			for _, s := range []string{"origin-Qx7", "host-Rv3"} {
				if n := strings.Count(body, s); n != 1 {
					t.Errorf("%s shows %s %d times, want once:\n%s", typ, s, n, body)
				}
			}
		}
		if text := parts["text/plain"]; !strings.Contains(text, "\nOrigin: origin-Qx7\nHost: host-Rv3\n") {
			t.Errorf("text/plain lacks the Origin and Host lines:\n%s", text)
		}
	})
	t.Run("says where and what, firing and resolved, in both parts, the link a link", func(t *testing.T) {
		for _, status := range []string{alert.Firing, alert.Resolved} {
			srv := sinkstest.NewSMTP(t, false)
			a := sample()
			a.Status, a.AtLeast, a.Since = status, status == alert.Firing, time.Date(2026, 2, 4, 20, 31, 41, 0, time.UTC)
			a.Link = "https://grafana.example.com/d/ts?var-origin=web-1&orgId=1"
			if err := notifier(t, srv, "mandatory").Notify(ctx, a); err != nil {
				t.Fatal(err)
			}
			_, parts := readMail(t, srv.Messages()[0].Data)
			count := "25"
			if a.AtLeast {
				count = "at least 25"
			}
			lines := []string{"Origin: web-1", "Host: node-a", "Rule: error_threshold", "Count: " + count, "Window: 1m0s",
				"First event: 2026-02-04T20:30:45Z", "Last event: 2026-02-04T20:31:40Z", "Started: 2026-02-04T20:31:41Z", "Link: " + a.Link}
			text := parts["text/plain"]
			for _, l := range lines {
				if !strings.Contains(text, "\n"+l+"\n") {
					t.Errorf("%s: text/plain lacks the line %q:\n%s", status, l, text)
				}
			}
			html := parts["text/html"]
			for _, l := range lines[:len(lines)-1] {
				name, value, _ := strings.Cut(l, ": ")
				if !strings.Contains(html, name+":</td><td><code>"+value+"</code>") {
					t.Errorf("%s: text/html lacks %s %q:\n%s", status, name, value, html)
				}
			}
			if !strings.Contains(html, `<a href="https://grafana.example.com/d/ts?var-origin=web-1&amp;orgId=1">`) {
				t.Errorf("%s: text/html lacks the link:\n%s", status, html)
			}
		}
	})
	t.Run("implicit TLS", func(t *testing.T) {
		srv := sinkstest.NewImplicitTLS(t)
		if err := notifier(t, srv, "implicit").Notify(ctx, sample()); err != nil {
			t.Fatal(err)
		}
		if msgs := srv.Messages(); len(msgs) != 1 {
			t.Fatalf("%d mails", len(msgs))
		}
		if total, clear := srv.Auths(); total != 1 || clear != 0 {
			t.Errorf("%d logins, %d in clear", total, clear)
		}
	})
	t.Run("mandatory TLS refuses a server without STARTTLS and sends no password", func(t *testing.T) {
		srv := sinkstest.NewSMTP(t, true)
		err := notifier(t, srv, "mandatory").Notify(ctx, sample())
		if !errors.Is(err, sinks.ErrStopped) {
			t.Fatalf("err %v, want the channel stopped", err)
		}
		noSecret(t, err)
		if total, _ := srv.Auths(); total != 0 || len(srv.Messages()) != 0 {
			t.Fatalf("%d logins and %d mails without TLS", total, len(srv.Messages()))
		}
	})
	t.Run("451 is retried, 550 is dead-lettered", func(t *testing.T) {
		srv := sinkstest.NewSMTP(t, false, 451, 550)
		n := notifier(t, srv, "mandatory")
		err := n.Notify(ctx, sample())
		var perm *sinks.Permanent
		if err == nil || errors.As(err, &perm) || errors.Is(err, sinks.ErrStopped) {
			t.Fatalf("451: err %v, want a temporary error", err)
		}
		noSecret(t, err)
		err = n.Notify(ctx, sample())
		if !errors.As(err, &perm) {
			t.Fatalf("550: err %v, want a permanent error", err)
		}
		noSecret(t, err)
		if err := n.Notify(ctx, sample()); err != nil || len(srv.Messages()) != 1 {
			t.Fatalf("after the script: err %v, %d mails", err, len(srv.Messages()))
		}
	})
	t.Run("bad settings are clear errors", func(t *testing.T) {
		for _, opt := range []Options{{Addr: "nohost", From: "a@b.c", To: []string{"x@y.z"}}, {Addr: "h:25", To: []string{"x@y.z"}}, {Addr: "h:25", From: "a@b.c", To: []string{"x@y.z"}, TLS: "sometimes"}} {
			if _, err := New(opt); err == nil {
				t.Errorf("%+v accepted", opt)
			}
		}
	})
}

// readMail decodes a mail as a mail program would: the subject, and each
// text part by its content type, transfer encoding and CRLF undone.
func readMail(t *testing.T, data string) (subject string, parts map[string]string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	parts = map[string]string{}
	var walk func(header textproto.MIMEHeader, body io.Reader)
	walk = func(header textproto.MIMEHeader, body io.Reader) {
		typ, params, err := mime.ParseMediaType(header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("content type %q: %v", header.Get("Content-Type"), err)
		}
		if strings.HasPrefix(typ, "multipart/") {
			r := multipart.NewReader(body, params["boundary"])
			for {
				p, err := r.NextRawPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header, p)
			}
		}
		if strings.EqualFold(header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		parts[typ] = strings.ReplaceAll(string(b), "\r\n", "\n") // lines as shown
	}
	walk(textproto.MIMEHeader(m.Header), m.Body)
	return subject, parts
}

// Package email sends alerts by SMTP with github.com/wneessen/go-mail:
// TLS mandatory by default, a plain-text and an HTML part, temporary (4xx)
// refusals retried, permanent (5xx) ones dead-lettered.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
	"github.com/wneessen/go-mail"
)

// TLS modes, the values of TAILSEAL_SMTP_TLS (config.Validate checks the
// variable against the same names; a test in cmd/tailseal holds the two
// lists equal).
const (
	TLSMandatory     = "mandatory"     // STARTTLS required (the default)
	TLSImplicit      = "implicit"      // TLS from the first byte, port 465
	TLSOpportunistic = "opportunistic" // STARTTLS when offered
	TLSNone          = "none"          // plain text
)

// Options configure the SMTP relay.
type Options struct {
	Addr     string // host:port
	From     string
	To       []string
	Username string
	Password string
	// TLS: one of the TLS modes below; "" is mandatory.
	TLS     string
	CAFile  string // extra trusted CA (PEM), for an internal relay
	Timeout time.Duration
}

// Notifier sends alerts to the recipients.
type Notifier struct {
	opt    Options
	client *mail.Client
}

// New checks the options and prepares the client (it connects per alert).
func New(opt Options) (*Notifier, error) {
	host, portStr, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		return nil, fmt.Errorf("TAILSEAL_SMTP_ADDR %q: want host:port", opt.Addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("TAILSEAL_SMTP_ADDR %q: bad port", opt.Addr)
	}
	if opt.From == "" || len(opt.To) == 0 {
		return nil, errors.New("email alerts need TAILSEAL_SMTP_FROM and TAILSEAL_SMTP_TO")
	}
	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TAILSEAL_SMTP_CA_FILE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TAILSEAL_SMTP_CA_FILE %s: no PEM certificate", opt.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTLSConfig(tlsConf), mail.WithTimeout(opt.Timeout)}
	switch strings.ToLower(opt.TLS) {
	case "", TLSMandatory:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSOpportunistic:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		return nil, fmt.Errorf("TAILSEAL_SMTP_TLS %q: want mandatory, implicit, opportunistic or none", opt.TLS)
	}
	if opt.Username != "" {
		// PLAIN refuses to send the password over a connection without TLS.
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(opt.Username), mail.WithPassword(opt.Password))
	}
	c, err := mail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return &Notifier{opt: opt, client: c}, nil
}

func (n *Notifier) Name() string { return "email" }

var htmlTmpl = sync.OnceValue(func() *template.Template { return template.Must(template.New("mail").Parse(mailHTML)) })

// The HTML part shows what the plain-text part does: the facts
// (alert.Facts, the link as a link) as a table.
const mailHTML = `<!DOCTYPE html><html><body style="font-family:sans-serif">
<h2 style="margin:0 0 8px">{{.A.Title}}</h2>
<p><strong>{{.A.Status}}</strong> · {{.A.Time.UTC.Format "2006-01-02 15:04:05"}} UTC</p>
<p>{{.A.Text}}</p>
<table style="border-collapse:collapse">{{range .Facts}}
<tr><td style="padding:2px 12px 2px 0;color:#555">{{.Name}}:</td><td><code>{{.Value}}</code></td></tr>{{end}}
{{with .Link}}<tr><td style="padding:2px 12px 2px 0;color:#555">{{.Name}}:</td><td><a href="{{.Value}}">{{.Value}}</a></td></tr>{{end}}
</table>
{{if .A.Recent}}<p>Recent errors (anonymized as stored):</p><ul>{{range .A.Recent}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p style="color:#666;font-size:12px">tailseal · {{.A.ID}}</p>
</body></html>`

// Text is the plain-text part: the title, the status, the text, one
// line per fact (alert.Facts), the recent errors.
func Text(a alert.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s · %s UTC\n\n%s\n\n", a.Title, a.Status, a.Time.UTC().Format("2006-01-02 15:04:05"), a.Text)
	facts, link := shown(a)
	if link != nil {
		facts = append(facts, *link)
	}
	for _, f := range facts {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	if len(a.Recent) > 0 {
		b.WriteString("\nRecent errors (anonymized as stored):\n")
		for _, m := range a.Recent {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	fmt.Fprintf(&b, "\ntailseal · %s\n", a.ID)
	return b.String()
}

// shown are the facts a mail lists (the status leads it already), the
// link apart.
func shown(a alert.Alert) (facts []alert.Fact, link *alert.Fact) {
	for _, f := range a.Facts() {
		switch f.Name {
		case alert.FactStatus:
		case alert.FactLink:
			link = &f
		default:
			facts = append(facts, f)
		}
	}
	return facts, link
}

// Notify sends one alert to all recipients.
func (n *Notifier) Notify(ctx context.Context, a alert.Alert) error {
	m := mail.NewMsg()
	if err := m.From(n.opt.From); err != nil {
		return &sinks.Permanent{Reason: "bad TAILSEAL_SMTP_FROM: " + err.Error()}
	}
	if err := m.To(n.opt.To...); err != nil {
		return &sinks.Permanent{Reason: "bad TAILSEAL_SMTP_TO: " + err.Error()}
	}
	// The origin leads the subject: in a mailbox that many agents write
	// to, it is what sorts and filters them.
	m.Subject(fmt.Sprintf("[tailseal %s] %s: %s", a.Origin, a.Status, a.Title))
	m.SetGenHeader("X-Tailseal-Alert", a.ID)
	// Delivery is at least once: a mail sent again after a crash keeps its
	// Message-ID, so mail systems and people can tell it is the same one.
	m.SetMessageIDWithValue(fmt.Sprintf("%s.%d@tailseal", a.ID, a.Time.UnixNano()))
	m.SetBodyString(mail.TypeTextPlain, Text(a))
	var html strings.Builder
	facts, link := shown(a)
	if err := htmlTmpl().Execute(&html, struct {
		A     alert.Alert
		Facts []alert.Fact
		Link  *alert.Fact
	}{a, facts, link}); err == nil {
		m.AddAlternativeString(mail.TypeTextHTML, html.String())
	}
	err := n.client.DialAndSendWithContext(ctx, m)
	if err == nil {
		return nil
	}
	var se *mail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
		return &sinks.Permanent{Reason: "smtp refused: " + err.Error()}
	}
	if strings.Contains(err.Error(), "STARTTLS") || strings.Contains(err.Error(), "unencrypted") {
		return fmt.Errorf("smtp %s: %v: %w", n.opt.Addr, err, sinks.ErrStopped)
	}
	return fmt.Errorf("smtp %s: %w", n.opt.Addr, err) // 4xx, network: retried
}

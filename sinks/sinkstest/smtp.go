package sinkstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTP is a real SMTP server on loopback (github.com/emersion/go-smtp)
// with STARTTLS (unless NoTLS) and AUTH PLAIN (user "alerts", password
// Password). Data answers come from a script of codes first (451, 550).
type SMTP struct {
	Addr   string
	CAFile string // PEM of the certificate it presents, for SMTP_CA_FILE

	mu       sync.Mutex
	script   []int
	messages []Message
	authsInClear,
	auths int
}

// Password is the stand-in's password.
const Password = "smtp-pAsSwOrD-42"

// Message is one accepted mail.
type Message struct {
	From string
	To   []string
	Data string
	TLS  bool
}

// NewSMTP starts the server; script lists codes DATA answers first.
func NewSMTP(t testing.TB, noTLS bool, script ...int) *SMTP {
	return newSMTP(t, noTLS, false, script)
}

// NewImplicitTLS starts a server that speaks TLS from the first byte (port
// 465 style) instead of offering STARTTLS.
func NewImplicitTLS(t testing.TB, script ...int) *SMTP {
	return newSMTP(t, false, true, script)
}

func newSMTP(t testing.TB, noTLS, implicit bool, script []int) *SMTP {
	s := &SMTP{script: script}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, c: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = true // so that a client sending a password in clear is seen
	if !noTLS {
		cert, pemBytes := SelfSigned(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(s.CAFile, pemBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		l = tls.NewListener(l, srv.TLSConfig)
	}
	s.Addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Messages returns the mails accepted so far.
func (s *SMTP) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Auths is how many logins succeeded, and how many of them without TLS.
func (s *SMTP) Auths() (total, inClear int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths, s.authsInClear
}

type session struct {
	s    *SMTP
	c    *smtp.Conn
	auth bool
	msg  Message
}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alerts" || pass != Password {
			return errors.New("invalid credentials")
		}
		_, isTLS := x.c.TLSConnectionState()
		x.s.mu.Lock()
		x.s.auths++
		if !isTLS {
			x.s.authsInClear++
		}
		x.s.mu.Unlock()
		x.auth = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if !x.auth {
		return smtp.ErrAuthRequired
	}
	x.msg = Message{From: from}
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.msg.To = append(x.msg.To, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if len(x.s.script) > 0 {
		code := x.s.script[0]
		x.s.script = x.s.script[1:]
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: "scripted refusal"}
	}
	_, x.msg.TLS = x.c.TLSConnectionState()
	x.msg.Data = string(b)
	x.s.messages = append(x.s.messages, x.msg)
	return nil
}

func (x *session) Reset()        { x.msg = Message{} }
func (x *session) Logout() error { return nil }

// SelfSigned makes a certificate for 127.0.0.1 and localhost, and returns
// it with its PEM, which a client trusts as its CA.
func SelfSigned(t testing.TB) (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tailseal test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes
}

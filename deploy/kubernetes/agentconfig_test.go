package kubernetes

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/tailseal/tailseal/agent/config"
	"golang.org/x/mod/sumdb/note"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestAgentConfigFromTheSecret resolves each overlay's tailseal
// environment as the kubelet would (values, the pod's name, the Secret's
// keys and files) and loads it with the agent's own configuration code:
// the Secret as committed holds placeholders the agent refuses, so that
// nobody runs on them, and once they are replaced with keys made as the
// README says, the agent takes the pod's environment. An overlay that
// relies on the JetStream sink refuses the placeholder nats-url also when
// the keys are real, so that no pod runs without the sink by mistake, and
// has the sink on once the servers are in.
func TestAgentConfigFromTheSecret(t *testing.T) {
	for name := range overlays {
		t.Run(name, func(t *testing.T) {
			b := build(t, filesys.MakeFsOnDisk(), filepath.Join("overlays", name))
			if len(b.workloads) != 1 || len(b.secrets) != 1 {
				t.Fatalf("%d workloads, %d Secrets", len(b.workloads), len(b.secrets))
			}
			w, s := b.workloads[0], b.secrets[0]
			pod := metav1.ObjectMeta{Name: w.name + "-0", Namespace: "default", Labels: w.template.Labels}

			_, err := loadAgentConfig(t, w.template.Spec, pod, s)
			if err == nil {
				t.Fatal("the agent starts on the placeholder keys of secret.yaml")
			}
			placeholders := []string{"TAILSEAL_VERIFY_RECIPIENT", "TAILSEAL_CHECKPOINT_KEY", "TAILSEAL_PII_KEY"}
			if overlays[name].nats {
				placeholders = append(placeholders, "TAILSEAL_NATS_URL")
			}
			for _, v := range placeholders {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("the placeholder for %s passes: %v", v, err)
				}
			}

			keyed := s.DeepCopy()
			keyed.StringData["verify-recipient"], keyed.StringData["checkpoint-key"], keyed.StringData["pii-key"] = newKeys(t)
			cfg, err := loadAgentConfig(t, w.template.Spec, pod, *keyed)
			switch {
			case overlays[name].nats && (err == nil || !strings.Contains(err.Error(), "TAILSEAL_NATS_URL")):
				t.Errorf("real keys and the placeholder nats-url: %v; want the placeholder refused", err)
			case !overlays[name].nats && err != nil:
				t.Errorf("with real keys in the Secret: %v", err)
			case !overlays[name].nats && len(cfg.NATSServers()) > 0:
				t.Errorf("the JetStream sink is on (%v) although the overlay does not wire it", cfg.NATSServers())
			}

			filled := keyed.DeepCopy()
			filled.StringData["nats-url"], filled.StringData["nats-token"] = "nats://nats-0.nats:4222,nats://nats-1.nats:4222", "agents-token"
			cfg, err = loadAgentConfig(t, w.template.Spec, pod, *filled)
			if err != nil {
				t.Fatalf("with real keys and the NATS servers in the Secret: %v", err)
			}
			if on := len(cfg.NATSServers()) == 2 && cfg.NATSToken == "agents-token"; on != overlays[name].nats {
				t.Errorf("the JetStream sink is on: %v (servers %v, token set %v); the overlay wires it: %v",
					on, cfg.NATSServers(), cfg.NATSToken != "", overlays[name].nats)
			}
		})
	}
}

// newKeys makes what the README's recipe puts into the Secret: the
// auditor's age recipient, a checkpoint signer key, a pii key.
func newKeys(t *testing.T) (recipient, checkpointKey, piiKey string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "tailseal")
	if err != nil {
		t.Fatal(err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	return id.Recipient().String(), skey, hex.EncodeToString(k)
}

// loadAgentConfig runs config.Load in the environment the tailseal
// container of spec gets in pod, with s as the Secret.
func loadAgentConfig(t *testing.T, spec corev1.PodSpec, pod metav1.ObjectMeta, s corev1.Secret) (*config.Config, error) {
	t.Helper()
	return loadConfig(t, *sidecar(t, spec), spec, pod, s)
}

// loadConfig runs config.Load in the environment container c of spec gets
// in pod, with s as the Secret; nothing else of the test process's
// TAILSEAL_ variables is seen.
func loadConfig(t *testing.T, c corev1.Container, spec corev1.PodSpec, pod metav1.ObjectMeta, s corev1.Secret) (*config.Config, error) {
	t.Helper()
	vars, err := podEnv(c, spec, pod, s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") {
			t.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
	for k, v := range vars {
		if strings.HasPrefix(k, config.Prefix+"_") {
			t.Setenv(k, v)
		}
	}
	return config.Load()
}

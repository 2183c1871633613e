package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
)

// k8sContainer is the part of a container spec the example is held to.
type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ReadinessProbe  k8sProbe `yaml:"readinessProbe"`
	LivenessProbe   k8sProbe `yaml:"livenessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

// The example manifest (deploy/kubernetes.yaml) says what the README says:
// readiness on /readyz, liveness on /healthz, the image's non-root user, a
// read-only root file system, settings that exist, and a configuration
// that loads and validates.
func TestKubernetesExample(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var config string
	var deployment struct {
		Spec struct {
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsNonRoot bool  `yaml:"runAsNonRoot"`
						RunAsUser    int64 `yaml:"runAsUser"`
						RunAsGroup   int64 `yaml:"runAsGroup"`
					} `yaml:"securityContext"`
					Containers []k8sContainer `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := doc.Decode(&head); err != nil {
			t.Fatal(err)
		}
		switch head.Kind {
		case "ConfigMap":
			config = head.Data["config.yaml"]
		case "Deployment":
			if err := doc.Decode(&deployment); err != nil {
				t.Fatal(err)
			}
		}
	}
	pod := deployment.Spec.Template.Spec
	if sc := pod.SecurityContext; !sc.RunAsNonRoot || sc.RunAsUser != 65532 || sc.RunAsGroup != 65532 {
		t.Errorf("pod security context %+v, want non-root 65532:65532 as the image's USER", sc)
	}
	i := slices.IndexFunc(pod.Containers, func(c k8sContainer) bool { return c.Name == "tokenstore" })
	if i < 0 {
		t.Fatal("no tokenstore container")
	}
	c := pod.Containers[i]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %q, liveness %q; want /readyz and /healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	sc := c.SecurityContext
	if !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container security context %+v", sc)
	}
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args %q, want serve", c.Args)
	}

	// The settings as the pod gives them, the files replaced by local ones.
	env := map[string]string{"TOKENSTORE_DATABASE_URL": "postgres://tokenstore:pw@postgres:5432/tokenstore", "TOKENSTORE_KEYS": servicetest.NewKey(t).Encode()}
	for _, e := range c.Env {
		if !slices.Contains(cli.Variables(), e.Name) {
			t.Errorf("env %s is not a setting", e.Name)
		}
		if e.Value != "" && e.Name != "TOKENSTORE_KEY_FILE" && e.Name != "TOKENSTORE_CONFIG" {
			env[e.Name] = e.Value
		}
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil { // as a ConfigMap mounts it
		t.Fatal(err)
	}
	cfg, err := cli.Load(path, false, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the example's config.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the example's settings: %v", err)
	}
}

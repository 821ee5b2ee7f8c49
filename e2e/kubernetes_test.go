package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/traefik/traefik/v3/pkg/config/dynamic"
	traefikv1alpha1 "github.com/traefik/traefik/v3/pkg/provider/kubernetes/crd/traefikio/v1alpha1"
	gatev1 "sigs.k8s.io/gateway-api/apis/v1"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestKubernetesExamples decodes examples/kubernetes as far as Traefik
// v3.6.12's own code runs without a cluster: each resource into Traefik's
// CRD types (traefikio/v1alpha1) or the Gateway API's (gateway-api v1, the
// version Traefik requires), with the YAML-to-JSON decoding kubectl and the
// API server use; each Middleware's spec.plugin turned into Traefik's
// dynamic.PluginConf the way its CRD provider's createPluginMiddleware does
// (a JSON round trip; that function is unexported, so its two lines are
// repeated here); then the plugin's own CreateConfig and New under Yaegi.
// The providers' watch of an API server and their routing run in
// kubecluster_test.go.
func TestKubernetesExamples(t *testing.T) {
	tools, _ := stack.FindTools()
	dir := filepath.Join(tools.Repo, "examples", "kubernetes")
	p := loadInterpreted(t)

	middlewares := map[string]*traefikv1alpha1.Middleware{}
	var routes []traefikv1alpha1.IngressRoute
	var httpRoutes []gatev1.HTTPRoute
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			var head struct {
				Kind string `json:"kind"`
			}
			if err := k8syaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			switch head.Kind {
			case "Middleware":
				m := &traefikv1alpha1.Middleware{}
				mustDecodeStrict(t, file, doc, m)
				middlewares[m.Name] = m
			case "IngressRoute":
				var r traefikv1alpha1.IngressRoute
				mustDecodeStrict(t, file, doc, &r)
				routes = append(routes, r)
			case "HTTPRoute":
				var r gatev1.HTTPRoute
				mustDecodeStrict(t, file, doc, &r)
				httpRoutes = append(httpRoutes, r)
			default:
				t.Fatalf("%s: unexpected kind %q", file, head.Kind)
			}
		}
	}
	if len(middlewares) < 3 || len(routes) != 1 || len(httpRoutes) != 1 {
		t.Fatalf("decoded %d middlewares, %d IngressRoutes, %d HTTPRoutes", len(middlewares), len(routes), len(httpRoutes))
	}

	setsOrigin := map[string]bool{}
	for name, m := range middlewares {
		if m.Spec.Plugin == nil {
			continue
		}
		data, err := json.Marshal(m.Spec.Plugin)
		if err != nil {
			t.Fatal(err)
		}
		plugins := map[string]dynamic.PluginConf{}
		if err := json.Unmarshal(data, &plugins); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p.mustNew(t, plugins["socketioguard"], "frappe-"+name+"@kubernetescrd")
		setsOrigin[name] = plugins["socketioguard"]["setMissingOrigin"] == true
	}
	if !setsOrigin["sio-guard"] {
		t.Errorf("sio-guard does not set the Origin: %v", middlewares["sio-guard"].Spec.Plugin)
	}

	for _, route := range routes[0].Spec.Routes {
		for _, ref := range route.Middlewares {
			if middlewares[ref.Name] == nil {
				t.Errorf("IngressRoute references a missing Middleware %q", ref.Name)
			}
			if setsOrigin[ref.Name] && !strings.Contains(route.Match, "Host(") {
				t.Errorf("IngressRoute route %q uses %s (setMissingOrigin) without pinning Host()", route.Match, ref.Name)
			}
		}
	}
	hr := httpRoutes[0]
	for _, rule := range hr.Spec.Rules {
		for _, f := range rule.Filters {
			if f.Type != gatev1.HTTPRouteFilterExtensionRef || f.ExtensionRef == nil || f.ExtensionRef.Group != "traefik.io" || f.ExtensionRef.Kind != "Middleware" {
				t.Errorf("HTTPRoute filter %+v is not an ExtensionRef to a Traefik Middleware", f)
				continue
			}
			name := string(f.ExtensionRef.Name)
			if middlewares[name] == nil {
				t.Errorf("HTTPRoute references a missing Middleware %q", name)
			}
			if setsOrigin[name] && len(hr.Spec.Hostnames) == 0 {
				t.Errorf("HTTPRoute uses %s (setMissingOrigin) without hostnames", name)
			}
		}
	}
}

// mustDecodeStrict decodes one YAML document as kubectl does (YAML to JSON),
// refusing fields the type does not have.
func mustDecodeStrict(t *testing.T, file, doc string, into any) {
	t.Helper()
	if err := k8syaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

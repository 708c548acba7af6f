package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/policy"
)

// bundle is every object of deploy/kubernetes, by kind and name.
type bundle struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	services   map[string]*corev1.Service
	pdbs       map[string]*policyv1.PodDisruptionBudget
	netpols    map[string]*networkingv1.NetworkPolicy
	// workloads: StatefulSets and Deployments, by kind/name.
	workloads map[string]workload
}

type workload struct {
	kind, name string
	replicas   int32
	selector   *metav1.LabelSelector
	pod        *corev1.PodTemplateSpec
	// serviceName is a StatefulSet's governing Service.
	serviceName string
}

// load decodes every document strictly: an unknown or misspelt field, a
// wrong type or an unknown kind fails.
func load(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		netpols: map[string]*networkingv1.NetworkPolicy{}, workloads: map[string]workload{}}
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocuments(data) {
			where := fmt.Sprintf("%s document %d", f, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			strict := func(into any) {
				if err := yaml.UnmarshalStrict(doc, into); err != nil {
					t.Fatalf("%s (%s): %v", where, tm.Kind, err)
				}
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ConfigMap":
				var o corev1.ConfigMap
				strict(&o)
				b.configMaps[o.Name] = &o
			case "v1 Secret":
				var o corev1.Secret
				strict(&o)
				b.secrets[o.Name] = &o
			case "v1 Service":
				var o corev1.Service
				strict(&o)
				b.services[o.Name] = &o
			case "policy/v1 PodDisruptionBudget":
				var o policyv1.PodDisruptionBudget
				strict(&o)
				b.pdbs[o.Name] = &o
			case "networking.k8s.io/v1 NetworkPolicy":
				var o networkingv1.NetworkPolicy
				strict(&o)
				b.netpols[o.Name] = &o
			case "apps/v1 StatefulSet":
				var o appsv1.StatefulSet
				strict(&o)
				b.workloads["StatefulSet/"+o.Name] = workload{"StatefulSet", o.Name, *o.Spec.Replicas, o.Spec.Selector, &o.Spec.Template, o.Spec.ServiceName}
			case "apps/v1 Deployment":
				var o appsv1.Deployment
				strict(&o)
				b.workloads["Deployment/"+o.Name] = workload{"Deployment", o.Name, *o.Spec.Replicas, o.Spec.Selector, &o.Spec.Template, ""}
			default:
				t.Fatalf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)
			}
		}
	}
	return b
}

func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(d []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

// podsOf returns the workloads whose pods a selector picks.
func (b *bundle) podsOf(sel labels.Selector) []workload {
	var out []workload
	for _, w := range b.workloads {
		if sel.Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func selectorOf(t *testing.T, ls *metav1.LabelSelector) labels.Selector {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The workloads: selectors that pick their own pods, probes on /readyz and
// /healthz of a declared port, a preStop pause, a grace period that covers it
// and pgwarden's drain, volumes that exist, and the config the args name.
func TestWorkloads(t *testing.T) {
	b := load(t)
	if len(b.workloads) != 2 {
		t.Fatalf("%d workloads, want the proxy and the ticket service", len(b.workloads))
	}
	cfg := loadConfig(t, b)
	for key, w := range b.workloads {
		if !selectorOf(t, w.selector).Matches(labels.Set(w.pod.Labels)) {
			t.Errorf("%s: its selector does not pick its own pods", key)
		}
		spec := w.pod.Spec
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", key, len(spec.Containers))
		}
		c := spec.Containers[0]
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		probe := func(name string, p *corev1.Probe, wantPath string) {
			switch {
			case p == nil || p.HTTPGet == nil:
				t.Errorf("%s: no HTTP %s probe", key, name)
			case p.HTTPGet.Path != wantPath:
				t.Errorf("%s: %s probe on %s, want %s", key, name, p.HTTPGet.Path, wantPath)
			case ports[p.HTTPGet.Port.StrVal] == 0:
				t.Errorf("%s: %s probe on port %q, not declared", key, name, p.HTTPGet.Port.String())
			case fmt.Sprint(ports[p.HTTPGet.Port.StrVal]) != portOf(t, cfg.Metrics.Listen):
				t.Errorf("%s: %s probe on %d, metrics listen on %s", key, name, ports[p.HTTPGet.Port.StrVal], cfg.Metrics.Listen)
			}
		}
		probe("readiness", c.ReadinessProbe, "/readyz")
		probe("liveness", c.LivenessProbe, "/healthz")
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Errorf("%s: no preStop sleep (endpoints must drop the pod before SIGTERM)", key)
		} else if spec.TerminationGracePeriodSeconds == nil {
			t.Errorf("%s: no terminationGracePeriodSeconds", key)
		} else {
			need := c.Lifecycle.PreStop.Sleep.Seconds + int64(cfg.Proxy.ShutdownTimeout.Seconds())
			if w.kind == "Deployment" { // the ticket service drains its HTTP requests only
				need = c.Lifecycle.PreStop.Sleep.Seconds + 5
			}
			if *spec.TerminationGracePeriodSeconds <= need {
				t.Errorf("%s: grace period %ds does not cover preStop and the drain (%ds)", key, *spec.TerminationGracePeriodSeconds, need)
			}
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: the container must run read-only without privilege escalation", key)
		}
		if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: pods must run as non-root", key)
		}
		// Volumes exist and name objects of the bundle.
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
			switch {
			case v.ConfigMap != nil && b.configMaps[v.ConfigMap.Name] == nil:
				t.Errorf("%s: volume %s names ConfigMap %s, not in the bundle", key, v.Name, v.ConfigMap.Name)
			case v.Secret != nil && b.secrets[v.Secret.SecretName] == nil:
				t.Errorf("%s: volume %s names Secret %s, not in the bundle", key, v.Name, v.Secret.SecretName)
			}
		}
		for _, m := range c.VolumeMounts {
			if _, ok := vols[m.Name]; !ok {
				t.Errorf("%s: mount %s has no volume", key, m.Name)
			}
		}
		// Every file the config names is a key of what is mounted there.
		files := fileResolver(b, c.VolumeMounts, vols)
		if i := indexOf(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) {
			t.Errorf("%s: args %v name no --config", key, c.Args)
		} else if _, ok := files(c.Args[i+1]); !ok {
			t.Errorf("%s: --config %s is not a mounted file", key, c.Args[i+1])
		}
		for _, f := range configFiles(cfg) {
			if _, ok := files(f); !ok {
				t.Errorf("%s: the config names %s, which no mount provides", key, f)
			}
		}
	}
}

// Services and disruption budgets pick pods of the bundle, on ports they
// declare; network policies let through what the Services serve.
func TestServicesBudgetsPolicies(t *testing.T) {
	b := load(t)
	for name, s := range b.services {
		ws := b.podsOf(labels.SelectorFromSet(s.Spec.Selector))
		if len(ws) != 1 {
			t.Errorf("Service %s selects %d workloads, want 1", name, len(ws))
			continue
		}
		c := ws[0].pod.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			found := false
			for _, cp := range c.Ports {
				found = found || cp.Name == p.TargetPort.StrVal
			}
			if !found {
				t.Errorf("Service %s: target port %q is not a port of %s", name, p.TargetPort.String(), ws[0].name)
			}
			covered := false
			for _, np := range b.netpols {
				if !selectorOf(t, &np.Spec.PodSelector).Matches(labels.Set(ws[0].pod.Labels)) {
					continue
				}
				for _, rule := range np.Spec.Ingress {
					for _, rp := range rule.Ports {
						covered = covered || rp.Port != nil && rp.Port.IntVal == p.Port && len(rule.From) == 0
					}
				}
			}
			if !covered {
				t.Errorf("Service %s port %d: no NetworkPolicy lets clients in", name, p.Port)
			}
		}
	}
	for name, p := range b.pdbs {
		if ws := b.podsOf(selectorOf(t, p.Spec.Selector)); len(ws) != 1 {
			t.Errorf("PodDisruptionBudget %s covers %d workloads, want 1", name, len(ws))
		} else if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("PodDisruptionBudget %s bounds nothing", name)
		} else if p.Spec.MinAvailable != nil && p.Spec.MinAvailable.IntVal >= ws[0].replicas {
			t.Errorf("PodDisruptionBudget %s: minAvailable %d of %d replicas blocks every drain", name, p.Spec.MinAvailable.IntVal, ws[0].replicas)
		}
	}
	for key := range b.workloads {
		w := b.workloads[key]
		hasPDB, hasNP := false, false
		for _, p := range b.pdbs {
			hasPDB = hasPDB || selectorOf(t, p.Spec.Selector).Matches(labels.Set(w.pod.Labels))
		}
		for _, np := range b.netpols {
			hasNP = hasNP || selectorOf(t, &np.Spec.PodSelector).Matches(labels.Set(w.pod.Labels))
		}
		if !hasPDB || !hasNP {
			t.Errorf("%s: PodDisruptionBudget %v, NetworkPolicy %v; want both", key, hasPDB, hasNP)
		}
	}
}

// The proxy's peers are the StatefulSet's replicas by their stable names,
// one per replica, through a headless Service.
func TestProxyPeers(t *testing.T) {
	b := load(t)
	cfg := loadConfig(t, b)
	var sts *workload
	for _, w := range b.workloads {
		if w.kind == "StatefulSet" {
			sts = &w
		}
	}
	if sts == nil {
		t.Fatal("no proxy StatefulSet")
	}
	if !cfg.Proxy.PeerIDFromHostname {
		t.Error("proxy.peer_id_from_hostname is off: the replicas cannot know their peer ids")
	}
	headless := b.services[sts.serviceName]
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("StatefulSet %s: service %q is not a headless Service publishing not-ready pods", sts.name, sts.serviceName)
	}
	if len(cfg.Proxy.Peers) != int(sts.replicas) {
		t.Errorf("%d peers for %d replicas", len(cfg.Proxy.Peers), sts.replicas)
	}
	port := portOf(t, cfg.Proxy.Listen)
	for i := range int(sts.replicas) {
		host := fmt.Sprintf("%s-%d", sts.name, i)
		id, err := config.PeerIDFromHostname(host)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s.%s:%s", host, sts.serviceName, port); cfg.Proxy.Peers[id] != want {
			t.Errorf("peer %d (pod %s) is %q, want %q", id, host, cfg.Proxy.Peers[id], want)
		}
	}
}

// loadConfig writes the ConfigMap's files where pgwarden reads them and
// loads them as pgwarden does, policy included.
func loadConfig(t *testing.T, b *bundle) *config.File {
	t.Helper()
	cm := b.configMaps["pgwarden-config"]
	if cm == nil {
		t.Fatal("no ConfigMap pgwarden-config")
	}
	dir := t.TempDir()
	keys := make([]string, 0, len(cm.Data))
	for k, v := range cm.Data {
		keys = append(keys, k)
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(keys)
	cfg, err := config.Load(filepath.Join(dir, "pgwarden.yaml"))
	if err != nil {
		t.Fatalf("the ConfigMap's pgwarden.yaml: %v", err)
	}
	for name, w := range cfg.Warehouses {
		if _, err := policy.Load(w.Policy); err != nil {
			t.Errorf("warehouse %s: its policy: %v", name, err)
		}
	}
	// Paths relative to the config file resolved into dir: map them back to
	// where the pod mounts the ConfigMap.
	unresolve := func(p *string) {
		if rel, err := filepath.Rel(dir, *p); err == nil && !strings.HasPrefix(rel, "..") {
			*p = path.Join("/etc/pgwarden", rel)
		}
	}
	for name, w := range cfg.Warehouses {
		unresolve(&w.Policy)
		cfg.Warehouses[name] = w
	}
	return cfg
}

// configFiles lists the files cfg names inside the pod.
func configFiles(cfg *config.File) []string {
	out := []string{cfg.Proxy.TLSCertFile, cfg.Proxy.TLSKeyFile, cfg.Proxy.PeerSecretFile, cfg.Auth.SigningKeyFile}
	out = append(out, cfg.Auth.VerifyKeyFiles...)
	dsns := []string{cfg.Auth.StoreDSN}
	for _, w := range cfg.Warehouses {
		out = append(out, w.Policy)
		dsns = append(dsns, w.DSN)
	}
	for _, d := range dsns {
		if i := strings.Index(d, "passfile="); i >= 0 {
			f := d[i+len("passfile="):]
			if j := strings.IndexByte(f, '&'); j >= 0 {
				f = f[:j]
			}
			out = append(out, f)
		}
	}
	var files []string
	for _, f := range out {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// fileResolver answers whether a path in the pod is a key of the ConfigMap
// or Secret mounted at its directory (the deepest mount wins).
func fileResolver(b *bundle, mounts []corev1.VolumeMount, vols map[string]corev1.Volume) func(string) (string, bool) {
	return func(p string) (string, bool) {
		best := ""
		var vol corev1.Volume
		for _, m := range mounts {
			if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") && len(m.MountPath) > len(best) {
				best, vol = m.MountPath, vols[m.Name]
			}
		}
		if best == "" {
			return "", false
		}
		key := strings.TrimPrefix(p, strings.TrimSuffix(best, "/")+"/")
		switch {
		case vol.ConfigMap != nil:
			cm := b.configMaps[vol.ConfigMap.Name]
			_, ok := cm.Data[key]
			return key, ok
		case vol.Secret != nil:
			s := b.secrets[vol.Secret.SecretName]
			_, ok := s.StringData[key]
			if !ok {
				_, ok = s.Data[key]
			}
			return key, ok
		}
		return "", false
	}
}

func portOf(t *testing.T, hostPort string) string {
	t.Helper()
	i := strings.LastIndexByte(hostPort, ':')
	if i < 0 {
		t.Fatalf("%q has no port", hostPort)
	}
	return hostPort[i+1:]
}

func indexOf(xs []string, x string) int {
	for i, s := range xs {
		if s == x {
			return i
		}
	}
	return -1
}

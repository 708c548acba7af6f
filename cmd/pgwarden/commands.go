package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgwarden/pgwarden/audit"
	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/pgerr"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/rewrite"
)

// Key file names `pgwarden keygen` writes, stable so that configs can name them.
const (
	signingKeyName = "signing.pem"
	publicKeyName  = "signing.pub.pem"
)

func cmdKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", stderr)
	dir := fs.String("dir", "", "`directory` to write signing.pem and signing.pub.pem into")
	ifMissing := fs.Bool("if-missing", false, "do nothing when the directory already has a signing key")
	apiKey := fs.Bool("api-key", false, "print a new random API key and the SHA-256 to put in auth.api_keys instead")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *apiKey {
		key, sum, err := auth.GenerateAPIKey()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key: %s\nsha256: %s\n", key, sum)
		return nil
	}
	if *dir == "" {
		return usagef("--dir is required (or --api-key)")
	}
	if *ifMissing {
		if _, err := os.Stat(filepath.Join(*dir, signingKeyName)); err == nil {
			fmt.Fprintf(stdout, "%s already exists; kept\n", filepath.Join(*dir, signingKeyName))
			return nil
		}
	}
	signing, public, err := writeKeyPair(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signing key: %s\npublic key:  %s\n", signing, public)
	return nil
}

// writeKeyPair writes a new Ed25519 key pair under stable names in dir and
// returns the two paths. An existing pair is never overwritten.
func writeKeyPair(dir string) (signing, public string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	signing, public = filepath.Join(dir, signingKeyName), filepath.Join(dir, publicKeyName)
	for _, p := range []string{signing, public} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("%s exists: refusing to overwrite a key (use --if-missing, or another --dir)", p)
		}
	}
	k, err := auth.GenerateKey(dir)
	if err != nil {
		return "", "", err
	}
	if err := os.Rename(k.PrivateKeyFile, signing); err != nil {
		return "", "", err
	}
	if err := os.Rename(k.PublicKeyFile, public); err != nil {
		return "", "", err
	}
	return signing, public, nil
}

// identityFlags are the flags that describe a session, shared by ticket and explain.
type identityFlags struct {
	tenant, externalID, email, groups, roles, role string
	attrs                                          multiFlag
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tenant, "tenant", "", "the session's `tenant` (required)")
	fs.StringVar(&f.externalID, "external-id", "", "the host application's user `id`")
	fs.StringVar(&f.email, "email", "", "the user's `email`")
	fs.StringVar(&f.groups, "groups", "", "comma-separated `groups`")
	fs.Var(&f.attrs, "attr", "an attribute as `name=v1,v2` (repeatable)")
}

func (f *identityFlags) groupList() []string { return splitList(f.groups) }

func (f *identityFlags) attributes() (map[string][]string, error) {
	attrs := map[string][]string{}
	for _, a := range f.attrs {
		name, values, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, usagef("--attr %q: want name=value[,value…]", a)
		}
		attrs[name] = append(attrs[name], splitList(values)...)
	}
	return attrs, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdTicket(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ticket", stderr)
	path := fs.String("config", "pgwarden.yaml", "configuration `file`")
	var id identityFlags
	id.register(fs)
	roles := fs.String("roles", "", "connection roles as `warehouse=role,…` (default querier on every configured warehouse)")
	session := fs.Bool("session", false, "exchange the ticket and print a session token instead")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id.tenant == "" || id.externalID == "" {
		return usagef("--tenant and --external-id are required")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	attrs, err := id.attributes()
	if err != nil {
		return err
	}
	req := sessionRequest{Tenant: id.tenant, ExternalID: id.externalID, Email: id.email,
		Groups: id.groupList(), Attributes: attrs, Roles: map[string]string{}}
	if *roles == "" {
		for name := range cfg.Warehouses {
			req.Roles[name] = string(policy.RoleQuerier)
		}
	}
	for _, r := range splitList(*roles) {
		w, role, ok := strings.Cut(r, "=")
		if !ok {
			return usagef("--roles %q: want warehouse=role", r)
		}
		req.Roles[w] = role
	}
	a, err := newApp(ctx, cfg, zap.NewNop(), onlyTickets)
	if err != nil {
		return err
	}
	defer a.close()
	if !*session {
		ticket, err := a.mintTicket(ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, ticket)
		return nil
	}
	token, sid, err := a.mintSession(ctx, req)
	if err != nil {
		return err
	}
	// stdout stays the token alone, for PGPASSWORD=$(pgwarden ticket … --session).
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stderr, "session id: %s (revoke it with: %s revoke --config %s -- %s)\n", sid, selfCommand(), cfg.Path, sid)
	return nil
}

// cmdRevoke ends a session as an operator: any session, whichever API key (or
// `pgwarden ticket`) minted it. It writes to the ticket store, whose
// notification closes the session's connections on every proxy.
func cmdRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("revoke", stderr)
	path := fs.String("config", "pgwarden.yaml", "configuration `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("usage: pgwarden revoke --config FILE [--] SESSION_ID")
	}
	sid := fs.Arg(0)
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	acfg := authConfig(cfg)
	store, err := auth.Open(ctx, acfg)
	if err != nil {
		return err
	}
	defer store.Close()
	rec, err := store.RevokeRecord(ctx, sid, "", time.Now())
	if err != nil {
		if errors.Is(err, auth.ErrSessionNotFound) {
			return fmt.Errorf("no session %q in the ticket store of %s", sid, cfg.Path)
		}
		return err
	}
	fmt.Fprintf(stdout, "session %s revoked\n", sid)
	return auditOfflineRevoke(ctx, cfg, store, rec)
}

// auditOfflineRevoke records a revocation made on the command line as the
// running services record theirs: in the audit file and, with audit.store,
// in the store's copy.
func auditOfflineRevoke(ctx context.Context, cfg *config.File, store *auth.Store, rec *auth.SessionRecord) error {
	r := audit.Record{Time: time.Now().UTC(), Event: audit.EventRevoke, Outcome: audit.OutcomeOK, Reason: "by an operator (pgwarden revoke)",
		Session: rec.ID, Kind: rec.Kind, Tenant: rec.Tenant, ExternalID: rec.ExternalID, Subject: rec.Subject, Role: rec.Role}
	if p := cfg.Audit.Path; p != "" && p != "-" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("audit.path: %w", err)
		}
		audit.New(f, nil).Write(&r)
		if err := f.Close(); err != nil {
			return fmt.Errorf("audit.path: %w", err)
		}
	}
	if cfg.Audit.Store {
		return store.InsertAudit(ctx, []audit.Record{r}, nil)
	}
	return nil
}

func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", stderr)
	path := fs.String("config", "pgwarden.yaml", "configuration `file`")
	warehouse := fs.String("warehouse", "", "the `warehouse` (default the only one configured)")
	role := fs.String("role", string(policy.RoleQuerier), "the session's connection `role`")
	internal := fs.Bool("internal", false, "explain for an internal (SSO) session instead of an embed one")
	var id identityFlags
	id.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id.tenant == "" || fs.NArg() == 0 {
		return usagef("usage: pgwarden explain --config F --tenant T [--groups a,b] [--attr k=v1,v2] \"SQL\"")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	name, err := pickWarehouse(cfg, *warehouse)
	if err != nil {
		return err
	}
	p, err := policy.Load(cfg.Warehouses[name].Policy)
	if err != nil {
		return err
	}
	gate, err := rewrite.NewGate(rewriteLimits(cfg))
	if err != nil {
		return err
	}
	rw, err := newRewriter(ctx, cfg, name, p, gate)
	if err != nil {
		return err
	}
	attrs, err := id.attributes()
	if err != nil {
		return err
	}
	ident := &policy.Identity{SessionID: "explain", Kind: policy.KindEmbed, Tenant: id.tenant, ExternalID: id.externalID,
		Email: id.email, Groups: id.groupList(), Attributes: attrs, Role: policy.Role(*role)}
	if *internal {
		ident.Kind = policy.KindInternal
	}
	res, err := rw.Rewrite(ctx, strings.Join(fs.Args(), " "), ident)
	if err != nil {
		var pe *pgerr.Error
		if errors.As(err, &pe) {
			fmt.Fprintf(stdout, "refused: %s %s\n", pe.Code, pe.Message)
			if pe.Detail != "" {
				fmt.Fprintf(stdout, "detail: %s\n", pe.Detail)
			}
			if pe.Hint != "" {
				fmt.Fprintf(stdout, "hint: %s\n", pe.Hint)
			}
			return errRefused
		}
		return err
	}
	for _, st := range res.Statements {
		explainTenancy(stdout, p, ident, st.Relations)
		fmt.Fprintf(stdout, "%s;\n", st.SQL)
	}
	return explainRowSecurity(stdout, p, ident)
}

// explainRowSecurity shows, under pass-through row security, the role and
// settings statements run under and the statement that sets them.
func explainRowSecurity(w io.Writer, p *policy.Policy, id *policy.Identity) error {
	if p.RowSecurity == nil {
		return nil
	}
	s, err := p.RowSecurity.For(id)
	if err != nil {
		return err
	}
	if s.Role != "" {
		fmt.Fprintf(w, "-- runs as role %s\n", s.Role)
	}
	for _, st := range s.Settings {
		fmt.Fprintf(w, "-- with %s = %s\n", st.Name, policy.QuoteLiteral(st.Value))
	}
	fmt.Fprintf(w, "-- set on the warehouse connection before the statement:\n-- %s;\n", s.SetSQL())
	return nil
}

// errRefused makes explain exit 1 after printing a refusal, for scripts.
var errRefused = errors.New("statement refused by policy")

func pickWarehouse(cfg *config.File, name string) (string, error) {
	if name != "" {
		if _, ok := cfg.Warehouses[name]; !ok {
			return "", fmt.Errorf("no warehouse %q in %s", name, cfg.Path)
		}
		return name, nil
	}
	if len(cfg.Warehouses) == 1 {
		for n := range cfg.Warehouses {
			return n, nil
		}
	}
	names := make([]string, 0, len(cfg.Warehouses))
	for n := range cfg.Warehouses {
		names = append(names, n)
	}
	sort.Strings(names)
	return "", usagef("several warehouses (%s): pick one with --warehouse", strings.Join(names, ", "))
}

func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usagef("usage: pgwarden policy check --config FILE [--catalog] | pgwarden policy check POLICY.yaml")
	}
	fs := newFlags("policy check", stderr)
	path := fs.String("config", "", "configuration `file`: check every warehouse's policy")
	withCatalog := fs.Bool("catalog", false, "with --config: also check each policy against its warehouse's catalog")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *path == "" {
		if fs.NArg() == 0 {
			return usagef("name a policy file or --config")
		}
		for _, f := range fs.Args() {
			if _, err := policy.Load(f); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: ok\n", f)
		}
		return nil
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	_, policies, err := loadWarehouses(ctx, cfg, *withCatalog, nil)
	if err != nil {
		return err
	}
	for _, name := range warehouseNames(cfg) {
		w := cfg.Warehouses[name]
		if !*withCatalog {
			fmt.Fprintf(stdout, "warehouse %s: %s: ok\n", name, w.Policy)
			continue
		}
		if err := checkTenantSchemas(ctx, cfg, name, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "warehouse %s: %s: ok\n", name, w.Policy)
		if err := printWriteWarnings(ctx, cfg, name, policies[name], stdout); err != nil {
			return err
		}
		// Tenant databases named in tenant_dsns are checked too (those
		// of a tenant_dsn template are checked at their first login).
		tenants := make([]string, 0, len(w.TenantDSNs))
		for tenant := range w.TenantDSNs {
			tenants = append(tenants, tenant)
		}
		sort.Strings(tenants)
		var failed error
		for _, tenant := range tenants {
			if _, err := newRewriterAt(ctx, cfg, name, w.TenantDSNs[tenant], policies[name], nil); err != nil {
				fmt.Fprintf(stdout, "warehouse %s: tenant %s's database: %v\n", name, tenant, err)
				failed = fmt.Errorf("warehouse %s: a tenant database does not match its policy", name)
				continue
			}
			fmt.Fprintf(stdout, "warehouse %s: tenant %s's database: ok\n", name, tenant)
		}
		if failed != nil {
			return failed
		}
	}
	return nil
}

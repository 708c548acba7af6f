package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/auth/oidc"
)

// cmdLogin signs an internal user in with the identity provider the ticket
// service trusts and prints an internal pgwarden session (or writes it to a
// pgpass file, or as an environment line).
func cmdLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("login", stderr)
	service := fs.String("service", os.Getenv("PGWARDEN_SERVICE"), "the ticket service's `URL` (or $PGWARDEN_SERVICE)")
	issuer := fs.String("issuer", "", "the identity provider's `issuer` when the service trusts several")
	noBrowser := fs.Bool("no-browser", false, "print the sign-in URL instead of opening a browser")
	pgpass := fs.String("pgpass", "", "append the session to this pgpass `file` instead of printing it")
	env := fs.Bool("env", false, "print PGPASSWORD=<session token> (for eval)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the sign-in")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *service == "" {
		return usagef("usage: pgwarden login --service URL [--issuer ISS] [--no-browser] [--pgpass FILE | --env]")
	}
	open := func(u string) error {
		fmt.Fprintf(stderr, "Sign in at:\n  %s\n", u)
		if *noBrowser {
			return nil
		}
		if p, err := exec.LookPath("xdg-open"); err == nil {
			// A browser that fails to start leaves the printed URL.
			exec.Command(p, u).Start()
		}
		return nil
	}
	res, err := oidc.Login(ctx, oidc.LoginOptions{Service: *service, Issuer: *issuer, Open: open, Timeout: *timeout})
	if err != nil {
		return err
	}
	return printSession(res, *pgpass, *env, stdout, stderr)
}

func printSession(res *oidc.LoginResult, pgpass string, env bool, stdout, stderr io.Writer) error {
	switch {
	case pgpass != "":
		f, err := os.OpenFile(pgpass, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := fmt.Fprintln(f, res.PGPassLine()); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "signed in as %s (%s); session %s until %s written to %s\n", res.Subject, res.Role, res.SessionID, res.ExpiresAt, pgpass)
	case env:
		fmt.Fprintf(stdout, "PGPASSWORD=%s\n", res.SessionToken)
	default:
		fmt.Fprintf(stderr, "signed in as %s (%s); session %s until %s\n", res.Subject, res.Role, res.SessionID, res.ExpiresAt)
		fmt.Fprintln(stdout, res.SessionToken)
	}
	return nil
}

// cmdRenew renews a session token at the ticket service, as embed sessions
// renew: the same claims, a later expiry.
func cmdRenew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("renew", stderr)
	service := fs.String("service", os.Getenv("PGWARDEN_SERVICE"), "the ticket service's `URL` (or $PGWARDEN_SERVICE)")
	token := fs.String("token", os.Getenv("PGPASSWORD"), "the session `token` (or $PGPASSWORD)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *service == "" || *token == "" {
		return usagef("usage: pgwarden renew --service URL --token TOKEN")
	}
	var res oidc.LoginResult
	if err := callService(ctx, http.MethodPost, *service, "/v1/sessions/renew", *token, nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "session %s renewed until %s\n", res.SessionID, res.ExpiresAt)
	fmt.Fprintln(stdout, res.SessionToken)
	return nil
}

// cmdAdmin calls the admin API with an internal session token or an admin
// API key and prints its JSON answer.
func cmdAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("admin", stderr)
	service := fs.String("service", os.Getenv("PGWARDEN_SERVICE"), "the ticket service's `URL` (or $PGWARDEN_SERVICE)")
	token := fs.String("token", os.Getenv("PGWARDEN_ADMIN_TOKEN"), "an internal session token or admin API `key` (or $PGWARDEN_ADMIN_TOKEN)")
	var id identityFlags
	id.register(fs)
	warehouse := fs.String("warehouse", "", "the `warehouse` for explain")
	role := fs.String("role", "querier", "the connection `role` for explain")
	internal := fs.Bool("internal", false, "explain for an internal session")
	// Filters of connections, sessions and audit (see filterFlags).
	filters := map[string]*string{}
	for _, f := range []struct{ name, help string }{
		{"subject", "filter: an internal user's `subject`"}, {"session", "filter: a session `id`"},
		{"client-addr", "filter: a client `address` (with or without port)"}, {"since", "audit: records from `time` (RFC 3339)"},
		{"until", "audit: records before `time` (RFC 3339)"}, {"kind", "audit: session `kind` (embed, internal)"},
		{"event", "audit: `event` (statement, login, login_refused, exchange, renew, revoke, act_as)"},
		{"outcome", "audit: `outcome` (ok, refused, error)"}, {"sqlstate", "audit: `SQLSTATE`"},
		{"limit", "audit: records per page (`n`, default 100)"}, {"next", "audit: the `cursor` of the next page"},
	} {
		filters[f.name] = fs.String(f.name, "", f.help)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	const use = "usage: pgwarden admin --service URL --token T whoami | sessions [FILTERS] | connections [FILTERS] | cancel ID |\n" +
		"  revoke-session ID | revoke-subject SUBJECT | revoke-tenant TENANT | revoke-external-id ID [--tenant T] |\n" +
		"  audit [FILTERS] [--since T] [--until T] [--kind K] [--event E] [--outcome O] [--sqlstate S] [--limit N] [--next C] |\n" +
		"  stats [WINDOW] | policies-check | policies-reload | keys | key-create NAME ROLE | key-rotate NAME | key-revoke NAME |\n" +
		"  act-as --tenant T [--groups a,b] [--attr k=v] | explain [--tenant T ...] SQL\n" +
		"FILTERS: --tenant T --external-id X --subject S --session ID --client-addr A --warehouse W"
	rest := fs.Args()
	if *service == "" || *token == "" || len(rest) == 0 {
		return usagef(use)
	}
	verb, rest := rest[0], rest[1:]
	if verb != "explain" { // SQL may hold words that look like flags
		var err error
		if rest, err = parseInterspersed(fs, rest); err != nil {
			return err
		}
	}
	arg := func() (string, error) {
		if len(rest) != 1 {
			return "", usagef("%s takes one argument", verb)
		}
		return url.PathEscape(rest[0]), nil
	}
	var method, path string
	var body any
	// query is the filters set on the command line, in the API's names.
	query := func(keys ...string) string {
		q := url.Values{}
		set := func(k, v string) {
			if v != "" {
				q.Set(k, v)
			}
		}
		set("tenant", id.tenant)
		set("external_id", id.externalID)
		set("warehouse", *warehouse)
		for _, k := range keys {
			set(strings.ReplaceAll(k, "-", "_"), *filters[k])
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	}
	connFilters := []string{"subject", "session", "client-addr"}
	switch verb {
	case "whoami", "keys":
		method, path = http.MethodGet, "/v1/admin/"+verb
	case "sessions", "connections":
		method, path = http.MethodGet, "/v1/admin/"+verb+query(connFilters...)
	case "stats":
		if len(rest) > 1 {
			return usagef("usage: pgwarden admin ... stats [WINDOW], a duration such as 15m")
		}
		method, path = http.MethodGet, "/v1/admin/stats"
		if len(rest) == 1 {
			path += "?" + url.Values{"window": {rest[0]}}.Encode()
		}
	case "audit":
		method, path = http.MethodGet, "/v1/admin/audit"+query("subject", "session", "since", "until", "kind", "event", "outcome", "sqlstate", "limit", "next")
	case "cancel":
		a, err := arg()
		if err != nil {
			return err
		}
		method, path = http.MethodPost, "/v1/admin/connections/"+a+"/cancel"
	case "revoke-tenant":
		a, err := arg()
		if err != nil {
			return err
		}
		method, path = http.MethodPost, "/v1/admin/tenants/"+a+"/revoke"
	case "revoke-external-id":
		a, err := arg()
		if err != nil {
			return err
		}
		method, path = http.MethodPost, "/v1/admin/external-ids/"+a+"/revoke"
		if id.tenant != "" {
			path += "?" + url.Values{"tenant": {id.tenant}}.Encode()
		}
	case "revoke-session", "revoke-subject":
		a, err := arg()
		if err != nil {
			return err
		}
		kind := strings.TrimPrefix(verb, "revoke-") + "s"
		method, path = http.MethodPost, "/v1/admin/"+kind+"/"+a+"/revoke"
	case "policies-check", "policies-reload":
		method, path = http.MethodPost, "/v1/admin/policies/"+strings.TrimPrefix(verb, "policies-")
	case "key-create":
		if len(rest) != 2 {
			return usagef("key-create takes NAME ROLE")
		}
		method, path, body = http.MethodPost, "/v1/admin/keys", map[string]string{"name": rest[0], "role": rest[1]}
	case "key-rotate", "key-revoke":
		a, err := arg()
		if err != nil {
			return err
		}
		method, path = http.MethodPost, "/v1/admin/keys/"+a+"/"+strings.TrimPrefix(verb, "key-")
	case "act-as", "explain":
		attrs, err := id.attributes()
		if err != nil {
			return err
		}
		method, path = http.MethodPost, "/v1/admin/"+verb
		if verb == "act-as" {
			body = map[string]any{"tenant": id.tenant, "groups": id.groupList(), "attributes": attrs}
		} else {
			body = map[string]any{"warehouse": *warehouse, "sql": strings.Join(rest, " "), "tenant": id.tenant, "external_id": id.externalID,
				"email": id.email, "groups": id.groupList(), "attributes": attrs, "role": *role, "internal": *internal}
		}
	default:
		return usagef(use)
	}
	var out json.RawMessage
	if err := callService(ctx, method, *service, path, *token, body, &out); err != nil {
		return err
	}
	var buf bytes.Buffer
	json.Indent(&buf, out, "", "  ")
	fmt.Fprintln(stdout, buf.String())
	return nil
}

// callService sends one request to the ticket service and decodes a 2xx
// answer into out; any other answer is an error with the service's message.
func callService(ctx context.Context, method, service, path, bearer string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(service, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Message string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s (%s)", resp.Status, e.Message, e.Error)
		}
		return errors.New(resp.Status)
	}
	return json.Unmarshal(data, out)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/auth/oidc"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/console"
	"github.com/pgwarden/pgwarden/policy"
	"github.com/pgwarden/pgwarden/proxy"
)

var (
	_ proxy.Authenticator       = (*oidc.Authenticator)(nil)
	_ proxy.RevocationCallbacks = (*oidc.Authenticator)(nil)
	_ proxy.Renewer             = (*oidc.Authenticator)(nil)
	_ oidc.TokenAuthenticator   = (*auth.Verifier)(nil)
	_ admin.Sessions            = (*auth.Service)(nil)
	_ admin.Store               = (*auth.Store)(nil)
	_ admin.Policies            = (*appPolicies)(nil)
	_ console.SignOn            = (*oidc.Handler)(nil)
)

// ssoConfig translates the config file's sso section.
func ssoConfig(c *config.File) (oidc.Config, error) {
	out := oidc.Config{Owners: c.SSO.Owners, RoleMapping: map[string]auth.UserRole{}}
	for g, r := range c.SSO.RoleMapping {
		role, err := auth.ParseUserRole(r)
		if err != nil {
			return oidc.Config{}, fmt.Errorf("%s: sso.role_mapping.%s: %w", c.Path, g, err)
		}
		out.RoleMapping[g] = role
	}
	for _, p := range c.SSO.Providers {
		out.Providers = append(out.Providers, oidc.Provider{
			Issuer: p.Issuer, ClientID: p.ClientID, Audiences: p.Audiences,
			SubjectClaim: p.SubjectClaim, EmailClaim: p.EmailClaim, GroupsClaim: p.GroupsClaim,
			AllowedEmailDomains: p.AllowedEmailDomains, Leeway: p.Leeway, Algorithms: p.Algorithms, Scopes: p.Scopes,
		})
	}
	return out, nil
}

// wireSSO builds sign-on and the admin API when configured: the proxy
// accepts providers' tokens as passwords, and the ticket service serves
// /v1/sessions/oidc and /v1/admin/.
func (a *app) wireSSO() error {
	var v *oidc.Verifier
	if len(a.cfg.SSO.Providers) > 0 {
		ocfg, err := ssoConfig(a.cfg)
		if err != nil {
			return err
		}
		if v, err = oidc.New(ocfg, nil); err != nil {
			return fmt.Errorf("%s: %w", a.cfg.Path, err)
		}
		if a.verifier != nil {
			a.sso, err = oidc.NewAuthenticator(a.verifier, v, authConfig(a.cfg).WithDefaults().Issuer, a.log.Named("sso"))
			if err != nil {
				return err
			}
		}
	}
	if a.handler == nil {
		return nil
	}
	var signOn console.SignOn
	if v != nil {
		x, err := oidc.NewHandler(v, a.service, a.handler, a.log.Named("sso"))
		if err != nil {
			return err
		}
		a.handler.Mount("/v1/sessions/oidc", "sessions_oidc", x)
		signOn = x
	}
	ad, err := admin.New(admin.Config{Owners: a.cfg.SSO.Owners, AuditStored: a.cfg.Audit.Store}, a.service, a.store, &appPolicies{a}, a.handler.Decode, a.handler.Fail, a.log.Named("admin"))
	if err != nil {
		return err
	}
	a.handler.Mount("/v1/admin/", "admin", ad)
	if !a.cfg.Console.Disabled {
		c, err := console.New(console.Config{SignOn: signOn, PublicURL: a.cfg.Console.PublicURL}, ad, a.log.Named("console"))
		if err != nil {
			return err
		}
		a.handler.Mount(console.Prefix, "console", c)
	}
	return nil
}

// appPolicies gives the admin API the app's policies.
type appPolicies struct{ a *app }

func (p *appPolicies) Check(ctx context.Context) error {
	cfg, err := config.Load(p.a.cfg.Path)
	if err != nil {
		return err
	}
	_, _, err = loadWarehouses(ctx, cfg, p.a.runs(onlyProxy), p.a.gate)
	return err
}

func (p *appPolicies) Reload(ctx context.Context) error { return p.a.reload(ctx) }

func (p *appPolicies) TestTenants() []string {
	var out []string
	for _, pol := range *p.a.policies.byWarehouse.Load() {
		for _, t := range pol.TestTenants {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (p *appPolicies) Explain(ctx context.Context, warehouse, sql string, id *policy.Identity) ([]string, error) {
	if p.a.warehouses == nil {
		return nil, errors.New("explain needs the proxy in this process (serve without --only tickets)")
	}
	if warehouse == "" && len(p.a.warehouses) == 1 {
		for name := range p.a.warehouses {
			warehouse = name
		}
	}
	w := p.a.warehouses[warehouse]
	if w == nil {
		return nil, fmt.Errorf("warehouse: no warehouse %q", warehouse)
	}
	res, err := w.Rewriter().Rewrite(ctx, sql, id)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(res.Statements))
	for i, st := range res.Statements {
		out[i] = st.SQL
	}
	return out, nil
}

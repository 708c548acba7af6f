// Package pgwarden holds the files that the pgwarden binary embeds: the demo
// dataset under testdata/demo. The code lives in the subpackages; see README.md.
package pgwarden

import _ "embed"

// DemoSchema and DemoData create and fill the demo's multi-tenant schema.
var (
	//go:embed testdata/demo/schema.sql
	DemoSchema string
	//go:embed testdata/demo/data.sql
	DemoData string
)

// DemoPolicy is the demo's policy (see testdata/demo/policy.yaml).
//
//go:embed testdata/demo/policy.yaml
var DemoPolicy string

// DemoTenancySchema and DemoTenancyPolicy are the demo's second warehouse:
// one schema per tenant beside row tenancy (testdata/tenancy).
var (
	//go:embed testdata/tenancy/schema.sql
	DemoTenancySchema string
	//go:embed testdata/tenancy/policy.yaml
	DemoTenancyPolicy string
)

// DemoRowSecuritySQL and DemoRowSecurityPolicy are the demo's pass-through
// part: a table the warehouse's own row-level security guards, and the
// policy of the warehouse that reaches it (see testdata/demo/rowsecurity.*).
var (
	//go:embed testdata/demo/rowsecurity.sql
	DemoRowSecuritySQL string
	//go:embed testdata/demo/rowsecurity.yaml
	DemoRowSecurityPolicy string
)

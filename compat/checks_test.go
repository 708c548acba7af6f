package compat

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// strict makes known gaps and bugs fail instead of skip (make compat-strict);
// inCI makes a missing client runtime fail.
var (
	strict = os.Getenv("PGWARDEN_COMPAT_STRICT") != ""
	inCI   = os.Getenv("CI") != ""
)

// knownCatalogGaps are the checks whose expectation pgwarden does not meet
// yet (it answers differently from PostgreSQL on the exposed objects alone).
// Their expectations are the final ones; their failure is a skip
// unless PGWARDEN_COMPAT_STRICT is set. Remove an entry when its check passes
// (the check logs when it does).
var knownCatalogGaps = map[string]string{
	"chatter/current_user": "current_user and session_user name the service account, not the user the client connected as",
}

// knownBugs are checks that fail because of a bug in another package (named in
// the reason) that has been reported but not fixed yet. Like the catalog gaps
// they skip unless PGWARDEN_COMPAT_STRICT is set, so that the suite documents
// the bug without turning every build red.
var knownBugs = map[string]string{}

// exposed is what a querier session of acme outside group pii may see.
var (
	exposedTables    = []string{"comments", "customers", "events", "order_items", "orders", "products", "tenants"}
	customersColumns = []string{"tenant_id", "customer_id", "name", "email", "country", "created_at"} // no phone without pii
	ordersColumns    = []string{"tenant_id", "order_id", "customer_id", "region", "status", "ordered_at", "total"}
	ordersPK         = []string{"tenant_id", "order_id"}
	ordersFKs        = []string{"customer_id->customers.customer_id", "tenant_id->customers.tenant_id"}
	// ordersFKLines are psql's \d orders "Foreign-key constraints" and "Referenced by" footers.
	ordersFKLines = []string{
		`"orders_tenant_id_customer_id_fkey" FOREIGN KEY (tenant_id, customer_id) REFERENCES customers(tenant_id, customer_id)`,
		`TABLE "comments" CONSTRAINT "comments_tenant_id_order_id_fkey" FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, order_id)`,
		`TABLE "order_items" CONSTRAINT "order_items_tenant_id_order_id_fkey" FOREIGN KEY (tenant_id, order_id) REFERENCES orders(tenant_id, order_id)`,
	}
)

const (
	acmeCustomers = 200
	acmeOrders    = 1000
	// tenantsSQL reads tenant_id from every tenant-keyed table at once.
	tenantsSQL = `SELECT tenant_id FROM orders UNION SELECT tenant_id FROM customers UNION SELECT tenant_id FROM order_items
	UNION SELECT tenant_id FROM events UNION SELECT tenant_id FROM tenants`
)

// check runs one matrix cell as the subtest name of the client test t.
func check(t *testing.T, client, name string, fn func() error) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		var note string
		t.Cleanup(func() {
			result := "PASS"
			switch {
			case t.Failed():
				result = "FAIL"
			case t.Skipped():
				result = "SKIP"
			}
			results.record(client, name, result, note)
		})
		err := fn()
		reason, gap := knownCatalogGaps[client+"/"+name]
		prefix := "known gap"
		if r, bug := knownBugs[client+"/"+name]; bug {
			reason, gap, prefix = r, true, "known bug"
		}
		if err == nil {
			if gap {
				t.Logf("known gap %s/%s passes now: remove it from knownCatalogGaps/knownBugs", client, name)
			}
			return
		}
		if gap && !strict {
			note = fmt.Sprintf("%s: %s: %v", prefix, reason, err)
			t.Skip(note)
		}
		note = err.Error()
		t.Fatal(err)
	})
}

// needRuntime skips (locally) or fails (in CI) a client whose runtime is missing.
func needRuntime(t *testing.T, client string, bins ...string) {
	t.Helper()
	var missing []string
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	missingRuntime(t, client, fmt.Sprintf("%s not found (run compat/install.sh)", strings.Join(missing, ", ")))
}

func missingRuntime(t *testing.T, client, why string) {
	t.Helper()
	if inCI {
		results.record(client, "*", "FAIL", why)
		t.Fatalf("%s: %s", client, why)
	}
	results.record(client, "*", "SKIP", why)
	t.Skipf("%s: %s", client, why)
}

func onlyAcme(tenants []string) error {
	if len(tenants) == 0 {
		return errors.New("saw no tenant_id at all")
	}
	for _, tn := range tenants {
		if tn != "acme" {
			return fmt.Errorf("tenant isolation broken: saw tenant_id %q (all seen: %q)", tn, tenants)
		}
	}
	return nil
}

func wantCount(what string, got, want int64) error {
	if got != want {
		return fmt.Errorf("%s: got %d, want %d", what, got, want)
	}
	return nil
}

func sameSet(what string, got, want []string) error {
	g := append([]string(nil), got...)
	w := append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if !reflect.DeepEqual(g, w) && !(len(g) == 0 && len(w) == 0) {
		return fmt.Errorf("%s: got %q, want %q", what, g, w)
	}
	return nil
}

func sameList(what string, got, want []string) error {
	if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		return fmt.Errorf("%s: got %q, want %q (in this order)", what, got, want)
	}
	return nil
}

// firstErr returns the first non-nil error: checks state several
// expectations and report the first that does not hold.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sqlState returns the SQLSTATE of any driver's error that carries one.
func sqlState(err error) string {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}

func wantRefused(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s: succeeded, want SQLSTATE 42501", what)
	}
	if code := sqlState(err); code != "42501" {
		return fmt.Errorf("%s: got %v (SQLSTATE %q), want SQLSTATE 42501", what, err, code)
	}
	return nil
}

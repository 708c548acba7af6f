package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/auth"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/policy"
)

const contentUsage = "usage: pgwarden content list --config FILE [--warehouse W] [--json] | " +
	"pgwarden content write --config FILE [--warehouse W] [--out FILE|-]"

// cmdContent lists the statements learned on a warehouse (policy content
// with learn or learn_tenants) and writes those its policy does not list
// yet into the policy's content.statements, for review.
func cmdContent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "write") {
		return usagef(contentUsage)
	}
	sub := args[0]
	fs := newFlags("content "+sub, stderr)
	path := fs.String("config", "pgwarden.yaml", "configuration `file`")
	warehouse := fs.String("warehouse", "", "the `warehouse` (default the only one configured)")
	asJSON := fs.Bool("json", false, "list: print JSON")
	out := fs.String("out", "", "write: the `file` to write the updated policy to (default: the policy file itself; - for stdout)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef(contentUsage)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	name, err := pickWarehouse(cfg, *warehouse)
	if err != nil {
		return err
	}
	policyFile := cfg.Warehouses[name].Policy
	pol, err := policy.Load(policyFile)
	if err != nil {
		return err
	}
	store, err := auth.Open(ctx, authConfig(cfg))
	if err != nil {
		return err
	}
	defer store.Close()
	learned, err := store.LearnedStatements(ctx, name, "")
	if err != nil {
		return err
	}
	listed := map[string]string{}
	if pol.Content != nil {
		for _, s := range pol.Content.Statements {
			listed[s.Fingerprint] = s.Name
		}
	}
	if sub == "list" {
		return listLearned(stdout, learned, listed, *asJSON)
	}
	return writeLearned(stdout, stderr, cfg, name, policyFile, *out, learned, listed)
}

func listLearned(w io.Writer, learned []auth.LearnedStatement, listed map[string]string, asJSON bool) error {
	if asJSON {
		type row struct {
			auth.LearnedStatement
			ListedAs string `json:"listed_as,omitempty"`
		}
		rows := make([]row, len(learned))
		for i, l := range learned {
			rows[i] = row{l, listed[l.Fingerprint]}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"statements": rows})
	}
	if len(learned) == 0 {
		fmt.Fprintln(w, "nothing learned yet")
		return nil
	}
	for _, l := range learned {
		state := "new"
		if n, ok := listed[l.Fingerprint]; ok {
			state = "listed as " + n
		}
		fmt.Fprintf(w, "%s  %s  tenant %s  (%s)\n  %s\n", l.Fingerprint, l.FirstSeen.UTC().Format(time.RFC3339), l.Tenant, state, oneLine(l.Normalized))
	}
	return nil
}

func writeLearned(stdout, stderr io.Writer, cfg *config.File, warehouse, policyFile, out string, learned []auth.LearnedStatement, listed map[string]string) error {
	var entries []policy.NewContentEntry
	for _, l := range learned {
		if _, ok := listed[l.Fingerprint]; ok {
			continue
		}
		entries = append(entries, policy.NewContentEntry{
			Name: "learned_" + l.Fingerprint,
			SQL:  l.Normalized,
			Comment: fmt.Sprintf("learned %s on %s from tenant %s; example: %s",
				l.FirstSeen.UTC().Format(time.RFC3339), warehouse, l.Tenant, clip(oneLine(l.Example), 200)),
		})
	}
	if len(entries) == 0 {
		fmt.Fprintf(stderr, "nothing to add: every learned statement of %s is listed in %s\n", warehouse, policyFile)
		return nil
	}
	data, err := os.ReadFile(policyFile)
	if err != nil {
		return err
	}
	updated, err := policy.AppendContent(data, policyFile, entries)
	if err != nil {
		return err
	}
	switch out {
	case "-":
		_, err = stdout.Write(updated)
		return err
	case "":
		out = policyFile
	}
	if err := os.WriteFile(out, updated, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "added %d statement(s) to %s: review them (names, groups, params), then reload the policy (SIGHUP)\n", len(entries), out)
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

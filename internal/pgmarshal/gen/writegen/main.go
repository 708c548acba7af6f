// Command writegen writes pgmarshal's nodes_gen.go (see package gen).
package main

import (
	"flag"
	"log"
	"os"

	"github.com/pgwarden/pgwarden/internal/pgmarshal/gen"
)

func main() {
	out := flag.String("o", "nodes_gen.go", "output file")
	flag.Parse()
	src, err := gen.Generate()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

// Command writegen writes pgmarshal's nodes_gen.go and unmarshal_gen.go (see
// package gen).
package main

import (
	"flag"
	"log"
	"os"

	"github.com/pgwarden/pgwarden/internal/pgmarshal/gen"
)

func main() {
	out := flag.String("o", "nodes_gen.go", "the encoder's file")
	outU := flag.String("u", "unmarshal_gen.go", "the decoder's file")
	flag.Parse()
	for _, f := range []struct {
		path string
		gen  func() ([]byte, error)
	}{{*out, gen.Generate}, {*outU, gen.GenerateUnmarshal}} {
		src, err := f.gen()
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(f.path, src, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

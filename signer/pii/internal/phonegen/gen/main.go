// Command gen writes signer/pii/phonedata.go (go generate ./signer/pii).
package main

import (
	"fmt"
	"os"

	"github.com/tailseal/tailseal/signer/pii/internal/phonegen"
)

func main() {
	src, err := phonegen.Generate()
	if err == nil {
		err = os.WriteFile("phonedata.go", src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "phonegen:", err)
		os.Exit(1)
	}
}

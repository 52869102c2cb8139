package record

import (
	"fmt"
	"testing"
)

func TestNextPseudonym(t *testing.T) {
	line := []byte(`{"details":{"email":"<email:d704924b47f6>","note":"a<b","x":"<name:0123456789ab> <ip:12>","r":"<phone>"}}`)
	var got []string
	for rest := line; ; {
		tok, after, ok := NextPseudonym(rest)
		if !ok {
			break
		}
		got = append(got, string(tok))
		rest = after
	}
	if fmt.Sprint(got) != "[<email:d704924b47f6> <name:0123456789ab>]" {
		t.Errorf("got %q", got)
	}
}

package tailer

import (
	"encoding/json"
	"unsafe"
)

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

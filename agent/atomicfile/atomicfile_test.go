package atomicfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A last line left without its newline is ended when it is whole JSON and
// else cut off, so that the line appended after it is not lost in it.
func TestAppendEndsTornLine(t *testing.T) {
	garbage := strings.Repeat("x", 3<<20)
	big := `{"records":["` + strings.Repeat("r", 2<<20) + `"]}` // a dead-letter batch
	for _, tc := range []struct{ name, before, after string }{
		{"missing", "", `{"y":2}` + "\n"},
		{"empty", "", `{"y":2}` + "\n"},
		{"whole", `{"x":1}` + "\n", `{"x":1}` + "\n" + `{"y":2}` + "\n"},
		{"torn after a line", `{"x":1}` + "\n" + `{"x":`, `{"x":1}` + "\n" + `{"y":2}` + "\n"},
		{"torn, the only line", `{"x":1,"z":[`, `{"y":2}` + "\n"},
		{"whole JSON without its newline", `{"x":1}` + "\n" + `{"x":2}`, `{"x":1}` + "\n" + `{"x":2}` + "\n" + `{"y":2}` + "\n"},
		{"torn, long", `{"x":1}` + "\n" + garbage, `{"x":1}` + "\n" + `{"y":2}` + "\n"},
		{"torn, long, the only line", garbage, `{"y":2}` + "\n"},
		{"a whole object of megabytes without its newline", `{"x":1}` + "\n" + big, `{"x":1}` + "\n" + big + "\n" + `{"y":2}` + "\n"},
		{"a torn object of megabytes", `{"x":1}` + "\n" + big[:len(big)-3], `{"x":1}` + "\n" + `{"y":2}` + "\n"},
		{"JSON but not an object", `{"x":1}` + "\n" + `null`, `{"x":1}` + "\n" + `{"y":2}` + "\n"},
		{"two objects on the line", `{"x":1}` + "\n" + `{"a":1}{"b":2}`, `{"x":1}` + "\n" + `{"y":2}` + "\n"},
		{"only a newline", "\n", "\n" + `{"y":2}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.jsonl")
			if tc.name != "missing" {
				if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := Append(path, []byte(`{"y":2}`+"\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.after {
				t.Errorf("got %.80q, want %.80q", got, tc.after)
			}
			fi, _ := os.Stat(path)
			if want := os.FileMode(0o640); tc.name == "missing" && fi.Mode().Perm() != want {
				t.Errorf("created %v, want %v", fi.Mode().Perm(), want)
			}
		})
	}
}

// A write that fails part way, here at the process's file size limit as
// on a full disk, leaves the file as it was, and the next Append adds a
// line of its own.
func TestAppendCutShort(t *testing.T) {
	if path := os.Getenv("ATOMICFILE_TEST_PATH"); path != "" {
		limit, _ := strconv.ParseUint(os.Getenv("ATOMICFILE_TEST_LIMIT"), 10, 64)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
			os.Exit(3)
		}
		err := Append(path, []byte(`{"y":"`+strings.Repeat("a", 100)+`"}`+"\n"), 0o600)
		if !errors.Is(err, syscall.EFBIG) {
			os.Stderr.WriteString("Append: " + errString(err))
			os.Exit(4)
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "f.jsonl")
	before := `{"x":1}` + "\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppendCutShort$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_PATH="+path, "ATOMICFILE_TEST_LIMIT="+strconv.Itoa(len(before)+40))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v %s", err, out)
	}
	if got, _ := os.ReadFile(path); string(got) != before {
		t.Fatalf("after a write cut short: %q, want %q", got, before)
	}
	if err := Append(path, []byte(`{"y":2}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != before+`{"y":2}`+"\n" {
		t.Fatalf("then: %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error\n"
	}
	return err.Error() + "\n"
}

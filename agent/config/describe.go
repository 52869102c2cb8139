package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
)

// Flags are values given on a command line. They win over the
// environment: defaults, then env, then flags, then validation.
type Flags struct {
	DataDir string // --data-dir: TAILSEAL_DATA_DIR
}

// Where a variable's value came from (Variable.Source).
const (
	SourceDefault = "default" // not set: the built-in default
	SourceEnv     = "env"     // the environment variable
	SourceFile    = "file"    // the file its NAME_FILE variable names
	SourceFlag    = "flag"    // a command-line flag
)

// Variable is one configuration variable as `tailseal config` shows it.
type Variable struct {
	Name string `json:"name"` // TAILSEAL_DATA_DIR
	// Value is the text Load parses: the variable's, the flag's or the
	// default. A secret's is "set" or "unset", never the value.
	Value  string `json:"value"`
	Source string `json:"source"`
	// From says where, when not the variable itself: the NAME_FILE
	// variable and its path, the flag, or the unprefixed name that
	// envconfig read instead.
	From   string `json:"from,omitempty"`
	Secret bool   `json:"secret"`
}

// variable is one field of Config as envconfig reads it.
type variable struct {
	key  string // DATA_DIR: the envconfig tag, the name without the prefix
	def  string
	file bool // may be given as a file path in NAME_FILE
}

func (v variable) name() string { return Prefix + "_" + v.key }

// variables lists every field of Config, in its order. envconfig's tags
// are the one list of names: a field added to Config is known here.
var variables = func() []variable {
	t := reflect.TypeFor[Config]()
	var out []variable
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("envconfig")
		if key == "" {
			continue
		}
		out = append(out, variable{key: key, def: f.Tag.Get("default"), file: fileSecret(key)})
	}
	return out
}()

// fileSecret reports whether the variable may come from NAME_FILE.
func fileSecret(key string) bool {
	for _, l := range secretLists {
		if l.name == key {
			return true
		}
	}
	for _, s := range secrets {
		if s.name == key {
			return true
		}
	}
	return false
}

// secret reports whether a variable's value is never shown: the secrets,
// and URLs, which carry tokens (Slack and Discord in their path, others
// as user:password@ or a query).
func secret(key string) bool {
	return fileSecret(key) || strings.HasSuffix(key, "_URL") || strings.HasSuffix(key, "_URLS") || strings.HasSuffix(key, "_WEBHOOK")
}

// Describe lists every variable Load reads, in the order of Config, with
// the value it reads and where that comes from. It reads the environment
// as Load does (envconfig falls back to the name without the prefix) and
// checks nothing: Load says what is wrong.
func Describe(flags Flags) []Variable {
	out := make([]Variable, 0, len(variables))
	for _, v := range variables {
		d := Variable{Name: v.name(), Secret: secret(v.key), Source: SourceDefault, Value: v.def}
		if val, ok := os.LookupEnv(v.name()); ok {
			d.Source, d.Value = SourceEnv, val
		} else if val, ok := os.LookupEnv(v.key); ok {
			d.Source, d.Value, d.From = SourceEnv, val, v.key+" (without the "+Prefix+"_ prefix)"
		}
		// As Load: the file is read when the variable is empty.
		if path := os.Getenv(v.name() + "_FILE"); v.file && path != "" && d.Value == "" {
			d.Source, d.Value, d.From = SourceFile, "(the file's content)", v.name()+"_FILE="+path
		}
		if v.key == "DATA_DIR" && flags.DataDir != "" {
			d.Source, d.Value, d.From = SourceFlag, flags.DataDir, "--data-dir"
		}
		if d.Secret {
			d.Value = map[bool]string{false: "unset", true: "set"}[d.Value != ""]
		}
		out = append(out, d)
	}
	return out
}

// Warning is a variable of the environment that tailseal does not read
// as its owner probably meant.
type Warning struct {
	Variable string `json:"variable"`
	Closest  string `json:"did_you_mean,omitempty"`
	Message  string `json:"message"`
}

func (w Warning) String() string { return w.Message }

// Warnings are about the environment: TAILSEAL_ variables that tailseal
// does not read (misspelled, most often: each names the closest known
// name by edit distance; a NAME_FILE of a secret is known), and variables
// without the prefix that envconfig reads for an unset TAILSEAL_ one.
func Warnings() []Warning {
	known := map[string]bool{}
	var names []string
	for _, v := range variables {
		names = append(names, v.name())
		if v.file {
			names = append(names, v.name()+"_FILE")
		}
	}
	for _, n := range names {
		known[n] = true
	}
	var out []Warning
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if known[name] || !strings.HasPrefix(upper, Prefix+"_") {
			continue
		}
		w := Warning{Variable: name, Message: name + " is not a tailseal variable"}
		if closest, d := nearest(upper, names); d <= max(2, len(upper[len(Prefix)+1:])/3) {
			w.Closest = closest
		}
		switch {
		case known[upper]:
			w.Message = name + " is not read: tailseal's variables are upper case"
		case w.Closest == "":
			w.Message += " (tailseal config lists them)"
		}
		if w.Closest != "" {
			w.Message += "; did you mean " + w.Closest + "?"
		}
		out = append(out, w)
	}
	for _, v := range variables {
		if _, set := os.LookupEnv(v.name()); set {
			continue
		}
		if _, set := os.LookupEnv(v.key); set {
			out = append(out, Warning{Variable: v.key, Closest: v.name(), Message: fmt.Sprintf(
				"%s is set, and tailseal reads it as %s, which is not set (envconfig falls back to the name without the prefix): set %s, or unset %s",
				v.key, v.name(), v.name(), v.key)})
		}
	}
	slices.SortStableFunc(out, func(a, b Warning) int { return strings.Compare(a.Variable, b.Variable) })
	return out
}

// nearest is the name closest to s, and its distance; the first of the
// closest in names' order.
func nearest(s string, names []string) (string, int) {
	best, bestD := "", -1
	for _, n := range names {
		if d := distance(s, n); bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	return best, bestD
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each count 1 (TAILSEAL_EPCOH is 1 from TAILSEAL_EPOCH).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

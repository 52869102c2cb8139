package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/query"
	"github.com/tailseal/tailseal/signer/record"
)

// A collector's data dir holds one store per origin in origins/<token>/
// (agent.OriginsDir). There every read command and verify cover every
// origin, or those named by --origin, and their answers name the origin.
// A data dir without origins/ is one store, answered as it always was.

// originFlag is --origin NAME, repeatable.
type originFlag []string

func (o *originFlag) String() string { return strings.Join(*o, ",") }

func (o *originFlag) Set(v string) error {
	if v == "" {
		return errors.New("an origin is not empty")
	}
	if !slices.Contains(*o, v) {
		*o = append(*o, v)
	}
	return nil
}

const originUsage = "only this `ORIGIN` (repeatable); on a collector's data dir (one with origins/) every origin by default"

// source is one store a command answers from.
type source struct {
	origin  string // "" when a single store names none
	dataDir string
}

// sources are the stores a command covers: the data dir's own store, or
// the selected origins of a collector's data dir (fleet).
type sources struct {
	fleet bool
	list  []source
	all   []agent.FleetOrigin // every origin the collector keeps, selected or not
}

// selectSources finds the stores of cfg's data dir that --origin selects.
// Problems are told on stderr and returned as errUsage.
func selectSources(cmd, dataDir string, want []string) (sources, error) {
	all, stray, err := agent.Origins(dataDir)
	switch {
	case errors.Is(err, agent.ErrNotFleet):
		return singleSource(cmd, dataDir, want)
	case err != nil:
		fmt.Fprintf(os.Stderr, "tailseal %s: %v\n", cmd, err)
		return sources{}, errUsage
	}
	for _, name := range stray {
		fmt.Fprintf(os.Stderr, "tailseal %s: warning: %s is not an origin's directory (named by its origin token); left out\n",
			cmd, filepath.Join(dataDir, agent.OriginsDir, name))
	}
	if len(all) == 0 {
		fmt.Fprintf(os.Stderr, "tailseal %s: %s holds no origin yet: nothing has been collected\n", cmd, filepath.Join(dataDir, agent.OriginsDir))
		return sources{}, errUsage
	}
	s := sources{fleet: true, all: all}
	known := map[string]string{}
	for _, o := range all {
		known[o.Origin] = o.DataDir
	}
	if len(want) == 0 {
		for _, o := range all {
			s.list = append(s.list, source{o.Origin, o.DataDir})
		}
		return s, nil
	}
	for _, name := range want {
		dir, ok := known[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "tailseal %s: unknown origin %q; %s holds %s\n", cmd, name, filepath.Join(dataDir, agent.OriginsDir), originNames(all))
			return sources{}, errUsage
		}
		s.list = append(s.list, source{name, dir})
	}
	return s, nil
}

// singleSource is the data dir's own store; --origin may only name its
// origin.
func singleSource(cmd, dataDir string, want []string) (sources, error) {
	origin, err := agent.StoreOrigin(dataDir)
	for _, name := range want {
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "tailseal %s: --origin %s: the store's origin cannot be read: %v\n", cmd, name, err)
			return sources{}, errUsage
		case name != origin:
			is := fmt.Sprintf("is origin %q", origin)
			if origin == "" {
				is = "names no origin"
			}
			fmt.Fprintf(os.Stderr, "tailseal %s: --origin %s: the store in %s %s, and it is no collector's data dir (no %s/)\n",
				cmd, name, dataDir, is, agent.OriginsDir)
			return sources{}, errUsage
		}
	}
	return sources{list: []source{{origin, dataDir}}}, nil
}

// originNames lists origins for a message: the first 20, and how many more.
func originNames(all []agent.FleetOrigin) string {
	var names []string
	for i, o := range all {
		if i == 20 {
			names = append(names, fmt.Sprintf("and %d more", len(all)-i))
			break
		}
		names = append(names, o.Origin)
	}
	return strings.Join(names, ", ")
}

// allOrigins labels a row or line over every origin selected: an origin
// has no spaces, so it is never one.
func allOrigins(n int) string {
	if n == 1 {
		return "1 origin"
	}
	return fmt.Sprintf("all %d origins", n)
}

// target is a store opened for a read command.
type target struct {
	source
	*query.Store
}

// openTargets opens the stores of a read command. A single store that is
// missing or empty is a usage error, as it always was; an origin of a
// collector without records yet is left out with a warning, and only
// when none is left is it an error.
func openTargets(cmd string, dataDir string, s sources) ([]target, error) {
	if !s.fleet {
		st, err := openStore(cmd, dataDir)
		if err != nil {
			return nil, err
		}
		return []target{{s.list[0], st}}, nil
	}
	var out []target
	for _, src := range s.list {
		st, err := query.Open(filepath.Join(src.dataDir, agent.StoreDir))
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "tailseal %s: warning: origin %s: %v; left out\n", cmd, src.origin, err)
			continue
		case st.Empty():
			fmt.Fprintf(os.Stderr, "tailseal %s: warning: origin %s has no records yet; left out\n", cmd, src.origin)
			continue
		}
		out = append(out, target{src, st})
	}
	if len(out) == 0 {
		fmt.Fprintf(os.Stderr, "tailseal %s: no origin selected in %s has records\n", cmd, dataDir)
		return nil, errUsage
	}
	return out, nil
}

// problemsOf are the segments of one origin's store that could not be
// read; origin is "" for a single store.
type problemsOf struct {
	origin   string
	problems []query.Problem
}

// tagged is a record and the index of the target it came from.
type tagged struct {
	at  int
	rec record.Record
}

// newestAcross merges lists, each one origin's records newest first (by
// seq, as a store answers), into the limit newest across them: at each
// step the head with the latest timestamp, earlier lists first on a tie.
// Each origin's own order is kept, so the merge needs no more than each
// origin's limit newest; a timestamp that is not RFC 3339 counts as the
// oldest.
func newestAcross(lists [][]record.Record, limit int) []tagged {
	next := make([]int, len(lists))
	var out []tagged
	for len(out) < limit {
		best := -1
		for i, l := range lists {
			if next[i] < len(l) && (best < 0 || l[next[i]].Time.After(lists[best][next[best]].Time)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, tagged{best, lists[best][next[best]]})
		next[best]++
	}
	return out
}

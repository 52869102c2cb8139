package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/signer/verify"
)

// fleetKeyring is the keyring over a collector's origins. A single K0
// (TAILSEAL_VERIFY_KEY, TAILSEAL_HMAC_KEY) is one store's: given for
// several origins it is a usage error, not a list of false findings.
func fleetKeyring(cfg *config.Config, s sources) (*keyring, error) {
	if len(s.list) > 1 {
		for _, k := range []struct{ name, value string }{{"TAILSEAL_VERIFY_KEY", cfg.VerifyKey}, {"TAILSEAL_HMAC_KEY", cfg.HMACKey}} {
			if k.value != "" {
				return nil, fmt.Errorf("%s is the K0 of one store, and %d origins are selected: select its origin with --origin, "+
					"or give the auditor's identity with --identity to open each origin's sealed K0", k.name, len(s.list))
			}
		}
	}
	return newKeyring(cfg, s.all)
}

// verdict is what verify found about one origin.
type verdict struct {
	origin string
	sum    *verify.Summary
	err    error // the origin was not checked: why
	usage  bool  // err is about the keys given or a missing store (exit 2), not the store's content
}

// verifyFleet verifies each selected origin with its own keys, then
// prints every origin's findings and summary and one line over all. Exit
// 1 when any origin has findings (or could not be read), else 2 when any
// could not be checked with the keys given, else 0.
func verifyFleet(ctx context.Context, cfg *config.Config, s sources, asJSON bool) error {
	keys, err := fleetKeyring(cfg, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal verify:", err)
		return errUsage
	}
	verdicts := make([]verdict, len(s.list))
	opts := make([]verify.Options, len(s.list))
	var total int64
	for i, src := range s.list {
		v := &verdicts[i]
		v.origin = src.origin
		var notes []string
		opts[i], notes, v.err = keys.options(src.dataDir, src.origin)
		storeDir := filepath.Join(src.dataDir, agent.StoreDir)
		if _, err := os.Stat(storeDir); err != nil && v.err == nil {
			v.err = fmt.Errorf("no store in %s", src.dataDir)
		}
		v.usage = v.err != nil
		if !asJSON {
			for _, n := range notes {
				fmt.Fprintf(os.Stderr, "note: origin %s: %s\n", src.origin, n)
			}
		}
		total += diskBytes(storeDir)
	}
	bar := newProgressBar("verifying", total)
	var done int64 // bytes of the origins verified before
	for i, src := range s.list {
		v := &verdicts[i]
		if v.err != nil {
			continue
		}
		st := newStoreSource(src.dataDir)
		before := done
		st.progress = func(n int64) { bar.set(before + n) }
		v.sum, v.err = st.run(ctx, opts[i])
		done += st.read
		if ctx.Err() != nil && errors.Is(v.err, ctx.Err()) {
			bar.finish()
			fmt.Fprintf(os.Stderr, "tailseal verify: interrupted; origin %s was not checked to its end\n", src.origin)
			return fmt.Errorf("%w: %w", errInterrupted, v.err)
		}
		v.usage = errors.Is(v.err, verify.ErrWrongKey) || errors.Is(v.err, verify.ErrWrongVerifier)
	}
	bar.finish()
	return fleetOutcome(verdicts, asJSON)
}

// fleetTotals sums the verdicts.
type fleetTotals struct {
	Origins      int   `json:"origins"`
	Intact       int   `json:"intact"`
	WithFindings int   `json:"with_findings"`
	NotChecked   int   `json:"not_checked"`
	Records      int   `json:"records"`
	Segments     int   `json:"segments"`
	Checkpoints  int   `json:"checkpoints"`
	Bytes        int64 `json:"bytes"`
	Findings     int   `json:"findings"`
}

// fleetOutcome prints the verdicts and maps them to the exit code.
func fleetOutcome(verdicts []verdict, asJSON bool) error {
	t := fleetTotals{Origins: len(verdicts)}
	usage, finding := false, false
	enc := json.NewEncoder(os.Stdout)
	for _, v := range verdicts {
		if v.err != nil {
			t.NotChecked++
			usage, finding = usage || v.usage, finding || !v.usage
			fmt.Fprintf(os.Stderr, "tailseal verify: origin %s: %v\n", v.origin, v.err)
			if asJSON {
				enc.Encode(struct {
					Origin string `json:"origin"`
					Error  string `json:"error"`
				}{v.origin, v.err.Error()})
			} else {
				fmt.Printf("%s: not checked: %v\n", v.origin, v.err)
			}
			continue
		}
		sum := v.sum
		if len(sum.Findings) > 0 {
			t.WithFindings++
			finding = true
		} else {
			t.Intact++
		}
		t.Records, t.Segments, t.Checkpoints, t.Bytes = t.Records+sum.Records, t.Segments+sum.Segments, t.Checkpoints+sum.Checkpoints, t.Bytes+sum.Bytes
		t.Findings += len(sum.Findings)
		if asJSON {
			for _, f := range sum.Findings {
				enc.Encode(struct {
					Origin string `json:"origin"`
					verify.Finding
				}{v.origin, f})
			}
			enc.Encode(struct {
				Origin  string          `json:"origin"`
				Summary *verify.Summary `json:"summary"`
			}{v.origin, sum})
			continue
		}
		for _, f := range sum.Findings {
			fmt.Printf("%s: %s\n", v.origin, f)
		}
		for _, line := range summaryLines(sum) {
			fmt.Printf("%s: %s\n", v.origin, line)
		}
	}
	if asJSON {
		enc.Encode(struct {
			Fleet fleetTotals `json:"fleet"`
		}{t})
	} else {
		status := "intact"
		if t.Intact < t.Origins {
			status = fmt.Sprintf("NOT intact (%d with findings, %d not checked)", t.WithFindings, t.NotChecked)
		}
		fmt.Printf("%s: %s: %d records (%.1f MB) in %d segments, %d checkpoints, %d findings\n",
			allOrigins(t.Origins), status, t.Records, float64(t.Bytes)/1e6, t.Segments, t.Checkpoints, t.Findings)
	}
	switch {
	case finding:
		return errFinding
	case usage:
		return errUsage
	}
	return nil
}

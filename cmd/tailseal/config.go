package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/sinks/email"
)

func runConfig(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, `one JSON object: {"variables":[{"name","value","source","from","secret"}…],"warnings":[…],"problems":[…]}`)
	var flags config.Flags
	dataDirFlag(fs, &flags)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal config [--json] [--data-dir DIR]

Prints the configuration that tailseal run, and every other command, reads:
each TAILSEAL_ variable, its value and where the value came from (default,
env, file: the file its _FILE variable names, or flag). Secrets, and URLs,
which can carry tokens, show only set or unset, never their value.

Then every problem at once: the values Load refuses, and what the agent
would refuse at start without writing anything (a source that is not a
regular file, a TAILSEAL_ORIGIN that is not the store's, an SMTP CA file
that cannot be read). It warns about TAILSEAL_ variables that tailseal does
not read, naming the closest one it knows (TAILSEAL_VERIFY_RECIPENT: did you
mean TAILSEAL_VERIFY_RECIPIENT?). Problems and warnings go to stderr, and
in the --json object too.

Exit 0 when there is no problem (warnings do not count), 2 otherwise.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tailseal config: unexpected argument %q; see tailseal config --help\n", fs.Arg(0))
		return errUsage
	}
	vars := config.Describe(flags)
	warnings := config.Warnings()
	problems := configProblems(flags)
	if *asJSON {
		out := struct {
			Variables []config.Variable `json:"variables"`
			Warnings  []config.Warning  `json:"warnings"`
			Problems  []string          `json:"problems"`
		}{vars, warnings, problems}
		if out.Warnings == nil {
			out.Warnings = []config.Warning{}
		}
		if out.Problems == nil {
			out.Problems = []string{}
		}
		writeJSON(out)
	} else {
		printConfig(vars)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "tailseal config: warning:", w)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "tailseal config:", p)
	}
	if len(problems) > 0 {
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "tailseal config: %d problems; tailseal run would not start\n", len(problems))
		}
		return errUsage
	}
	return nil
}

func printConfig(vars []config.Variable) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tSOURCE")
	for _, v := range vars {
		value := v.Value
		if value == "" {
			value = `""`
		}
		source := v.Source
		if v.From != "" {
			source += " " + v.From
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, cell(value), cell(source))
	}
	tw.Flush()
}

// configProblems are every problem of the configuration: what Load
// refuses, and what the agent would refuse at start.
func configProblems(flags config.Flags) []string {
	cfg, err := config.Inspect(flags)
	var errs []error
	var e *config.Error
	switch {
	case errors.As(err, &e):
		errs = e.Problems
	case err != nil:
		errs = []error{err}
	}
	if cfg != nil && cfg.Source != "" && cfg.DataDir != "" {
		errs = append(errs, agent.Check(cfg)...)
	}
	if err == nil && cfg.SMTPAddr != "" { // else Load has said what is wrong with it
		if _, err := email.New(emailOptions(cfg)); err != nil {
			errs = append(errs, err)
		}
	}
	var out []string
	for _, err := range errs {
		out = append(out, strings.TrimPrefix(err.Error(), config.ErrInvalid.Error()+": "))
	}
	return out
}

package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a cloud-config file.
//
// Path is where the problem is, written the way a user reads the file
// ("address-pools[1].addresses[0]"); it is empty for the file as a whole.
// Line is the line of the file it is on, or 0 when unknown.
type FieldError struct {
	Path string
	Line int
	Msg  string
}

// Error reads "path: message (line N)". The path comes first so that the
// list Parse returns reads like the file: one entry per line, each saying
// where before saying what.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Errors is every problem Parse found, in file order.
//
// Parse reports all problems at once, not just the first, so that a user
// fixing a file does not need one round trip per typo.
type Errors []*FieldError

// Error puts one problem on each line. A single problem is returned bare so
// that it composes with a prefix ("cloud config /etc/x.yaml: ...").
func (e Errors) Error() string {
	switch len(e) {
	case 0:
		return "no errors"
	case 1:
		return e[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(e))
	for _, fe := range e {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find the individual *FieldError values.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

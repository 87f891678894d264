package config

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// FieldError is one problem in a cloud-config file: a field.Error and the
// line of the file it is on.
//
// Err.Field is where the problem is, written the way a user reads the file
// ("address-pools[1].addresses[0]"); it is empty for the file as a whole.
// Err.Detail says what is wrong, quoting the value unless it may be a
// secret. Err.BadValue is never set, so that nothing prints a secret by
// accident. Line is 0 when unknown.
type FieldError struct {
	Err  *field.Error
	Line int
}

// Error reads "path: detail (line N)". The path comes first so that the
// list Parse returns reads like the file: one entry per line, each saying
// where before saying what. field.Error's own text ("Invalid value: ...")
// would repeat the value that Detail already quotes, or hides.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Err.Field != "" {
		b.WriteString(e.Err.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Detail)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Unwrap lets errors.As find the field.Error.
func (e *FieldError) Unwrap() error {
	return e.Err
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

// newError is a problem of type t at path (nil: the file as a whole). Its
// detail is cut to maxMessage bytes: a value of a megabyte quoted in full
// helps no one.
func newError(t field.ErrorType, path *field.Path, format string, args ...any) *field.Error {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = fmt.Sprintf("%s... (%d more bytes)", msg[:cut], len(msg)-cut)
	}
	return &field.Error{Type: t, Field: pathText(path), Detail: msg}
}

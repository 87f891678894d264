package ipam

import "fmt"

// Reason classifies why a request could not be met. It is the label of the
// allocation-errors metric, so the set is small and fixed.
type Reason string

// The reasons an allocation fails.
const (
	ReasonPoolExhausted  Reason = "pool_exhausted"
	ReasonUnknownPool    Reason = "unknown_pool"
	ReasonNotInPool      Reason = "ip_not_in_pool"
	ReasonIPInUse        Reason = "ip_in_use"
	ReasonNoPool         Reason = "no_pool_for_family"
	ReasonPoolNotAllowed Reason = "pool_not_allowed"
	ReasonInvalidRequest Reason = "invalid_request"
)

// Error is an allocation failure the user can act on. Its message names the
// pool, address or setting involved.
type Error struct {
	Reason Reason
	Msg    string
	// keeps: the request was refused and the Service keeps the address it
	// holds (see Allocator.keeps).
	keeps bool
}

func (e *Error) Error() string { return e.Msg }

// Retryable reports whether the request may succeed later without the
// Service changing, because another Service may release an address.
func (e *Error) Retryable() bool {
	switch e.Reason {
	case ReasonPoolExhausted, ReasonIPInUse:
		return true
	}
	return false
}

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

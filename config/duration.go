package config

import (
	"encoding/json"
	"fmt"
)

// UnmarshalJSON reads a Go duration string ("90s", "1m30s"), the form
// MetalLB's hold-time uses. JSON null leaves d unchanged. Bare numbers are
// refused: a unit-less "90" is ambiguous between seconds and nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a duration like \"90s\": want a string", b)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string that UnmarshalJSON reads back.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"
)

// VTYConn is a connection to one FRR daemon's vty socket, speaking the
// protocol vtysh speaks: a command ends with a NUL byte, and each answer
// ends with three NUL bytes and the command's status. Unlike VTY, which
// starts a vtysh process per call (tens of milliseconds), a command costs
// about a millisecond, which is what a benchmark polling FRR needs. Safe
// for concurrent use (commands are serialized).
type VTYConn struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to daemon's vty socket ("bgpd", "zebra").
func (f *FRR) Dial(daemon string) (*VTYConn, error) {
	c, err := net.DialTimeout("unix", filepath.Join(f.runDir, daemon+".vty"), vtyTimeout)
	if err != nil {
		return nil, fmt.Errorf("lab: FRR %s vty: %w", daemon, err)
	}
	return &VTYConn{conn: c, r: bufio.NewReader(c)}, nil
}

// VTYStatusError is a command the daemon answered with a non-zero status
// (1 is a warning, such as "show ip route X json" for an absent route,
// which still prints "{}"); the connection stays usable.
type VTYStatusError struct {
	Cmd    string
	Status byte
	Output string
}

func (e *VTYStatusError) Error() string {
	return fmt.Sprintf("lab: vty %q: status %d: %s", e.Cmd, e.Status, e.Output)
}

// Close closes the connection.
func (v *VTYConn) Close() error { return v.conn.Close() }

// Do runs one command and returns its output. A command the daemon
// answers with a non-zero status is a *VTYStatusError, with the output.
func (v *VTYConn) Do(ctx context.Context, cmd string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	deadline := time.Now().Add(vtyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := v.conn.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := v.conn.Write(append([]byte(cmd), 0)); err != nil {
		return "", fmt.Errorf("lab: vty %q: %w", cmd, err)
	}
	var out []byte
	for {
		b, err := v.r.ReadByte()
		if err != nil {
			return string(out), fmt.Errorf("lab: vty %q: %w", cmd, err)
		}
		out = append(out, b)
		// The end: three NULs, then the status byte.
		if n := len(out); n >= 4 && bytes.Equal(out[n-4:n-1], []byte{0, 0, 0}) {
			status := out[n-1]
			text := string(out[:n-4])
			if status != 0 {
				return text, &VTYStatusError{Cmd: cmd, Status: status, Output: text}
			}
			return text, nil
		}
	}
}

// DoJSON runs a show command that ends in "json" and decodes its output
// into v.
func (v *VTYConn) DoJSON(ctx context.Context, cmd string, out any) error {
	text, err := v.Do(ctx, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		return fmt.Errorf("lab: vty %q: decoding %q: %w", cmd, text, err)
	}
	return nil
}

package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// runCmd runs a short command in the root namespace and returns its
// combined output. Without a deadline on ctx it is bounded by
// defaultCmdTimeout, so a wedged tool cannot hang a test.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	return runCmdStdin(ctx, "", name, args...)
}

func runCmdStdin(ctx context.Context, stdin, name string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCmdTimeout)
		defer cancel()
	}
	if name == "ip" {
		p, err := process.LookIP()
		if err != nil {
			return "", err
		}
		name = p
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	// A grandchild that inherited the output pipe must not keep Wait
	// hanging after the command itself is gone.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	s := out.String()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(s))
	}
	return s, nil
}

// runIP runs ip commands such as "link set lo up" inside namespace ns (the
// root namespace if ns is empty). Several commands go through one
// `ip -batch -`, which stops at the first failure, so a whole host is set
// up with one fork.
func runIP(ctx context.Context, ns string, cmds ...string) (string, error) {
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if len(cmds) == 1 {
		return runCmd(ctx, "ip", append(args, strings.Fields(cmds[0])...)...)
	}
	return runCmdStdin(ctx, strings.Join(cmds, "\n")+"\n", "ip", append(args, "-batch", "-")...)
}

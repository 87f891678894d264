package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/test/process"
)

// FRR bounds and paths.
const (
	frrLibDir       = "/usr/lib/frr"
	frrStartTimeout = 20 * time.Second
	frrStopGrace    = 5 * time.Second
	vtyTimeout      = 10 * time.Second
	// RouterASN and NodeASN are the AS numbers of DefaultBGPDConf.
	RouterASN = 64512
	NodeASN   = 64513
)

// FRRConfig is the configuration of the router's FRR daemons.
type FRRConfig struct {
	// BGPD is bgpd.conf. Required.
	BGPD string
	// Zebra is zebra.conf; empty means a minimal one.
	Zebra string
	// BFD also starts bfdd, with BFDD as its bfdd.conf (may be empty; BFD
	// peers can also be configured with VTY).
	BFD  bool
	BFDD string
	// Host runs the daemons; nil means the router. Each host's FRR has a
	// run directory of its own.
	Host *Host
}

// FRR is FRR's zebra and bgpd (and optionally bfdd) running in the
// router's namespace as children of the test, without watchfrr and without
// a daemons file. They run in the foreground with their log on stdout, so
// their output lands in the lab's log directory and their exit is seen at
// once.
type FRR struct {
	lab    *Lab
	runDir string
	procs  []*process.Process // in start order: zebra, bgpd, bfdd

	stopOnce sync.Once
	stopErr  error
}

// DefaultBGPDConf returns a bgpd.conf for the router with the essentials
// of the lab recipe: AS RouterASN, router-id .1, nodes accepted from the
// whole LAN as peer group NODES (passive, AS NodeASN, timers 1 3, connect
// 1), up to 8 equal-cost paths for IPv4 and IPv6, and no
// ebgp-requires-policy (without which FRR 8.4 installs nothing). A
// non-empty password adds TCP MD5 for the group.
func DefaultBGPDConf(password string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname router\n")
	fmt.Fprintf(&b, "router bgp %d\n", RouterASN)
	fmt.Fprintf(&b, " bgp router-id %s\n", netip.AddrFrom4([4]byte{203, 0, 113, RouterHostNumber}))
	b.WriteString(" no bgp ebgp-requires-policy\n")
	b.WriteString(" no bgp default ipv4-unicast\n")
	b.WriteString(" neighbor NODES peer-group\n")
	fmt.Fprintf(&b, " neighbor NODES remote-as %d\n", NodeASN)
	b.WriteString(" neighbor NODES passive\n")
	b.WriteString(" neighbor NODES timers 1 3\n")
	b.WriteString(" neighbor NODES timers connect 1\n")
	if password != "" {
		fmt.Fprintf(&b, " neighbor NODES password %s\n", password)
	}
	fmt.Fprintf(&b, " bgp listen range %s peer-group NODES\n", LANv4)
	fmt.Fprintf(&b, " bgp listen range %s peer-group NODES\n", LANv6)
	for _, af := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n", af)
		b.WriteString("  neighbor NODES activate\n")
		b.WriteString("  maximum-paths 8\n")
		b.WriteString(" exit-address-family\n")
	}
	return b.String()
}

// StartFRR starts zebra and bgpd with bgpdConf in the router's namespace;
// see StartFRRConfig.
func (l *Lab) StartFRR(ctx context.Context, bgpdConf string) (*FRR, error) {
	return l.StartFRRConfig(ctx, FRRConfig{BGPD: bgpdConf})
}

// StartFRRConfig starts FRR in the router's namespace, installing the frr
// package first if it is missing, and returns once every daemon answers on
// its vty socket. ctx bounds the start; the daemons run until Stop or the
// lab's Close.
//
// The daemons drop privileges to user frr, so their run directory (sockets,
// pid files, configuration) is RunBase/<prefix>/frr, owned by frr:frr, and
// not the test's private TempDir. Each gets `--vty_socket RUN -z
// RUN/zserv.api -P 0`: vty sockets in RUN, one zserv socket shared by
// zebra and its clients, no TCP vty port.
func (l *Lab) StartFRRConfig(ctx context.Context, cfg FRRConfig) (_ *FRR, retErr error) {
	host := cfg.Host
	if host == nil {
		host = l.router
	}
	if host == nil {
		return nil, errors.New("lab: StartFRR needs Options.Router")
	}
	if cfg.BGPD == "" {
		return nil, errors.New("lab: StartFRR: empty bgpd.conf")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, aptTimeout+frrStartTimeout)
		defer cancel()
	}
	if err := EnsurePackages(ctx, "frr"); err != nil {
		return nil, err
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("lab: FRR: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	run := filepath.Join(l.runDir, "frr")
	if host != l.router {
		run = filepath.Join(l.runDir, "frr-"+host.name)
	}
	// A previous FRR of this lab may have left sockets and pid files.
	if err := os.RemoveAll(run); err != nil {
		return nil, err
	}
	if err := os.Mkdir(run, 0o755); err != nil {
		return nil, err
	}
	zebraConf := cfg.Zebra
	if zebraConf == "" {
		zebraConf = "hostname router\n"
	}
	files := map[string]string{"zebra.conf": zebraConf, "bgpd.conf": cfg.BGPD}
	if cfg.BFD {
		files["bfdd.conf"] = cfg.BFDD
	}
	for name, content := range files {
		p := filepath.Join(run, name)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			return nil, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(run, uid, gid); err != nil {
		return nil, err
	}

	f := &FRR{lab: l, runDir: run}
	defer func() {
		if retErr != nil {
			_ = f.Stop()
		}
	}()
	daemons := []string{"zebra", "bgpd"}
	if cfg.BFD {
		daemons = append(daemons, "bfdd")
	}
	for _, d := range daemons {
		args := []string{
			"--vty_socket", run,
			"-z", filepath.Join(run, "zserv.api"),
			"-P", "0",
			"-f", filepath.Join(run, d+".conf"),
			"-i", filepath.Join(run, d+".pid"),
			"--log", "stdout",
		}
		if d == "bfdd" {
			args = append(args, "--bfdctl", filepath.Join(run, "bfdd.sock"))
		}
		// The daemons must outlive ctx, which only bounds the start.
		p, err := host.Start(context.WithoutCancel(ctx), process.Spec{Name: d, Path: filepath.Join(frrLibDir, d), Args: args})
		if err != nil {
			return nil, err
		}
		f.procs = append(f.procs, p)
		// zebra first and ready before its clients: bgpd connects to
		// zserv.api at start and retries only slowly.
		if err := f.waitVTY(ctx, d, p); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// waitVTY waits until daemon d answers on its vty socket.
func (f *FRR) waitVTY(ctx context.Context, d string, p *process.Process) error {
	ctx, cancel := context.WithTimeout(ctx, frrStartTimeout)
	defer cancel()
	sock := filepath.Join(f.runDir, d+".vty")
	for {
		if !p.Running() {
			return fmt.Errorf("lab: FRR %s exited at start (%v):\n%s", d, p.Err(), p.LogTail(logTailBytes))
		}
		if _, err := os.Stat(sock); err == nil {
			if _, err := f.vty(ctx, "-d", d, "-c", "show version"); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: FRR %s not answering on %s: %w\n%s", d, sock, ctx.Err(), p.LogTail(logTailBytes))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RunDir returns FRR's run directory (vty sockets, configuration files).
func (f *FRR) RunDir() string { return f.runDir }

// Processes returns the FRR daemons, zebra first.
func (f *FRR) Processes() []*process.Process { return append([]*process.Process(nil), f.procs...) }

// VTY runs vtysh commands against the daemons, each as one -c (so
// "configure terminal", "router bgp 64512", "neighbor X shutdown" works as
// one call), and returns the output.
func (f *FRR) VTY(cmds ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), vtyTimeout)
	defer cancel()
	var args []string
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return f.vty(ctx, args...)
}

// VTYJSON runs one show command that ends in "json" and decodes its output
// into v.
func (f *FRR) VTYJSON(cmd string, v any) error {
	out, err := f.VTY(cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("lab: vtysh %q: decoding %q: %w", cmd, out, err)
	}
	return nil
}

func (f *FRR) vty(ctx context.Context, args ...string) (string, error) {
	// vtysh talks to the daemons over unix sockets only, so it runs in the
	// root namespace.
	return runCmd(ctx, "vtysh", append([]string{"--vty_socket", f.runDir}, args...)...)
}

// Stop stops the daemons, clients first, and waits until they are reaped.
// It is idempotent; Close of the lab stops them anyway.
func (f *FRR) Stop() error {
	f.stopOnce.Do(func() {
		var errs []error
		for i := len(f.procs) - 1; i >= 0; i-- {
			if err := f.procs[i].Stop(frrStopGrace); err != nil {
				errs = append(errs, err)
			}
		}
		f.stopErr = errors.Join(errs...)
	})
	return f.stopErr
}

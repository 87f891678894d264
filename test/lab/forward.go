package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Forward bounds.
const (
	// maxForwardConns bounds the connections one Forward carries at once;
	// a node agent needs a handful (watches, leases, events).
	maxForwardConns = 256
	forwardDial     = 5 * time.Second
)

// Forward carries TCP connections accepted on a listener inside a host's
// namespace to an address in the root namespace. It is how processes in a
// node namespace reach the apiserver, which listens on the root
// namespace's 127.0.0.1 only: no lab address ever enters the root
// namespace and no packet leaves loopback.
type Forward struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ForwardAPIServer makes 127.0.0.1:port inside h's namespace reach
// 127.0.0.1:port of the root namespace, so a node's kubeconfig
// https://127.0.0.1:port works unchanged, with the same serving
// certificate. The listener is created on a thread that has joined h's
// namespace; accepting and dialling happen on ordinary threads, which are
// in the root namespace. Close of the lab closes it.
func (l *Lab) ForwardAPIServer(h *Host, port int) (*Forward, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return l.Forward(h, addr, addr)
}

// Forward listens on listenAddr inside h's namespace and connects every
// accepted connection to targetAddr in the root namespace, copying bytes
// both ways. targetAddr should be a loopback address.
func (l *Lab) Forward(h *Host, listenAddr, targetAddr string) (*Forward, error) {
	ln, err := listenIn(h.ns, "tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("%s: forward %s: %w", h.name, listenAddr, err)
	}
	f := &Forward{l: ln, target: targetAddr, conns: map[net.Conn]struct{}{}}
	if err := l.track(f); err != nil {
		return nil, err
	}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr returns the listening address inside the host's namespace.
func (f *Forward) Addr() net.Addr { return f.l.Addr() }

func (f *Forward) accept() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors (EMFILE and the like): back off briefly
			// instead of spinning.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !f.add(c) {
			c.Close()
			continue
		}
		f.wg.Add(1)
		go f.serve(c)
	}
}

func (f *Forward) add(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.conns) >= maxForwardConns {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forward) remove(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
		c.Close()
	}
}

func (f *Forward) serve(in net.Conn) {
	defer f.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), forwardDial)
	out, err := (&net.Dialer{}).DialContext(ctx, "tcp", f.target)
	cancel()
	if err != nil {
		f.remove(in)
		return
	}
	if !f.add(out) {
		out.Close()
		f.remove(in)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil {
			// A reset or a closed side: nothing more can flow either way.
			in.Close()
			out.Close()
		} else if tc, ok := dst.(*net.TCPConn); ok {
			// Pass a clean EOF on as a half-close, so protocols that
			// signal the end of a request with EOF still work.
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	f.remove(in, out)
}

// Close stops accepting, closes every carried connection and waits for the
// copying goroutines. It is idempotent.
func (f *Forward) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	err := f.l.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

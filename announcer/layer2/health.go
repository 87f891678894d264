package layer2

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Usable says whether the interface can carry announcements now: it
// exists, is up, has a carrier, and its sockets neither failed to open at
// the last SetAnnouncements nor stopped reading. A node that cannot use
// any interface of a pool tells the others (package nodemeta), which pass
// it over for that pool instead of leaving its IPs unanswered.
func (a *Announcer) Usable(name string) error {
	a.mu.Lock()
	a.asked[name] = true
	a.mu.Unlock()
	ifi, err := a.interfaceByName(name)
	if err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %s is down", name)
	}
	if ifi.Flags&net.FlagRunning == 0 {
		return fmt.Errorf("interface %s has no carrier", name)
	}
	a.mu.Lock()
	l := a.links[name]
	a.mu.Unlock()
	if l == nil {
		return nil
	}
	if l.broken() {
		return fmt.Errorf("interface %s: a socket stopped reading", name)
	}
	if msg := l.openErr.Load(); msg != nil && *msg != "" {
		return errors.New(*msg)
	}
	return nil
}

// HealthChanges delivers a value when an interface's usability may have
// changed (a link went up or down, a socket failed), so that the caller
// asks Usable again at once. Values are coalesced.
func (a *Announcer) HealthChanges() <-chan struct{} { return a.health }

// healthChanged signals HealthChanges without blocking.
func (a *Announcer) healthChanged() {
	select {
	case a.health <- struct{}{}:
	default:
	}
}

// matters says whether the interface carries announcements or was asked
// about with Usable.
func (a *Announcer) matters(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked[name] || a.links[name] != nil
}

// WatchLinks follows the links of the network namespace through netlink
// until ctx ends, and signals HealthChanges on every change of a link that
// matters (see matters):
// an owner whose interface loses its carrier hands its IPs over within a
// gossip round instead of at the next resync.
func (a *Announcer) WatchLinks(ctx context.Context) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	errs := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	})
	if err != nil {
		close(done)
		return fmt.Errorf("subscribing to link changes: %w", err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.done:
				return
			case err := <-errs:
				a.logger.Error(err, "Following link changes; interfaces are checked at every resync only")
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				// Only the interfaces that matter: a node's pods come
				// and go with veths of their own.
				if u.Link != nil && a.matters(u.Link.Attrs().Name) {
					a.healthChanged()
				}
			}
		}
	}()
	return nil
}

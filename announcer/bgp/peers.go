package bgp

import (
	"errors"
	"fmt"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

var _ announcer.NodeFollower = (*Speaker)(nil)

// SetNode sets the peers of cloud whose node-selectors match a node with
// nodeLabels, with the passwords of their password-secret read by
// Config.Passwords. The controller calls it on every pass, so a peer
// follows a change of the config, of the node's labels or of its Secret.
func (s *Speaker) SetNode(cloud *config.Config, nodeLabels map[string]string) error {
	return s.SetPeers(s.peersFor(cloud.Peers, nodeLabels))
}

// peersFor returns the peers whose node-selectors match nodeLabels, with
// passwords taken from their Secrets. A peer whose password cannot be read
// is left out, and the problem logged when it first appears: dialling it
// without its password would only fail.
func (s *Speaker) peersFor(peers []config.Peer, nodeLabels map[string]string) []config.Peer {
	s.pwMu.Lock()
	defer s.pwMu.Unlock()
	var out []config.Peer
	seen := map[string]bool{}
	for i, p := range peers {
		if !eligibility.MatchesAny(p.NodeSelector, nodeLabels) {
			continue
		}
		if ref := p.PasswordSecret; ref != nil {
			key := fmt.Sprintf("peers[%d]", i)
			seen[key] = true
			pw, err := s.password(*ref)
			if err != nil {
				if msg := err.Error(); s.pwErrors[key] != msg {
					s.logger.Error(err, "Cannot read the BGP password; not peering until it can be read", "peer", p.Address, "config", key+".password-secret")
					s.pwErrors[key] = msg
				}
				continue
			}
			if s.pwErrors[key] != "" {
				s.logger.Info("BGP password readable again", "peer", p.Address, "config", key+".password-secret")
			}
			delete(s.pwErrors, key)
			p.Password = pw
		}
		out = append(out, p)
	}
	for key := range s.pwErrors {
		if !seen[key] {
			delete(s.pwErrors, key)
		}
	}
	return out
}

func (s *Speaker) password(ref config.SecretKeyRef) (string, error) {
	if s.cfg.Passwords == nil {
		return "", errors.New("no Secret source configured")
	}
	return s.cfg.Passwords(ref)
}

// Package keyring reads the memberlist keys from the announcers' Secret and
// plans how to switch a running memberlist keyring to them.
//
// # The Secret
//
// The Secret named by --memberlist-secret holds:
//
//   - secretkey: the primary key. Gossip is encrypted with it, and it is
//     tried first when decrypting. It is the key MetalLB's memberlist
//     Secret uses, with the same meaning, so existing Secrets keep working.
//   - accepted-key, or any key starting with accepted-key- (accepted-key-old,
//     accepted-key-2026-01, ...): more keys that are accepted when
//     decrypting but never used to encrypt. There may be none.
//
// Every value is used byte for byte (a trailing newline included) and
// hashed with SHA-256 into an AES-256 key, as secretkey always was. Values
// copied from one data key to another in the Secret therefore keep their
// meaning, whatever they contain.
//
// The announcers watch the Secret and apply every change at once, without
// a restart: new keys are installed, the primary is switched, and keys that
// left the Secret stop being accepted.
//
// # Rotating the key
//
// Three edits, each applied only when the one before has reached every
// announcer (their metric baremetal_announcer_memberlist_keyring_info shows
// the primary's fingerprint and how many keys they hold):
//
//  1. Add the new key as accepted: accepted-key-next = NEW, secretkey = OLD.
//     Nodes that have seen this edit send with OLD and accept OLD and NEW;
//     the others send with OLD and accept OLD. Everyone understands everyone.
//  2. Make the new key primary: secretkey = NEW, accepted-key-old = OLD (and
//     drop accepted-key-next). Nodes that have seen it send with NEW and
//     accept both; the others send with OLD and, after step 1, accept both.
//  3. Drop the old key: remove accepted-key-old. Nodes that have seen it
//     send and accept NEW only; the others send with NEW (step 2) and still
//     accept both.
//
// At no step does a node send with a key that another node, whether or not
// it has seen the step, cannot decrypt. So every step is safe when the
// nodes apply it one by one, and the members never lose each other: no
// failover, no split brain, no failed request. Skipping a step (putting
// NEW straight into secretkey) splits the cluster until every node has the
// edit, which the split-brain guard turns into silence on the minority,
// not into two answers.
package keyring

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Data keys of the Secret.
const (
	// PrimaryKey holds the key gossip is encrypted with.
	PrimaryKey = "secretkey"
	// AcceptedKey, alone or as a prefix followed by "-", names keys that
	// are accepted when decrypting.
	AcceptedKey = "accepted-key"
)

// Set is the keys to install: AES-256 keys derived from the Secret.
type Set struct {
	// Primary encrypts, and is tried first when decrypting.
	Primary []byte
	// Accepted are tried when decrypting, sorted, without Primary.
	Accepted [][]byte
}

// Derive turns a Secret value into the 32-byte AES-256 key memberlist
// uses. Hashing means any string works: `openssl rand -base64 32` and
// `-base64 128` alike, and MetalLB's memberlist secretkey (which MetalLB
// passes to memberlist through the same SHA-256 step).
func Derive(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}

// Fingerprint names a derived key without revealing it: the first 8 hex
// digits of its SHA-256, for logs and metrics.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Parse reads the keys from the Secret's data. Errors name the data key
// and never quote a value.
func Parse(data map[string][]byte) (Set, error) {
	var s Set
	primary, ok := data[PrimaryKey]
	if !ok {
		return s, fmt.Errorf("the Secret has no data key %q", PrimaryKey)
	}
	if len(primary) == 0 {
		return s, fmt.Errorf("data key %q is empty", PrimaryKey)
	}
	s.Primary = Derive(primary)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(data)) {
		if name != AcceptedKey && !strings.HasPrefix(name, AcceptedKey+"-") {
			continue
		}
		value := data[name]
		if len(value) == 0 {
			errs = append(errs, fmt.Errorf("data key %q is empty", name))
			continue
		}
		k := Derive(value)
		if slices.Equal(k, s.Primary) || slices.ContainsFunc(s.Accepted, func(a []byte) bool { return slices.Equal(a, k) }) {
			continue
		}
		s.Accepted = append(s.Accepted, k)
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	slices.SortFunc(s.Accepted, compareBytes)
	return s, nil
}

func compareBytes(a, b []byte) int { return strings.Compare(string(a), string(b)) }

// Keys returns the primary key followed by the accepted ones.
func (s Set) Keys() [][]byte {
	return append([][]byte{s.Primary}, s.Accepted...)
}

// Op is one operation on a memberlist keyring.
type Op int

// The operations of memberlist.Keyring.
const (
	// Add installs a key for decryption (AddKey).
	Add Op = iota
	// Use makes a key the primary (UseKey).
	Use
	// Remove drops a key (RemoveKey).
	Remove
)

func (o Op) String() string {
	return [...]string{"add", "use", "remove"}[o]
}

// Step is one keyring operation with its key.
type Step struct {
	Op  Op
	Key []byte
}

// Plan returns the steps that turn a keyring holding current (primary
// first, in memberlist's order) into one holding exactly want, with
// want.Primary as primary.
//
// The order is chosen for memberlist's Keyring, which hands its key slice
// to the goroutines decrypting packets without copying it: AddKey and
// UseKey build new slices, but RemoveKey shifts the keys after the one it
// removes in place, under a reader's feet. So keys are only ever removed
// from the end of the ring, where nothing shifts; keys that must stay but
// sit after one that goes are removed too and added back at once. Those
// are missing for microseconds, during which a packet sealed with one of
// them is dropped, as a lost packet would be; memberlist retries. New keys
// are added and the primary switched before anything is removed, so the
// primary is never missing.
func Plan(current [][]byte, want Set) []Step {
	ring := slices.Clone(current)
	has := func(keys [][]byte, k []byte) bool {
		return slices.ContainsFunc(keys, func(x []byte) bool { return slices.Equal(x, k) })
	}
	wanted := want.Keys()
	var steps []Step
	for _, k := range wanted {
		if !has(ring, k) {
			steps = append(steps, Step{Add, k})
			ring = append(ring, k)
		}
	}
	if !slices.Equal(ring[0], want.Primary) {
		steps = append(steps, Step{Use, want.Primary})
		// UseKey puts the primary first and keeps the others' order.
		rest := slices.DeleteFunc(slices.Clone(ring), func(x []byte) bool { return slices.Equal(x, want.Primary) })
		ring = append([][]byte{want.Primary}, rest...)
	}
	// Pop from the end until nothing unwanted is left, then put back the
	// wanted keys popped on the way.
	first := slices.IndexFunc(ring, func(k []byte) bool { return !has(wanted, k) })
	if first < 0 {
		return steps
	}
	var putBack [][]byte
	for i := len(ring) - 1; i >= first; i-- {
		steps = append(steps, Step{Remove, ring[i]})
		if has(wanted, ring[i]) {
			putBack = append(putBack, ring[i])
		}
	}
	for i := len(putBack) - 1; i >= 0; i-- {
		steps = append(steps, Step{Add, putBack[i]})
	}
	return steps
}

package keyring

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestDerive(t *testing.T) {
	// sha256("abc"), the FIPS 180-2 test vector: the derivation MetalLB's
	// secretkey has always had.
	if got := hex.EncodeToString(Derive([]byte("abc"))); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Derive(abc) = %s", got)
	}
}

func TestParse(t *testing.T) {
	k := func(s string) []byte { return Derive([]byte(s)) }
	tests := []struct {
		name     string
		data     map[string][]byte
		primary  []byte
		accepted [][]byte
		err      string
	}{
		{name: "secretkey alone, as today", data: map[string][]byte{"secretkey": []byte("old")}, primary: k("old")},
		{
			name:     "accepted keys by prefix, sorted, primary and duplicates dropped",
			data:     map[string][]byte{"secretkey": []byte("new"), "accepted-key-old": []byte("old"), "accepted-key": []byte("older"), "accepted-key-copy": []byte("old"), "accepted-key-self": []byte("new")},
			primary:  k("new"),
			accepted: sortedKeys(k("old"), k("older")),
		},
		{
			name:    "other data keys are ignored",
			data:    map[string][]byte{"secretkey": []byte("a"), "accepted-keys": []byte("b"), "notes": []byte("c")},
			primary: k("a"),
		},
		{
			name:    "values are taken byte for byte, trailing newline included",
			data:    map[string][]byte{"secretkey": []byte("a\n"), "accepted-key-x": []byte("a")},
			primary: k("a\n"), accepted: [][]byte{k("a")},
		},
		{name: "no secretkey", data: map[string][]byte{"accepted-key-x": []byte("hunter2")}, err: `no data key "secretkey"`},
		{name: "empty secretkey", data: map[string][]byte{"secretkey": nil}, err: `data key "secretkey" is empty`},
		{name: "empty accepted key", data: map[string][]byte{"secretkey": []byte("hunter2"), "accepted-key-x": {}}, err: `data key "accepted-key-x" is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse error %v, want %q", err, tt.err)
				}
				for _, v := range tt.data {
					if len(v) > 0 && strings.Contains(err.Error(), string(v)) {
						t.Errorf("error %q quotes a key", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Primary, tt.primary) || !slices.EqualFunc(s.Accepted, tt.accepted, bytes.Equal) {
				t.Errorf("Parse = %x %x, want %x %x", s.Primary, s.Accepted, tt.primary, tt.accepted)
			}
		})
	}
}

func sortedKeys(keys ...[]byte) [][]byte {
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

// apply runs the steps on a real memberlist keyring and checks that every
// removal takes the last key, the one no reader can see shift.
func apply(t *testing.T, ring *memberlist.Keyring, steps []Step) {
	t.Helper()
	for _, s := range steps {
		var err error
		switch s.Op {
		case Add:
			err = ring.AddKey(s.Key)
		case Use:
			err = ring.UseKey(s.Key)
		case Remove:
			keys := ring.GetKeys()
			if !bytes.Equal(keys[len(keys)-1], s.Key) {
				t.Fatalf("removing %x, which is not the last of %x", s.Key[:2], keys)
			}
			err = ring.RemoveKey(s.Key)
		}
		if err != nil {
			t.Fatalf("%v %x: %v", s.Op, s.Key[:2], err)
		}
	}
}

func TestPlan(t *testing.T) {
	a, b, c, d := Derive([]byte("a")), Derive([]byte("b")), Derive([]byte("c")), Derive([]byte("d"))
	tests := []struct {
		name    string
		current [][]byte
		want    Set
	}{
		{"nothing to do", [][]byte{a}, Set{Primary: a}},
		{"add an accepted key", [][]byte{a}, Set{Primary: a, Accepted: [][]byte{b}}},
		{"switch the primary", [][]byte{a, b}, Set{Primary: b, Accepted: [][]byte{a}}},
		{"drop the old key", [][]byte{b, a}, Set{Primary: b}},
		{"drop a key in the middle", [][]byte{a, b, c, d}, Set{Primary: a, Accepted: [][]byte{c, d}}},
		{"replace everything", [][]byte{a, b}, Set{Primary: c, Accepted: [][]byte{d}}},
		{"new primary, old ones dropped", [][]byte{a, b, c}, Set{Primary: d, Accepted: [][]byte{b}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := memberlist.NewKeyring(tt.current[1:], tt.current[0])
			if err != nil {
				t.Fatal(err)
			}
			apply(t, ring, Plan(ring.GetKeys(), tt.want))
			got := ring.GetKeys()
			if !bytes.Equal(got[0], tt.want.Primary) {
				t.Errorf("primary %x, want %x", got[0][:2], tt.want.Primary[:2])
			}
			if !slices.EqualFunc(sortedKeys(slices.Clone(got[1:])...), sortedKeys(slices.Clone(tt.want.Accepted)...), bytes.Equal) {
				t.Errorf("accepted %x, want %x", got[1:], tt.want.Accepted)
			}
			if again := Plan(got, tt.want); len(again) != 0 {
				t.Errorf("a second plan is not empty: %v", again)
			}
		})
	}
}

// TestRotationNodeByNode applies the documented three steps to three
// nodes one at a time and checks after every single node's change that
// every node can decrypt what every other node sends.
func TestRotationNodeByNode(t *testing.T) {
	steps := []map[string][]byte{
		{"secretkey": []byte("OLD")},
		{"secretkey": []byte("OLD"), "accepted-key-next": []byte("NEW")},
		{"secretkey": []byte("NEW"), "accepted-key-old": []byte("OLD")},
		{"secretkey": []byte("NEW")},
	}
	first, err := Parse(steps[0])
	if err != nil {
		t.Fatal(err)
	}
	var rings []*memberlist.Keyring
	for range 3 {
		r, err := memberlist.NewKeyring(nil, first.Primary)
		if err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
	}
	for i, data := range steps[1:] {
		want, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		for n, r := range rings {
			apply(t, r, Plan(r.GetKeys(), want))
			for from, sender := range rings {
				for to, receiver := range rings {
					if !slices.ContainsFunc(receiver.GetKeys(), func(k []byte) bool { return bytes.Equal(k, sender.GetPrimaryKey()) }) {
						t.Errorf("step %d applied up to node %d: node %d cannot decrypt node %d", i+1, n+1, to+1, from+1)
					}
				}
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("secretkey", []byte("a"), "accepted-key-old", []byte("b"))
	f.Add("secretkey", []byte{}, "accepted-key", []byte("b"))
	f.Add("other", []byte("a"), "accepted-key-", []byte{0})
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte) {
		s, err := Parse(map[string][]byte{k1: v1, k2: v2})
		if err != nil {
			// The error depends on which values are empty, never on what
			// they hold.
			blank := func(v []byte) []byte {
				if len(v) == 0 {
					return v
				}
				return []byte("x")
			}
			_, err2 := Parse(map[string][]byte{k1: blank(v1), k2: blank(v2)})
			if k1 == k2 {
				_, err2 = Parse(map[string][]byte{k1: blank(v2)})
			}
			if err2 == nil || err.Error() != err2.Error() {
				t.Errorf("error %q depends on the values (blanked: %v)", err, err2)
			}
			return
		}
		if len(s.Primary) != 32 {
			t.Errorf("primary has %d bytes", len(s.Primary))
		}
		for _, a := range s.Accepted {
			if bytes.Equal(a, s.Primary) {
				t.Error("primary among the accepted keys")
			}
		}
	})
}

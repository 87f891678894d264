package nodemeta

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		pools map[uint32]bool
		want  []Pool
	}{
		{name: "no pools", pools: nil, want: nil},
		{name: "sorted, unservable kept", pools: map[uint32]bool{7: false, 3: true, 0xffffffff: true},
			want: []Pool{{3, true}, {7, false}, {0xffffffff, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, dropped := New(tt.pools)
			if dropped != 0 {
				t.Errorf("dropped %d", dropped)
			}
			got, err := Decode(m.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Pools) != len(tt.want) || len(tt.want) > 0 && !reflect.DeepEqual(got.Pools, tt.want) {
				t.Errorf("round trip %v, want %v", got.Pools, tt.want)
			}
		})
	}
}

func TestMaxPoolsFit(t *testing.T) {
	pools := map[uint32]bool{}
	for i := range MaxPools + 5 {
		pools[uint32(1000-i)] = i%3 == 0
	}
	m, dropped := New(pools)
	if dropped != 5 || len(m.Pools) != MaxPools {
		t.Fatalf("kept %d, dropped %d", len(m.Pools), dropped)
	}
	if m.Pools[0].Fingerprint != 1000-uint32(MaxPools+4) {
		t.Errorf("did not keep the smallest fingerprints: first %d", m.Pools[0].Fingerprint)
	}
	if b := m.Encode(); len(b) > memberlist.MetaMaxSize {
		t.Errorf("%d pools encode to %d bytes, memberlist takes %d", MaxPools, len(b), memberlist.MetaMaxSize)
	}
}

func TestHas(t *testing.T) {
	m, _ := New(map[uint32]bool{10: false, 20: true})
	for _, tt := range []struct {
		fp            uint32
		has, servable bool
	}{{10, true, true}, {20, true, false}, {15, false, false}} {
		if has, servable := m.Has(tt.fp); has != tt.has || servable != tt.servable {
			t.Errorf("Has(%d) = %v, %v, want %v, %v", tt.fp, has, servable, tt.has, tt.servable)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		err  string
	}{
		{"future version", []byte{2, 0}, "version 2"},
		{"no count", []byte{1}, "no pool count"},
		{"too many pools", append([]byte{1, MaxPools + 1}, make([]byte, 4*(MaxPools+1)+16)...), "at most"},
		{"truncated", []byte{1, 1, 0, 0, 0}, "bytes for 1 pools"},
		{"unsorted", []byte{1, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0}, "not strictly ascending"},
		{"duplicate", []byte{1, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0}, "not strictly ascending"},
		{"stray bits", []byte{1, 1, 0, 0, 0, 2, 0x02}, "past the last pool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.b); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Decode(%x) = %v, want %q", tt.b, err, tt.err)
			}
		})
	}
	if m, err := Decode(nil); m != nil || err != nil {
		t.Errorf("Decode(nil) = %v, %v, want the legacy nil, nil", m, err)
	}
}

func FuzzDecode(f *testing.F) {
	m, _ := New(map[uint32]bool{1: true, 2: false, 99: true})
	f.Add(m.Encode())
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil || m == nil {
			return
		}
		// What decodes is canonical: it encodes to the same bytes.
		if again := m.Encode(); !bytes.Equal(again, b) {
			t.Errorf("Decode(%x) encodes to %x", b, again)
		}
	})
}

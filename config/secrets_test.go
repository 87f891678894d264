package config

import (
	"strings"
	"testing"
)

// TestErrorsNeverShowASecret puts a marker where a password could end up,
// by mistake or by design, in files that are invalid, and checks that no
// error shows it. Errors go to logs, events and CI output; a password in a
// cloud-config must stay in the file.
func TestErrorsNeverShowASecret(t *testing.T) {
	const marker = "Hunter2_Marker"
	peer := "peers:\n- peer-address: 192.0.2.1\n  peer-asn: 64512\n  my-asn: 64513\n"
	tests := []struct {
		name  string
		input string
		// want is a part of the error that shows the problem was found
		// where the marker is.
		want string
	}{
		{"scalar password-secret", peer + "  password-secret: " + marker + "\n", "peers[0].password-secret: want a mapping, got a value of 14 bytes (not shown"},
		{"password-secret list", peer + "  password-secret: [" + marker + "]\n", "peers[0].password-secret: want a mapping, got a list"},
		{"password in the secret's name", peer + "  password-secret: {name: " + marker + "}\n", "peers[0].password-secret.name: a value of 14 bytes (not shown"},
		{"password in the secret's namespace", peer + "  password-secret: {name: s, namespace: " + marker + "}\n", "peers[0].password-secret.namespace: a value of 14 bytes"},
		{"password in the secret's key", peer + "  password-secret: {name: s, key: \"" + marker + " \"}\n", "peers[0].password-secret.key: a value of 15 bytes"},
		{"password as a key of password-secret", peer + "  password-secret: {" + marker + "}\n", "peers[0].password-secret: unknown key of 14 bytes"},
		{"password as a key of password-secret, twice", peer + "  password-secret: {name: s, " + marker + ": 1, " + marker + ": 2}\n", "key of 14 bytes (not shown: it may be a secret) appears twice"},
		{"password too long", peer + "  password: " + strings.Repeat(marker, 6) + "\n", "peers[0].password: is 84 bytes long (value not shown)"},
		{"password list", peer + "  password: [" + marker + "]\n", "peers[0].password: want a string, got a list"},
		{"password mapping", peer + "  password: {" + marker + ": x}\n", "peers[0].password: want a string, got a mapping"},
		{"password and password-secret", peer + "  password: " + marker + "\n  password-secret: {name: s}\n", "password and password-secret are mutually exclusive"},
		{"mis-indented password", peer + "  password:\n  " + marker + ": x\n", "peers[0]: unknown key of 14 bytes"},
		{"password as a peer key, twice", peer + "  " + marker + ": 1\n  " + marker + ": 2\n", "peers[0]: key of 14 bytes"},
		{"password as a peer", "peers: [" + marker + "]\n", "peers[0]: want a mapping, got a value of 14 bytes"},
		{"password as peers", "peers: " + marker + "\n", "peers: want a list, got a value of 14 bytes"},
		{"password as an alias", peer + "  password: *" + marker + "\n", "unknown anchor referenced"},
		{"password as an anchor", peer + "  password: &" + marker + " x\n", "peers[0].password: a YAML anchor (&) is not accepted"},
		{"password in a ConfigMap", "kind: ConfigMap\ndata:\n  config: |\n    peers:\n    - password-secret: " + marker + "\n",
			"peers[0].password-secret: want a mapping, got a value of 14 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.input))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.input)
			}
			msg := err.Error()
			if strings.Contains(strings.ToLower(msg), strings.ToLower(marker)) {
				t.Errorf("the error shows the secret:\n%s", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("the error does not contain %q:\n%s", tt.want, msg)
			}
		})
	}
}

// A key a peer knows is no secret, and is shown.
func TestKnownPeerKeysAreShown(t *testing.T) {
	mustFail(t, okPeer+"  password: a\n  password: b\n", `peers[0]: key "password" appears twice, first on line 6 (line 7)`)
	mustFail(t, okPeer+"  password-secret: {name: a, name: b}\n", `peers[0].password-secret: key "name" appears twice`)
}

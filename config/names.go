package config

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// nameCheck is one of Kubernetes' name rules. Kubernetes checks them with
// regular expressions, which cost microseconds per name; a file may hold
// thousands of names and label terms, and Parse must stay fast (see
// limits.go). So each rule has a loop that accepts the names that are
// certainly valid, and only the others go to Kubernetes, for its verdict
// and its words. FuzzNameChecks holds each loop to agree with its rule.
type nameCheck struct {
	valid func(string) bool
	full  func(string) []string
	// max is the rule's length limit; a longer name is reported as too
	// long without running full, whose cost grows with the length.
	max int
}

var (
	dns1123Label     = nameCheck{isDNSLabel, validation.IsDNS1123Label, 63}
	dns1123Subdomain = nameCheck{isDNSSubdomain, validation.IsDNS1123Subdomain, 253}
	qualifiedName    = nameCheck{isQualifiedName, validation.IsQualifiedName, 253 + 1 + 63}
	labelValue       = nameCheck{isLabelValue, validation.IsValidLabelValue, 63}
	configMapKey     = nameCheck{isConfigMapKey, validation.IsConfigMapKey, 253}
)

// problems is what is wrong with s under the rule, in Kubernetes' words.
func (c nameCheck) problems(s string) []string {
	switch {
	case c.valid(s):
		return nil
	case len(s) > c.max:
		return []string{validation.MaxLenError(c.max)}
	}
	return c.full(s)
}

func lowerAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// isDNSLabel: 1 to 63 of [a-z0-9-], starting and ending with [a-z0-9].
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || !lowerAlnum(s[0]) || !lowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !lowerAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// isDNSSubdomain: at most 253 bytes of parts joined by dots, each part
// like a DNS label but of any length.
func isDNSSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for {
		part, rest, more := strings.Cut(s, ".")
		if part == "" || !lowerAlnum(part[0]) || !lowerAlnum(part[len(part)-1]) {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !lowerAlnum(part[i]) && part[i] != '-' {
				return false
			}
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isLabelName: 1 to 63 of [A-Za-z0-9-_.], starting and ending with
// [A-Za-z0-9].
func isLabelName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isQualifiedName: a label name, optionally after a DNS subdomain and "/".
func isQualifiedName(s string) bool {
	prefix, name, hasPrefix := strings.Cut(s, "/")
	if !hasPrefix {
		return isLabelName(s)
	}
	return isDNSSubdomain(prefix) && isLabelName(name)
}

func isLabelValue(s string) bool {
	return s == "" || isLabelName(s)
}

// isConfigMapKey: 1 to 253 of [A-Za-z0-9-_.], not "." and not starting
// with "..".
func isConfigMapKey(s string) bool {
	if len(s) == 0 || len(s) > 253 || s == "." || strings.HasPrefix(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

package config

import (
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The file has two spellings of a label selector: MetalLB's classic
// node-selectors use kebab-case keys, and the extensions that take a
// Kubernetes LabelSelector use its camelCase keys. Both compile through
// selector, which checks each part so that errors name the exact key.

type selectorNames struct{ labels, exprs string }

var (
	kebabNames = selectorNames{"match-labels", "match-expressions"}
	camelNames = selectorNames{"matchLabels", "matchExpressions"}
)

var operators = map[string]selection.Operator{
	"In":           selection.In,
	"NotIn":        selection.NotIn,
	"Exists":       selection.Exists,
	"DoesNotExist": selection.DoesNotExist,
}

func fromLabelSelector(exprs []metav1.LabelSelectorRequirement) []SelectorRequirement {
	out := make([]SelectorRequirement, len(exprs))
	for i, e := range exprs {
		out[i] = SelectorRequirement{Key: e.Key, Operator: string(e.Operator), Values: e.Values}
	}
	return out
}

// nodeSelectors compiles MetalLB-style selectors; nil means every node.
func (v *validator) nodeSelectors(path *field.Path, sels []NodeSelector) []labels.Selector {
	if len(sels) == 0 {
		return nil
	}
	out := make([]labels.Selector, 0, len(sels))
	for i, s := range sels {
		out = append(out, v.selector(path.Index(i), kebabNames, s.MatchLabels, s.MatchExpressions))
	}
	return out
}

// labelSelectors compiles Kubernetes LabelSelectors; nil means everything.
func (v *validator) labelSelectors(path *field.Path, sels []metav1.LabelSelector) []labels.Selector {
	if len(sels) == 0 {
		return nil
	}
	out := make([]labels.Selector, 0, len(sels))
	for i, s := range sels {
		out = append(out, v.selector(path.Index(i), camelNames, s.MatchLabels, fromLabelSelector(s.MatchExpressions)))
	}
	return out
}

// selector compiles one selector. All its terms must match (AND); an empty
// selector matches everything, as in Kubernetes. On error it still returns
// a selector, of the valid terms; Parse then fails anyway.
func (v *validator) selector(path *field.Path, names selectorNames, matchLabels map[string]string, exprs []SelectorRequirement) labels.Selector {
	keys := make([]string, 0, len(matchLabels))
	for k := range matchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	valid := labels.Set{}
	for _, k := range keys {
		kp := child(path.Child(names.labels), k)
		okKey := v.checkName(kp, k, "label key", qualifiedName)
		okValue := v.checkName(kp, matchLabels[k], "label value", labelValue)
		if okKey && okValue {
			valid[k] = matchLabels[k]
		}
	}
	// Checked above, each with its own path: not checked again.
	reqs, _ := labels.SelectorFromValidatedSet(valid).Requirements()
	for i, e := range exprs {
		ep := path.Child(names.exprs).Index(i)
		ok := v.checkName(ep.Child("key"), e.Key, "label key", qualifiedName)
		op, known := operators[e.Operator]
		if !known {
			ok = false
			v.errorf(ep.Child("operator"), "%q is not an operator: want In, NotIn, Exists or DoesNotExist", e.Operator)
		}
		switch op {
		case selection.In, selection.NotIn:
			if len(e.Values) == 0 {
				ok = false
				v.required(ep.Child("values"), "operator %s needs at least one value", e.Operator)
			}
		case selection.Exists, selection.DoesNotExist:
			if len(e.Values) > 0 {
				ok = false
				v.forbidden(ep.Child("values"), "operator %s takes no values, got %q", e.Operator, e.Values)
			}
		}
		for j, val := range e.Values {
			ok = v.checkName(ep.Child("values").Index(j), val, "label value", labelValue) && ok
		}
		if ok {
			reqs = v.require(reqs, ep, e.Key, op, e.Values)
		}
	}
	return labels.NewSelector().Add(reqs...)
}

func (v *validator) require(reqs []labels.Requirement, path *field.Path, key string, op selection.Operator, values []string) []labels.Requirement {
	r, err := labels.NewRequirement(key, op, values)
	if err != nil {
		// Everything NewRequirement checks was checked above; this is a
		// safety net, not an expected path.
		v.report(field.ErrorTypeInternal, path, "invalid selector term: %v", err)
		return reqs
	}
	return append(reqs, *r)
}

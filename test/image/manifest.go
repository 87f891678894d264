package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// WorkloadContainer reads the workload (DaemonSet, Deployment) in the
// YAML file at path and returns its container named name: the command,
// arguments, environment and securityContext the tests run the image
// with.
func WorkloadContainer(path, name string) (*corev1.Container, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		// Every workload kind keeps its pod template at spec.template.
		var obj appsv1.DaemonSet
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no workload with a container %q", path, name)
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i := range obj.Spec.Template.Spec.Containers {
			if c := &obj.Spec.Template.Spec.Containers[i]; c.Name == name {
				return c, nil
			}
		}
	}
}

// ContainerEnv resolves c's env as the kubelet would for a Pod on node in
// namespace: literal values, the fieldRefs spec.nodeName and
// metadata.namespace, and resourceFieldRefs to the container's own
// requests and limits. Anything else is an error, so a new kind of entry
// in the manifest is noticed.
func ContainerEnv(c *corev1.Container, node, namespace string) ([]string, error) {
	var env []string
	for i, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env = append(env, e.Name+"="+node)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+namespace)
		case e.ValueFrom.ResourceFieldRef != nil:
			v, err := resourceValue(c, e.ValueFrom.ResourceFieldRef)
			if err != nil {
				return nil, fmt.Errorf("containers[%s].env[%d] (%s): %w", c.Name, i, e.Name, err)
			}
			env = append(env, e.Name+"="+v)
		default:
			return nil, fmt.Errorf("containers[%s].env[%d] (%s): only values and the fieldRefs spec.nodeName and metadata.namespace are supported", c.Name, i, e.Name)
		}
	}
	return env, nil
}

// resourceValue is what the kubelet puts in an env var for a
// resourceFieldRef to c's own requests.* or limits.*: the quantity
// divided by the divisor (default 1), rounded up.
func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("resourceFieldRef to another container %q is not supported", ref.ContainerName)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	var list corev1.ResourceList
	switch kind {
	case "requests":
		list = c.Resources.Requests
	case "limits":
		list = c.Resources.Limits
	}
	q, found := list[corev1.ResourceName(name)]
	if !ok || !found {
		return "", fmt.Errorf("resourceFieldRef %q: the container sets no such resource", ref.Resource)
	}
	divisor := int64(1)
	if !ref.Divisor.IsZero() {
		divisor = ref.Divisor.Value()
	}
	v := q.Value()
	return strconv.FormatInt((v+divisor-1)/divisor, 10), nil
}

package ccm

import (
	"errors"
	"testing"
)

func TestMetricValue(t *testing.T) {
	const text = `# HELP baremetal_loadbalancer_pool_addresses_in_use Addresses of the pool held by Services.
# TYPE baremetal_loadbalancer_pool_addresses_in_use gauge
baremetal_loadbalancer_pool_addresses_in_use{family="IPv4",pool="default"} 3
baremetal_loadbalancer_pool_addresses_in_use{family="IPv6",pool="default"} 1
baremetal_loadbalancer_pool_addresses_in_use_extra{family="IPv4",pool="default"} 99
workqueue_depth{name="service"} 0
process_open_fds 12
`
	tests := []struct {
		name    string
		metric  string
		labels  map[string]string
		want    float64
		missing bool
	}{
		{name: "labelled series", metric: "baremetal_loadbalancer_pool_addresses_in_use", labels: map[string]string{"pool": "default", "family": "IPv6"}, want: 1},
		{name: "subset of labels takes the first match", metric: "baremetal_loadbalancer_pool_addresses_in_use", labels: map[string]string{"pool": "default"}, want: 3},
		{name: "a longer name with the same prefix is not a match", metric: "baremetal_loadbalancer_pool_addresses_in_use", labels: map[string]string{"pool": "other"}, missing: true},
		{name: "series without labels", metric: "process_open_fds", want: 12},
		{name: "zero value", metric: "workqueue_depth", labels: map[string]string{"name": "service"}, want: 0},
		{name: "absent metric", metric: "leader_election_master_status", missing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MetricValue(text, tt.metric, tt.labels)
			if tt.missing {
				if !errors.Is(err, errNotFound) {
					t.Fatalf("got %v, %v; want not found", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// configPollInterval is how often the cloud-config file is read for
// changes, as the CCM does: a ConfigMap volume is updated through a
// symlink swap that file-event watches miss unless they follow symlinks,
// and reading a small file every few seconds cannot miss.
const configPollInterval = 5 * time.Second

// watchConfig reads the cloud-config file at path every
// configPollInterval until ctx ends and hands each new valid version to
// apply. An invalid version is logged with every fault and changes
// nothing: the announcer keeps announcing by the version in effect.
func watchConfig(ctx context.Context, path string, apply func(*config.Config) error) {
	logger := klog.FromContext(ctx).WithValues("file", path)
	last, err := os.ReadFile(path)
	if err != nil {
		logger.Error(err, "Reading the cloud-config file; changes to it will apply when it is readable again")
	}
	t := time.NewTicker(configPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil || bytes.Equal(data, last) {
			// During a ConfigMap update the symlink may briefly point
			// nowhere; the config in effect stays.
			continue
		}
		last = data
		cfg, err := config.Parse(data)
		if err != nil {
			err = fmt.Errorf("--cloud-config is invalid:\n%w", err)
		} else {
			err = apply(cfg)
		}
		if err != nil {
			logger.Error(err, "Cloud-config changed but was not applied; the previous config stays in effect")
			continue
		}
		logger.Info("Applied a new cloud-config", "pools", len(cfg.Pools), "peers", len(cfg.Peers))
	}
}

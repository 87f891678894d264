package app

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// watchConfig follows the cloud-config file at path, as the CCM does,
// until ctx ends and hands each new valid version to apply. An invalid
// version is logged with every fault and changes nothing: the announcer
// keeps announcing by the version in effect.
func watchConfig(ctx context.Context, path string, apply func(*config.Config) error) {
	logger := klog.FromContext(ctx).WithValues("file", path)
	readErr := func(err error) {
		logger.Error(err, "Reading the cloud-config file; changes to it will apply when it is readable again")
	}
	config.WatchFile(ctx, path, config.PollInterval, readErr, func(data []byte) {
		cfg, err := config.Parse(data)
		if err != nil {
			err = fmt.Errorf("--cloud-config is invalid:\n%w", err)
		} else {
			err = apply(cfg)
		}
		if err != nil {
			logger.Error(err, "Cloud-config changed but was not applied; the previous config stays in effect")
			return
		}
		logger.Info("Applied a new cloud-config", "pools", len(cfg.Pools), "peers", len(cfg.Peers))
		for _, w := range cfg.Warnings {
			logger.Info("Warning in --cloud-config", "warning", w)
		}
	})
}

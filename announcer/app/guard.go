package app

import (
	"context"

	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/controller"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/layer2"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/nodemeta"
)

// DefaultAnnouncerPodSelector selects the DaemonSet's Pods (deploy/base).
const DefaultAnnouncerPodSelector = "app.kubernetes.io/name=baremetal-announcer"

// wireGuard connects the layer2 announcer to the split-brain guard: its
// conflicts become events on the Services, and link changes reach the
// controller at once. The link watch runs until the announcer closes.
func wireGuard(logger klog.Logger, l2 *layer2.Announcer, ctrl *controller.Controller) {
	l2.SetConflictHandler(ctrl.RecordConflict)
	if err := l2.WatchLinks(context.Background()); err != nil {
		logger.Error(err, "Cannot follow link changes; interfaces are checked at every pass only")
	}
}

// initialMeta is the node metadata until the first pass: no pools. The
// others pass this node over until it has said which pools it announces
// by and can serve; no metadata at all would make it look like an
// announcer from before the metadata, which agrees with everything.
func initialMeta() []byte {
	m, _ := nodemeta.New(nil)
	return m.Encode()
}

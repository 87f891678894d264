package overview

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// NewCommand is `kubectl baremetal`.
func NewCommand() *cobra.Command {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	overrides := &clientcmd.ConfigOverrides{}
	src := Source{Namespace: DefaultNamespace, ConfigMap: DefaultConfigMap, Key: DefaultKey}
	cmd := &cobra.Command{
		Use:   "kubectl-baremetal",
		Short: "Pools, LoadBalancer Services and who announces them, in one screen",
		Long: `kubectl baremetal prints the pools of cloud-provider-baremetal with their used
and free addresses, every LoadBalancer Service with its IP, pool, protocol and
the nodes announcing it (from the condition cloud-provider-baremetal.io/Announced
the announcers keep on each Service), and the BGP peers of each node.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, overrides).ClientConfig()
			if err != nil {
				return fmt.Errorf("loading the kubeconfig: %w", err)
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			o, err := Gather(cmd.Context(), client, src)
			if err != nil {
				return err
			}
			return o.Write(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&loading.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&overrides.CurrentContext, "context", "", "the kubeconfig context to use")
	f.StringVar(&src.Namespace, "config-namespace", src.Namespace, "namespace of the cloud-config ConfigMap")
	f.StringVar(&src.ConfigMap, "config-map", src.ConfigMap, "name of the cloud-config ConfigMap")
	f.StringVar(&src.Key, "config-key", src.Key, "key of the cloud-config in the ConfigMap")
	return cmd
}

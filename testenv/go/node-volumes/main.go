// Command node-volumes provisions the test node's volumes: a claim's volume is a folder under --root,
// made here at once. The provisioner runs on the node's own machine (as its kubelet does), so it needs
// no helper pod per volume as rancher's local-path-provisioner does, and its client may make as many
// requests as the apiserver takes (client-go's default is 5 a second): both held 50 clones requested at
// once waiting up to a minute for their volumes (bench.bench_scale).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v10/controller"
)

const hostnameLabel = "kubernetes.io/hostname"

// folders makes and removes volumes as folders of root, each named after its volume and claim.
type folders struct {
	root string
}

func (f folders) Provision(_ context.Context, options controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	node := options.SelectedNode
	if node == nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("no node was chosen: the class must bind volumes on their first consumer")
	}
	for _, mode := range options.PVC.Spec.AccessModes {
		if mode != v1.ReadWriteOnce && mode != v1.ReadWriteOncePod {
			return nil, controller.ProvisioningFinished, fmt.Errorf("a folder of one node is ReadWriteOnce or ReadWriteOncePod, not %s", mode)
		}
	}
	path := filepath.Join(f.root, strings.Join([]string{options.PVName, options.PVC.Namespace, options.PVC.Name}, "_"))
	if err := os.MkdirAll(path, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	// Whatever user the volume's pod runs as writes to it, as local-path's setup script allows.
	if err := os.Chmod(path, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	hostname, found := node.Labels[hostnameLabel]
	if !found {
		hostname = node.Name
	}
	folder := v1.HostPathDirectory
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: options.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: *options.StorageClass.ReclaimPolicy,
			AccessModes:                   options.PVC.Spec.AccessModes,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: options.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: path, Type: &folder},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: hostnameLabel, Operator: v1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
		},
	}, controller.ProvisioningFinished, nil
}

func (f folders) Delete(_ context.Context, volume *v1.PersistentVolume) error {
	if volume.Spec.HostPath == nil {
		return fmt.Errorf("volume %s is not a folder", volume.Name)
	}
	path := filepath.Clean(volume.Spec.HostPath.Path)
	if filepath.Dir(path) != f.root {
		return fmt.Errorf("volume %s is %s, not a folder of %s", volume.Name, path, f.root)
	}
	return os.RemoveAll(path)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "the provisioner's kubeconfig")
	root := flag.String("root", "", "the folder that holds the volumes")
	name := flag.String("provisioner-name", "wpclone.dev/node-volumes", "the provisioner named by the StorageClass")
	workers := flag.Int("workers", 16, "claims provisioned at once")
	qps := flag.Float64("kube-api-qps", 100, "requests a second to the apiserver")
	klog.InitFlags(nil)
	flag.Parse()
	if *root == "" || !filepath.IsAbs(*root) {
		klog.Exit("--root must be an absolute path")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Exit(err)
	}
	config.QPS, config.Burst = float32(*qps), int(2**qps)
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Exit(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	provisioner := controller.NewProvisionController(klog.Background(), client, *name, folders{filepath.Clean(*root)},
		controller.LeaderElection(false), controller.Threadiness(*workers))
	provisioner.Run(ctx)
}

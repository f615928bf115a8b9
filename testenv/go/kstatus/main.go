// Command kstatus prints the health that sigs.k8s.io/cli-utils/pkg/kstatus computes for objects:
// one JSON object per input line in, one {"status", "message"} line out. Flux (and kpt, Config Sync)
// judge resources this way, so the tests run the library itself rather than an imitation of it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	encoder := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		// UnmarshalJSON keeps integers as int64, which kstatus's generation checks need.
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(scanner.Bytes()); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: input is not a Kubernetes object:", err)
			os.Exit(2)
		}
		computed, err := status.Compute(object)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		if err := encoder.Encode(result{Status: computed.Status.String(), Message: computed.Message}); err != nil {
			os.Exit(1)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(2)
	}
}

#!/usr/bin/env bash
# `make e2e`: the live-cluster suite (tests/e2e/), the real stackguard against a real API server.
# Against E2E_KUBECONFIG (an existing, disposable cluster), or a control plane of its own from
# KUBE_APISERVER (a kube-apiserver binary) and Debian's etcd, which this script installs.
# Arguments go to the suite: `make e2e ARGS=audit` runs the scenarios whose name contains "audit".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${E2E_KUBECONFIG:-}" ] && [ -z "${KUBE_APISERVER:-}" ]; then
  cat >&2 <<'MSG'
make e2e needs a Kubernetes API server; set one of:
  KUBE_APISERVER=/path/to/kube-apiserver   a kube-apiserver binary, 1.30 or later (as in the official
                                           kubernetes-server-linux-amd64 release archive); the suite
                                           starts it with etcd from Debian (installed here)
  E2E_KUBECONFIG=/path/to/kubeconfig       an existing, disposable cluster (kind, k3d, ...), admin rights
e.g.  make e2e KUBE_APISERVER=$HOME/bin/kube-apiserver
MSG
  exit 2
fi
if [ -z "${E2E_KUBECONFIG:-}" ]; then
  if [ ! -x "$KUBE_APISERVER" ]; then
    echo "KUBE_APISERVER=$KUBE_APISERVER is not an executable file" >&2
    exit 2
  fi
  export KUBE_APISERVER="$(realpath "$KUBE_APISERVER")"
  if ! command -v etcd >/dev/null 2>&1; then
    echo "e2e: installing etcd-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  fi
else
  export E2E_KUBECONFIG="$(realpath "$E2E_KUBECONFIG")"
fi

# What the suite uses besides the cluster: the SARIF schema and jsonschema (tests/setup.sh),
# dist/*.wasm (audit --policy), the stackguard binary.
"${MAKE:-make}" --no-print-directory setup policies
start=$(date +%s)
cargo test --release -p stackguard --features e2e --test e2e -- "$@"
echo "make e2e: the suite took $(( $(date +%s) - start )) s (its build included)"

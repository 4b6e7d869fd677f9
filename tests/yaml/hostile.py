"""Hostile manifests for the YAML limits (tests/yaml_limits.rs, tests/bench/yaml_hostile.sh).

Usage: hostile.py OUTDIR  -> writes the files below into OUTDIR (deterministic).

Every file holds a bad document between good ones: a Pod before it and a Pod after it that
both run as root (so `stackguard check` must still report the good documents), except where
noted. The files:
  alias-bomb.yaml       1 KB: nine levels of aliases of nine aliases (9^9 nodes expanded)
  alias-fanout.yaml     a 20,000-item anchored list aliased 100 times (2M nodes expanded)
  deep-flow.yaml        100,000 nested flow sequences `[[[[…]]]]`
  deep-block.yaml       2,000 nested block mappings
  huge-scalar.yaml      an 8 MiB string in a ConfigMap
  big-scalar-ok.yaml    a 2.5 MiB ConfigMap value (under the limit: read and checked)
  many-documents.yaml   50,000 documents (ConfigMaps), the root Pod third
  wide-flow.yaml        a 16 MiB flow sequence of zeros (8M nodes)
  tiny-maps.yaml        a 16 MiB flow sequence of one-key mappings (2M mappings)
  big-16mb.yaml         16 MiB of ordinary Deployments (read and checked in full)
"""

import os
import sys

MIB = 1 << 20


def pod(name):
    return (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  securityContext:\n"
        "    runAsUser: 0\n  containers:\n  - name: app\n    image: nginx:1.27\n" % name
    )


def wrap(bad):
    return pod("before") + "---\n" + bad + ("" if bad.endswith("\n") else "\n") + "---\n" + pod("after")


def alias_bomb():
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:"]
    lines.append('  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    prev = "a"
    for name in "bcdefghi":
        lines.append("  %s: &%s [%s]" % (name, name, ",".join(["*" + prev] * 9)))
        prev = name
    return "\n".join(lines) + "\n"


def alias_fanout():
    items = "\n".join("  - item-%d" % i for i in range(20000))
    refs = "\n".join("  - *big" for _ in range(100))
    return "apiVersion: v1\nkind: List\nbig: &big\n%s\nitems:\n%s\n" % (items, refs)


def deep_flow():
    n = 100000
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n  x: " + "[" * n + "]" * n + "\n"


def deep_block():
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: deep-block", "x:"]
    for i in range(1, 2000):
        lines.append(" " * i + "x:")
    lines.append(" " * 2000 + "end")
    return "\n".join(lines) + "\n"


def configmap(name, size):
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  blob: %s\n" % (name, "x" * size)


def many_documents():
    docs = []
    for i in range(50000):
        if i == 2:
            docs.append(pod("root"))
        else:
            docs.append("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\n" % i)
    return "---\n".join(docs)


def wide_flow():
    n = 8 * MIB
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wide}\nx: [" + "0," * (n - 1) + "0]\n"


def tiny_maps():
    n = 2 * MIB
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: maps}\nx: [" + "{a: 1}," * (n - 1) + "{a: 1}]\n"


def deployment(i):
    env = "".join(
        "        - name: SETTING_%d\n          value: \"value-%d-%d\"\n" % (k, i, k) for k in range(40)
    )
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%d\n  namespace: shop\n"
        "  labels: {app: app-%d, tier: web}\nspec:\n  replicas: 1\n  selector:\n"
        "    matchLabels: {app: app-%d}\n  template:\n    metadata:\n      labels: {app: app-%d}\n"
        "    spec:\n      securityContext: {runAsNonRoot: true, runAsUser: 1000}\n      containers:\n"
        "      - name: web\n        image: registry.example/app:1.%d\n        ports:\n"
        "        - containerPort: 8080\n        securityContext:\n          allowPrivilegeEscalation: false\n"
        "          capabilities: {drop: [ALL]}\n        resources:\n"
        "          requests: {cpu: 100m, memory: 128Mi}\n          limits: {cpu: 500m, memory: 256Mi}\n"
        "        env:\n%s" % (i, i, i, i, i, env)
    )


def big_16mb():
    parts = [pod("before")]
    size = len(parts[0])
    i = 0
    while size < 16 * MIB - 4096:
        d = deployment(i)
        parts.append(d)
        size += len(d) + 4
        i += 1
    parts.append(pod("after"))
    return "---\n".join(parts)


FILES = {
    "alias-bomb.yaml": lambda: wrap(alias_bomb()),
    "alias-fanout.yaml": lambda: wrap(alias_fanout()),
    "deep-flow.yaml": lambda: wrap(deep_flow()),
    "deep-block.yaml": lambda: wrap(deep_block()),
    "huge-scalar.yaml": lambda: wrap(configmap("huge", 8 * MIB)),
    "big-scalar-ok.yaml": lambda: wrap(configmap("big", 5 * MIB // 2)),
    "many-documents.yaml": many_documents,
    "wide-flow.yaml": lambda: wrap(wide_flow()),
    "tiny-maps.yaml": lambda: wrap(tiny_maps()),
    "big-16mb.yaml": big_16mb,
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, make in FILES.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(make())


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Checks everything needed to deploy, without a cluster or a container engine (make k8s-validate):
#  1. renders every kustomization with `kubectl kustomize`;
#  2. validates every rendered manifest against the Kubernetes schema in strict mode (kubernetes-validate ships
#     the schemas and works offline); a resource without a schema is a failure too;
#  3. lints the YAML sources (yamllint, .yamllint);
#  4. checks what the manifests promise on the rendered output (scripts/k8s_policy_check.py: exit 2 ends a Job,
#     labels and versions, shard count, gaps coverage, destinations, LICENSE), and that each such check catches a
#     manifest broken on purpose;
#  5. runs checkov's security policies over the rendered manifests and the Dockerfile; each justified exception is
#     written next to what it skips (checkov.io/skipN annotations, `# checkov:skip=` in the Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=${K8S_VERSION:-1.30}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

command -v kubectl >/dev/null || {
  echo "kubectl not found: installing Debian's kubernetes-client" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
}
python3 -c 'import kubernetes_validate, yamllint, checkov' 2>/dev/null || {
  python3 -m pip install -q kubernetes-validate yamllint checkov 2>/dev/null \
    || python3 -m pip install -q --break-system-packages kubernetes-validate yamllint checkov
}

status=0
rendered=()
mkdir -p "$out/deployable"
kustomizations=$(find k8s -name kustomization.yaml -printf '%h\n' | sort)
for dir in $kustomizations; do
  file="$out/$(echo "$dir" | tr / -).yaml"
  kubectl kustomize "$dir" >"$file"
  # What is deployed as is (overlays, the scale-out job) also goes through the security policies; base and
  # observability are building blocks without a namespace.
  case "$dir" in k8s/overlays/*|k8s/scale-out) cp "$file" "$out/deployable/"; rendered+=("$dir=$file") ;; esac
  result=$(python3 -m kubernetes_validate --strict -k "$K8S_VERSION" "$file" 2>&1) || { echo "$result"; status=1; }
  if grep -q "Couldn't find schema" <<<"$result"; then echo "$result"; echo "FAIL $dir: a resource has no schema"; status=1; fi
  echo "rendered and validated: $dir ($(grep -c '^kind:' "$file") resources)"
done

python3 scripts/k8s_policy_check.py "${rendered[@]}" || status=1
python3 scripts/k8s_policy_check.py --self-test "${rendered[@]}" || status=1

yamllint -s -c .yamllint k8s .yamllint || status=1
echo "yamllint: k8s/"

checkov --quiet --compact --skip-download --framework kubernetes -d "$out/deployable" || status=1
checkov --quiet --compact --skip-download --framework dockerfile -f Dockerfile || status=1
echo "checkov: manifests and Dockerfile"
exit $status

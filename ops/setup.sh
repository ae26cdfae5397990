#!/usr/bin/env bash
# Installs everything the demo and the tests need, idempotently: a virtualenv with the package
# (and its test extras), and the Debian packages below when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"

# Debian packages the tests run for real: redis-server, and Prometheus with promtool and
# Alertmanager for the monitoring chain, and kubectl (below). The demo needs only redis-server.
packages=(redis-server)
[ "$extras" = test ] && packages+=(prometheus prometheus-alertmanager)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
# The Kubernetes manifests' test renders them with `kubectl kustomize` (no cluster needed):
# Debian package `kubectl` where an apt source has it, else Debian's own `kubernetes-client`
# (an older kubectl whose kustomize renders deploy/kubernetes the same way).
if [ "$extras" = test ] && ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubectl)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    if [[ " ${missing[*]} " == *" kubectl "* ]] && ! apt-cache show kubectl >/dev/null 2>&1; then
      missing=("${missing[@]/#kubectl/kubernetes-client}")
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
    [ "$extras" = test ] && exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing cxkpi[$extras] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi

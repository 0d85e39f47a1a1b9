#!/usr/bin/env bash
# Creates target/venv with the Python tools the deploy tests use (kubernetes-validate, which
# brings PyYAML), from PyPI; idempotent. Prints the venv's directory.
#   scripts/venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv
want="kubernetes-validate==1.37.0"
# Debian's python3 (python3-venv, scripts/setup.sh --test) unless PYTHON says otherwise.
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/pip" show -q kubernetes-validate >/dev/null 2>&1 ||
   [ "$("$venv/bin/pip" show kubernetes-validate | sed -n 's/^Version: //p')" != "${want#*==}" ]; then
  echo "venv: creating $venv with $want" >&2
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$want" >&2
fi
echo "$PWD/$venv"

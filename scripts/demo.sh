#!/usr/bin/env bash
# The offline demo on a fresh machine: a venv from PyPI, then the exporter on
# bundled demo zones served by an embedded DNS responder on loopback.
#   scripts/demo.sh                      then open http://127.0.0.1:9723/
#   scripts/demo.sh --web.listen-address 127.0.0.1:9800
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
venv=${VENV:-$root/.venv}
if [ ! -x "$venv/bin/deliverability-exporter" ]; then
  echo "==> installing deliverability-exporter into $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e .
fi
exec "$venv/bin/deliverability-exporter" --demo "$@"

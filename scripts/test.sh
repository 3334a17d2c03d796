#!/usr/bin/env bash
# The whole test suite, on a fresh machine: a venv from PyPI, the Debian packages
# the integration tests need (installed with apt-get when run as root; named
# otherwise), then lint, types, unit, conformance and integration tests.
#
#   scripts/test.sh            everything
#   scripts/test.sh -k dnsbl   extra arguments go to pytest
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python=$candidate
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "scripts/test.sh: needs Python 3.11 or newer (set PYTHON=...)" >&2
  exit 1
fi

venv=${VENV:-$root/.venv}
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> creating the test venv in $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi

echo "==> system packages for the integration tests"
scripts/install-system-deps.sh

# The conformance material lives beside the repository (../shared/conformance);
# the tests say plainly that they skipped when it is absent.
conformance="$root/../shared/conformance"
if [ -d "$conformance" ]; then
  export RFC7208_SUITE=${RFC7208_SUITE:-$conformance/rfc7208-tests.yml}
  export DMARC_VECTORS=${DMARC_VECTORS:-$conformance/dmarc-record-vectors.yml}
  export DKIM_VECTORS=${DKIM_VECTORS:-$conformance/dkim-key-vectors.yml}
else
  echo "==> note: $conformance not found: the conformance tests will skip" >&2
fi

echo "==> ruff"
"$venv/bin/ruff" check .
echo "==> mypy"
"$venv/bin/mypy" exporter tests bench
echo "==> pytest"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"

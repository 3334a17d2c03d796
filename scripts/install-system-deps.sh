#!/bin/sh
# Install the Debian/Ubuntu packages the integration tests run: real DNS,
# blocklist, mail and monitoring servers that the tests start themselves,
# in temp dirs on high loopback ports.
#
#   scripts/install-system-deps.sh          # as root: install what is missing
#   scripts/install-system-deps.sh --check  # only report; exit 1 if something is missing
#
# Fast when everything is present (no apt-get at all). As non-root with
# something missing it names the packages and exits 1. After installing it
# makes sure none of these packages' system daemons is left running or
# enabled: the tests must never depend on (or collide with) a system service.
set -eu

# binary:package pairs. A binary may live in sbin, which a user's PATH lacks.
PAIRS="
knotd:knot
knotc:knot
keymgr:knot
kdig:knot-dnsutils
rbldnsd:rbldnsd
unbound:unbound
unbound-control:unbound
unbound-checkconf:unbound
postfix:postfix
prometheus:prometheus
promtool:prometheus
prometheus-alertmanager:prometheus-alertmanager
amtool:prometheus-alertmanager
dnsperf:dnsperf
ldns-signzone:ldnsutils
drill:ldnsutils
openssl:openssl
docker-compose:docker-compose
chromium:chromium
chromedriver:chromium-driver
"
# Files (not binaries) some packages provide.
FILE_PAIRS="
/etc/ssl/certs/ca-certificates.crt:ca-certificates
"
# System services these packages may install and start.
SERVICES="knot unbound rbldnsd postfix prometheus prometheus-alertmanager prometheus-node-exporter"

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

missing_packages() {
  out=""
  for pair in $PAIRS; do
    bin=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$bin" >/dev/null 2>&1; then
      case " $out " in *" $pkg "*) ;; *) out="$out $pkg" ;; esac
    fi
  done
  for pair in $FILE_PAIRS; do
    file=${pair%%:*}
    pkg=${pair#*:}
    if [ ! -e "$file" ]; then
      case " $out " in *" $pkg "*) ;; *) out="$out $pkg" ;; esac
    fi
  done
  echo "$out" | sed 's/^ *//'
}

# Stop and disable the system daemons: the tests start their own.
quiet_services() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for svc in $SERVICES; do
      # Fails harmlessly for a unit that does not exist.
      systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    done
  else
    for svc in $SERVICES; do
      if [ -x "/etc/init.d/$svc" ]; then
        # An init script's stop is a no-op when it is not running.
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        if command -v update-rc.d >/dev/null 2>&1; then
          update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
      fi
    done
  fi
}

missing=$(missing_packages)
if [ -z "$missing" ]; then
  echo "system dependencies: all present"
  exit 0
fi

if [ "$check_only" -eq 1 ] || [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: $missing" >&2
  echo "install them as root:" >&2
  echo "  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing" >&2
  echo "  (or run: sudo $0)" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: $missing (no apt-get here: install them by hand)" >&2
  exit 1
fi

# Keep package scripts from starting daemons while installing (Debian's
# policy-rc.d protocol: exit 101 = "action forbidden"). Only one we created
# is removed again.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT INT TERM

export DEBIAN_FRONTEND=noninteractive
# postfix asks how to configure itself; "No configuration" is right for tests.
if command -v debconf-set-selections >/dev/null 2>&1; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
echo "installing: $missing"
apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y --no-install-recommends $missing

quiet_services

still=$(missing_packages)
if [ -n "$still" ]; then
  echo "still missing after apt-get install: $still" >&2
  exit 1
fi
echo "system dependencies: installed $missing"

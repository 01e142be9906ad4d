#!/bin/bash
# Runs the blob suite (depot_tests "[blob]") against a real single-node Ceph RGW built from
# Debian's ceph packages, instead of s3rver: one monitor, one OSD on memstore (RAM, 1 GiB), one
# radosgw on 127.0.0.1, no cephx (auth none), everything under a temporary directory and stopped
# at the end. Needs root (apt-get, and the daemons' default paths); time-boxed to 20 minutes.
#
#   tests/s3/ceph_rgw.sh [build-dir]        (default: build)
#
# What ran, and what failed if it could not run, is in docs/scale-out.md (section "Ceph RGW").
set -euo pipefail

repository="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$repository/build}" && pwd)"
tests="$build/tests/depot_tests"
[ -x "$tests" ] || { echo "ceph_rgw: $tests not built" >&2; exit 2; }
work="$(mktemp -d /tmp/depot-ceph-XXXXXX)"
conf="$work/ceph.conf"
rgw_port=7480
access_key=DEPOTRGWTEST
secret_key=depot-rgw-test-secret
start=$SECONDS
budget=1200

step() { echo "ceph_rgw: [$((SECONDS - start)) s] $*"; }
# Says what failed and shows the end of the daemons' logs, then stops (the trap cleans up).
fail() {
  echo "ceph_rgw: FAILED: $*" >&2
  for log in "$work"/log/*.log; do
    [ -f "$log" ] && { echo "--- $log (last 15 lines)" >&2; tail -n 15 "$log" >&2; }
  done
  exit 1
}
stop() {
  for pidfile in "$work"/run/*.pid; do
    [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap stop EXIT
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds="$1"; shift
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
remaining() { echo $((budget - (SECONDS - start))); }

packages=(ceph-mon ceph-osd radosgw ceph-common uuid-runtime)
missing=()
for package in "${packages[@]}"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout "$(remaining)" \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1 \
    || { tail -n 20 "$work/apt.log" >&2; fail "apt-get install ${missing[*]}"; }
fi

mkdir -p "$work"/{run,log,mon,osd,rgw}
fsid="$(uuidgen)"
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = 127.0.0.1:6789
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 1073741824
run dir = $work/run
pid file = $work/run/\$name.pid
admin socket = $work/run/\$name.asok
log file = $work/log/\$name.log
mon data = $work/mon/\$name
osd data = $work/osd/\$name
keyring = $work/keyring
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw dns name = s3.localhost
rgw data = $work/rgw
EOF

step "monitor"
ceph-authtool --create-keyring "$work/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --add a 127.0.0.1:6789 --fsid "$fsid" "$work/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$work/monmap" || fail "ceph-mon --mkfs"
ceph-mon -c "$conf" -i a || fail "ceph-mon start"
wait_for 60 timeout 10 ceph -c "$conf" mon stat || fail "the monitor did not answer in 60 s"

step "OSD (memstore)"
osd_uuid="$(uuidgen)"
osd_id="$(timeout 30 ceph -c "$conf" osd new "$osd_uuid")" || fail "ceph osd new"
mkdir -p "$work/osd/osd.$osd_id"
ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >"$work/log/osd-mkfs.log" 2>&1 \
  || fail "ceph-osd --mkfs"
ceph-osd -c "$conf" -i "$osd_id" || fail "ceph-osd start"
wait_for 120 sh -c "ceph -c '$conf' osd stat | grep -q '1 up'" || fail "the OSD was not up in 120 s"

step "radosgw on 127.0.0.1:$rgw_port"
radosgw -c "$conf" -n client.rgw || fail "radosgw start"
wait_for 180 curl -sf "http://127.0.0.1:$rgw_port/" || fail "radosgw did not answer in 180 s"
timeout 60 radosgw-admin -c "$conf" user create --uid=depot --display-name=depot \
  --access-key="$access_key" --secret-key="$secret_key" >/dev/null || fail "radosgw-admin user create"
# The bucket, readable anonymously: the tests look at it without the signer under test.
curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access_key:$secret_key" \
  -X PUT -H "x-amz-acl: public-read" "http://127.0.0.1:$rgw_port/depot" \
  || fail "creating the bucket depot"

step "the blob suite against RGW"
DEPOT_TEST_S3_ENDPOINT="http://127.0.0.1:$rgw_port" AWS_ACCESS_KEY_ID="$access_key" \
  AWS_SECRET_ACCESS_KEY="$secret_key" AWS_REGION=us-east-1 \
  timeout "$(remaining)" "$tests" "[blob]" || fail "depot_tests [blob] against RGW"
step "passed"

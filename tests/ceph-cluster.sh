#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for cairn's rados: and s3:// tests:
# one monitor, one OSD (bluestore on a sparse file, so that it survives a
# stop and start), optionally radosgw; bound to 127.0.0.1, no systemd, all
# state under $CEPH_DIR. Needs Debian's ceph-mon ceph-osd ceph-common
# (+ radosgw for RGW=1; ceph-mgr for MGR=1).
#
#   ceph-cluster.sh start       start, wait until the pool is writable, print the env
#   ceph-cluster.sh stop        stop the daemons this script started (by pid file)
#   ceph-cluster.sh stop-osd    stop the OSD only (tests of a cluster failing mid-way)
#   ceph-cluster.sh start-osd   start it again and wait until the pool is writable
#   ceph-cluster.sh status | env
#
# Knobs: CEPH_DIR (/tmp/cairn-ceph; wiped on start), MON_PORT (13300; v1 is
# +1), BIND_MIN/BIND_MAX (16800/16900), POOL (cairn), RGW=1 and RGW_PORT
# (17480) with S3_ACCESS_KEY/S3_SECRET_KEY for the user "test" and
# S3_BUCKET (cairn) created through RGW, MGR=1 (off by default: librados
# needs no mgr, and it costs 300 MB and seconds).
set -euo pipefail

CEPH_DIR=${CEPH_DIR:-/tmp/cairn-ceph}
MON_PORT=${MON_PORT:-13300}
BIND_MIN=${BIND_MIN:-16800}
BIND_MAX=${BIND_MAX:-16900}
POOL=${POOL:-cairn}
RGW=${RGW:-0}
RGW_PORT=${RGW_PORT:-17480}
MGR=${MGR:-0}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-CAIRNTESTACCESS01}
S3_SECRET_KEY=${S3_SECRET_KEY:-cairntestsecretkey0123456789}
S3_BUCKET=${S3_BUCKET:-cairn}
CONF=$CEPH_DIR/ceph.conf
export CEPH_CONF=$CONF
T0=$(date +%s%N)

log() { printf '[ceph %6d ms] %s\n' "$(( ($(date +%s%N) - T0) / 1000000 ))" "$*"; }
ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 15 "$@"; }

# until SECONDS CMD...: retry CMD every half second until it succeeds.
until_ok() {
	local end=$(( $(date +%s) + $1 ))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.5
	done
}

conf() {
	cat > "$CONF" <<EOF
[global]
fsid = $1
mon_host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]
public_addr = 127.0.0.1
public_network = 127.0.0.0/8
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_port_min = $BIND_MIN
ms_bind_port_max = $BIND_MAX
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $CEPH_DIR/keyring
run_dir = $CEPH_DIR/run
admin_socket = $CEPH_DIR/run/\$name.asok
log_file = $CEPH_DIR/log/\$name.log
pid_file = $CEPH_DIR/run/\$name.pid
crash_dir = $CEPH_DIR/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 2
mon_data_avail_crit = 1

[mon]
mon_data = $CEPH_DIR/mon/\$cluster-\$id

[osd]
osd_data = $CEPH_DIR/osd/\$cluster-\$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = 21474836480
bluestore_fsck_on_mkfs = false
bluestore_cache_size = 268435456
osd_memory_target = 1073741824

[mgr]
mgr_data = $CEPH_DIR/mgr/\$cluster-\$id

[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_data = $CEPH_DIR/rgw/\$cluster-\$id
rgw_thread_pool_size = 32
EOF
}

pool_writable() {
	rados -c "$CONF" -p "$POOL" put __probe "$CONF" && rados -c "$CONF" -p "$POOL" rm __probe
}

start_osd() {
	ceph-osd -c "$CONF" -i 0 2>> "$CEPH_DIR/log/osd-stderr.log"
	until_ok 120 pool_writable || { echo "ceph: pool $POOL not writable"; tail -30 "$CEPH_DIR/log/osd.0.log"; return 1; }
	log "osd.0 up, pool $POOL writable"
}

start() {
	[ -d "$CEPH_DIR/run" ] && stop || true
	rm -rf "$CEPH_DIR"
	mkdir -p "$CEPH_DIR"/{run,log,crash,mon,mgr/ceph-x,osd/ceph-0,rgw/ceph-rgw.a}
	local fsid osd_uuid K=$CEPH_DIR/keyring
	fsid=$(uuidgen)
	osd_uuid=$(uuidgen)
	conf "$fsid"
	ceph-authtool --create-keyring "$K" --gen-key -n mon. --cap mon 'allow *' > /dev/null
	ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
		--cap mgr 'allow *' --cap mds 'allow *' > /dev/null
	ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap mgr 'allow profile osd' \
		--cap osd 'allow *' > /dev/null
	ceph-authtool "$K" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' \
		--cap mds 'allow *' > /dev/null
	ceph-authtool "$K" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' \
		--cap mgr 'allow rw' > /dev/null

	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]" \
		"$CEPH_DIR/monmap" > /dev/null
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$K"
	ceph-mon -c "$CONF" -i a
	until_ok 60 ceph_cli mon stat || { echo "ceph: monitor did not come up"; tail -30 "$CEPH_DIR/log/mon.a.log"; return 1; }
	log "mon up on 127.0.0.1:$MON_PORT"

	ceph_cli osd new "$osd_uuid" 0 > /dev/null
	ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" > "$CEPH_DIR/log/osd-mkfs.log" 2>&1 ||
		{ cat "$CEPH_DIR/log/osd-mkfs.log"; return 1; }
	[ "$MGR" = 1 ] && ceph-mgr -c "$CONF" -i x
	ceph_cli osd pool create "$POOL" 8 8 > /dev/null 2>&1
	ceph_cli osd pool application enable "$POOL" rados > /dev/null 2>&1 || true
	start_osd

	if [ "$RGW" = 1 ]; then
		radosgw -c "$CONF" -n client.rgw.a
		until_ok 120 curl -sf "http://127.0.0.1:$RGW_PORT/" ||
			{ echo "ceph: radosgw did not come up"; tail -30 "$CEPH_DIR/log/client.rgw.a.log"; return 1; }
		radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
			--access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" > /dev/null
		# radosgw wants x-amz-content-sha256, which curl 7.88 does not add by itself
		until_ok 60 curl -sf -X PUT --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" --aws-sigv4 "aws:amz:us-east-1:s3" \
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
			"http://127.0.0.1:$RGW_PORT/$S3_BUCKET" || { echo "ceph: bucket $S3_BUCKET not created"; return 1; }
		log "radosgw on 127.0.0.1:$RGW_PORT, S3 user test, bucket $S3_BUCKET"
	fi
	env_lines
}

stop_pids() { # stop_pids NAME...: TERM them together, KILL after 20 s
	local n f pid pids=""
	for n in "$@"; do
		f=$CEPH_DIR/run/$n.pid
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		rm -f "$f"
		if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then
			kill -TERM "$pid"
			pids="$pids $pid"
		fi
	done
	for pid in $pids; do
		for _ in $(seq 80); do kill -0 "$pid" 2> /dev/null || break; sleep 0.25; done
		kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" || true
	done
}

# The monitor last: an OSD whose monitor is gone waits before exiting.
stop() {
	stop_pids client.rgw.a osd.0 mgr.x
	stop_pids mon.a
	log "stopped"
}

env_lines() {
	echo "export CEPH_DIR=$CEPH_DIR CEPH_CONF=$CONF CAIRN_TEST_POOL=$POOL"
	if [ "$RGW" = 1 ] || [ -e "$CEPH_DIR/run/client.rgw.a.pid" ]; then
		echo "export CAIRN_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT AWS_REGION=us-east-1" \
			"AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY CAIRN_TEST_BUCKET=$S3_BUCKET"
	fi
}

status() {
	local f
	for f in "$CEPH_DIR"/run/*.pid; do
		[ -e "$f" ] || continue
		printf '%-14s pid %-7s RSS %s kB\n' "$(basename "$f" .pid)" "$(cat "$f")" \
			"$(awk '/VmRSS/{print $2}' "/proc/$(cat "$f")/status" 2> /dev/null || echo dead)"
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
stop-osd) stop_pids osd.0; log "osd.0 stopped" ;;
start-osd) start_osd ;;
status) status ;;
env) env_lines ;;
*) echo "usage: $0 start|stop|stop-osd|start-osd|status|env" >&2; exit 2 ;;
esac

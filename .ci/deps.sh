# Debian packages cairn needs to build, test and demo; sourced by .ci/run
# and tools/demo.sh. install_deps installs only what is missing (as root).
CAIRN_PKGS=(meson ninja-build pkg-config gcc clang libzstd-dev liburing-dev libxxhash-dev
            libarchive-dev libssl-dev attr acl libcap2-bin python3 zstd bsdextrautils libarchive-tools libclang-rt-14-dev
            # the rados: backend, and the single-node cluster its tests run on (tests/ceph-cluster.sh)
            librados-dev ceph-mon ceph-osd ceph-common python3-rados uuid-runtime
            # the s3:// backend (libcurl's SigV4), and radosgw for its tests
            libcurl4-openssl-dev curl radosgw)

install_deps() {
	local missing=() p
	for p in "${CAIRN_PKGS[@]}"; do
		dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages (run as root to install): ${missing[*]}" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# C-level tests of build/libnss_mymachines.so.2 against the tables of test/fake_daemon.py:
#   1. test_nss (all entry points, failures, bounds, fork, threads)
#   2. the same under valgrind --leak-check=full --error-exitcode=1, and the thread
#      and fork tests under helgrind
#   3. through glibc itself (getent) in a private mount namespace with a private
#      nsswitch.conf bind-mounted over /etc/nsswitch.conf (root and unshare only)
# Usage: test/run.sh [--no-valgrind] [--no-glibc]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
lib="$top/build/libnss_mymachines.so.2"
bin="$top/build/test_nss"
valgrind=1
glibc=1
for a in "$@"; do
	case "$a" in
	--no-valgrind) valgrind=0 ;;
	--no-glibc) glibc=0 ;;
	*) echo "unknown option $a" >&2; exit 2 ;;
	esac
done

[ -f "$lib" ] && [ -x "$bin" ] || { echo "build first: make -C nss-module build/test_nss" >&2; exit 2; }

dir=$(mktemp -d /tmp/nss-mymachines-test.XXXXXX)
daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

python3 "$here/fake_daemon.py" "$dir" &
daemon_pid=$!
i=0
while [ ! -f "$dir/ready" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "fake daemon did not start" >&2; exit 1; }
	kill -0 "$daemon_pid" 2>/dev/null || { echo "fake daemon died" >&2; exit 1; }
	sleep 0.05
done

echo "== test_nss"
"$bin" "$lib" "$dir"

if [ $valgrind = 1 ]; then
	if command -v valgrind >/dev/null; then
		echo "== test_nss under valgrind"
		TEST_SLOW=1 TEST_ITERATIONS=${VALGRIND_ITERATIONS:-1000} TEST_REPLACEMENTS=${VALGRIND_ITERATIONS:-1000} \
			valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
			--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
			--child-silent-after-fork=no --track-fds=no \
			"$bin" "$lib" "$dir"
		echo "== threads and fork under helgrind (16 threads, 1,000 replacements)"
		TEST_SLOW=1 TEST_THREADS=16 TEST_ITERATIONS=100 \
			valgrind -q --tool=helgrind --error-exitcode=1 "$bin" "$lib" "$dir" threads fork
	else
		echo "valgrind not installed: skipped" >&2
	fi
fi

if [ $glibc = 1 ]; then
	if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
		echo "== through glibc (getent), private nsswitch.conf"
		"$here/glibc.sh" "$top/build" "$dir/ok/io.systemd.Machine"
	else
		echo "not root or no unshare: glibc test skipped" >&2
	fi
fi
echo "all nss-module tests passed"

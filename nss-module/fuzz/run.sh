#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs the table fuzzer for SECONDS (default 20) from the seed corpus in fuzz/corpus/.
# New inputs go to a temporary directory (the committed corpus is not changed); a crash
# is saved under build/fuzz-artifacts/ and makes this script exit non-zero.
#   fuzz/run.sh [SECONDS]
set -eu
secs=${1:-20}
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
make -s -C "$top" fuzz
work=$(mktemp -d /tmp/nss-mymachines-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$top/build/fuzz-artifacts"
echo "fuzzing the table reader for $secs s"
"$top/build/fuzz_table" \
	-max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	-dict="$here/table.dict" -artifact_prefix="$top/build/fuzz-artifacts/" \
	-print_final_stats=1 "$work" "$here/corpus" 2>"$work/log" || {
	rc=$?
	tail -50 "$work/log" >&2
	echo "fuzzer failed (exit $rc); artifacts in $top/build/fuzz-artifacts/" >&2
	exit 1
}
grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$work/log" || tail -3 "$work/log"
echo "fuzzing: no crash"

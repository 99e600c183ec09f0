#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The module as glibc loads it: getent and getaddrinfo in a private mount namespace,
# with a private nsswitch.conf bind-mounted over /etc/nsswitch.conf (the host's file is
# never touched) and LD_LIBRARY_PATH pointing at the build directory.
#   glibc.sh BUILD_DIR SOCKET
set -eu
build=$1
sock=$2
here=$(cd "$(dirname "$0")" && pwd)

if [ "${MYMACHINES_IN_NS:-}" != 1 ]; then
	exec env MYMACHINES_IN_NS=1 unshare -m "$0" "$@"
fi

tmp=$(mktemp -d /tmp/nss-mymachines-glibc.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mount --make-rprivate / 2>/dev/null || true
# No nscd: ask the modules directly.
if [ -d /var/run/nscd ]; then mount -t tmpfs none /var/run/nscd; fi

fail=0
expect() { # expect DESCRIPTION WANTED ACTUAL
	if [ "$2" = "$3" ]; then
		echo "  ok   $1"
	else
		echo "  FAIL $1"; echo "       want: $2" | sed 's/^/ /'; echo "       got:  $3" | sed 's/^/ /'
		fail=1
	fi
}

run() { LD_LIBRARY_PATH="$build" MYMACHINES_SOCKET="$sock" "$@" 2>&1 || echo "exit $?"; }

# 1. mymachines first, as a distribution would put it before dns
cat >"$tmp/nsswitch.conf" <<'CONF'
passwd: files mymachines
group:  files mymachines
hosts:  files mymachines
CONF
mount --bind "$tmp/nsswitch.conf" /etc/nsswitch.conf

# A hostent has no scope: the link-local fe80::1 is left out of gethostbyname2_r's answer.
expect "getent hosts (gethostbyname2_r, AF_INET6 first, no link-local)" "fd00::1 web1" "$(run getent hosts web1 | tr -s ' ')"
expect "getent ahostsv6 (gethostbyname3_r, no link-local)" "fd00::1 web1" \
	"$(run getent ahostsv6 web1 | awk '$2=="STREAM"{print $1, $3}')"
expect "getent hosts: only a link-local IPv6 address, so IPv4 (gethostbyname2_r AF_INET6 NOTFOUND)" "10.0.3.1 llonly" \
	"$(run getent hosts llonly | tr -s ' ')"
expect "getent ahostsv6: only a link-local IPv6 address, so IPv4 mapped" "::ffff:10.0.3.1" \
	"$(run getent ahostsv6 llonly | awk '$2=="STREAM"{print $1}')"
expect "getent ahostsv4" "10.0.0.1 web1
10.0.0.2" "$(run getent ahostsv4 web1 | awk '$2=="STREAM"{print $1, $3}' | sed 's/ $//')"
# getaddrinfo(AF_UNSPEC) uses gethostbyname4_r and sorts the result itself (RFC 6724).
expect "getent ahosts: all four, link-local with its scope" "10.0.0.1 10.0.0.2 fd00::1 fe80::1%7" \
	"$(run getent ahosts web1 | awk '$2=="STREAM"{print $1}' | sort | tr '\n' ' ' | sed 's/ $//')"
expect "getaddrinfo: scope id of the link-local address" "fe80::1 7" \
	"$(run python3 -c 'import socket
for f, t, p, c, sa in socket.getaddrinfo("web1", None, 0, socket.SOCK_STREAM):
    print(sa[0].split("%")[0], sa[3]) if f == socket.AF_INET6 else None' | grep fe80)"
expect "getaddrinfo: canonical name" "web1" \
	"$(run python3 -c 'import socket; print(socket.getaddrinfo("WEB1", None, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)[0][3])')"
expect "getent hosts ADDRESS (reverse v4)" "10.0.0.2 web1" "$(run getent hosts 10.0.0.2 | tr -s ' ')"
expect "getent hosts ADDRESS (reverse v6)" "fd00::1 web1" "$(run getent hosts fd00::1 | tr -s ' ')"
expect "reverse with aliases" "10.9.9.9 multi alias1.example alias2" "$(run getent hosts 10.9.9.9 | tr -s ' ')"
expect "unknown host" "exit 2" "$(run getent hosts nosuchmachine)"
expect "getent passwd NAME" "vu-web1-0:x:100000:65534:UID 0 of Container web1:/:/usr/sbin/nologin" "$(run getent passwd vu-web1-0)"
expect "getent passwd UID" "vu-web1-1000:x:101000:65534:UID 1000 of Container web1:/:/usr/sbin/nologin" "$(run getent passwd 101000)"
expect "getent group NAME" "vg-web1-0:x:100000:" "$(run getent group vg-web1-0)"
expect "getent group GID" "vg-web1-1000:x:101000:" "$(run getent group 101000)"
expect "unknown user" "exit 2" "$(run getent passwd vu-nosuch-0)"
expect "files still answer" "root:x:0:0:root:/root:/bin/bash" "$(run getent passwd root | sed 's/:[^:]*$/:\/bin\/bash/')"

# 2. mymachines before files: NOTFOUND and UNAVAIL both pass on to the next source
cat >"$tmp/nsswitch.conf" <<'CONF'
passwd: mymachines files
group:  mymachines files
hosts:  mymachines files
CONF
expect "NOTFOUND falls through to files" "127.0.0.1 localhost" "$(run getent ahostsv4 localhost | awk '$2=="STREAM"{print $1, $3}')"
expect "UNAVAIL (no daemon) falls through to files" "root" \
	"$(LD_LIBRARY_PATH="$build" MYMACHINES_SOCKET=/nonexistent/sock getent passwd root | cut -d: -f1)"
expect "no daemon: machine unknown, quickly" "exit 2" \
	"$(LD_LIBRARY_PATH="$build" MYMACHINES_SOCKET=/nonexistent/sock timeout 5 getent hosts web1 2>&1 || echo "exit $?")"

# 2b. Names and IDs that can never be a container's record are NOTFOUND, even with no daemon
# (before, no daemon meant UNAVAIL, and glibc went on to files past [NOTFOUND=return])
cat >"$tmp/nsswitch.conf" <<'CONF'
passwd: mymachines [NOTFOUND=return] files
group:  mymachines [NOTFOUND=return] files
hosts:  files
CONF
nodaemon() { LD_LIBRARY_PATH="$build" MYMACHINES_SOCKET=/nonexistent/sock "$@" 2>&1 || echo "exit $?"; }
expect "no daemon: getent passwd root is NOTFOUND (no vu- name)" "exit 2" "$(nodaemon getent passwd root)"
expect "no daemon: getent passwd 0 is NOTFOUND (below 65536)" "exit 2" "$(nodaemon getent passwd 0)"
expect "no daemon: getent group root is NOTFOUND" "exit 2" "$(nodaemon getent group root)"
expect "no daemon: getent group 0 is NOTFOUND" "exit 2" "$(nodaemon getent group 0)"
expect "daemon: getent passwd 65535 is NOTFOUND (never asked)" "exit 2" "$(run getent passwd 65535)"
cat >"$tmp/nsswitch.conf" <<'CONF'
passwd: mymachines [UNAVAIL=return] files
group:  mymachines [UNAVAIL=return] files
hosts:  files
CONF
expect "no daemon, [UNAVAIL=return]: getent passwd root goes on to files" "root" "$(nodaemon getent passwd root | cut -d: -f1)"
expect "no daemon, [UNAVAIL=return]: getent group 0 goes on to files" "root" "$(nodaemon getent group 0 | cut -d: -f1)"

# 3. [NOTFOUND=return] stops at a miss; UNAVAIL goes on
cat >"$tmp/nsswitch.conf" <<'CONF'
passwd: files
group:  files
hosts:  mymachines [NOTFOUND=return] files
CONF
expect "[NOTFOUND=return] stops" "exit 2" "$(run getent hosts localhost)"
expect "UNAVAIL continues past [NOTFOUND=return]" "127.0.0.1 localhost" \
	"$(LD_LIBRARY_PATH="$build" MYMACHINES_SOCKET=/nonexistent/sock getent ahostsv4 localhost | awk '$2=="STREAM"{print $1, $3}')"

exit $fail

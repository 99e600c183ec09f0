# mymachines: the daemon and CLI (TypeScript, built with tsc) and the NSS module (C).
#
#   make demo        install what is missing (Debian packages, npm ci), build, run the demo
#   make check       install what the tests need (and the systemd 262 root, build/sid-root), build,
#                    run every test
#   make             build: npm ci when node_modules is missing or older than the lock, tsc, the NSS
#                    module, the man pages and the service files
#   make install     install into $(DESTDIR)$(PREFIX) (PREFIX=/usr/local), the NSS module into the
#                    multiarch library directory, the bus policy into /etc
#   make uninstall   remove what make install put there
#   make deb         build build/deb/mymachines_<version>_amd64.deb (installs Debian's packaging tools)
#   make bench       run the benchmarks
#   make clean       remove what the build made

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
PKGDIR := $(PREFIX)/lib/mymachines
MANDIR ?= $(PREFIX)/share/man
# The admin's directory: systemd-container's own policy for the same name lives in /usr/share. The
# Debian package puts it in /usr/share under a name of its own (mymachines.conf).
DBUSPOLICYDIR ?= /etc/dbus-1/system.d
DBUSPOLICYNAME ?= org.freedesktop.machine1.conf
# dbus-daemon looks for activation files in /usr/local/share, /usr/share and /lib (in that order).
DBUSSERVICEDIR ?= $(PREFIX)/share/dbus-1/system-services
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
# An init script for hosts without systemd: openrc (an openrc-run script), sysv (an LSB script for
# start-stop-daemon, which Debian's OpenRC runs too) or none. By default the one this host runs.
INITSCRIPT ?= $(shell if [ -x /sbin/openrc-run ]; then echo openrc; elif [ ! -d /run/systemd/system ] && command -v start-stop-daemon >/dev/null; then echo sysv; else echo none; fi)
INITDIR ?= /etc/init.d

B := build
TSC := node_modules/.bin/tsc
MARKED_MAN := node_modules/.bin/marked-man
VERSION = $(shell node -p 'require("./package.json").version')
# The man pages' date: the last commit's, so that a build is reproducible.
MANDATE ?= $(shell git log -1 --format=%cs 2>/dev/null || date +%F)
MANPAGES := $(B)/man/mymachinesd.8 $(B)/man/mymachinesctl.1 $(B)/man/nss-mymachines.8
# Service files get the installed paths at install time: they depend on PREFIX.
SUBST = sed -e 's|@bindir@|$(BINDIR)|g'

.PHONY: all build demo check bench install uninstall deb clean

all: build

# A fresh clone has no node_modules: npm ci installs what package-lock.json pins (TypeScript and the
# man page converter among them), so that nothing is fetched by a guessed name.
node_modules/.package-lock.json: package.json package-lock.json
	@scripts/check-node
	npm ci --no-audit --no-fund

build: dist/.built $(MANPAGES)
	@command -v gcc >/dev/null || { echo "make: gcc is missing: run 'scripts/install-deps' (as root) or install gcc first" >&2; exit 1; }
	$(MAKE) -C nss-module
	$(MAKE) -C helper

# Compiled again only when a source changed: a build with nothing to do rewrites nothing under dist/,
# which running tests read.
dist/.built: node_modules/.package-lock.json tsconfig.json $(shell find src test bench demo -name '*.ts' 2>/dev/null)
	$(TSC) -p tsconfig.json
	@touch $@

$(B)/man/%: doc/man/%.md package.json node_modules/.package-lock.json
	@mkdir -p $(@D)
	$(MARKED_MAN) --version $(VERSION) --no-breaks --manual mymachines --date $(MANDATE) $< > $@.tmp && mv $@.tmp $@

demo:
	scripts/install-deps build
	npm run demo

check:
	scripts/install-deps test
	scripts/sid-root >/dev/null
	npm test

bench:
	scripts/install-deps test
	npm run bench

install: build
	install -d $(DESTDIR)$(PKGDIR) $(DESTDIR)$(BINDIR)
	node scripts/copy-runtime.js $(DESTDIR)$(PKGDIR)
	ln -sf ../lib/mymachines/bin/mymachinesd $(DESTDIR)$(BINDIR)/mymachinesd
	ln -sf ../lib/mymachines/bin/mymachinesctl $(DESTDIR)$(BINDIR)/mymachinesctl
	install -D -m 0644 data/org.freedesktop.machine1.conf $(DESTDIR)$(DBUSPOLICYDIR)/$(DBUSPOLICYNAME)
	install -D -m 0644 data/org.freedesktop.machine1.service $(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.machine1.service
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	$(SUBST) data/mymachinesd.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/mymachinesd.service
	install -D -m 0644 data/bash-completion/mymachinesctl $(DESTDIR)$(BASHCOMPLETIONDIR)/mymachinesctl
	install -D -m 0644 $(B)/man/mymachinesd.8 $(DESTDIR)$(MANDIR)/man8/mymachinesd.8
	install -D -m 0644 $(B)/man/nss-mymachines.8 $(DESTDIR)$(MANDIR)/man8/nss-mymachines.8
	install -D -m 0644 $(B)/man/mymachinesctl.1 $(DESTDIR)$(MANDIR)/man1/mymachinesctl.1
	ln -sf nss-mymachines.8 $(DESTDIR)$(MANDIR)/man8/libnss_mymachines.so.2.8
	case "$(INITSCRIPT)" in \
	  openrc|sysv) install -d $(DESTDIR)$(INITDIR) && $(SUBST) data/$(INITSCRIPT)/mymachinesd.in > $(DESTDIR)$(INITDIR)/mymachinesd && chmod 0755 $(DESTDIR)$(INITDIR)/mymachinesd;; \
	  none) ;; \
	  *) echo "make: INITSCRIPT must be openrc, sysv or none" >&2; exit 1;; \
	esac
	$(MAKE) -C nss-module install DESTDIR=$(DESTDIR)
	$(MAKE) -C helper install DESTDIR=$(DESTDIR) LIBEXECDIR=$(PKGDIR)/libexec

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mymachinesd $(DESTDIR)$(BINDIR)/mymachinesctl
	rm -rf $(DESTDIR)$(PKGDIR)
	rm -f $(DESTDIR)$(DBUSPOLICYDIR)/$(DBUSPOLICYNAME) $(DESTDIR)$(DBUSSERVICEDIR)/org.freedesktop.machine1.service
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/mymachinesd.service $(DESTDIR)$(BASHCOMPLETIONDIR)/mymachinesctl
	rm -f $(DESTDIR)$(MANDIR)/man8/mymachinesd.8 $(DESTDIR)$(MANDIR)/man8/nss-mymachines.8 $(DESTDIR)$(MANDIR)/man8/libnss_mymachines.so.2.8 $(DESTDIR)$(MANDIR)/man1/mymachinesctl.1
	if grep -qs 'mymachines init script' $(DESTDIR)$(INITDIR)/mymachinesd; then rm -f $(DESTDIR)$(INITDIR)/mymachinesd; fi
	$(MAKE) -C nss-module uninstall DESTDIR=$(DESTDIR)

deb: node_modules/.package-lock.json
	scripts/install-deps deb
	scripts/build-deb

clean:
	rm -rf dist $(B) debian/mymachines debian/.debhelper debian/files debian/*.substvars debian/*.debhelper.log debian/*.debhelper debian/debhelper-build-stamp
	$(MAKE) -C nss-module clean
	$(MAKE) -C helper clean

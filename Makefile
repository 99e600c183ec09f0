# mymachines: the daemon and CLI (TypeScript, built with tsc) and the NSS module (C).
#
#   make demo        install what is missing (Debian packages, npm ci), build, run the demo
#   make check       install what the tests need (and the systemd 262 root, build/sid-root), build,
#                    run every test
#   make             build (after npm ci)
#   make install     install into $(DESTDIR)$(PREFIX) (PREFIX=/usr/local), the NSS module into the
#                    multiarch library directory
#   make uninstall   remove what make install put there
#   make bench       run the benchmarks

PREFIX ?= /usr/local
DESTDIR ?=
PKGDIR := $(PREFIX)/lib/mymachines
# The admin's directory: systemd-container's own policy for the same name lives in /usr/share.
DBUSPOLICYDIR ?= /etc/dbus-1/system.d
# Packages only the build and the tests need; they are not installed.
DEV_PACKAGES := typescript @types

.PHONY: all build demo check bench install uninstall clean

all: build

build:
	npx tsc -p tsconfig.json
	$(MAKE) -C nss-module
	$(MAKE) -C helper

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
	install -d $(DESTDIR)$(PKGDIR) $(DESTDIR)$(PREFIX)/bin
	cp -r package.json bin dist node_modules $(DESTDIR)$(PKGDIR)/
	rm -rf $(DESTDIR)$(PKGDIR)/dist/test $(DESTDIR)$(PKGDIR)/dist/bench $(DESTDIR)$(PKGDIR)/dist/demo
	for p in $(DEV_PACKAGES); do rm -rf $(DESTDIR)$(PKGDIR)/node_modules/$$p; done
	ln -sf ../lib/mymachines/bin/mymachinesd $(DESTDIR)$(PREFIX)/bin/mymachinesd
	ln -sf ../lib/mymachines/bin/mymachinesctl $(DESTDIR)$(PREFIX)/bin/mymachinesctl
	install -D -m 0644 data/org.freedesktop.machine1.conf $(DESTDIR)$(DBUSPOLICYDIR)/org.freedesktop.machine1.conf
	$(MAKE) -C nss-module install DESTDIR=$(DESTDIR)
	$(MAKE) -C helper install DESTDIR=$(DESTDIR) LIBEXECDIR=$(PKGDIR)/libexec

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mymachinesd $(DESTDIR)$(PREFIX)/bin/mymachinesctl
	rm -rf $(DESTDIR)$(PKGDIR)
	rm -f $(DESTDIR)$(DBUSPOLICYDIR)/org.freedesktop.machine1.conf
	$(MAKE) -C nss-module uninstall DESTDIR=$(DESTDIR)

clean:
	rm -rf dist
	$(MAKE) -C nss-module clean
	$(MAKE) -C helper clean

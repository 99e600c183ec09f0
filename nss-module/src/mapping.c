/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Under helgrind, say which atomics order which plain memory (it cannot see that itself). */
#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#endif
#endif
#ifndef ANNOTATE_HAPPENS_BEFORE
#define ANNOTATE_HAPPENS_BEFORE(obj) ((void) (obj))
#define ANNOTATE_HAPPENS_AFTER(obj) ((void) (obj))
#endif

/*
 * A mapped table file. Its descriptor stays open for the liveness check (the daemon's lock is on
 * the file); it is known by more than its number, since the program may close it behind our back
 * (close loops, closefrom) and get the number again for a file of its own: st_dev/st_ino are
 * checked before it is closed, and a number that is no longer our file is only forgotten.
 */
struct mapping {
        const uint8_t *p;
        size_t size;
        int fd;
        dev_t dev;
        ino_t ino;
        char path[PATH_MAX];
};

/*
 * Two slots, one of them current. A lookup increments the current slot's reader count, checks that
 * it is still current (else it backs off and tries again), reads, and decrements: no lock on the
 * read path. A thread that finds the table superseded (or its daemon gone) maps the new one itself,
 * answers from it, and installs it in the other slot if it gets the swap lock (trylock: no lookup
 * ever waits; only fork does, for a swap under way) and that slot has no readers; the old slot is
 * unmapped once it has none, at once or by a later swap. So at most two tables are mapped, plus one
 * per lookup that could not install its own.
 */
struct slot {
        atomic_uint readers;
        struct mapping m;
};

static struct slot slots[2];
static atomic_int current = -1;
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;
/* The thread whose fork holds swap_lock (0: none): one whose wait ran out must not release it. */
static _Atomic(pthread_t) fork_locker;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* How long a fork waits for a swap under way (which takes microseconds) before it goes on without. */
#define FORK_WAIT_NS (100 * 1000 * 1000)

/*
 * A thread inside install() while another forks would leave the child a half-written slot (unmapped
 * but not yet cleared, or half copied) and, with the lock free there, a next install that unmaps and
 * closes torn values: the fork waits for the swap instead. That is a few system calls (munmap,
 * fstat, close of a regular file), never a lookup, which takes no lock; installs that find the lock
 * taken meanwhile give up, as they would for another swap. The wait is bounded for a fork from a
 * signal handler that interrupted this thread's own install, which would wait for itself: then the
 * lock stays as it is in the child too, where either this thread returns into the install, finishes
 * and unlocks it, or (a swap stuck for longer) nothing swaps any more and every lookup maps its own.
 */
static void atfork_prepare(void) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += FORK_WAIT_NS;
        if (until.tv_nsec >= 1000 * 1000 * 1000) {
                until.tv_sec++;
                until.tv_nsec -= 1000 * 1000 * 1000;
        }
        if (pthread_mutex_timedlock(&swap_lock, &until) == 0)
                atomic_store(&fork_locker, pthread_self());
}

/* Releases swap_lock if this thread's atfork_prepare took it. */
static void fork_unlock(void) {
        if (pthread_equal(atomic_load(&fork_locker), pthread_self())) {
                atomic_store(&fork_locker, (pthread_t) 0);
                pthread_mutex_unlock(&swap_lock);
        }
}

static void atfork_parent(void) {
        fork_unlock();
}

static void atfork_child(void) {
        /* Only the forking thread goes on in the child, and it was no reader: the counts of the
         * others are stale. The mappings are of the same files, and the descriptors share the
         * parent's open file descriptions (the daemon's lock shows through either; a close in one
         * process leaves the other's open). */
        atomic_store(&slots[0].readers, 0);
        atomic_store(&slots[1].readers, 0);
        /* The lock is released by its holder, this thread, rather than made new (which helgrind
         * would take for a lock still held at exit). */
        fork_unlock();
}

static void register_atfork(void) {
        (void) pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static bool fd_is_ours(const struct mapping *m) {
        struct stat st;
        return m->fd >= 0 && fstat(m->fd, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino;
}

/* Unmaps m and closes its descriptor if it is still its own: not a number the program took over,
 * nor one that a newer mapping of the same file got again (keep, keep2: the live mappings' numbers). */
static void unmap(struct mapping *m, int keep, int keep2) {
        if (m->p)
                munmap((void *) m->p, m->size);
        if (m->fd != keep && m->fd != keep2 && fd_is_ours(m))
                close(m->fd);
        m->p = NULL;
        m->fd = -1;
}

__attribute__((destructor)) static void unmap_all(void) {
        /* When the module is unloaded. If a lookup is running right now, leave it be. */
        if (pthread_mutex_trylock(&swap_lock) != 0)
                return;
        atomic_store(&current, -1);
        if (atomic_load(&slots[0].readers) == 0)
                unmap(&slots[0].m, slots[1].m.fd, -1);
        if (atomic_load(&slots[1].readers) == 0)
                unmap(&slots[1].m, -1, -1);
        pthread_mutex_unlock(&swap_lock);
}

/* 1 when a running daemon holds the table open (its write lock on TABLE_LOCK_BYTE, which the kernel
 * drops when the daemon exits, SIGKILL included, and keeps while it is stopped), 0 when not, or when
 * fd is not that file any more (a lock elsewhere, or none). */
static int daemon_holds(int fd) {
        struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = TABLE_LOCK_BYTE, .l_len = 1 };

        if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
                return 0;
        return fl.l_type == F_WRLCK && fl.l_whence == SEEK_SET && fl.l_start == TABLE_LOCK_BYTE && fl.l_len == 1;
}

static int table_path(char *buf, size_t size) {
        const char *sock = secure_getenv("MYMACHINES_SOCKET"), *slash;
        size_t dir;
        int n;

        if (!sock || !*sock)
                sock = SOCKET_PATH;
        slash = strrchr(sock, '/');
        dir = slash ? (size_t) (slash - sock) + 1 : 0;
        n = snprintf(buf, size, "%.*s%s", (int) dir, sock, TABLE_NAME);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* Whether the file open on fd says a newer one has been renamed over it. */
static bool file_superseded(int fd) {
        uint32_t state = 0;
        return pread(fd, &state, sizeof state, TABLE_STATE_OFFSET) == sizeof state && state != 0;
}

/* Opens and maps the table at path if it can be trusted and a running daemon holds it. */
static int map_table(const char *path, struct mapping *m) {
        struct stat st;
        void *p;
        int fd, r, tries = 0;

again:
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return errno == ELOOP ? -EPERM : -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto fail;
        }
        /* Only root may plant a table, or the caller itself (its own registry, mymachinesd --user,
         * found through MYMACHINES_SOCKET, which secure_getenv ignores in setuid programs): another
         * user cannot make a file this process would believe. Nobody else may change one. */
        if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
                r = -EPERM;
                goto fail;
        }
        if (st.st_size < TABLE_HEADER_SIZE || (uint64_t) st.st_size > TABLE_MAX_SIZE) {
                r = -EBADMSG;
                goto fail;
        }
        if (!daemon_holds(fd)) {
                /* Opened just before a newer table was renamed over it and the daemon let go of it:
                 * the path has the newer one now. (Only a table replaced again and again, faster
                 * than this can open one, runs out of tries.) */
                if (file_superseded(fd)) {
                        close(fd);
                        if (++tries < 64)
                                goto again;
                        return -EAGAIN;
                }
                r = -ECONNREFUSED;
                goto fail;
        }
        p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                r = -errno;
                goto fail;
        }
        r = table_check_header(p, (size_t) st.st_size);
        if (r < 0) {
                munmap(p, (size_t) st.st_size);
                goto fail;
        }
        m->p = p;
        m->size = (size_t) st.st_size;
        m->fd = fd;
        m->dev = st.st_dev;
        m->ino = st.st_ino;
        snprintf(m->path, sizeof m->path, "%s", path);
        return 0;

fail:
        close(fd);
        return r;
}

static int run(const struct mapping *m, table_fn fn, void *userdata) {
        struct table_view v;
        int r = table_get_view(m->p, m->size, &v);
        return r < 0 ? r : fn(&v, userdata);
}

/* The current slot, with a reader count taken; -1 if there is none. */
static int acquire(void) {
        for (int tries = 0; tries < 64; tries++) {
                int c = atomic_load(&current);
                if (c < 0)
                        return -1;
                atomic_fetch_add(&slots[c].readers, 1);
                if (atomic_load(&current) == c) {
                        ANNOTATE_HAPPENS_AFTER(&slots[c]);
                        return c;
                }
                atomic_fetch_sub(&slots[c].readers, 1);
        }
        return -1;
}

static void release(int c) {
        ANNOTATE_HAPPENS_BEFORE(&slots[c].readers);
        atomic_fetch_sub(&slots[c].readers, 1);
}

/* Makes m the current table if that can be done without waiting; false: the caller unmaps it. */
static bool install(const struct mapping *m) {
        int c, o;

        if (pthread_mutex_trylock(&swap_lock) != 0)
                return false;
        c = atomic_load(&current);
        o = c == 0 ? 1 : 0;
        if (slots[o].m.p) {
                /* A table replaced earlier: unmapped once its last reader has left. */
                if (atomic_load(&slots[o].readers) != 0) {
                        pthread_mutex_unlock(&swap_lock);
                        return false;
                }
                ANNOTATE_HAPPENS_AFTER(&slots[o].readers);
                unmap(&slots[o].m, m->fd, c >= 0 ? slots[c].m.fd : -1);
        }
        slots[o].m = *m;
        ANNOTATE_HAPPENS_BEFORE(&slots[o]);
        atomic_store(&current, o);
        /* A reader that comes to the old slot now sees it is no longer current and backs off. */
        if (c >= 0 && atomic_load(&slots[c].readers) == 0) {
                ANNOTATE_HAPPENS_AFTER(&slots[c].readers);
                unmap(&slots[c].m, m->fd, -1);
        }
        pthread_mutex_unlock(&swap_lock);
        return true;
}

int with_table(table_fn fn, void *userdata) {
        struct mapping m;
        char path[PATH_MAX];
        int c, r;

        r = table_path(path, sizeof path);
        if (r < 0)
                return r;
        (void) pthread_once(&atfork_once, register_atfork);

        c = acquire();
        if (c >= 0) {
                const struct mapping *cur = &slots[c].m;
                /* The one system call of a lookup: is the daemon still there? */
                if (strcmp(cur->path, path) == 0 && !table_superseded(cur->p) && daemon_holds(cur->fd)) {
                        r = run(cur, fn, userdata);
                        release(c);
                        return r;
                }
                release(c);
        }

        /* No table yet, a newer one, another path, or its daemon gone: look at what is there now. */
        r = map_table(path, &m);
        if (r < 0)
                return r;
        r = run(&m, fn, userdata);
        if (!install(&m))
                unmap(&m, -1, -1);
        return r;
}

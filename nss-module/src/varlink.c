/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "varlink.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * One cached connection per process, for speed. It is only used while cache_lock is
 * held; a thread that finds the lock busy uses a temporary connection of its own, so
 * no lookup ever waits for another. The connection is never used in a forked child:
 * an atfork handler closes the child's copy, and cache_pid catches children made
 * without fork handlers (raw clone); those merely forget the descriptor (the number may
 * already mean something else to them).
 *
 * The descriptor belongs to the module, but the program may close it behind our back
 * (close loops, closefrom, close_range) and get the number again for a file of its own.
 * So the socket's identity (st_dev, st_ino) is recorded at connect and checked before
 * every use and every close: a descriptor that is no longer our socket is forgotten,
 * never written to, read from or closed.
 */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static int cache_fd = -1;
static pid_t cache_pid;
static dev_t cache_dev;
static ino_t cache_ino;
static char cache_path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Is cache_fd (>= 0) still the socket that we connected? */
static bool cache_fd_is_ours(void) {
        struct stat st;

        return fstat(cache_fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
               st.st_dev == cache_dev && st.st_ino == cache_ino;
}

static void atfork_child(void) {
        static const pthread_mutex_t init = PTHREAD_MUTEX_INITIALIZER;

        /* Only this thread exists in the child; whoever held the lock is gone. Close the
         * child's copy of the parent's connection; a descriptor the parent itself had
         * inherited without fork handlers (raw clone), or that is no longer our socket,
         * is only forgotten. */
        if (cache_fd >= 0 && cache_pid == getppid() && cache_fd_is_ours())
                close(cache_fd);
        cache_fd = -1;
        memcpy(&cache_lock, &init, sizeof cache_lock);
}

static void register_atfork(void) {
        (void) pthread_atfork(NULL, NULL, atfork_child);
}

__attribute__((destructor)) static void drop_cache(void) {
        /* When the module is unloaded. If a lookup is running right now, leave it be. */
        if (pthread_mutex_trylock(&cache_lock) != 0)
                return;
        if (cache_fd >= 0 && cache_pid == getpid() && cache_fd_is_ours())
                close(cache_fd);
        cache_fd = -1;
        pthread_mutex_unlock(&cache_lock);
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline. 0 when ready, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = events };
                int64_t left = deadline - now_ms();
                int r;

                if (left <= 0)
                        return -ETIMEDOUT;
                r = poll(&pfd, 1, (int) left);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        continue; /* re-check the deadline */
                if (pfd.revents & POLLNVAL)
                        return -EBADF;
                return 0; /* ready, or an error the next call will report */
        }
}

static const char *socket_path(void) {
        const char *p = secure_getenv("MYMACHINES_SOCKET");
        return p && *p ? p : SOCKET_PATH;
}

static int open_connection(const char *path, int64_t deadline, int *ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t l = strlen(path);
        socklen_t salen;
        int fd, r, err;
        socklen_t errlen = sizeof err;

        if (l >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, l + 1);
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;

        for (;;) {
                if (connect(fd, (struct sockaddr *) &sa, salen) == 0)
                        break;
                r = -errno;
                if (r == -EINTR)
                        continue;
                if (r == -EAGAIN) {
                        /* The listen queue is full: try again a little later, within the deadline. */
                        int64_t left = deadline - now_ms();
                        if (left <= 0) {
                                r = -ETIMEDOUT;
                                goto fail;
                        }
                        (void) poll(NULL, 0, left < 5 ? (int) left : 5);
                        continue;
                }
                if (r == -EINPROGRESS) {
                        r = wait_fd(fd, POLLOUT, deadline);
                        if (r < 0)
                                goto fail;
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0) {
                                r = -errno;
                                goto fail;
                        }
                        if (err != 0) {
                                r = -err;
                                goto fail;
                        }
                        break;
                }
                goto fail;
        }
        *ret = fd;
        return 0;

fail:
        close(fd);
        return r;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline) {
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        int r = -errno;
                        if (r == -EINTR)
                                continue;
                        if (r == -EAGAIN) {
                                r = wait_fd(fd, POLLOUT, deadline);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        return r;
                }
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Reads one NUL-terminated message. *got_any tells whether any byte arrived. */
static int recv_message(int fd, int64_t deadline, char **ret, size_t *ret_len, bool *got_any) {
        size_t cap = 4096, have = 0;
        char *buf = malloc(cap), *nb;
        int r;

        if (!buf)
                return -ENOMEM;
        /* The request was just sent: wait for the reply before the first recv (which would
         * only say EAGAIN), one system call less per lookup. */
        r = wait_fd(fd, POLLIN, deadline);
        if (r < 0)
                goto fail;
        for (;;) {
                ssize_t n;

                if (have == cap) {
                        if (cap > REPLY_MAX) {
                                r = -EMSGSIZE; /* REPLY_MAX bytes and still no NUL */
                                goto fail;
                        }
                        cap = cap * 2 > REPLY_MAX + 1 ? REPLY_MAX + 1 : cap * 2;
                        nb = realloc(buf, cap);
                        if (!nb) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        buf = nb;
                }
                n = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
                if (n < 0) {
                        r = -errno;
                        if (r == -EINTR)
                                continue;
                        if (r == -EAGAIN) {
                                r = wait_fd(fd, POLLIN, deadline);
                                if (r < 0)
                                        goto fail;
                                continue;
                        }
                        goto fail;
                }
                if (n == 0) {
                        r = -ECONNRESET; /* closed before the message ended */
                        goto fail;
                }
                *got_any = true;
                char *nul = memchr(buf + have, 0, (size_t) n);
                have += (size_t) n;
                if (nul) {
                        /* We sent one call; anything after its reply is a protocol error. */
                        if ((size_t) (nul - buf) + 1 != have) {
                                r = -EBADMSG;
                                goto fail;
                        }
                        *ret = buf;
                        *ret_len = have - 1;
                        return 0;
                }
        }

fail:
        free(buf);
        return r;
}

/* One request and its reply on fd. *dead is set when the peer turned out to be gone
 * before it sent anything, which is worth one retry on a fresh connection: a cached
 * connection that the daemon closed while idle shows so (EPIPE on send, or EOF before any
 * byte of the reply), so it needs no check of its own before use. */
static int transact(int fd, const char *req, size_t len, int64_t deadline,
                    reply_cb cb, void *userdata, bool *dead) {
        char *msg = NULL;
        size_t msglen = 0;
        bool got_any = false;
        int r;

        *dead = false;
        r = send_all(fd, req, len, deadline);
        if (r < 0) {
                *dead = r == -EPIPE || r == -ECONNRESET;
                return r;
        }
        r = recv_message(fd, deadline, &msg, &msglen, &got_any);
        if (r < 0) {
                *dead = !got_any && r == -ECONNRESET;
                return r;
        }
        r = reply_handle(msg, msglen, cb, userdata);
        free(msg);
        return r;
}

/* Opens the connection to cache (cache_lock held) and records whose and which it is. */
static int open_cached(const char *path, int64_t deadline) {
        struct stat st;
        int r, fd;

        cache_fd = -1;
        r = open_connection(path, deadline, &fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        cache_fd = fd;
        cache_pid = getpid();
        cache_dev = st.st_dev;
        cache_ino = st.st_ino;
        memcpy(cache_path, path, strlen(path) + 1); /* fits: connect checked it */
        return 0;
}

int varlink_call(const char *request, size_t len, reply_cb cb, void *userdata) {
        int64_t deadline = now_ms() + CALL_TIMEOUT_MS;
        const char *path = socket_path();
        bool dead;
        int r, fd;

        (void) pthread_once(&atfork_once, register_atfork);

        if (pthread_mutex_trylock(&cache_lock) == 0) {
                pid_t pid = getpid();
                bool reused;

                if (cache_fd >= 0 && cache_pid != pid)
                        cache_fd = -1; /* inherited without fork handlers: not ours to close */
                if (cache_fd >= 0 && !cache_fd_is_ours())
                        cache_fd = -1; /* the program closed it; the number may be its own file now */
                if (cache_fd >= 0 && strcmp(cache_path, path) != 0) {
                        close(cache_fd);
                        cache_fd = -1;
                }
                reused = cache_fd >= 0;
                if (!reused) {
                        r = open_cached(path, deadline);
                        if (r < 0)
                                goto unlock;
                }
                r = transact(cache_fd, request, len + 1, deadline, cb, userdata, &dead);
                if (r < 0 && reused && dead) {
                        /* The daemon closed the idle connection (or restarted): once more, fresh. */
                        close(cache_fd);
                        r = open_cached(path, deadline);
                        if (r < 0)
                                goto unlock;
                        r = transact(cache_fd, request, len + 1, deadline, cb, userdata, &dead);
                }
                if (r < 0 && cache_fd >= 0) {
                        close(cache_fd);
                        cache_fd = -1;
                }
        unlock:
                pthread_mutex_unlock(&cache_lock);
                return r;
        }

        /* Another thread is using the cached connection: use a temporary one. */
        r = open_connection(path, deadline, &fd);
        if (r >= 0) {
                r = transact(fd, request, len + 1, deadline, cb, userdata, &dead);
                close(fd);
        }
        return r;
}

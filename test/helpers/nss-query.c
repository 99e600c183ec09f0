/* Asks our NSS module itself (dlopen, entry points called as glibc calls them), a query a line from
 * standard input, and prints each answer on one line, so that a test can compare the module's
 * answers with the daemon's Varlink methods on many machines. Statuses and errno are part of it.
 *
 *   nss-query MODULE < QUERIES
 *
 *   h4 NAME           gethostbyname4_r   -> "OK canonical ADDR[%scope] ..."
 *   h3 NAME 4|6       gethostbyname3_r   -> "OK canonical ADDR ..."
 *   a ADDR            gethostbyaddr2_r   -> "OK name alias ..."
 *
 * ADDR: "4:" or "6:" and the address's bytes in hex (0a000001), which compares without text forms.
 *   pn NAME, pu UID   getpwnam_r, getpwuid_r -> "OK name:x:uid:gid:gecos:dir:shell"
 *   gn NAME, gg GID   getgrnam_r, getgrgid_r -> "OK name:x:gid:"
 *
 * Other answers: "NOTFOUND", "TRYAGAIN ERRNO", "UNAVAIL ERRNO" (the errno's name). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char buf[65536];

static void status(enum nss_status st, int err) {
        if (st == NSS_STATUS_NOTFOUND)
                printf("NOTFOUND\n");
        else if (st == NSS_STATUS_TRYAGAIN)
                printf("TRYAGAIN %s\n", strerrorname_np(err));
        else
                printf("UNAVAIL %s\n", strerrorname_np(err));
}

static const char *text(int af, const void *a) {
        static char s[40];
        const unsigned char *b = a;
        int n = af == AF_INET ? 4 : 16;
        s[0] = af == AF_INET ? '4' : '6';
        s[1] = ':';
        for (int i = 0; i < n; i++)
                sprintf(s + 2 + 2 * i, "%02x", b[i]);
        return s;
}

int main(int argc, char **argv) {
        char line[1024], what[8], arg[512];
        void *h;
        nss_gethostbyname4_r *gh4;
        nss_gethostbyname3_r *gh3;
        nss_gethostbyaddr2_r *gha;
        nss_getpwnam_r *pwnam;
        nss_getpwuid_r *pwuid;
        nss_getgrnam_r *grnam;
        nss_getgrgid_r *grgid;

        if (argc != 2 || !(h = dlopen(argv[1], RTLD_NOW))) {
                fprintf(stderr, "usage: nss-query MODULE (%s)\n", dlerror());
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0); /* an answer a line, at once */
        gh4 = dlsym(h, "_nss_mymachines_gethostbyname4_r");
        gh3 = dlsym(h, "_nss_mymachines_gethostbyname3_r");
        gha = dlsym(h, "_nss_mymachines_gethostbyaddr2_r");
        pwnam = dlsym(h, "_nss_mymachines_getpwnam_r");
        pwuid = dlsym(h, "_nss_mymachines_getpwuid_r");
        grnam = dlsym(h, "_nss_mymachines_getgrnam_r");
        grgid = dlsym(h, "_nss_mymachines_getgrgid_r");
        while (fgets(line, sizeof line, stdin)) {
                int err = 0, herr = 0, af = 0;
                int32_t ttl;
                enum nss_status st;
                struct hostent he;
                struct passwd pw;
                struct group gr;

                if (sscanf(line, "%7s %511s %d", what, arg, &af) < 2) {
                        printf("BAD\n");
                        continue;
                }
                if (strcmp(what, "h4") == 0) {
                        struct gaih_addrtuple *pat = NULL;
                        st = gh4(arg, &pat, buf, sizeof buf, &err, &herr, &ttl);
                        if (st != NSS_STATUS_SUCCESS) {
                                status(st, err);
                                continue;
                        }
                        printf("OK %s", pat->name);
                        for (; pat; pat = pat->next) {
                                printf(" %s", text(pat->family, pat->addr));
                                if (pat->scopeid)
                                        printf("%%%u", pat->scopeid);
                        }
                        printf("\n");
                } else if (strcmp(what, "h3") == 0) {
                        char *canon = NULL;
                        st = gh3(arg, af == 6 ? AF_INET6 : AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl, &canon);
                        if (st != NSS_STATUS_SUCCESS) {
                                status(st, err);
                                continue;
                        }
                        printf("OK %s", canon);
                        for (char **a = he.h_addr_list; *a; a++)
                                printf(" %s", text(he.h_addrtype, *a));
                        printf("\n");
                } else if (strcmp(what, "a") == 0) {
                        unsigned char a[16];
                        int fam = arg[0] == '6' ? AF_INET6 : AF_INET, n = fam == AF_INET ? 4 : 16, ok = strlen(arg) == (size_t) (2 + 2 * n);
                        for (int i = 0; ok && i < n; i++) {
                                unsigned v;
                                ok = sscanf(arg + 2 + 2 * i, "%2x", &v) == 1;
                                a[i] = (unsigned char) v;
                        }
                        if (!ok) {
                                printf("BAD\n");
                                continue;
                        }
                        st = gha(a, fam == AF_INET ? 4 : 16, fam, &he, buf, sizeof buf, &err, &herr, &ttl);
                        if (st != NSS_STATUS_SUCCESS) {
                                status(st, err);
                                continue;
                        }
                        printf("OK %s", he.h_name);
                        for (char **n = he.h_aliases; *n; n++)
                                printf(" %s", *n);
                        printf("\n");
                } else if (strcmp(what, "pn") == 0 || strcmp(what, "pu") == 0) {
                        st = what[1] == 'n' ? pwnam(arg, &pw, buf, sizeof buf, &err)
                                            : pwuid((uid_t) strtoul(arg, NULL, 10), &pw, buf, sizeof buf, &err);
                        if (st != NSS_STATUS_SUCCESS)
                                status(st, err);
                        else
                                printf("OK %s:%s:%u:%u:%s:%s:%s\n", pw.pw_name, pw.pw_passwd, pw.pw_uid, pw.pw_gid,
                                       pw.pw_gecos, pw.pw_dir, pw.pw_shell);
                } else if (strcmp(what, "gn") == 0 || strcmp(what, "gg") == 0) {
                        st = what[1] == 'n' ? grnam(arg, &gr, buf, sizeof buf, &err)
                                            : grgid((gid_t) strtoul(arg, NULL, 10), &gr, buf, sizeof buf, &err);
                        if (st != NSS_STATUS_SUCCESS)
                                status(st, err);
                        else
                                printf("OK %s:%s:%u:%s\n", gr.gr_name, gr.gr_passwd, gr.gr_gid, gr.gr_mem[0] ? "members?" : "");
                } else
                        printf("BAD\n");
        }
        return 0;
}

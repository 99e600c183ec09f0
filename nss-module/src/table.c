/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "table.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* File header fields. */
#define H_VERSION 8
#define H_HEADER_SIZE 12
#define H_FILE_SIZE 16
#define H_STATE TABLE_STATE_OFFSET
#define H_BASE 40
#define H_BASE_SIZE 44
#define H_DELTA 48
#define H_DELTA_AREA 56
static const char table_magic[8] = { 'M', 'Y', 'M', 'T', 'A', 'B', 'L', 'E' };

/* Sections. */
#define SECTION_MAGIC 0x534d594du /* "MYMS" */
#define SECTION_BASE 1
#define SECTION_DELTA 2
#define SECTION_HEADER_SIZE 112
#define MACHINE_SIZE 32
#define ADDRESS_SIZE 24
#define REVERSE_SIZE 28
#define NAMEREF_SIZE 8
#define SEGMENT_SIZE 16
#define LINE_SIZE 12
#define F_PRESENT 1
#define F_CONTAINER 2

static uint32_t rd32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) {
        return (uint64_t) rd32(p) | (uint64_t) rd32(p + 4) << 32;
}

static uint8_t lower(uint8_t c) {
        return c >= 'A' && c <= 'Z' ? (uint8_t) (c + 32) : c;
}

/* FNV-1a, 32 bits, over the ASCII-lower-cased name: the daemon's nameHash. */
static uint32_t name_hash(const char *s, size_t n) {
        uint32_t h = 0x811c9dc5u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ lower((uint8_t) s[i])) * 0x01000193u;
        return h;
}

static uint32_t address_hash(int family, const uint8_t *a, size_t n) {
        uint32_t h = (0x811c9dc5u ^ (uint8_t) family) * 0x01000193u;
        for (size_t i = 0; i < n; i++)
                h = (h ^ a[i]) * 0x01000193u;
        return h;
}

int table_check_header(const uint8_t *p, size_t size) {
        uint64_t base, base_size, area;

        if (size < TABLE_HEADER_SIZE || size > TABLE_MAX_SIZE || memcmp(p, table_magic, sizeof table_magic) != 0)
                return -EBADMSG;
        if (rd32(p + H_VERSION) != TABLE_VERSION)
                return -EPROTONOSUPPORT;
        if (rd32(p + H_HEADER_SIZE) != TABLE_HEADER_SIZE || rd64(p + H_FILE_SIZE) != size)
                return -EBADMSG;
        base = rd32(p + H_BASE);
        base_size = rd32(p + H_BASE_SIZE);
        area = rd32(p + H_DELTA_AREA);
        if (base < TABLE_HEADER_SIZE || base % 8 != 0 || base + base_size > area || area > size)
                return -EBADMSG;
        return 0;
}

bool table_superseded(const uint8_t *p) {
        return __atomic_load_n((const uint32_t *) (p + H_STATE), __ATOMIC_ACQUIRE) != 0;
}

/* An array of count records of rsize bytes at offset off of the section. */
static bool array_ok(uint32_t size, uint32_t off, uint32_t count, uint32_t rsize) {
        return off >= SECTION_HEADER_SIZE && off % 4 == 0 && (uint64_t) off + (uint64_t) count * rsize <= size;
}

static bool buckets_ok(uint32_t n) {
        return (n & (n - 1)) == 0; /* 0 or a power of two */
}

/* Parses and checks the section at offset off of the file; its kind must be `kind`. */
static int get_section(const uint8_t *p, size_t size, uint32_t off, uint32_t kind, struct table_section *s,
                       uint32_t *parent) {
        const uint8_t *h;

        if (off % 8 != 0 || (uint64_t) off + SECTION_HEADER_SIZE > size)
                return -EBADMSG;
        h = p + off;
        s->p = h;
        s->size = rd32(h + 8);
        if (rd32(h) != SECTION_MAGIC || rd32(h + 4) != kind || s->size < SECTION_HEADER_SIZE ||
            (uint64_t) off + s->size > size)
                return -EBADMSG;
        *parent = rd32(h + 12);
        s->n_machines = rd32(h + 24);
        s->machines = rd32(h + 28);
        s->name_buckets = rd32(h + 32);
        s->name_index = rd32(h + 36);
        s->n_reverse = rd32(h + 40);
        s->reverse = rd32(h + 44);
        s->reverse_buckets = rd32(h + 48);
        s->reverse_index = rd32(h + 52);
        s->n_addrs = rd32(h + 56);
        s->addrs = rd32(h + 60);
        s->n_namerefs = rd32(h + 64);
        s->namerefs = rd32(h + 68);
        s->n_segs[0] = rd32(h + 72);
        s->segs[0] = rd32(h + 76);
        s->n_segs[1] = rd32(h + 80);
        s->segs[1] = rd32(h + 84);
        s->n_lines = rd32(h + 88);
        s->lines = rd32(h + 92);
        s->strings_size = rd32(h + 96);
        s->strings = rd32(h + 100);
        if (!array_ok(s->size, s->machines, s->n_machines, MACHINE_SIZE) ||
            !array_ok(s->size, s->name_index, s->name_buckets, 4) || !buckets_ok(s->name_buckets) ||
            !array_ok(s->size, s->reverse, s->n_reverse, REVERSE_SIZE) ||
            !array_ok(s->size, s->reverse_index, s->reverse_buckets, 4) || !buckets_ok(s->reverse_buckets) ||
            !array_ok(s->size, s->addrs, s->n_addrs, ADDRESS_SIZE) ||
            !array_ok(s->size, s->namerefs, s->n_namerefs, NAMEREF_SIZE) ||
            !array_ok(s->size, s->segs[0], s->n_segs[0], SEGMENT_SIZE) ||
            !array_ok(s->size, s->segs[1], s->n_segs[1], SEGMENT_SIZE) ||
            !array_ok(s->size, s->lines, s->n_lines, LINE_SIZE) ||
            !array_ok(s->size, s->strings, s->strings_size, 1))
                return -EBADMSG;
        return 0;
}

int table_get_view(const uint8_t *p, size_t size, struct table_view *v) {
        uint32_t area = rd32(p + H_DELTA_AREA), off = 0, parent;
        uint64_t word = 0;
        int r;

        /* The daemon writes the word with one pwrite, which the kernel may copy byte by byte: the
         * second half is the first's complement, so a torn read shows (and lasts nanoseconds). */
        for (int i = 0; i < 1000; i++) {
                word = __atomic_load_n((const uint64_t *) (p + H_DELTA), __ATOMIC_ACQUIRE);
                off = (uint32_t) word;
                if ((uint32_t) (word >> 32) == ~off)
                        break;
                off = UINT32_MAX;
        }
        if (off == UINT32_MAX)
                return -EBADMSG;

        v->n = 0;
        while (off != 0) {
                /* Each delta lies over an older section, written before it (lower offset): no cycle. */
                if (v->n >= TABLE_MAX_DELTAS || off < area)
                        return -EBADMSG;
                r = get_section(p, size, off, SECTION_DELTA, &v->layer[v->n], &parent);
                if (r < 0)
                        return r;
                if (parent != 0 && parent >= off)
                        return -EBADMSG;
                v->n++;
                off = parent;
        }
        r = get_section(p, size, rd32(p + H_BASE), SECTION_BASE, &v->layer[v->n], &parent);
        if (r < 0)
                return r;
        if (v->layer[v->n].size > rd32(p + H_BASE_SIZE))
                return -EBADMSG;
        v->n++;
        return 0;
}

/* --- machines --- */

struct machine {
        const char *name;
        size_t name_len;
        uint8_t flags;
        uint32_t addr_first, addr_count, line_first, uid_lines, gid_lines;
};

static int get_machine(const struct table_section *s, uint32_t i, struct machine *m) {
        const uint8_t *r;
        uint32_t name_off;

        if (i >= s->n_machines)
                return -EBADMSG;
        r = s->p + s->machines + (size_t) i * MACHINE_SIZE;
        name_off = rd32(r);
        m->name_len = (size_t) r[4] | (size_t) r[5] << 8;
        m->flags = r[6];
        m->addr_first = rd32(r + 12);
        m->addr_count = rd32(r + 16);
        m->line_first = rd32(r + 20);
        m->uid_lines = (uint32_t) r[24] | (uint32_t) r[25] << 8;
        m->gid_lines = (uint32_t) r[26] | (uint32_t) r[27] << 8;
        if (m->name_len == 0 || m->name_len > TABLE_NAME_MAX || (uint64_t) name_off + m->name_len > s->strings_size)
                return -EBADMSG;
        if ((uint64_t) m->addr_first + m->addr_count > s->n_addrs)
                return -EBADMSG;
        if ((uint64_t) m->line_first + m->uid_lines + m->gid_lines > s->n_lines)
                return -EBADMSG;
        m->name = (const char *) s->p + s->strings + name_off;
        return 0;
}

static bool same_name_ignoring_case(const char *a, const char *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (lower((uint8_t) a[i]) != lower((uint8_t) b[i]))
                        return false;
        return true;
}

/* The section's entry for a name ignoring case: 1 (in *m), 0 none, or -EBADMSG. */
static int section_find_machine(const struct table_section *s, const char *name, size_t len, uint32_t hash,
                                struct machine *m) {
        uint32_t mask = s->name_buckets - 1;

        for (uint32_t probe = 0; probe < s->name_buckets; probe++) {
                uint32_t b = (hash + probe) & mask, v = rd32(s->p + s->name_index + (size_t) b * 4);
                int r;

                if (v == 0)
                        return 0;
                r = get_machine(s, v - 1, m);
                if (r < 0)
                        return r;
                if (rd32(s->p + s->machines + (size_t) (v - 1) * MACHINE_SIZE + 8) == hash && m->name_len == len &&
                    same_name_ignoring_case(m->name, name, len))
                        return 1;
        }
        return 0;
}

/* The first section from the top with an entry for the name: TABLE_NOTFOUND if none, or if that
 * entry says the name is no machine's (any more). */
static int find_machine(const struct table_view *v, const char *name, size_t len, struct machine *m,
                        const struct table_section **sec) {
        uint32_t hash = name_hash(name, len);

        for (unsigned i = 0; i < v->n; i++) {
                int r = section_find_machine(&v->layer[i], name, len, hash, m);
                if (r < 0)
                        return r;
                if (r > 0) {
                        if (!(m->flags & F_PRESENT))
                                return TABLE_NOTFOUND;
                        *sec = &v->layer[i];
                        return 0;
                }
        }
        return TABLE_NOTFOUND;
}

int table_find_host(const struct table_view *v, const char *name, struct table_host *out) {
        const struct table_section *s;
        struct machine m;
        size_t len = strnlen(name, TABLE_NAME_MAX + 1);
        int r;

        if (len == 0 || len > TABLE_NAME_MAX)
                return TABLE_NOTFOUND;
        r = find_machine(v, name, len, &m, &s);
        if (r != 0)
                return r;
        out->name = m.name;
        out->name_len = m.name_len;
        out->addrs = s->p + s->addrs + (size_t) m.addr_first * ADDRESS_SIZE;
        out->n_addrs = m.addr_count;
        return 0;
}

void table_host_address(const struct table_host *h, uint32_t i, int *family, uint32_t *ifindex, const uint8_t **addr) {
        const uint8_t *r = h->addrs + (size_t) i * ADDRESS_SIZE;

        *family = r[0];
        *ifindex = rd32(r + 4);
        *addr = r + 8;
}

/* --- addresses --- */

int table_find_address(const struct table_view *v, int family, const uint8_t *addr, struct table_names *out) {
        size_t alen = family_size(family);
        uint32_t hash;

        if (alen == 0)
                return TABLE_NOTFOUND;
        hash = address_hash(family, addr, alen);
        for (unsigned i = 0; i < v->n; i++) {
                const struct table_section *s = &v->layer[i];
                uint32_t mask = s->reverse_buckets - 1;

                for (uint32_t probe = 0; probe < s->reverse_buckets; probe++) {
                        uint32_t b = (hash + probe) & mask, e = rd32(s->p + s->reverse_index + (size_t) b * 4);
                        const uint8_t *r;

                        if (e == 0)
                                break;
                        if (e - 1 >= s->n_reverse)
                                return -EBADMSG;
                        r = s->p + s->reverse + (size_t) (e - 1) * REVERSE_SIZE;
                        if (r[0] != family || memcmp(r + 4, addr, alen) != 0)
                                continue;
                        out->sec = s;
                        out->first = rd32(r + 20);
                        out->count = rd32(r + 24);
                        if ((uint64_t) out->first + out->count > s->n_namerefs)
                                return -EBADMSG;
                        return out->count > 0 ? 0 : TABLE_NOTFOUND;
                }
        }
        return TABLE_NOTFOUND;
}

int table_name_at(const struct table_names *n, uint32_t i, const char **name, size_t *len) {
        const struct table_section *s = n->sec;
        const uint8_t *r;
        uint32_t off;

        if (i >= n->count)
                return -EBADMSG;
        r = s->p + s->namerefs + (size_t) (n->first + i) * NAMEREF_SIZE;
        off = rd32(r);
        *len = rd32(r + 4);
        if (*len == 0 || *len > TABLE_NAME_MAX || (uint64_t) off + *len > s->strings_size)
                return -EBADMSG;
        *name = (const char *) s->p + s->strings + off;
        return 0;
}

/* --- user and group IDs --- */

int table_find_id(const struct table_view *v, int kind, uint32_t id, struct table_id *out) {
        if (kind != 0 && kind != 1)
                return -EINVAL;
        for (unsigned i = 0; i < v->n; i++) {
                const struct table_section *s = &v->layer[i];
                const uint8_t *segs = s->p + s->segs[kind], *g = NULL;
                uint32_t lo = 0, hi = s->n_segs[kind], start, count, base;
                struct machine m, other;

                /* The last segment that starts at or before id (segments are sorted and disjoint). */
                while (lo < hi) {
                        uint32_t mid = lo + (hi - lo) / 2;
                        if (rd32(segs + (size_t) mid * SEGMENT_SIZE) <= id) {
                                g = segs + (size_t) mid * SEGMENT_SIZE;
                                lo = mid + 1;
                        } else
                                hi = mid;
                }
                if (!g)
                        continue;
                start = rd32(g);
                count = rd32(g + 4);
                base = rd32(g + 8);
                if (id - start >= count)
                        continue;
                if (get_machine(s, rd32(g + 12), &m) < 0 || (m.flags & (F_PRESENT | F_CONTAINER)) != (F_PRESENT | F_CONTAINER))
                        return -EBADMSG;
                if ((uint64_t) base + (id - start) > UINT32_MAX)
                        return -EBADMSG;
                /* A newer section that has an entry for this machine says what it owns now. */
                for (unsigned j = 0; j < i; j++) {
                        int r = section_find_machine(&v->layer[j], m.name, m.name_len, name_hash(m.name, m.name_len), &other);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                return TABLE_NOTFOUND;
                }
                out->machine = m.name;
                out->machine_len = m.name_len;
                out->inner = base + (id - start);
                return 0;
        }
        return TABLE_NOTFOUND;
}

int table_map_inner(const struct table_view *v, int kind, const char *machine, size_t machine_len, uint32_t inner,
                    uint32_t *id) {
        const struct table_section *s;
        struct machine m;
        uint32_t first, n;
        int r;

        if ((kind != 0 && kind != 1) || machine_len == 0 || machine_len > TABLE_NAME_MAX)
                return kind != 0 && kind != 1 ? -EINVAL : TABLE_NOTFOUND;
        r = find_machine(v, machine, machine_len, &m, &s);
        if (r != 0)
                return r;
        /* The exact name (machines are found by name case-sensitively here, as userdb does), and only
         * containers (running, with a user namespace or not) have records. */
        if (memcmp(m.name, machine, machine_len) != 0 || !(m.flags & F_CONTAINER))
                return TABLE_NOTFOUND;
        first = m.line_first + (kind ? m.uid_lines : 0);
        n = kind ? m.gid_lines : m.uid_lines;
        for (uint32_t i = 0; i < n; i++) {
                const uint8_t *l = s->p + s->lines + (size_t) (first + i) * LINE_SIZE;
                uint32_t base = rd32(l), shift = rd32(l + 4), range = rd32(l + 8);
                uint64_t host;

                if (inner < base || inner - base >= range)
                        continue;
                host = (uint64_t) shift + (inner - base);
                if (host > UINT32_MAX)
                        return TABLE_NOTFOUND;
                *id = (uint32_t) host;
                return 0;
        }
        return TABLE_NOTFOUND;
}

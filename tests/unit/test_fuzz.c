/*
 * test_fuzz.c - segments written by a buggy or hostile process.
 *
 * A segment is shared memory that every attached process may write, so
 * nothing the library reads from it may be trusted further than it is
 * checked. Two fuzzers, each with deterministic xorshift rounds:
 *
 *  header  a valid segment file with its header fields or bytes mutated,
 *          its geometry rewritten consistently, or the file truncated or
 *          extended; dr_open() must accept it or refuse it with a
 *          documented error, and a refused file must be left unchanged.
 *  body    a live segment (names of this test process, of a process that
 *          died, and retired ones; local and global; the test process is
 *          the bridge and has published a view) with state words, bucket
 *          heads, links, lengths, value versions, reader and process slots,
 *          the bridge role, the view's copies and index, or raw bytes
 *          overwritten, before another process opens it or after; that
 *          process then looks every name up, walks, counts, checks,
 *          registers, unregisters, sends, asks for owners and hosts, sends
 *          to global names here and through the bridge, reaps and closes.
 *
 * Every round runs the library in a forked child under alarm(), so a crash,
 * a sanitizer report or a hang is seen, and reported with the round's seed,
 * its mutations and the step the child was in. Round n + 1's seed is
 * derived from round n's, so one round replays with
 *   DISTREG_FUZZ_SEED=<seed> DISTREG_FUZZ_ROUNDS=1 test_fuzz --filter 'fuzz/body'
 * and DISTREG_FUZZ_ROUNDS=<n> with another seed fuzzes longer;
 * DISTREG_FUZZ_KEEPGOING=1 reports every failing round instead of stopping
 * at the first, DISTREG_FUZZ_VERBOSE=1 prints every round. The default
 * rounds take 5-20 s: each forks a child, and on these nested VMs a fork
 * costs milliseconds in TLB shootdowns.
 *
 * The layout comes from lib/dri.h, for offsets only: every operation goes
 * through the public API.
 */
#include <limits.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>

#include "unit.h"

#include <distreg_admin.h>

#include "dri.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* Each round forks a child, and on a nested VM a fork's TLB shootdowns
 * cost milliseconds: 1000 rounds took 16 s (22 s with ASan) while two other
 * jobs loaded the machine. The timeout only catches a hang. */
TestSuite(fuzz, .timeout = 4 * UNIT_TIMEOUT, .fini = unit_fini);

#define HEADER_ROUNDS 600
#define BODY_ROUNDS 1000
/* Seconds a child may take for one round; rounds take milliseconds. */
#define ROUND_ALARM 5

/* ---------------------------------------------------------------------- */
/* Randomness and configuration */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint32_t below(uint64_t *s, uint32_t n)
{
	return n ? (uint32_t)(rnd(s) % n) : 0;
}

/* The seed of the round after the one seeded s (splitmix64, never 0). */
static uint64_t seed_next(uint64_t s)
{
	uint64_t z = s + 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* ---------------------------------------------------------------------- */
/* What a child reports, in memory shared with the parent */

enum stage {
	S_START, S_MUTATE, S_OPEN, S_CHECK_FIRST, S_OWN, S_WHEREIS, S_FOREACH,
	S_STATS, S_CHECK, S_REGISTER, S_UPDATE, S_UNREGISTER, S_FORCE,
	S_READLOCK, S_MAILBOX, S_GLOBAL, S_REAP, S_CHECK_AGAIN, S_CLOSE, S_DONE, S_NSTAGES
};

static const char *const stage_names[S_NSTAGES] = {
	"start", "mutate (after open)", "dr_open", "dr_check right after open",
	"registering own names", "dr_whereis", "dr_foreach", "dr_stats",
	"dr_check", "dr_register", "dr_register (update)", "dr_unregister",
	"dr_unregister_force", "dr_read_lock section", "mailboxes", "global names", "dr_reap",
	"dr_check after writes", "dr_close", "done",
};

#define LOG_SIZE (48 * 1024)

struct child_res {
	volatile int stage;
	volatile int detail;          /* which name or call within the stage */
	int open_rc;
	int check_rc;
	int must_detect;              /* set by the parent */
	int bad_rc, bad_stage, bad_detail; /* first unexpected return, if any */
	char bad_what[96];
	char msg[256];                /* dr_check's message */
	size_t log_len;
	char log[LOG_SIZE];           /* the mutations, as applied */
};

static struct child_res *res_map(void)
{
	void *p = mmap(NULL, sizeof(struct child_res), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

__attribute__((format(printf, 2, 3)))
static void logf_(struct child_res *res, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (res->log_len >= LOG_SIZE - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(res->log + res->log_len, LOG_SIZE - res->log_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		res->log_len += (size_t)n;
	if (res->log_len > LOG_SIZE - 1)
		res->log_len = LOG_SIZE - 1;
}

/* ---------------------------------------------------------------------- */
/* Names */

#define N_LIVE 120  /* registered by the test process, alive throughout */
#define N_DEAD 120  /* registered by a process that then died */
#define N_GONE 24   /* registered and unregistered by that process */
#define N_OWN 8     /* registered by a round's child before it mutates */
#define N_NEW 4     /* registered by a round's child during its operations */
#define N_ABSENT 6  /* never registered */

enum group { G_LIVE, G_DEAD, G_GONE, G_OWN, G_NEW, G_ABSENT, G_N };
static const int group_n[G_N] = { N_LIVE, N_DEAD, N_GONE, N_OWN, N_NEW, N_ABSENT };
static const char *const group_fmt[G_N] = {
	"live.%03d", "dead.%03d", "gone.%02d", "own.%d", "new.%d", "absent.%d",
};

static void name_of(char *buf, size_t len, int group, int i)
{
	snprintf(buf, len, group_fmt[group], i);
}

/* Names a mutation may target: live, dead, gone and own, in that order. */
#define N_TARGETS (N_LIVE + N_DEAD + N_GONE + N_OWN)

static void target_name(char *buf, size_t len, int t)
{
	for (int g = 0; g < G_N; g++) {
		if (t < group_n[g]) {
			name_of(buf, len, g, t);
			return;
		}
		t -= group_n[g];
	}
	snprintf(buf, len, "?");
}

/* ---------------------------------------------------------------------- */
/* The segment layout, from a pristine header */

struct geo {
	uint32_t cap, nbuckets, max_procs, max_threads;
	uint64_t size, off_procs, off_readers, off_states, off_buckets, off_entries, off_ext;
	uint64_t off_mboxes, off_lanes, lane_stride, off_cluster;
	uint32_t max_mailboxes, max_lanes, lane_bytes;
	uint64_t epoch, created_ns, seed;
	/* owner ids in the pristine body */
	uint64_t live_owner, dead_owner, child_owner;
	uint32_t live_reader; /* the test process's reader slot */
};

static void geo_from(struct geo *g, const struct dri_header *h)
{
	memset(g, 0, sizeof(*g));
	g->cap = h->capacity;
	g->nbuckets = h->nbuckets;
	g->max_procs = h->max_procs;
	g->max_threads = h->max_threads;
	g->size = h->size;
	g->off_procs = h->off_procs;
	g->off_readers = h->off_readers;
	g->off_states = h->off_states;
	g->off_buckets = h->off_buckets;
	g->off_entries = h->off_entries;
	g->off_ext = h->off_ext;
	g->off_mboxes = h->off_mboxes;
	g->off_lanes = h->off_lanes;
	g->max_mailboxes = h->max_mailboxes;
	g->max_lanes = h->max_lanes;
	g->lane_bytes = h->lane_bytes;
	g->lane_stride = sizeof(struct dri_lane) + h->lane_bytes;
	g->off_cluster = h->off_cluster;
	g->seed = h->seed;
	g->epoch = h->epoch;
	g->created_ns = h->created_ns;
}

static uint64_t *st_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (uint64_t *)(b + g->off_states) + i;
}
static uint32_t *bk_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (uint32_t *)(b + g->off_buckets) + i;
}
static struct dri_entry *en_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (struct dri_entry *)(b + g->off_entries) + i;
}
static struct dri_ext *ex_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (struct dri_ext *)(b + g->off_ext) + i;
}
/* Whether entry i holds name (len bytes, 1 to DR_NAME_MAX). */
static bool en_name_is(uint8_t *b, const struct geo *g, uint32_t i, const char *name, size_t len)
{
	const struct dri_entry *e = en_at(b, g, i);
	size_t n = len < DRI_NAME_INLINE ? len : DRI_NAME_INLINE;

	return e->name_len == len && memcmp(e->name, name, n) == 0 &&
	       (len <= n || memcmp(ex_at(b, g, i)->name, name + n, len - n) == 0);
}
/* The bucket entry i's name hashes to; 0 for a corrupt name length. */
static uint32_t en_bucket(uint8_t *b, const struct geo *g, uint32_t i)
{
	const struct dri_entry *e = en_at(b, g, i);
	uint8_t name[DR_NAME_MAX];
	size_t len = DRI_LENB_LEN(e->name_len);
	uint64_t seed = DRI_LENB_GLOBAL(e->name_len) ? g->seed ^ DRI_GLOBAL_SALT : g->seed;

	if (!dri_lenb_ok(e->name_len))
		return 0;
	memcpy(name, e->name, len < DRI_NAME_INLINE ? len : DRI_NAME_INLINE);
	if (len > DRI_NAME_INLINE)
		memcpy(name + DRI_NAME_INLINE, ex_at(b, g, i)->name, len - DRI_NAME_INLINE);
	return (uint32_t)(XXH3_64bits_withSeed(name, len, seed) & (g->nbuckets - 1));
}
static struct dri_mbox *mb_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (struct dri_mbox *)(b + g->off_mboxes) + i;
}
static struct dri_lane *ln_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (struct dri_lane *)(b + g->off_lanes + (uint64_t)i * g->lane_stride);
}
static struct dri_proc *pr_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (struct dri_proc *)(b + g->off_procs) + i;
}
static struct dri_reader *rd_at(uint8_t *b, const struct geo *g, uint32_t i)
{
	return (struct dri_reader *)(b + g->off_readers) + i;
}
static struct dri_cluster *cl_at(uint8_t *b, const struct geo *g)
{
	return (struct dri_cluster *)(b + g->off_cluster);
}

/* The entry holding name (an allocated one first), or -1. */
static int64_t entry_of(uint8_t *b, const struct geo *g, const char *name)
{
	size_t len = strlen(name);
	int64_t any = -1;

	for (uint32_t i = 0; i < g->cap; i++) {
		if (!en_name_is(b, g, i, name, len))
			continue;
		if (DRI_ST_TAG(*st_at(b, g, i)) == DRI_TAG_ALLOC)
			return i;
		if (any < 0)
			any = i;
	}
	return any;
}

/* ---------------------------------------------------------------------- */
/* Body mutations */

enum mkind {
	M_STATE, M_BUCKET, M_NEXT, M_NAMELEN, M_VLEN, M_VSEL, M_TAG, M_OWNER,
	M_PID, M_REGID, M_NAMEBYTE, M_RD_EPOCH, M_RD_OWNER, M_PROC_WORD,
	M_PROC_PID, M_HDR_EPOCH, M_HDR_REGID, M_HDR_HWM, M_HDR_GEOM, M_RAW64,
	M_RAW8, M_MBOX, M_LANE, M_RING, M_VIEW, M_VINDEX, M_ROLE, M_LENB, M_NKINDS
};

/* Relative values, resolved when the mutation is applied. */
enum rel {
	R_ABS,       /* val as it is */
	R_SELF,      /* link to the target entry itself */
	R_SELF_MARK, /* the same, marked */
	R_HEAD,      /* link to the first entry of the target's bucket */
	R_OTHER,     /* link to the entry of name `val` */
	R_XOR,       /* the field's current value ^ val */
	R_ADD,       /* the field's current value + val */
};

struct mut {
	uint8_t kind, rel, sub;
	int32_t name;   /* target name (index for target_name), -1 for idx */
	uint32_t idx;   /* entry, bucket or slot; or byte offset */
	uint64_t val;
};

#define MAX_MUTS 40

static uint64_t pick_owner(uint64_t *s, const struct geo *g)
{
	switch (below(s, 8)) {
	case 0: return g->live_owner;
	case 1: return g->dead_owner;
	case 2: return g->child_owner;
	case 3: return DRI_OWNER(g->max_procs + below(s, 100), 1);
	case 4: return DRI_OWNER(below(s, g->max_procs), 0);
	case 5: return DRI_OWNER(0xffff, 0xffffffffu);
	case 6: return 0;
	default: return rnd(s) & DRI_ST_LOW_MASK;
	}
}

static uint64_t pick_link(uint64_t *s, const struct geo *g)
{
	switch (below(s, 7)) {
	case 0: return 0;
	case 1: return 1 + below(s, g->cap);
	case 2: return g->cap;
	case 3: return g->cap + 1 + below(s, 4);
	case 4: return DRI_MARK - 1;
	case 5: return 0xffffffffu;
	default: return (uint32_t)rnd(s);
	}
}

static void gen_mut(uint64_t *s, const struct geo *g, struct mut *m, bool after_open)
{
	memset(m, 0, sizeof(*m));
	/* Entries, buckets and links most often. */
	static const uint8_t weights[M_NKINDS] = {
		[M_STATE] = 8, [M_BUCKET] = 6, [M_NEXT] = 10, [M_NAMELEN] = 4,
		[M_VLEN] = 4, [M_VSEL] = 4, [M_TAG] = 3, [M_OWNER] = 4,
		[M_PID] = 2, [M_REGID] = 2, [M_NAMEBYTE] = 2, [M_RD_EPOCH] = 4,
		[M_RD_OWNER] = 4, [M_PROC_WORD] = 4, [M_PROC_PID] = 2,
		[M_HDR_EPOCH] = 2, [M_HDR_REGID] = 2, [M_HDR_HWM] = 2,
		[M_HDR_GEOM] = 3, [M_RAW64] = 4, [M_RAW8] = 3, [M_MBOX] = 4, [M_LANE] = 5,
		[M_RING] = 6, [M_VIEW] = 8, [M_VINDEX] = 2, [M_ROLE] = 4, [M_LENB] = 3,
	};
	uint32_t total = 0, r, w[M_NKINDS];

	/* After open, the header's geometry is no longer checked by anyone:
	 * try it more often; and it can't be before open (dr_open refuses
	 * it; the header fuzz covers that). */
	for (int k = 0; k < M_NKINDS; k++) {
		w[k] = k == M_HDR_GEOM ? (after_open ? 10 : 0) : weights[k];
		total += w[k];
	}
	r = below(s, total);
	m->kind = 0;
	while (r >= w[m->kind])
		r -= w[m->kind++];

	/* A name most of the time; after open, often one of the child's
	 * own, whose entries it will update, unregister and reap at close. */
	if (below(s, 10) >= 7)
		m->name = -1;
	else if (after_open && below(s, 5) < 2)
		m->name = (int32_t)(N_TARGETS - N_OWN + below(s, N_OWN));
	else
		m->name = (int32_t)below(s, N_TARGETS - N_OWN);
	m->idx = below(s, g->cap);
	switch (m->kind) {
	case M_STATE:
		switch (below(s, 9)) {
		case 0: m->val = DRI_ST_FREE(rnd(s)); break;
		case 1: case 2: m->val = DRI_ST_ALLOC(rnd(s), pick_owner(s, g)); break;
		case 3: m->val = DRI_ST_RETIRED(rnd(s), below(s, 4)); break;
		case 4: m->val = DRI_ST_RETIRED(rnd(s), g->epoch + below(s, 3)); break;
		case 5: m->val = DRI_ST_RETIRED(rnd(s), rnd(s)); break;
		case 6: m->val = DRI_ST_FREEING(rnd(s), pick_owner(s, g)); break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_BUCKET:
		m->idx = below(s, g->nbuckets);
		m->sub = below(s, 2); /* 1: the bucket of the target name */
		switch (below(s, 4)) {
		case 0: m->rel = R_OTHER; m->val = below(s, N_TARGETS); break;
		case 1: m->val = DRI_MARK | pick_link(s, g); break;
		default: m->val = pick_link(s, g); break;
		}
		break;
	case M_NEXT:
		switch (below(s, 10)) {
		case 0: m->rel = R_SELF; break;
		case 1: m->rel = R_SELF_MARK; break;
		case 2: m->rel = R_HEAD; break;
		case 3: case 4: m->rel = R_OTHER; m->val = below(s, N_TARGETS); break;
		case 5: m->rel = R_XOR; m->val = DRI_MARK; break;
		case 6: m->val = DRI_MARK | pick_link(s, g); break;
		default: m->val = pick_link(s, g); break;
		}
		break;
	case M_NAMELEN:
		switch (below(s, 5)) {
		case 0: m->val = 0; break;
		case 1: m->val = DR_NAME_MAX + 1; break;
		case 2: m->val = 0xffff; break;
		case 3: m->rel = R_ADD; m->val = below(s, 2) ? 1 : 0xffff; break;
		default: m->val = (uint16_t)rnd(s); break;
		}
		break;
	case M_VLEN:
		m->sub = below(s, 4); /* 0 inline, 1, 2: the extension's; 3: all */
		switch (below(s, 5)) {
		case 0: m->val = DR_VALUE_MAX + 1; break;
		case 1: m->val = 0xff; break;
		case 2: m->val = DR_VALUE_MAX; break;
		case 3: m->val = DRI_VALUE_INLINE + 1; break;
		default: m->val = (uint8_t)rnd(s); break;
		}
		break;
	case M_VSEL:
		switch (below(s, 6)) {
		case 0: m->rel = R_XOR; m->val = DRI_VSEL_BUSY; break;
		case 1: m->val = 0xffffffffu; break;
		case 2: m->rel = R_ADD; m->val = 8; break; /* the next version */
		case 3: m->rel = R_XOR; m->val = 2 << below(s, 2); break; /* another slot */
		case 4: m->rel = R_XOR; m->val = 6; break; /* slot 3, which is none */
		default: m->val = (uint32_t)rnd(s); break;
		}
		break;
	case M_TAG:
		switch (below(s, 3)) {
		case 0: m->rel = R_XOR; m->val = 1u << below(s, 16); break;
		case 1: m->rel = R_ADD; m->val = 1u << 12; break; /* another link fp */
		default: m->val = (uint16_t)rnd(s); break;
		}
		break;
	case M_OWNER:
		m->val = pick_owner(s, g);
		break;
	case M_PID:
		switch (below(s, 4)) {
		case 0: m->val = 0; break;
		case 1: m->val = (uint32_t)-1; break;
		case 2: m->val = (uint32_t)INT_MIN; break;
		default: m->val = (uint32_t)rnd(s); break;
		}
		break;
	case M_REGID:
		switch (below(s, 3)) {
		case 0: m->val = 0; break;
		case 1: m->val = UINT64_MAX; break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_NAMEBYTE:
		m->sub = below(s, DR_NAME_MAX);
		m->val = 1 + below(s, 255);
		m->rel = R_XOR;
		break;
	case M_RD_EPOCH:
	case M_RD_OWNER:
		m->name = -1;
		m->idx = below(s, 2) ? below(s, 4) : below(s, g->max_threads);
		if (m->kind == M_RD_OWNER) {
			m->val = pick_owner(s, g);
			break;
		}
		switch (below(s, 6)) {
		case 0: m->val = 0; break;
		case 1: m->val = 1; break;
		case 2: m->val = UINT64_MAX; break;
		case 3: m->val = 1ull << 62; break;
		case 4: m->val = g->epoch; break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_PROC_WORD:
	case M_PROC_PID:
		m->name = -1;
		m->idx = below(s, 2) ? below(s, 3) : below(s, g->max_procs);
		if (m->kind == M_PROC_PID) {
			m->val = below(s, 2) ? (uint32_t)rnd(s) : below(s, 2) ? 0 : (uint32_t)-1;
			break;
		}
		switch (below(s, 6)) {
		case 0: m->val = 0; break;
		case 1: m->val = DRI_PROC_LIVE; break; /* live, generation 0 */
		case 2: m->rel = R_XOR; m->val = DRI_PROC_LIVE; break;
		case 3: m->rel = R_ADD; m->val = 2; break; /* next generation */
		case 4: m->val = UINT64_MAX; break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_HDR_EPOCH:
	case M_HDR_REGID:
		m->name = -1;
		switch (below(s, 5)) {
		case 0: m->val = 0; break;
		case 1: m->val = UINT64_MAX - below(s, 4); break;
		case 2: m->val = (1ull << 62) - 1; break;
		case 3: m->val = 1; break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_HDR_HWM:
		m->name = -1;
		switch (below(s, 4)) {
		case 0: m->val = 0; break;
		case 1: m->val = UINT32_MAX; break;
		case 2: m->val = g->max_threads + 1; break;
		default: m->val = (uint32_t)rnd(s); break;
		}
		break;
	case M_HDR_GEOM:
		m->name = -1;
		m->sub = below(s, 11);
		switch (below(s, 5)) {
		case 0: m->val = 0; break;
		case 1: m->val = UINT32_MAX; break;
		case 2: m->rel = R_ADD; m->val = 1 + below(s, 4096); break;
		case 3: m->val = 1u << below(s, 31); break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_RAW64:
		m->name = -1;
		m->idx = (uint32_t)(DRI_HEADER_SIZE + 8 * below(s, (uint32_t)((g->size - DRI_HEADER_SIZE) / 8)));
		m->val = below(s, 3) == 0 ? 0 : below(s, 2) ? UINT64_MAX : rnd(s);
		break;
	case M_RAW8:
		m->name = -1;
		m->idx = (uint32_t)(DRI_HEADER_SIZE + below(s, (uint32_t)(g->size - DRI_HEADER_SIZE)));
		m->val = rnd(s) & 0xff;
		break;
	case M_MBOX:
		m->name = -1;
		m->idx = below(s, g->max_mailboxes);
		m->sub = below(s, 4); /* owner, gen, waiting, a lane slot */
		switch (below(s, 5)) {
		case 0: m->val = 0; break;
		case 1: m->val = below(s, 2) ? g->live_owner : g->dead_owner; break;
		case 2: m->val = 1 + below(s, g->max_lanes + 2); break;
		case 3: m->rel = R_XOR; m->val = 1ull << below(s, 32); break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_LANE:
		m->name = -1;
		m->idx = below(s, g->max_lanes);
		m->sub = below(s, 5); /* owner, target, slot, head, tail */
		switch (below(s, 6)) {
		case 0: m->val = 0; break;
		case 1: m->val = below(s, 2) ? g->live_owner : g->child_owner; break;
		case 2: m->rel = R_ADD; m->val = below(s, 2) ? 8 : g->lane_bytes; break;
		case 3: m->rel = R_ADD; m->val = (uint64_t)-(int64_t)(1 + below(s, 64)); break;
		case 4: m->rel = R_XOR; m->val = 1ull << below(s, 40); break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_RING:
		m->name = -1;
		m->idx = below(s, g->max_lanes);
		m->sub = below(s, 6); /* at the head: len, kind, name_len, data_len; or anywhere */
		m->val = below(s, 3) == 0 ? 0 : below(s, 2) ? rnd(s) : below(s, 1u << 20);
		break;
	case M_VIEW:
		m->name = -1;
		/* idx: the copy (bit 0, or the one the index names: bit 1)
		 * and the host (the rest, mostly among the first few). */
		m->idx = below(s, 4) | (below(s, 4) ? below(s, 4) : below(s, DR_HOSTS_MAX)) << 2;
		m->sub = below(s, 11); /* seq, epoch, nhosts, state, self, id_len,
					* rpc_len, seed, an id byte, an rpc byte,
					* incarnation */
		switch (below(s, 6)) {
		case 0: m->val = 0; break;
		case 1: m->rel = R_ADD; m->val = 1; break;
		case 2: m->rel = R_XOR; m->val = 1ull << below(s, 64); break;
		case 3: m->val = below(s, 300); break;
		case 4: m->val = UINT64_MAX; break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_VINDEX:
		m->name = -1;
		switch (below(s, 4)) {
		case 0: m->rel = R_XOR; m->val = 1; break;
		case 1: m->val = 2 + below(s, 10); break;
		case 2: m->val = UINT32_MAX; break;
		default: m->val = (uint32_t)rnd(s); break;
		}
		break;
	case M_ROLE:
		m->name = -1;
		m->sub = below(s, 5); /* owner, ever, pid, mbox, regid */
		switch (below(s, 4)) {
		case 0: m->val = 0; break;
		case 1: m->val = pick_owner(s, g); break;
		case 2: m->rel = R_XOR; m->val = 1ull << below(s, 32); break;
		default: m->val = rnd(s); break;
		}
		break;
	case M_LENB:
		/* A name moved to the other namespace (its hash no longer
		 * matches), or a length 0 in either. */
		m->rel = below(s, 3) ? R_XOR : R_ABS;
		m->val = m->rel == R_XOR ? DRI_NAME_GLOBAL : below(s, 2) ? DRI_NAME_GLOBAL : 0;
		break;
	}
}

static uint64_t resolve(uint64_t cur, const struct mut *m)
{
	if (m->rel == R_XOR)
		return cur ^ m->val;
	if (m->rel == R_ADD)
		return cur + m->val;
	return m->val;
}

/* The first link of the bucket entry idx hashes to (0 if idx is out of range). */
static uint32_t head_of(uint8_t *b, const struct geo *g, uint32_t idx)
{
	return idx < g->cap ? *bk_at(b, g, en_bucket(b, g, idx)) : 0;
}

static uint32_t link_of_name(uint8_t *b, const struct geo *g, int t)
{
	char name[64];
	int64_t i;

	target_name(name, sizeof(name), t);
	i = entry_of(b, g, name);
	return i < 0 ? 0 : (uint32_t)i + 1;
}

#define LOGW(fmt, ...) logf_(res, "  " fmt "\n", __VA_ARGS__)

/* Apply m to the segment at b, logging what was written where. */
static void apply_mut(uint8_t *b, const struct geo *g, const struct mut *m,
		      struct child_res *res)
{
	char name[64] = "";
	uint32_t idx = m->idx;
	struct dri_entry *e;

	if (m->name >= 0) {
		char want[48];
		int64_t at;

		target_name(want, sizeof(want), m->name);
		at = entry_of(b, g, want);
		if (at >= 0) {
			idx = (uint32_t)at;
			snprintf(name, sizeof(name), "%s", want);
		} else {
			snprintf(name, sizeof(name), "(%s absent)", want);
		}
	}
	if (idx >= g->cap)
		idx = 0;
	e = en_at(b, g, idx);

	switch (m->kind) {
	case M_STATE:
		*st_at(b, g, idx) = m->val;
		LOGW("state[%u %s] = %#llx", idx, name, (unsigned long long)m->val);
		break;
	case M_BUCKET: {
		uint32_t bk = m->sub && m->name >= 0 ? en_bucket(b, g, idx) : m->idx;
		uint32_t v = m->rel == R_OTHER ? link_of_name(b, g, (int)m->val) : (uint32_t)m->val;

		*bk_at(b, g, bk) = v;
		LOGW("bucket[%u] = %#x", bk, v);
		break;
	}
	case M_NEXT: {
		uint32_t v;

		switch (m->rel) {
		case R_SELF: v = idx + 1; break;
		case R_SELF_MARK: v = (idx + 1) | DRI_MARK; break;
		case R_HEAD: v = head_of(b, g, idx); break;
		case R_OTHER: v = link_of_name(b, g, (int)m->val); break;
		default: v = (uint32_t)resolve(e->next, m); break;
		}
		e->next = v;
		LOGW("entry[%u %s].next = %#x", idx, name, v);
		break;
	}
	case M_NAMELEN:
		e->name_len = (uint8_t)resolve(e->name_len, m);
		LOGW("entry[%u %s].name_len = %u", idx, name, e->name_len);
		break;
	case M_VLEN:
		if (m->sub == 0 || m->sub == 3) {
			e->vlen = (uint8_t)m->val;
			LOGW("entry[%u %s].vlen = %u", idx, name, e->vlen);
		}
		for (int k = 0; k < 2; k++) {
			if (m->sub == 3 || m->sub == k + 1) {
				ex_at(b, g, idx)->vlen[k] = (uint8_t)m->val;
				LOGW("ext[%u %s].vlen[%d] = %u", idx, name, k, (uint8_t)m->val);
			}
		}
		break;
	case M_VSEL:
		e->vsel = (uint32_t)resolve(e->vsel, m);
		LOGW("entry[%u %s].vsel = %#x", idx, name, e->vsel);
		break;
	case M_TAG:
		e->tag = (uint16_t)resolve(e->tag, m);
		LOGW("entry[%u %s].tag = %#x", idx, name, e->tag);
		break;
	case M_OWNER: {
		/* The owner in its state word, the rest of the word kept. */
		uint64_t *st = st_at(b, g, idx);

		*st = (*st & ~DRI_ST_LOW_MASK) | (m->val & DRI_ST_LOW_MASK);
		LOGW("state[%u %s] owner = %#llx", idx, name, (unsigned long long)m->val);
		break;
	}
	case M_PID:
		e->pid = (int32_t)(uint32_t)m->val;
		LOGW("entry[%u %s].pid = %d", idx, name, e->pid);
		break;
	case M_REGID:
		e->regid = m->val;
		LOGW("entry[%u %s].regid = %#llx", idx, name, (unsigned long long)m->val);
		break;
	case M_NAMEBYTE: {
		uint8_t *nb = m->sub < DRI_NAME_INLINE ? &e->name[m->sub] :
			      &ex_at(b, g, idx)->name[m->sub - DRI_NAME_INLINE];

		*nb = (uint8_t)resolve(*nb, m);
		LOGW("entry[%u %s] name byte %u = %#x", idx, name, m->sub, *nb);
		break;
	}
	case M_RD_EPOCH:
		rd_at(b, g, m->idx % g->max_threads)->epoch = m->val;
		LOGW("reader[%u].epoch = %#llx", m->idx % g->max_threads, (unsigned long long)m->val);
		break;
	case M_RD_OWNER:
		rd_at(b, g, m->idx % g->max_threads)->owner = m->val;
		LOGW("reader[%u].owner = %#llx", m->idx % g->max_threads, (unsigned long long)m->val);
		break;
	case M_PROC_WORD: {
		struct dri_proc *p = pr_at(b, g, m->idx % g->max_procs);

		p->word = resolve(p->word, m);
		LOGW("proc[%u].word = %#llx", m->idx % g->max_procs, (unsigned long long)p->word);
		break;
	}
	case M_PROC_PID:
		pr_at(b, g, m->idx % g->max_procs)->pid = (int32_t)(uint32_t)m->val;
		LOGW("proc[%u].pid = %d", m->idx % g->max_procs, (int32_t)(uint32_t)m->val);
		break;
	case M_HDR_EPOCH:
		((struct dri_header *)b)->epoch = m->val;
		LOGW("header.epoch = %#llx", (unsigned long long)m->val);
		break;
	case M_HDR_REGID:
		((struct dri_header *)b)->next_regid = m->val;
		LOGW("header.next_regid = %#llx", (unsigned long long)m->val);
		break;
	case M_HDR_HWM:
		((struct dri_header *)b)->readers_hwm = (uint32_t)m->val;
		LOGW("header.readers_hwm = %u", (uint32_t)m->val);
		break;
	case M_HDR_GEOM: {
		struct dri_header *h = (struct dri_header *)b;
		static const char *const f[] = {
			"capacity", "nbuckets", "max_procs", "max_threads", "off_procs",
			"off_readers", "off_states", "off_buckets", "off_entries",
			"size", "rcu_mode",
		};
		uint64_t v = 0;

		switch (m->sub) {
		case 0: v = h->capacity = (uint32_t)resolve(h->capacity, m); break;
		case 1: v = h->nbuckets = (uint32_t)resolve(h->nbuckets, m); break;
		case 2: v = h->max_procs = (uint32_t)resolve(h->max_procs, m); break;
		case 3: v = h->max_threads = (uint32_t)resolve(h->max_threads, m); break;
		case 4: v = h->off_procs = resolve(h->off_procs, m); break;
		case 5: v = h->off_readers = resolve(h->off_readers, m); break;
		case 6: v = h->off_states = resolve(h->off_states, m); break;
		case 7: v = h->off_buckets = resolve(h->off_buckets, m); break;
		case 8: v = h->off_entries = resolve(h->off_entries, m); break;
		case 9: v = h->size = resolve(h->size, m); break;
		default: v = h->rcu_mode = (uint32_t)resolve(h->rcu_mode, m); break;
		}
		LOGW("header.%s = %#llx (while attached)", f[m->sub], (unsigned long long)v);
		break;
	}
	case M_RAW64:
		memcpy(b + m->idx, &m->val, 8);
		LOGW("u64 at offset %u = %#llx", m->idx, (unsigned long long)m->val);
		break;
	case M_RAW8:
		b[m->idx] = (uint8_t)m->val;
		LOGW("byte at offset %u = %#x", m->idx, (unsigned)m->val);
		break;
	case M_MBOX: {
		struct dri_mbox *x = mb_at(b, g, m->idx % g->max_mailboxes);
		static const char *const f[] = { "owner", "gen", "waiting", "lane[]" };

		switch (m->sub) {
		case 0: x->owner = resolve(x->owner, m); break;
		case 1: x->gen = (uint32_t)resolve(x->gen, m); break;
		case 2: x->waiting = (uint32_t)resolve(x->waiting, m); break;
		default: x->lane[m->val % DRI_MBOX_LANES] = (uint32_t)resolve(m->val >> 8, m); break;
		}
		LOGW("mailbox[%u].%s = %#llx", m->idx % g->max_mailboxes, f[m->sub % 4],
		     (unsigned long long)m->val);
		break;
	}
	case M_LANE: {
		struct dri_lane *l = ln_at(b, g, m->idx % g->max_lanes);
		static const char *const f[] = { "owner", "target", "slot", "head", "tail" };

		switch (m->sub) {
		case 0: l->owner = resolve(l->owner, m); break;
		case 1: l->target = (uint32_t)resolve(l->target, m); break;
		case 2: l->slot = (uint32_t)resolve(l->slot, m); break;
		case 3: l->head = resolve(l->head, m); break;
		default: l->tail = resolve(l->tail, m); break;
		}
		LOGW("lane[%u].%s = %#llx", m->idx % g->max_lanes, f[m->sub % 5],
		     (unsigned long long)m->val);
		break;
	}
	case M_RING: {
		struct dri_lane *l = ln_at(b, g, m->idx % g->max_lanes);
		uint8_t *ring = (uint8_t *)(l + 1);
		uint32_t at = (uint32_t)(l->head & (g->lane_bytes - 1));
		struct dri_rec rec;

		if (m->sub == 5) {
			at = (uint32_t)(m->val % (g->lane_bytes - 8));
			memcpy(ring + at, &m->val, 8);
			LOGW("lane[%u] ring at %u = %#llx", m->idx % g->max_lanes, at,
			     (unsigned long long)m->val);
			break;
		}
		if (at + sizeof(rec) > g->lane_bytes)
			break; /* a header across the end: left alone */
		memcpy(&rec, ring + at, sizeof(rec));
		switch (m->sub) {
		case 0: rec.len = (uint32_t)m->val; break;
		case 1: rec.kind = (uint8_t)m->val; break;
		case 2: rec.name_len = (uint8_t)m->val; break;
		case 3: rec.data_len = (uint32_t)m->val; break;
		default: rec.reply_to = (uint32_t)m->val; break;
		}
		memcpy(ring + at, &rec, sizeof(rec));
		LOGW("lane[%u] record at the head: field %u = %#llx", m->idx % g->max_lanes, m->sub,
		     (unsigned long long)m->val);
		break;
	}
	case M_VIEW: {
		struct dri_cluster *c = cl_at(b, g);
		uint32_t k = m->idx & 2 ? c->view_index & 1 : m->idx & 1, h = m->idx >> 2;
		struct dri_view *v = &c->view[k];
		struct dri_vhost_hot *hot = &v->hot[h % DR_HOSTS_MAX];
		struct dri_vhost *x = &v->host[h % DR_HOSTS_MAX];
		static const char *const f[] = { "seq", "epoch", "nhosts", "state", "self", "id_len",
						 "rpc_len", "seed", "id byte", "rpc byte",
						 "incarnation" };
		uint64_t nv = 0;

		h %= DR_HOSTS_MAX;
		switch (m->sub) {
		case 0: nv = v->seq = resolve(v->seq, m); break;
		case 1: nv = v->epoch = resolve(v->epoch, m); break;
		case 2: nv = v->nhosts = (uint32_t)resolve(v->nhosts, m); break;
		case 3: nv = hot->state = (uint8_t)resolve(hot->state, m); break;
		case 4: nv = hot->self = (uint8_t)resolve(hot->self, m); break;
		case 5: nv = hot->id_len = (uint8_t)resolve(hot->id_len, m); break;
		case 6: nv = hot->rpc_len = (uint8_t)resolve(hot->rpc_len, m); break;
		case 7: nv = hot->seed = resolve(hot->seed, m); break;
		case 8: {
			uint8_t *p = (uint8_t *)&x->id[m->val % sizeof(x->id)];
			nv = *p = (uint8_t)(m->val >> 8);
			break;
		}
		case 9: {
			uint8_t *p = (uint8_t *)&x->rpc[m->val % sizeof(x->rpc)];
			nv = *p = (uint8_t)(m->val >> 8);
			break;
		}
		default: nv = x->incarnation = resolve(x->incarnation, m); break;
		}
		LOGW("view copy %u host %u: %s = %#llx", k, h, f[m->sub % 11], (unsigned long long)nv);
		break;
	}
	case M_VINDEX: {
		struct dri_cluster *c = cl_at(b, g);

		c->view_index = (uint32_t)resolve(c->view_index, m);
		LOGW("view index = %#x", c->view_index);
		break;
	}
	case M_ROLE: {
		struct dri_cluster *c = cl_at(b, g);
		static const char *const f[] = { "owner", "ever", "pid", "mbox", "regid" };
		uint64_t nv;

		switch (m->sub) {
		case 0: nv = c->owner = resolve(c->owner, m); break;
		case 1: nv = c->ever = (uint32_t)resolve(c->ever, m); break;
		case 2: nv = (uint32_t)(c->pid = (int32_t)resolve((uint32_t)c->pid, m)); break;
		case 3: nv = c->mbox = (uint32_t)resolve(c->mbox, m); break;
		default: nv = c->regid = resolve(c->regid, m); break;
		}
		LOGW("bridge role %s = %#llx", f[m->sub % 5], (unsigned long long)nv);
		break;
	}
	case M_LENB:
		e->name_len = (uint8_t)(m->rel == R_XOR ? e->name_len ^ m->val : m->val);
		LOGW("entry[%u %s].name_len = %#x", idx, name, e->name_len);
		break;
	}
}

/*
 * A corruption dr_check() must report, on a quiet segment opened with
 * DR_OPEN_NOREAP (which writes only a free process and reader slot): a
 * field of an entry that its walk reaches, a bucket head, a live slot.
 * Applied last, after the random ones, to the segment as they left it.
 */
static void apply_detectable(uint8_t *b, const struct geo *g, uint64_t *s,
			     struct child_res *res)
{
	struct { uint32_t idx, bucket, head; } reach[512];
	uint32_t nreach = 0, nseen = 0;
	struct dri_header *h = (struct dri_header *)b;

	/* The entries dr_check's walk visits: same bounds as lib/inspect.c. */
	for (uint32_t bk = 0; bk < g->nbuckets; bk++) {
		uint32_t head = *bk_at(b, g, bk), curr = head, depth = 0;

		while (curr & DRI_LINK_IDX_MASK) {
			uint32_t ci = curr & DRI_LINK_IDX_MASK;

			if (ci > g->cap || depth > g->cap)
				break;
			depth++;
			/* Reservoir sampling keeps a uniform pick. */
			if (nreach < 512) {
				reach[nreach].idx = ci - 1;
				reach[nreach].bucket = bk;
				reach[nreach++].head = head;
			} else {
				uint32_t j = below(s, nseen + 1);
				if (j < 512) {
					reach[j].idx = ci - 1;
					reach[j].bucket = bk;
					reach[j].head = head;
				}
			}
			nseen++;
			curr = en_at(b, g, ci - 1)->next & ~DRI_MARK;
		}
	}

	for (;;) {
		uint32_t kind = below(s, 22);
		struct dri_entry *e;
		uint32_t idx, i;

		if (kind < 11 && nreach == 0)
			continue;
		i = below(s, nreach);
		idx = nreach ? reach[i].idx : 0;
		e = en_at(b, g, idx);
		switch (kind) {
		case 0:
			e->next = g->cap + 1 + below(s, 1000) + (e->next & DRI_MARK);
			LOGW("[detect] entry[%u].next = %#x (past capacity)", idx, e->next);
			return;
		case 1:
			e->next = reach[i].head; /* back to its chain's first entry */
			LOGW("[detect] entry[%u].next = %#x (cycle to bucket %u's head)", idx,
			     e->next, reach[i].bucket);
			return;
		case 2:
			e->name_len = below(s, 2) ? 0 : (uint8_t)(DR_NAME_MAX + 1 + below(s, 128));
			LOGW("[detect] entry[%u].name_len = %u", idx, e->name_len);
			return;
		case 3:
			if (below(s, 2)) {
				ex_at(b, g, idx)->vlen[below(s, 2)] =
					(uint8_t)(DR_VALUE_MAX + 1 + below(s, 100));
				LOGW("[detect] ext[%u] value length > %d", idx, DR_VALUE_MAX);
			} else {
				e->vsel = (e->vsel & ~6u) | 6u; /* slot 3 */
				LOGW("[detect] entry[%u].vsel = %#x (no such slot)", idx, e->vsel);
			}
			return;
		case 4: {
			uint64_t v = below(s, 2) ? DRI_ST_FREE(0) : DRI_ST_RETIRED(0, below(s, 2));
			*st_at(b, g, idx) = v;
			LOGW("[detect] state[%u] = %#llx (linked)", idx, (unsigned long long)v);
			return;
		}
		case 5:
			e->tag ^= (uint16_t)(1u << below(s, 12)); /* the link's fp bits still match */
			LOGW("[detect] entry[%u].tag = %#x", idx, e->tag);
			return;
		case 6: {
			uint32_t at;

			if (e->name_len < 1 || e->name_len > DR_NAME_MAX)
				continue;
			at = below(s, e->name_len);
			if (at < DRI_NAME_INLINE)
				e->name[at] ^= (uint8_t)(1 + below(s, 255));
			else
				ex_at(b, g, idx)->name[at - DRI_NAME_INLINE] ^= (uint8_t)(1 + below(s, 255));
			LOGW("[detect] entry[%u] a name byte changed", idx);
			return;
		}
		case 7:
			e->regid = 0;
			LOGW("[detect] entry[%u].regid = 0", idx);
			return;
		case 8:
			e->pid = -(int32_t)below(s, 3);
			LOGW("[detect] entry[%u].pid = %d", idx, e->pid);
			return;
		case 9: {
			/* The link to it carries wrong tag bits. */
			uint32_t *l = bk_at(b, g, reach[i].bucket);

			while ((*l & DRI_LINK_IDX_MASK) != idx + 1)
				l = &en_at(b, g, (*l & DRI_LINK_IDX_MASK) - 1)->next;
			*l ^= (1u + below(s, 15)) << DRI_LINK_FP_SHIFT;
			LOGW("[detect] the link to entry[%u] = %#x (tag bits not its)", idx, *l);
			return;
		}
		case 10:
			*st_at(b, g, idx) = DRI_ST_FREEING(0, below(s, 1000));
			LOGW("[detect] state[%u] = being freed (linked)", idx);
			return;
		case 11: {
			uint32_t bk = below(s, g->nbuckets);
			*bk_at(b, g, bk) = below(s, 2) ? g->cap + 1 + below(s, 1000) :
				DRI_MARK | (1 + below(s, g->cap));
			LOGW("[detect] bucket[%u] = %#x", bk, *bk_at(b, g, bk));
			return;
		}
		case 12: {
			/* The test process's slot: dr_open never writes it. */
			uint32_t slot = DRI_OWNER_SLOT(g->live_owner);
			pr_at(b, g, slot)->word = DRI_PROC_LIVE;
			LOGW("[detect] proc[%u].word = live, generation 0", slot);
			return;
		}
		case 13: {
			/* A live reader ahead of the epoch; only while a reader
			 * slot is free, else opening would reap slots. */
			uint32_t free_slots = 0;

			for (uint32_t k = 0; k < g->max_threads; k++)
				free_slots += rd_at(b, g, k)->owner == 0;
			if (free_slots == 0 || h->epoch >= (1ull << 62))
				continue;
			rd_at(b, g, g->live_reader)->owner = g->live_owner;
			rd_at(b, g, g->live_reader)->epoch = h->epoch + 1 + below(s, 1000);
			LOGW("[detect] reader[%u].epoch = %#llx, ahead of the epoch %#llx",
			     g->live_reader, (unsigned long long)rd_at(b, g, g->live_reader)->epoch,
			     (unsigned long long)h->epoch);
			return;
		}
		case 14:
			h->epoch = 0;
			LOGW("[detect] header.epoch = %d", 0);
			return;
		case 16: case 17: case 18: case 19: {
			/* The copy readers read: its host count, or one of its
			 * hosts (when it has hosts to damage). */
			struct dri_cluster *c = cl_at(b, g);
			struct dri_view *v = &c->view[c->view_index & 1];
			uint32_t n = v->nhosts, at;

			if (kind == 16 || n == 0 || n > DR_HOSTS_MAX) {
				v->nhosts = DR_HOSTS_MAX + 1 + below(s, 1000);
				LOGW("[detect] view copy %u: nhosts = %u", c->view_index & 1, v->nhosts);
				return;
			}
			at = below(s, n);
			switch (kind) {
			case 17:
				v->hot[at].state = below(s, 2) ? 0 : (uint8_t)(5 + below(s, 250));
				LOGW("[detect] view host %u: state = %u", at, v->hot[at].state);
				break;
			case 18:
				v->hot[at].id_len = below(s, 2) ? 0 : (uint8_t)(DR_HOST_MAX + 1 + below(s, 190));
				LOGW("[detect] view host %u: id_len = %u", at, v->hot[at].id_len);
				break;
			default:
				v->hot[at].seed ^= 1ull << below(s, 64);
				LOGW("[detect] view host %u: a seed bit flipped", at);
				break;
			}
			return;
		}
		case 20: {
			/* The copy readers read, odd: nobody writes that one. */
			struct dri_cluster *c = cl_at(b, g);
			struct dri_view *v = &c->view[c->view_index & 1];

			v->seq |= 1;
			LOGW("[detect] view copy %u: seq = %#llx (odd)", c->view_index & 1,
			     (unsigned long long)v->seq);
			return;
		}
		case 21:
			cl_at(b, g)->owner = DRI_OWNER(g->max_procs + below(s, 100), 1);
			LOGW("[detect] bridge role owner = %#llx",
			     (unsigned long long)cl_at(b, g)->owner);
			return;
		default:
			h->next_regid = h->created_ns - 1 - below(s, 1000);
			LOGW("[detect] header.next_regid = %#llx (below creation)",
			     (unsigned long long)h->next_regid);
			return;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* What a round's child does with the segment */

static void bad(struct child_res *res, int rc, const char *what)
{
	if (res->bad_stage)
		return;
	res->bad_rc = rc;
	res->bad_stage = res->stage;
	res->bad_detail = res->detail;
	snprintf(res->bad_what, sizeof(res->bad_what), "%s", what);
}

/* rc must be 0 or one of the negative codes in ok (0-terminated). */
static void expect(struct child_res *res, int rc, const int *ok, const char *what)
{
	if (rc == 0)
		return;
	for (; *ok; ok++)
		if (rc == *ok)
			return;
	bad(res, rc, what);
}

/* -ENOLCK: a mutation of the process's own slot word reads, to it, as the
 * verdict that it is dead (every call then fails with it). */
static const int ok_lookup[] = { -ENOENT, -EUSERS, -ENOLCK, 0 };
static const int ok_inspect[] = { -EUSERS, -ENOMEM, -ENOLCK, 0 };
static const int ok_check[] = { -EBADMSG, -EUSERS, -ENOMEM, -ENOLCK, 0 };
static const int ok_register[] = { -EEXIST, -ENOSPC, -EBUSY, -EBADMSG, -EUSERS, -ENOLCK, 0 };
static const int ok_unregister[] = { -ENOENT, -EPERM, -EBADMSG, -EUSERS, -ENOLCK, 0 };
static const int ok_mbox_open[] = { -EUSERS, -EBADMSG, -ENOLCK, 0 };
static const int ok_msg_send[] = { -ENOENT, -EDESTADDRREQ, -EAGAIN, -ETIMEDOUT, -EOWNERDEAD,
				   -EUSERS, -EBADMSG, -ENOLCK, -EMSGSIZE, 0 };
static const int ok_msg_recv[] = { -EAGAIN, -EBADMSG, -ENOLCK, 0 };
static const int ok_open[] = { -EBADMSG, -EPROTO, -EUSERS, -ENOSYS, -ENOMEM, 0 };
/* Global operations: a view that cannot be read (-EBADMSG), a role word
 * that says no bridge lives (-ENOTCONN), no host up (-EHOSTUNREACH), an
 * owner elsewhere (-EREMOTE), and what local sends and serves return. */
static const int ok_owner[] = { -ENOTCONN, -EBADMSG, -EHOSTUNREACH, -ENOLCK, 0 };
static const int ok_hosts[] = { -ENOTCONN, -EBADMSG, -ERANGE, -ENOLCK, -ENOMEM, 0 };
static const int ok_global[] = { -ENOTCONN, -EBADMSG, -EHOSTUNREACH, -ENOENT, -EDESTADDRREQ,
				 -EAGAIN, -ETIMEDOUT, -EOWNERDEAD, -EUSERS, -ENOLCK, -EMSGSIZE,
				 -ENOMEM, 0 };
static const int ok_serve_global[] = { -ENOTCONN, -EBADMSG, -EHOSTUNREACH, -EREMOTE, -EEXIST,
				       -ENOSPC, -EBUSY, -EUSERS, -ENOLCK, -ENOMEM, 0 };

struct walk_ctx {
	struct child_res *res;
	unsigned n;
	int stop_at;
};

static int walk_cb(const struct dr_name_info *info, void *arg)
{
	struct walk_ctx *c = arg;
	volatile unsigned char sink = 0;

	if (info->name_len > DR_NAME_MAX || info->name_len == 0)
		bad(c->res, 0, "dr_foreach: name length out of range");
	if (info->global != 0 && info->global != 1)
		bad(c->res, 0, "dr_foreach: global neither 0 nor 1");
	if (info->entry.value_len > DR_VALUE_MAX)
		bad(c->res, 0, "dr_foreach: value longer than DR_VALUE_MAX");
	for (size_t i = 0; i < info->name_len; i++)
		sink ^= info->name[i]; /* the whole name must be readable */
	(void)sink;
	return ++c->n == (unsigned)c->stop_at ? 7 : 0;
}

static void check_once(dr_registry *r, struct child_res *res)
{
	res->msg[0] = 0;
	res->check_rc = dr_check(r, res->msg, sizeof(res->msg));
	expect(res, res->check_rc, ok_check, "dr_check");
	if (res->check_rc == -EBADMSG && res->msg[0] == 0)
		bad(res, res->check_rc, "dr_check: -EBADMSG without a message");
}

/* Everything a process may do with the segment, checking only that each
 * call returns 0 or an expected error. */
/* Receive what waits in mb (its lanes perhaps corrupted), then send to
 * names served by others' mailboxes (perhaps corrupted too). */
static void mailboxes(dr_registry *r, struct child_res *res, dr_mailbox *mb)
{
	unsigned char buf[64];
	struct dr_msg m;
	size_t len;
	int rc;

	if (!mb) {
		rc = dr_mailbox_open(r, &mb);
		expect(res, rc, ok_mbox_open, "dr_mailbox_open");
		if (rc)
			return;
		expect(res, dr_serve(mb, "mbx.child", "c", 1), ok_register, "dr_serve");
		for (int i = 0; i < 3; i++)
			expect(res, dr_cast(r, "mbx.child", "hello", 5, 0), ok_msg_send, "dr_cast own");
	}
	for (int i = 0; i < 8; i++) {
		res->detail = i;
		rc = dr_recv(mb, &m, 0);
		expect(res, rc, ok_msg_recv, "dr_recv");
		if (rc == 0 && (m.len > dr_message_max(r) || m.name_len > DR_NAME_MAX ||
				m.kind < DR_MSG_CALL || m.kind > DR_MSG_SYSTEM))
			bad(res, rc, "dr_recv: a message out of range");
		if (rc == 0 && m.len)
			memcpy(buf, m.data, m.len < sizeof(buf) ? m.len : sizeof(buf));
		if (rc == -EAGAIN)
			break;
	}
	res->detail = 100;
	expect(res, dr_cast(r, "mbx.live", "x", 1, 0), ok_msg_send, "dr_cast live");
	res->detail = 101;
	len = sizeof(buf);
	rc = dr_call(r, "mbx.live", "x", 1, buf, &len, 10);
	if (rc != -EPROTO)
		expect(res, rc, ok_msg_send, "dr_call live");
	dr_mailbox_close(mb);
}

/* Global names of the pristine segment, by the view the test process
 * published as the bridge: owned here (the first two served by the test
 * process, the third by the process that died, the fourth by nobody) and
 * owned by another host. Set by the body fuzz before any fork. */
static char g_mine[4][32] = { "glob.m0", "glob.m1", "glob.m2", "glob.m3" };
static char g_far[2][32] = { "glob.f0", "glob.f1" }; /* header fuzz: no bridge, owned here */

static void check_hosts(struct child_res *res, const struct dr_host *hs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strnlen(hs[i].id, sizeof(hs[i].id)) == sizeof(hs[i].id) ||
		    strnlen(hs[i].rpc, sizeof(hs[i].rpc)) == sizeof(hs[i].rpc) ||
		    hs[i].state < DR_HOST_UP || hs[i].state > DR_HOST_IGNORED ||
		    (hs[i].self != 0 && hs[i].self != 1))
			bad(res, 0, "dr_hosts: a host out of range");
}

/* Owners, hosts, lookups and messages to global names: here, or through
 * the bridge (the test process, which never answers). */
static void globals(dr_registry *r, struct child_res *res)
{
	char id[DR_HOST_MAX + 1], buf[64];
	struct dr_host hs[8];
	struct dr_entry e;
	struct dr_msg m;
	uint64_t epoch, call_id;
	dr_mailbox *mb;
	size_t n, len;
	int rc;

	for (int i = 0; i < 6; i++) {
		const char *name = i < 4 ? g_mine[i] : g_far[i - 4];

		res->detail = i;
		rc = dr_owner(r, name, id, sizeof(id));
		expect(res, rc, ok_owner, "dr_owner");
		if (rc == 0 && strnlen(id, sizeof(id)) == sizeof(id))
			bad(res, rc, "dr_owner: an id without its NUL");
		rc = dr_whereis_global(r, name, &e, id, sizeof(id), 0);
		expect(res, rc, ok_global, "dr_whereis_global");
		if (rc == 0 && e.value_len > DR_VALUE_MAX)
			bad(res, rc, "dr_whereis_global: value longer than DR_VALUE_MAX");
		expect(res, dr_cast_global(r, name, "c", 1, 0), ok_global, "dr_cast_global");
		expect(res, dr_send_global(r, name, "s", 1, 0), ok_global, "dr_send_global");
		len = sizeof(buf);
		expect(res, dr_call_global(r, name, "q", 1, buf, &len, 0), ok_global,
		       "dr_call_global");
	}
	res->detail = 100;
	rc = dr_hosts(r, hs, 8, &n, &epoch);
	expect(res, rc, ok_hosts, "dr_hosts");
	if (rc == 0 || rc == -ENOTCONN || rc == -ERANGE)
		check_hosts(res, hs, n < 8 ? n : 8);
	res->detail = 101;
	rc = dr_mailbox_open(r, &mb);
	expect(res, rc, ok_mbox_open, "dr_mailbox_open (global)");
	if (rc)
		return;
	expect(res, dr_serve_global(mb, "gchild", "v", 1), ok_serve_global, "dr_serve_global");
	expect(res, dr_serve_global(mb, g_mine[3], "v", 1), ok_serve_global,
	       "dr_serve_global (a name owned here)");
	expect(res, dr_call_async_global(mb, g_far[0], "a", 1, 0, &call_id), ok_global,
	       "dr_call_async_global (remote)");
	expect(res, dr_call_async_global(mb, g_mine[0], "a", 1, 0, &call_id), ok_global,
	       "dr_call_async_global (here)");
	expect(res, dr_cast_global(r, g_mine[3], "c", 1, 0), ok_global, "dr_cast_global (own)");
	for (int i = 0; i < 4; i++) {
		res->detail = 110 + i;
		rc = dr_recv(mb, &m, 0);
		expect(res, rc, ok_msg_recv, "dr_recv (global)");
		if (rc == 0 && (m.global != 0 && m.global != 1))
			bad(res, rc, "dr_recv: global neither 0 nor 1");
	}
	dr_mailbox_close(mb);
}

static void operate(dr_registry *r, struct child_res *res, bool own, dr_mailbox *mbox)
{
	char name[DR_NAME_MAX + 2];
	struct dr_entry e;
	struct dr_stats st;
	struct walk_ctx wc = { .res = res };
	unsigned n;
	int rc;

	res->stage = S_WHEREIS;
	for (int g = 0; g < G_N; g++) {
		for (int i = 0; i < group_n[g]; i++) {
			res->detail = g * 1000 + i;
			name_of(name, sizeof(name), g, i);
			rc = dr_whereis(r, name, &e);
			expect(res, rc, ok_lookup, "dr_whereis");
			if (rc == 0 && e.value_len > DR_VALUE_MAX)
				bad(res, rc, "dr_whereis: value longer than DR_VALUE_MAX");
		}
	}
	memset(name, 'x', DR_NAME_MAX);
	rc = dr_whereis_bin(r, name, DR_NAME_MAX, NULL);
	expect(res, rc, ok_lookup, "dr_whereis_bin (longest name)");

	res->stage = S_FOREACH;
	rc = dr_foreach(r, walk_cb, &wc);
	expect(res, rc, ok_inspect, "dr_foreach");
	wc.stop_at = 3;
	wc.n = 0;
	rc = dr_foreach(r, walk_cb, &wc);
	if (rc != 7)
		expect(res, rc, ok_inspect, "dr_foreach stopping at the third");

	res->stage = S_STATS;
	expect(res, dr_stats(r, &st), ok_inspect, "dr_stats");

	res->stage = S_CHECK;
	check_once(r, res);

	res->stage = S_REGISTER;
	for (int i = 0; i < N_NEW; i++) {
		res->detail = i;
		name_of(name, sizeof(name), G_NEW, i);
		expect(res, dr_register(r, name, "new", 3), ok_register, "dr_register new");
	}
	res->detail = 100;
	expect(res, dr_register(r, "live.007", "x", 1), ok_register, "dr_register live");
	res->detail = 101;
	expect(res, dr_register(r, "dead.011", "taken", 5), ok_register, "dr_register dead");
	res->detail = 102;
	expect(res, dr_register(r, "gone.03", "back", 4), ok_register, "dr_register gone");

	res->stage = S_UPDATE;
	for (int i = 0; i < N_NEW; i++) {
		res->detail = i;
		name_of(name, sizeof(name), G_NEW, i);
		expect(res, dr_register(r, name, "newer", 5), ok_register, "dr_register update new");
	}
	if (own) {
		for (int i = 0; i < N_OWN; i++) {
			res->detail = 100 + i;
			name_of(name, sizeof(name), G_OWN, i);
			expect(res, dr_register(r, name, "update", 6), ok_register,
			       "dr_register update own");
		}
	}

	res->stage = S_UNREGISTER;
	res->detail = 0;
	expect(res, dr_unregister(r, "new.0"), ok_unregister, "dr_unregister new");
	res->detail = 1;
	expect(res, dr_unregister(r, "own.1"), ok_unregister, "dr_unregister own");
	res->detail = 2;
	expect(res, dr_unregister(r, "live.003"), ok_unregister, "dr_unregister live");
	res->detail = 3;
	expect(res, dr_unregister(r, "dead.005"), ok_unregister, "dr_unregister dead");
	res->detail = 4;
	expect(res, dr_unregister(r, "absent.0"), ok_unregister, "dr_unregister absent");

	res->stage = S_FORCE;
	res->detail = 0;
	expect(res, dr_unregister_force(r, "live.005"), ok_unregister, "dr_unregister_force live");
	res->detail = 1;
	expect(res, dr_unregister_force(r, "dead.007"), ok_unregister, "dr_unregister_force dead");

	res->stage = S_READLOCK;
	rc = dr_read_lock(r);
	expect(res, rc, ok_lookup, "dr_read_lock");
	if (rc == 0) {
		for (int i = 0; i < 16; i++) {
			res->detail = i;
			name_of(name, sizeof(name), G_LIVE, i * 7);
			expect(res, dr_whereis(r, name, &e), ok_lookup, "dr_whereis in a section");
		}
		expect(res, dr_register(r, "new.1", "in", 2), ok_register,
		       "dr_register in a section");
		expect(res, dr_read_unlock(r), ok_lookup, "dr_read_unlock");
	}

	res->stage = S_MAILBOX;
	mailboxes(r, res, mbox);

	res->stage = S_GLOBAL;
	globals(r, res);

	res->stage = S_REAP;
	expect(res, dr_reap(r, &n), ok_inspect, "dr_reap");

	res->stage = S_CHECK_AGAIN;
	expect(res, dr_stats(r, &st), ok_inspect, "dr_stats");
	check_once(r, res);
}

/* Exit codes of a round's child. 1 is what the sanitizers exit with. */
enum { CX_OK = 0, CX_BADRC = 20, CX_UNDETECTED = 21 };

static int child_exit(struct child_res *res)
{
	res->stage = S_DONE;
	if (res->bad_stage)
		return CX_BADRC;
	return CX_OK;
}

/* ---------------------------------------------------------------------- */
/* Running a round */

static int run_child(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(120);
		alarm(ROUND_ALARM);
		_exit(fn(arg));
	}
	return wait_child(pid);
}

static const char *status_text(int st, char *buf, size_t len)
{
	if (st == 128 + SIGALRM)
		snprintf(buf, len, "hung: no end within %d s (SIGALRM)", ROUND_ALARM);
	else if (st > 128)
		snprintf(buf, len, "killed by signal %d (%s)", st - 128, strsignal(st - 128));
	else if (st == 1)
		snprintf(buf, len, "exit status 1 (a sanitizer report? see stderr)");
	else if (st == CX_BADRC)
		snprintf(buf, len, "an unexpected return value");
	else if (st == CX_UNDETECTED)
		snprintf(buf, len, "dr_check missed a corruption");
	else
		snprintf(buf, len, "exit status %d", st);
	return buf;
}

struct fuzz_run {
	const char *what;
	uint64_t seed, rounds;
	bool keepgoing, verbose;
	unsigned failures;
	char first[4096];
};

static void fuzz_run_init(struct fuzz_run *f, const char *what, uint64_t dflt_seed,
			  uint64_t dflt_rounds)
{
	memset(f, 0, sizeof(*f));
	f->what = what;
	f->seed = env_u64("DISTREG_FUZZ_SEED", dflt_seed);
	if (!f->seed)
		f->seed = 1;
	f->rounds = env_u64("DISTREG_FUZZ_ROUNDS", dflt_rounds);
	f->keepgoing = env_u64("DISTREG_FUZZ_KEEPGOING", 0) != 0;
	f->verbose = env_u64("DISTREG_FUZZ_VERBOSE", 0) != 0;
}

/* Report a failed round. The loops stop at the first unless keepgoing, and
 * the test fails once it has cleaned up. */
static void round_failed(struct fuzz_run *f, uint64_t round, uint64_t seed,
			 const char *mode, int st, const struct child_res *res,
			 const char *extra)
{
	char why[128], *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	cr_assert_not_null(m);
	fprintf(m, "fuzz %s round %llu failed: %s%s%s\n"
		"  mode %s; the child was in: %s (detail %d)\n",
		f->what, (unsigned long long)round, status_text(st, why, sizeof(why)),
		extra ? ": " : "", extra ? extra : "", mode,
		stage_names[res->stage < S_NSTAGES ? res->stage : 0], res->detail);
	if (res->bad_stage)
		fprintf(m, "  unexpected: %s returned %d (%s) in %s, detail %d\n",
			res->bad_what, res->bad_rc, dr_strerror(res->bad_rc),
			stage_names[res->bad_stage], res->bad_detail);
	if (res->msg[0])
		fprintf(m, "  dr_check said: %s\n", res->msg);
	fprintf(m, "  replay: DISTREG_FUZZ_SEED=%#llx DISTREG_FUZZ_ROUNDS=1 test_fuzz --filter 'fuzz/%s'\n"
		"  mutations:\n%s", (unsigned long long)seed, f->what, res->log);
	fclose(m);
	fprintf(stderr, "%s\n", buf);
	if (!f->failures++)
		snprintf(f->first, sizeof(f->first), "%.*s", (int)(sizeof(f->first) - 1), buf);
	free(buf);
}

/* ---------------------------------------------------------------------- */
/* Body fuzz */

#define BODY_CAPACITY 320u
#define BODY_PROCS 16u
#define BODY_THREADS 64u

struct body_round {
	const char *seg;
	uint8_t *map;
	const struct geo *g;
	struct child_res *res;
	int mode;
	struct mut muts[MAX_MUTS];
	int nmuts;
};

enum { MODE_BEFORE, MODE_BEFORE_NOREAP, MODE_AFTER, MODE_N };
static const char *const mode_names[MODE_N] = {
	"mutated before dr_open",
	"mutated before dr_open(DR_OPEN_NOREAP)",
	"mutated after dr_open and registering own names",
};

static int open_seg(const char *seg, uint32_t flags, dr_registry **r)
{
	struct dr_options o = {
		.segment = seg, .capacity = BODY_CAPACITY, .max_procs = BODY_PROCS,
		.max_threads = BODY_THREADS, .flags = flags | DR_OPEN_NOCREATE,
		.max_mailboxes = 6, .max_lanes = 8, .lane_bytes = 4096,
	};
	*r = NULL;
	return dr_open(&o, r);
}

static int body_child(void *arg)
{
	struct body_round *br = arg;
	struct child_res *res = br->res;
	dr_mailbox *mb = NULL;
	dr_registry *r;
	char name[32];
	int rc;

	res->stage = S_OPEN;
	rc = open_seg(br->seg, br->mode == MODE_BEFORE_NOREAP ? DR_OPEN_NOREAP : 0, &r);
	res->open_rc = rc;
	expect(res, rc, ok_open, "dr_open");
	if (rc)
		return child_exit(res);

	if (br->mode == MODE_BEFORE_NOREAP) {
		res->stage = S_CHECK_FIRST;
		check_once(r, res);
		if (res->must_detect && res->check_rc != -EBADMSG) {
			res->stage = S_DONE;
			return CX_UNDETECTED;
		}
	}
	if (br->mode == MODE_AFTER) {
		res->stage = S_OWN;
		for (int i = 0; i < N_OWN; i++) {
			res->detail = i;
			name_of(name, sizeof(name), G_OWN, i);
			expect(res, dr_register(r, name, "own", 3), ok_register, "dr_register own");
		}
		/* A mailbox with messages waiting, before the damage. */
		if (dr_mailbox_open(r, &mb) == 0) {
			(void)dr_serve(mb, "mbx.child", "c", 1);
			for (int i = 0; i < 3; i++)
				(void)dr_cast(r, "mbx.child", "before", 6, 0);
		}
		res->stage = S_MUTATE;
		for (int i = 0; i < br->nmuts; i++)
			apply_mut(br->map, br->g, &br->muts[i], res);
	}

	operate(r, res, br->mode == MODE_AFTER, mb);

	res->stage = S_CLOSE;
	dr_close(r);
	return child_exit(res);
}

/* A process that registers the dead and gone names, then dies holding them. */
static int setup_dead_child(void *arg)
{
	const char *seg = arg;
	dr_registry *r;
	char name[32], val[32];

	if (open_seg(seg, 0, &r))
		return 2;
	for (int i = 0; i < N_DEAD; i++) {
		name_of(name, sizeof(name), G_DEAD, i);
		snprintf(val, sizeof(val), "D%d", i);
		if (dr_register(r, name, val, strlen(val)))
			return 3;
	}
	for (int i = 0; i < N_GONE; i++) {
		name_of(name, sizeof(name), G_GONE, i);
		if (dr_register(r, name, "g", 1) || dr_unregister(r, name))
			return 4;
	}
	/* A mailbox with a message, and a message in a lane to the live
	 * process's mailbox: a dead process's, for reaping. */
	dr_mailbox *mb;
	if (dr_mailbox_open(r, &mb) || dr_serve(mb, "mbx.dead", "d", 1) ||
	    dr_cast(r, "mbx.dead", "x", 1, 0) || dr_cast(r, "mbx.live", "from the dead", 13, 0))
		return 5;
	/* A global name of the dead, and a message it forwarded. */
	if (dr_serve_global(mb, g_mine[2], "gd", 2) || dr_cast_global(r, g_far[1], "f", 1, 0))
		return 6;
	return 0; /* no dr_close: the names stay, owned by a dead process */
}

static void *map_file(const char *seg, size_t size)
{
	int fd = open(seg_path(seg), O_RDWR);
	void *p;

	cr_assert_geq(fd, 0, "open %s: %s", seg_path(seg), strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	close(fd);
	return p;
}

Test(fuzz, body)
{
	const char *seg = seg_new("fuzzb");
	struct dr_options o = {
		.segment = seg, .capacity = BODY_CAPACITY, .max_procs = BODY_PROCS,
		.max_threads = BODY_THREADS, .max_mailboxes = 6, .max_lanes = 8, .lane_bytes = 4096,
	};
	struct child_res *res = res_map();
	static struct body_round br;
	struct fuzz_run f;
	struct geo g;
	dr_registry *r = NULL;
	dr_mailbox *live_mb = NULL, *bridge_mb = NULL;
	struct dr_host hosts[3];
	uint8_t *map, *snap;
	uint64_t seed;
	unsigned modes[MODE_N] = { 0 }, detect = 0, opened = 0, check_bad = 0;
	char name[32], val[32];
	struct timespec t0, t1;
	int64_t at;

	fuzz_run_init(&f, "body", 0xb0d1f00dull, BODY_ROUNDS);
	clock_gettime(CLOCK_MONOTONIC, &t0);

	/* The segment: live names of this process, dead and retired names of
	 * a process that died. This process stays attached throughout. */
	cr_assert_eq(dr_open(&o, &r), 0);
	for (int i = 0; i < N_LIVE; i++) {
		name_of(name, sizeof(name), G_LIVE, i);
		snprintf(val, sizeof(val), "L%d", i);
		cr_assert_eq(dr_register(r, name, val, strlen(val)), 0);
	}
	/* A mailbox of this (live) process with messages in its lanes. */
	cr_assert_eq(dr_mailbox_open(r, &live_mb), 0);
	cr_assert_eq(dr_serve(live_mb, "mbx.live", "l", 1), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dr_cast(r, "mbx.live", "queued", 6, 0), 0);
	/* This process is the bridge: two views published, so that both
	 * copies hold one; global names here and elsewhere. */
	memset(hosts, 0, sizeof(hosts));
	for (int i = 0; i < 3; i++) {
		snprintf(hosts[i].id, sizeof(hosts[i].id), "fz.%d", i);
		snprintf(hosts[i].rpc, sizeof(hosts[i].rpc), "tcp://fz.%d:1", i);
		hosts[i].state = i == 2 ? DR_HOST_SUSPECT : DR_HOST_UP;
		hosts[i].self = i == 0;
	}
	cr_assert_eq(dr_mailbox_open(r, &bridge_mb), 0);
	cr_assert_eq(dr_admin_bridge_claim(bridge_mb, NULL), 0);
	cr_assert_eq(dr_admin_view_publish(bridge_mb, hosts, 2, 1), 0);
	cr_assert_eq(dr_admin_view_publish(bridge_mb, hosts, 3, 2), 0);
	for (int i = 0, nm = 0, nf = 0; nm < 4 || nf < 2; i++) {
		char id[DR_HOST_MAX + 1];

		snprintf(name, sizeof(name), "glob.%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		if (strcmp(id, "fz.0") == 0 && nm < 4)
			snprintf(g_mine[nm++], sizeof(g_mine[0]), "%s", name);
		else if (strcmp(id, "fz.0") != 0 && nf < 2)
			snprintf(g_far[nf++], sizeof(g_far[0]), "%s", name);
	}
	cr_assert_eq(dr_serve_global(live_mb, g_mine[0], "g0", 2), 0);
	cr_assert_eq(dr_serve_global(live_mb, g_mine[1], "g1", 2), 0);
	cr_assert_eq(dr_cast_global(r, g_far[0], "fwd", 3, 0), 0);
	cr_assert_eq(wait_child(spawn(setup_dead_child, (void *)seg)), 0);
	cr_assert_eq(dr_check(r, NULL, 0), 0);

	map = map_file(seg, DRI_HEADER_SIZE);
	g.size = ((struct dri_header *)map)->size;
	munmap(map, DRI_HEADER_SIZE);
	map = map_file(seg, g.size);
	geo_from(&g, (struct dri_header *)map);
	cr_assert_eq(g.cap, BODY_CAPACITY);
	at = entry_of(map, &g, "live.000");
	cr_assert_geq(at, 0);
	g.live_owner = DRI_ST_OWNER(*st_at(map, &g, (uint32_t)at));
	at = entry_of(map, &g, "dead.000");
	cr_assert_geq(at, 0);
	g.dead_owner = DRI_ST_OWNER(*st_at(map, &g, (uint32_t)at));
	/* A round's child takes the dead process's slot, one generation on. */
	g.child_owner = DRI_OWNER(DRI_OWNER_SLOT(g.dead_owner), DRI_OWNER_GEN(g.dead_owner) + 1);
	for (uint32_t i = 0; i < g.max_threads; i++)
		if (rd_at(map, &g, i)->owner == g.live_owner)
			g.live_reader = i;
	snap = malloc(g.size);
	cr_assert_not_null(snap);
	memcpy(snap, map, g.size);

	br.seg = seg;
	br.map = map;
	br.g = &g;
	br.res = res;
	seed = f.seed;
	for (uint64_t round = 0; round < f.rounds && (f.keepgoing || !f.failures);
	     round++, seed = seed_next(seed)) {
		uint64_t s = seed;
		int st;

		memcpy(map, snap, g.size);
		memset(res, 0, sizeof(*res));
		br.mode = (int)below(&s, MODE_N);
		br.nmuts = below(&s, 8) == 0 ? 8 + (int)below(&s, MAX_MUTS - 8) : 1 + (int)below(&s, 4);
		modes[br.mode]++;
		for (int i = 0; i < br.nmuts; i++)
			gen_mut(&s, &g, &br.muts[i], br.mode == MODE_AFTER);
		logf_(res, "  (%s)\n", mode_names[br.mode]);
		if (br.mode != MODE_AFTER) {
			for (int i = 0; i < br.nmuts; i++)
				apply_mut(map, &g, &br.muts[i], res);
			if (br.mode == MODE_BEFORE_NOREAP && below(&s, 3) == 0) {
				apply_detectable(map, &g, &s, res);
				res->must_detect = 1;
				/* A slot whose generation is about to wrap: the
				 * opener that takes it reaps what the id's earlier
				 * holder left, NOREAP or not, so the corruption may
				 * be gone before dr_check looks. */
				for (uint32_t i = 0; i < g.max_procs; i++)
					if (DRI_PROC_GEN(pr_at(map, &g, i)->word) == DRI_PROC_GEN_MASK)
						res->must_detect = 0;
				detect += res->must_detect;
			}
		}

		st = run_child(body_child, &br);
		if (f.verbose)
			fprintf(stderr, "round %llu seed %#llx: status %d, reached %s, dr_open %d, "
				"dr_check %d %s\n%s", (unsigned long long)round,
				(unsigned long long)seed, st, stage_names[res->stage], res->open_rc,
				res->check_rc, res->msg, res->log);
		opened += res->open_rc == 0;
		check_bad += res->check_rc == -EBADMSG;
		if (st != 0)
			round_failed(&f, round, seed, mode_names[br.mode], st, res, NULL);
	}

	memcpy(map, snap, g.size);
	cr_expect_eq(dr_check(r, NULL, 0), 0, "the restored segment does not check");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("fuzz body: %llu rounds from seed %#llx in %.2f s: %u/%u/%u by mode, "
		    "%u opened, %u with dr_check -EBADMSG, %u must-detect, %u failed",
		    (unsigned long long)f.rounds, (unsigned long long)f.seed,
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		    modes[0], modes[1], modes[2], opened, check_bad, detect, f.failures);
	free(snap);
	munmap(map, g.size);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
	cr_assert_eq(f.failures, 0, "%u rounds failed; the first:\n%s", f.failures, f.first);
}

/* ---------------------------------------------------------------------- */
/* Header fuzz */

#define HDR_CAPACITY 64u
#define HDR_PROCS 8u
#define HDR_THREADS 16u

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* lib/segment.c's layout(): a consistent header for another geometry. */
static void relayout(struct dri_header *h, uint32_t cap, uint32_t procs, uint32_t threads)
{
	uint64_t off = DRI_HEADER_SIZE;
	uint32_t nb = 16;

	while (nb < cap)
		nb <<= 1;
	h->capacity = cap;
	h->nbuckets = nb;
	h->max_procs = procs;
	h->max_threads = threads;
	h->off_cluster = off;
	off = align_up(off + sizeof(struct dri_cluster), DRI_CACHELINE);
	h->off_procs = off;
	off = align_up(off + (uint64_t)procs * sizeof(struct dri_proc), DRI_CACHELINE);
	h->off_readers = off;
	off = align_up(off + (uint64_t)threads * sizeof(struct dri_reader), DRI_CACHELINE);
	h->off_states = off;
	off = align_up(off + (uint64_t)cap * sizeof(uint64_t), DRI_CACHELINE);
	h->off_buckets = off;
	off = align_up(off + (uint64_t)nb * sizeof(uint32_t), DRI_CACHELINE);
	h->off_entries = off;
	off += (uint64_t)cap * sizeof(struct dri_entry);
	h->off_ext = off;
	off += (uint64_t)cap * sizeof(struct dri_ext);
	h->off_mboxes = off;
	off += (uint64_t)h->max_mailboxes * sizeof(struct dri_mbox);
	h->off_lanes = off;
	off += (uint64_t)h->max_lanes * (sizeof(struct dri_lane) + h->lane_bytes);
	h->size = align_up(off, off >= (8ull << 20) ? DRI_HUGE_PAGE : 4096);
}

struct hdr_field {
	const char *name;
	size_t off, size;
};

#define HF(f) { #f, offsetof(struct dri_header, f), sizeof(((struct dri_header *)0)->f) }
static const struct hdr_field hdr_fields[] = {
	HF(magic), HF(format), HF(size), HF(created_ns),
	HF(seed), HF(capacity), HF(nbuckets), HF(max_procs),
	HF(max_threads), HF(off_procs), HF(off_readers),
	HF(off_states), HF(off_buckets), HF(off_entries), HF(off_ext),
	HF(max_mailboxes), HF(max_lanes), HF(lane_bytes), HF(off_mboxes), HF(off_lanes),
	HF(off_cluster),
	HF(creator_pid), HF(rcu_mode), HF(epoch),
	HF(next_regid), HF(readers_hwm),
};
#define N_HDR_FIELDS (sizeof(hdr_fields) / sizeof(hdr_fields[0]))

static uint64_t field_get(const uint8_t *b, const struct hdr_field *f)
{
	uint64_t v = 0;
	uint32_t v32;

	if (f->size == 8) {
		memcpy(&v, b + f->off, 8);
	} else {
		memcpy(&v32, b + f->off, 4);
		v = v32;
	}
	return v;
}

static void field_set(uint8_t *b, const struct hdr_field *f, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;

	if (f->size == 8)
		memcpy(b + f->off, &v, 8);
	else
		memcpy(b + f->off, &v32, 4);
}

/*
 * What dr_open must answer for a file of len bytes starting with header
 * bytes b: -EBADMSG or -EPROTO as lib/segment.c's header_check() decides,
 * or 0 when the header is valid (dr_open may then still fail for other
 * reasons, such as -EUSERS).
 */
static int expected_open(const uint8_t *b, size_t len, uint64_t format)
{
	struct dri_header h, want;
	uint32_t nb = 16;

	if (len < DRI_HEADER_SIZE)
		return -EBADMSG;
	memcpy(&h, b, sizeof(h));
	if (h.magic != DRI_MAGIC)
		return -EBADMSG;
	if (h.format != format)
		return -EPROTO;
	if (h.capacity == 0 || h.capacity > DRI_MAX_CAPACITY || h.max_procs == 0 ||
	    h.max_procs > DRI_MAX_PROCS || h.max_threads == 0 || h.max_threads > DRI_MAX_THREADS)
		return -EBADMSG;
	while (nb < h.capacity)
		nb <<= 1;
	if (h.nbuckets != nb || (h.rcu_mode != DRI_RCU_MEMBARRIER && h.rcu_mode != DRI_RCU_FENCE))
		return -EBADMSG;
	if (h.max_mailboxes == 0 || h.max_mailboxes > DRI_MAX_MAILBOXES || h.max_lanes == 0 ||
	    h.max_lanes > DRI_MAX_LANES || h.lane_bytes < DRI_MIN_LANE_BYTES ||
	    h.lane_bytes > DRI_MAX_LANE_BYTES || (h.lane_bytes & (h.lane_bytes - 1)))
		return -EBADMSG;
	want = h;
	relayout(&want, h.capacity, h.max_procs, h.max_threads);
	if (want.size != h.size || want.off_procs != h.off_procs ||
	    want.off_readers != h.off_readers || want.off_states != h.off_states ||
	    want.off_buckets != h.off_buckets || want.off_entries != h.off_entries ||
	    want.off_ext != h.off_ext || want.off_mboxes != h.off_mboxes ||
	    want.off_lanes != h.off_lanes || want.off_cluster != h.off_cluster || len < h.size)
		return -EBADMSG;
	return 0;
}

struct hdr_round {
	const char *seg;
	struct child_res *res;
	uint32_t flags;
};

static int hdr_child(void *arg)
{
	struct hdr_round *hr = arg;
	struct child_res *res = hr->res;
	struct dr_options o = { .segment = hr->seg, .flags = hr->flags | DR_OPEN_NOCREATE };
	dr_registry *r = NULL;

	res->stage = S_OPEN;
	res->open_rc = dr_open(&o, &r);
	expect(res, res->open_rc, ok_open, "dr_open");
	if (res->open_rc)
		return child_exit(res);
	operate(r, res, false, NULL);
	res->stage = S_CLOSE;
	dr_close(r);
	return child_exit(res);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	size_t done = 0;

	cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		cr_assert_gt(n, 0, "write: %s", strerror(errno));
		done += (size_t)n;
	}
	close(fd);
}

/* 1 if the file at path holds exactly len bytes equal to buf. */
static int file_equals(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	uint8_t *got = malloc(len + 1);
	ssize_t n = -1;
	size_t done = 0;
	int same;

	cr_assert_geq(fd, 0);
	cr_assert_not_null(got);
	while (done <= len && (n = read(fd, got + done, len + 1 - done)) > 0)
		done += (size_t)n;
	close(fd);
	same = done == len && memcmp(got, buf, len) == 0;
	free(got);
	return same;
}

/* A process that registers some names and dies holding them. */
static int setup_hdr_child(void *arg)
{
	const char *seg = arg;
	struct dr_options o = { .segment = seg, .capacity = HDR_CAPACITY,
				.max_mailboxes = 4, .max_lanes = 4, .lane_bytes = 4096,
				.max_procs = HDR_PROCS, .max_threads = HDR_THREADS };
	dr_registry *r = NULL;
	char name[32];

	if (dr_open(&o, &r))
		return 2;
	for (int i = 0; i < 40; i++) {
		name_of(name, sizeof(name), i % 2 ? G_DEAD : G_LIVE, i);
		if (dr_register(r, name, "h", 1))
			return 3;
	}
	for (int i = 0; i < 6; i++) {
		name_of(name, sizeof(name), G_GONE, i);
		if (dr_register(r, name, "g", 1) || dr_unregister(r, name))
			return 4;
	}
	return 0;
}

Test(fuzz, header)
{
	const char *base = seg_new("fuzzh"), *seg = seg_new("fuzzh");
	struct child_res *res = res_map();
	struct hdr_round hr = { .seg = seg, .res = res };
	struct fuzz_run f;
	uint8_t *snap, *buf;
	size_t size, bufmax;
	uint64_t seed, format;
	unsigned n_ok = 0, n_badmsg = 0, n_proto = 0, n_other = 0;
	struct timespec t0, t1;
	struct stat sb;
	int fd;

	fuzz_run_init(&f, "header", 0x4ead3e5ull, HEADER_ROUNDS);
	clock_gettime(CLOCK_MONOTONIC, &t0);

	cr_assert_eq(wait_child(spawn(setup_hdr_child, (void *)base)), 0);
	cr_assert_eq(stat(seg_path(base), &sb), 0);
	size = (size_t)sb.st_size;
	snap = malloc(size);
	bufmax = size * 2 + DRI_HEADER_SIZE;
	buf = malloc(bufmax);
	cr_assert(snap && buf);
	fd = open(seg_path(base), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, snap, size, 0), (ssize_t)size);
	close(fd);
	cr_assert_eq(dr_unlink(base), 0);
	cr_assert_eq(((struct dri_header *)snap)->size, size);
	format = ((struct dri_header *)snap)->format;

	seed = f.seed;
	for (uint64_t round = 0; round < f.rounds && (f.keepgoing || !f.failures);
	     round++, seed = seed_next(seed)) {
		uint64_t s = seed;
		size_t len = size;
		int nm = 1 + (int)below(&s, below(&s, 4) == 0 ? 6 : 2), st, want;

		memcpy(buf, snap, size);
		memset(res, 0, sizeof(*res));
		hr.flags = below(&s, 2) ? DR_OPEN_NOREAP : 0;
		logf_(res, "  (dr_open flags %#x)\n", hr.flags);
		for (int i = 0; i < nm; i++) {
			uint32_t k = below(&s, 20);

			if (k < 11) {
				/* A field: magic and format rarely, so that the
				 * checks behind them run. */
				const struct hdr_field *hf;
				uint64_t old, v;

				do
					hf = &hdr_fields[below(&s, N_HDR_FIELDS)];
				while (hf->off < 16 && below(&s, 8) != 0);
				old = field_get(buf, hf);
				switch (below(&s, 9)) {
				case 0: v = 0; break;
				case 1: v = old + 1; break;
				case 2: v = old - 1; break;
				case 3: v = old * 2; break;
				case 4: v = old / 2; break;
				case 5: v = old ^ (1ull << below(&s, (uint32_t)hf->size * 8)); break;
				case 6: v = UINT64_MAX; break;
				case 7: v = below(&s, 2) ? DRI_MAX_CAPACITY + below(&s, 3) - 1 :
					DRI_MAX_PROCS + below(&s, 3) - 1; break;
				default: v = rnd(&s); break;
				}
				field_set(buf, hf, v);
				v = field_get(buf, hf);
				logf_(res, "  header.%s: %#llx -> %#llx\n", hf->name,
				      (unsigned long long)old, (unsigned long long)v);
			} else if (k < 14) {
				/* Random bytes of the header. */
				uint32_t off, n = 1 + below(&s, 8);

				do
					off = below(&s, DRI_HEADER_SIZE - n);
				while (off < 16 && below(&s, 8) != 0);
				for (uint32_t j = 0; j < n; j++)
					buf[off + j] = (uint8_t)rnd(&s);
				logf_(res, "  %u random bytes at offset %u\n", n, off);
			} else if (k < 17) {
				/* Another geometry, consistent in itself. */
				struct dri_header *h = (struct dri_header *)buf;
				uint32_t cap = below(&s, 2) ? 1 + below(&s, 2 * HDR_CAPACITY) :
					1 + below(&s, DRI_MAX_CAPACITY);
				uint32_t procs = 1 + below(&s, below(&s, 4) ? 2 * HDR_PROCS : DRI_MAX_PROCS);
				uint32_t threads = 1 + below(&s, below(&s, 4) ? 2 * HDR_THREADS : DRI_MAX_THREADS);

				relayout(h, cap, procs, threads);
				logf_(res, "  geometry: capacity %u, %u procs, %u threads: %llu bytes\n",
				      cap, procs, threads, (unsigned long long)h->size);
			} else {
				/* Truncated, or extended with garbage. */
				size_t nl = below(&s, 3) ? below(&s, DRI_HEADER_SIZE + 64) :
					below(&s, (uint32_t)(2 * size));

				if (nl > len)
					for (size_t j = len; j < nl; j++)
						buf[j] = (uint8_t)rnd(&s);
				logf_(res, "  file length %zu -> %zu\n", len, nl);
				len = nl;
			}
		}

		write_file(seg_path(seg), buf, len);
		want = expected_open(buf, len, format);
		st = run_child(hdr_child, &hr);
		if (f.verbose)
			fprintf(stderr, "round %llu seed %#llx: status %d, reached %s, dr_open %d "
				"(expected %d), dr_check %d %s\n%s", (unsigned long long)round,
				(unsigned long long)seed, st, stage_names[res->stage], res->open_rc,
				want, res->check_rc, res->msg, res->log);
		if (res->open_rc == 0)
			n_ok++;
		else if (res->open_rc == -EBADMSG)
			n_badmsg++;
		else if (res->open_rc == -EPROTO)
			n_proto++;
		else
			n_other++;
		if (st != 0) {
			round_failed(&f, round, seed, "header", st, res, NULL);
		} else if (want != 0 && res->open_rc != want) {
			char why[128];
			snprintf(why, sizeof(why), "dr_open returned %d (%s), expected %d (%s)",
				 res->open_rc, dr_strerror(res->open_rc), want, dr_strerror(want));
			round_failed(&f, round, seed, "header", st, res, why);
		} else if ((res->open_rc == -EBADMSG || res->open_rc == -EPROTO) &&
			   !file_equals(seg_path(seg), buf, len)) {
			round_failed(&f, round, seed, "header", st, res,
				     "dr_open refused the segment but changed its file");
		}
		unlink(seg_path(seg));
	}

	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("fuzz header: %llu rounds from seed %#llx in %.2f s: %u opened, "
		    "%u -EBADMSG, %u -EPROTO, %u other; %u failed",
		    (unsigned long long)f.rounds, (unsigned long long)f.seed,
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		    n_ok, n_badmsg, n_proto, n_other, f.failures);
	free(snap);
	free(buf);
	cr_assert_eq(f.failures, 0, "%u rounds failed; the first:\n%s", f.failures, f.first);
}

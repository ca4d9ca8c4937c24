/*
 * workers.c - the two sides of the registry benchmark: the names, each
 * implementation's operations, the timed loops, and the worker processes
 * (distreg) and threads (cds_lfht) that run them on the parent's command.
 *
 * Both sides do the same work on the same names, in the same order (the
 * parent gives both the same seed per cell), with the same hash
 * (XXH3_64bits_withSeed over the name bytes, inlined here as libdistreg
 * inlines it) and the same number of buckets. A lookup takes one read-side
 * section on either side and copies the value out. The operation functions
 * take the implementation as a compile-time constant, so each loop is
 * specialised and the benchmark adds no indirect call to either side.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Inline urcu-memb's read-side fast path, as liburcu recommends for speed:
 * cds_lfht is measured at its best. */
#define _LGPL_SOURCE
#define XXH_INLINE_ALL

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>
#include <xxhash.h>

#include <distreg.h>

#include "bench.h"

const char *const wl_names[NWL] = {
	"whereis-hit", "whereis-miss", "reg+unreg", "mix-90/10",
};
const char *const wl_short[NWL] = { "hit", "miss", "churn", "mix" };
const char *const impl_names[NIMPL] = { "distreg", "cds_lfht" };

struct worker {
	int impl;
	unsigned idx;
	struct ctl *c;
	dr_registry *r;           /* distreg */
	struct cds_lfht *ht;      /* cds_lfht */
	const struct bname *hit, *miss, *churn;
	uint32_t nhit, nmiss;
	const char *what;         /* the operation that failed */
};

/* The cds_lfht node: the name and a small value, as a registry keeps. */
struct lnode {
	struct cds_lfht_node node;
	uint8_t len;
	uint8_t vlen;
	char name[NAME_STRIDE];
	unsigned char value[VALUE_LEN];
	struct rcu_head rcu;
};

struct bname *hit_names, *miss_names, *churn_names;
unsigned char value_bytes[VALUE_LEN];
uint64_t lf_seed;

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64* (Vigna): a few cycles, good enough to pick names. */
static inline uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* The high 32 bits of r scaled to [0, n): a multiply, not a division. */
static inline uint32_t below(uint64_t r, uint32_t n)
{
	return (uint32_t)(((r >> 32) * (uint64_t)n) >> 32);
}

uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (x ^ (x >> 31)) | 1; /* xorshift state must not be 0 */
}

void futex_wait(uint32_t *addr, uint32_t val, long timeout_ns)
{
	struct timespec ts = { timeout_ns / 1000000000l, timeout_ns % 1000000000l };

	/* Not FUTEX_PRIVATE: waiters and wakers are in different processes. */
	syscall(SYS_futex, addr, FUTEX_WAIT, val, timeout_ns ? &ts : NULL, NULL, 0);
}

void futex_wake(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void ctl_count(uint32_t *ctr)
{
	__atomic_add_fetch(ctr, 1, __ATOMIC_RELEASE);
	futex_wake(ctr);
}

uint32_t ctl_wait_change(uint32_t *word, uint32_t seen)
{
	uint32_t v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == seen)
		futex_wait(word, seen, 0);
	return v;
}

void ctl_fail(struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(&c->failed, 1, __ATOMIC_ACQ_REL) == 0) {
		va_start(ap, fmt);
		vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

void ctl_serve(struct ctl *c, unsigned idx, ctl_run_fn run, ctl_settle_fn settle, void *w)
{
	struct wslot *s = &c->w[idx];
	uint32_t seen = 0;

	for (;;) {
		uint64_t ops = 0, sink = 0, t0, t1;
		uint32_t workload;

		seen = ctl_wait_change(&s->gen, seen);
		if (s->cmd == CMD_EXIT)
			return;
		workload = s->workload;
		ctl_count(&c->ready);
		ctl_wait_change(&c->go, 0);
		t0 = now_ns();
		run(w, workload, s->seed, &ops, &sink);
		t1 = now_ns();
		if (settle)
			settle(w, workload);
		s->ops = ops;
		s->ns = t1 - t0;
		s->sink = sink;
		ctl_count(&c->done);
	}
}

static uint64_t lf_hash(const struct bname *n)
{
	return XXH3_64bits_withSeed(n->s, n->len, lf_seed);
}

static int lf_match(struct cds_lfht_node *node, const void *key)
{
	const struct lnode *ln = caa_container_of(node, struct lnode, node);
	const struct bname *k = key;

	return ln->len == k->len && memcmp(ln->name, k->s, k->len) == 0;
}

static void lf_free(struct rcu_head *head)
{
	free(caa_container_of(head, struct lnode, rcu));
}

static inline int lf_lookup(struct worker *w, const struct bname *n, size_t *vlen)
{
	unsigned long h = (unsigned long)lf_hash(n);
	unsigned char out[VALUE_LEN];
	struct cds_lfht_node *node;
	struct cds_lfht_iter it;

	urcu_memb_read_lock();
	cds_lfht_lookup(w->ht, h, lf_match, n, &it);
	node = cds_lfht_iter_get_node(&it);
	if (node) {
		const struct lnode *ln = caa_container_of(node, struct lnode, node);
		/* Copy the value out, as dr_whereis() does. */
		*vlen = ln->vlen;
		memcpy(out, ln->value, ln->vlen);
		__asm__ volatile("" : : "r"(out) : "memory");
	}
	urcu_memb_read_unlock();
	return node ? 0 : -ENOENT;
}

static inline int lf_register(struct worker *w, const struct bname *n)
{
	struct lnode *ln = malloc(sizeof(*ln));
	struct cds_lfht_node *got;
	unsigned long h;

	if (!ln)
		return -ENOMEM;
	cds_lfht_node_init(&ln->node);
	ln->len = n->len;
	memcpy(ln->name, n->s, n->len);
	ln->vlen = VALUE_LEN;
	memcpy(ln->value, value_bytes, VALUE_LEN);
	h = (unsigned long)lf_hash(n);
	urcu_memb_read_lock();
	got = cds_lfht_add_unique(w->ht, h, lf_match, n, &ln->node);
	urcu_memb_read_unlock();
	if (got != &ln->node) {
		free(ln);
		return -EEXIST;
	}
	return 0;
}

static inline int lf_unregister(struct worker *w, const struct bname *n)
{
	unsigned long h = (unsigned long)lf_hash(n);
	struct cds_lfht_node *node;
	struct cds_lfht_iter it;
	int rc = -ENOENT;

	urcu_memb_read_lock();
	cds_lfht_lookup(w->ht, h, lf_match, n, &it);
	node = cds_lfht_iter_get_node(&it);
	if (node && cds_lfht_del(w->ht, node) == 0)
		rc = 0;
	urcu_memb_read_unlock();
	/* Only the thread whose cds_lfht_del() succeeded frees the node, so
	 * it is still ours outside the section. */
	if (rc == 0)
		urcu_memb_call_rcu(&caa_container_of(node, struct lnode, node)->rcu, lf_free);
	return rc;
}

/* The operations, for an implementation known at compile time. */
static inline __attribute__((always_inline)) int
op_lookup(struct worker *w, const int impl, const struct bname *n, size_t *vlen)
{
	if (impl == IMPL_DR) {
		struct dr_entry e;
		int rc = dr_whereis_bin(w->r, n->s, n->len, &e);

		*vlen = rc == 0 ? e.value_len : 0;
		return rc;
	}
	return lf_lookup(w, n, vlen);
}

static inline __attribute__((always_inline)) int
op_register(struct worker *w, const int impl, const struct bname *n)
{
	if (impl == IMPL_DR)
		return dr_register_bin(w->r, n->s, n->len, value_bytes, VALUE_LEN);
	return lf_register(w, n);
}

static inline __attribute__((always_inline)) int
op_unregister(struct worker *w, const int impl, const struct bname *n)
{
	if (impl == IMPL_DR)
		return dr_unregister_bin(w->r, n->s, n->len);
	return lf_unregister(w, n);
}

/* The loop skeleton: BODY runs BATCH times between looks at the stop flag. */
#define TIMED_LOOP(BODY)                                                   \
	while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {                 \
		for (int k_ = 0; k_ < BATCH; k_++) {                       \
			BODY                                               \
		}                                                          \
		ops += BATCH;                                              \
	}

/* Run workload wl until the stop flag is set. 0, or a negative errno with
 * w->what naming the operation; 1 when a miss found a name. */
static inline __attribute__((always_inline)) int
run_workload(struct worker *w, const int impl, unsigned wl, uint64_t *rngp,
	     uint64_t *opsp, uint64_t *sinkp)
{
	const uint32_t *stop = &w->c->stop;
	const struct bname *hit = w->hit, *miss = w->miss, *churn = w->churn;
	const uint32_t nhit = w->nhit, nmiss = w->nmiss;
	uint64_t rng = *rngp, ops = 0, sink = 0;
	size_t vlen = 0;
	int rc = 0;

	switch (wl) {
	case WL_HIT:
		TIMED_LOOP({
			rc = op_lookup(w, impl, &hit[below(rnd(&rng), nhit)], &vlen);
			if (rc) {
				w->what = "whereis of a present name";
				goto out;
			}
			sink += vlen;
		})
		break;
	case WL_MISS:
		TIMED_LOOP({
			rc = op_lookup(w, impl, &miss[below(rnd(&rng), nmiss)], &vlen);
			if (rc != -ENOENT) {
				w->what = "whereis of an absent name";
				rc = rc ? rc : 1;
				goto out;
			}
			sink++;
		})
		rc = 0;
		break;
	case WL_CHURN:
		TIMED_LOOP({
			const struct bname *n = &churn[(rnd(&rng) >> 32) & (CHURN_NAMES - 1)];

			rc = op_register(w, impl, n);
			if (rc) {
				w->what = "register";
				goto out;
			}
			rc = op_unregister(w, impl, n);
			if (rc) {
				w->what = "unregister";
				goto out;
			}
		})
		break;
	case WL_MIX:
		TIMED_LOOP({
			uint64_t x = rnd(&rng);

			if ((uint32_t)x < MIX_CHURN_CUT) {
				const struct bname *n = &churn[(x >> 32) & (CHURN_NAMES - 1)];

				rc = op_register(w, impl, n);
				if (rc) {
					w->what = "register (mix)";
					goto out;
				}
				rc = op_unregister(w, impl, n);
				if (rc) {
					w->what = "unregister (mix)";
					goto out;
				}
			} else {
				rc = op_lookup(w, impl, &hit[below(x, nhit)], &vlen);
				if (rc) {
					w->what = "whereis of a present name (mix)";
					goto out;
				}
				sink += vlen;
			}
		})
		break;
	}
out:
	*rngp = rng;
	*opsp = ops;
	*sinkp = sink;
	return rc;
}

/* Separate functions so that profiles name the side. */
static __attribute__((noinline)) int
run_distreg(struct worker *w, unsigned wl, uint64_t *rng, uint64_t *ops, uint64_t *sink)
{
	return run_workload(w, IMPL_DR, wl, rng, ops, sink);
}

static __attribute__((noinline)) int
run_lfht(struct worker *w, unsigned wl, uint64_t *rng, uint64_t *ops, uint64_t *sink)
{
	return run_workload(w, IMPL_LF, wl, rng, ops, sink);
}

static const char *err_text(int impl, int rc)
{
	if (rc == 1)
		return "found a name that should be absent";
	return impl == IMPL_DR ? dr_strerror(rc) : strerror(-rc);
}

/* A cell of worker w, for ctl_serve(). */
static void worker_run(void *arg, uint32_t wl, uint64_t seed, uint64_t *ops, uint64_t *sink)
{
	struct worker *w = arg;
	uint64_t rng = seed;
	int rc;

	if (w->impl == IMPL_DR)
		rc = run_distreg(w, wl, &rng, ops, sink);
	else
		rc = run_lfht(w, wl, &rng, ops, sink);
	if (rc)
		ctl_fail(w->c, "%s worker %u, %s, %s: %s", impl_names[w->impl], w->idx,
			 wl_names[wl], w->what, err_text(w->impl, rc));
}

/* Let the call_rcu thread finish this cell's frees before the next cell:
 * not timed, like distreg's partly filled retire batch. */
static void lf_settle(void *arg, uint32_t wl)
{
	(void)arg;
	if (wl == WL_CHURN || wl == WL_MIX)
		urcu_memb_barrier();
}

/* Serve the parent's commands until CMD_EXIT. */
static void worker_serve(struct worker *w)
{
	ctl_serve(w->c, w->idx, worker_run, w->impl == IMPL_LF ? lf_settle : NULL, w);
}

/* A distreg worker process. Worker 0 preloads the names and owns them. */
__attribute__((noreturn)) void
dr_worker_main(struct ctl *c, unsigned idx, const char *segment, uint32_t capacity,
	       uint32_t nnames)
{
	struct dr_options o = { .segment = segment, .capacity = capacity };
	struct worker w = {
		.impl = IMPL_DR, .idx = idx, .c = c,
		.hit = hit_names, .miss = miss_names,
		.churn = churn_names + (size_t)idx * CHURN_NAMES,
		.nhit = nnames, .nmiss = nnames,
	};
	int rc = dr_open(&o, &w.r);

	if (rc)
		ctl_fail(c, "distreg worker %u: dr_open(segment %s, capacity %" PRIu32 "): %s",
			    idx, segment, capacity, dr_strerror(rc));
	if (idx == 0) {
		uint64_t t0 = now_ns();
		struct dr_stats st;

		for (uint32_t i = 0; i < nnames; i++) {
			rc = op_register(&w, IMPL_DR, &hit_names[i]);
			if (rc)
				ctl_fail(c, "distreg preload: dr_register of name %" PRIu32
					    " of %" PRIu32 ": %s", i, nnames, dr_strerror(rc));
		}
		c->preload_s = (double)(now_ns() - t0) / 1e9;
		rc = dr_stats(w.r, &st);
		if (rc)
			ctl_fail(c, "distreg: dr_stats: %s", dr_strerror(rc));
		if (st.live != nnames)
			ctl_fail(c, "distreg preload: %" PRIu32 " live names, expected %" PRIu32,
				    st.live, nnames);
		c->segment_bytes = st.segment_bytes;
	}
	ctl_count(&c->setup);
	worker_serve(&w);
	dr_close(w.r); /* worker 0: unregisters the preloaded names */
	_exit(0);
}

static void *lf_thread(void *arg)
{
	struct worker *w = arg;

	urcu_memb_register_thread();
	ctl_count(&w->c->setup);
	worker_serve(w);
	urcu_memb_unregister_thread();
	return NULL;
}

/* The cds_lfht process: one table, preloaded, served by nworkers threads. */
__attribute__((noreturn)) void
lf_proc_main(struct ctl *c, unsigned nworkers, uint32_t nnames, unsigned long nbuckets)
{
	struct worker *ws = calloc(nworkers, sizeof(*ws));
	pthread_t *tids = calloc(nworkers, sizeof(*tids));
	struct cds_lfht *ht;
	uint64_t t0;
	int rc;

	if (!ws || !tids)
		ctl_fail(c, "cds_lfht: out of memory");
	/* No CDS_LFHT_AUTO_RESIZE: the bucket count stays that of distreg. */
	ht = cds_lfht_new_flavor(nbuckets, nbuckets, 0, 0, &urcu_memb_flavor, NULL);
	if (!ht)
		ctl_fail(c, "cds_lfht_new_flavor(%lu buckets) failed", nbuckets);
	for (unsigned i = 0; i < nworkers; i++) {
		ws[i] = (struct worker){
			.impl = IMPL_LF, .idx = i, .c = c, .ht = ht,
			.hit = hit_names, .miss = miss_names,
			.churn = churn_names + (size_t)i * CHURN_NAMES,
			.nhit = nnames, .nmiss = nnames,
		};
	}
	urcu_memb_register_thread();
	t0 = now_ns();
	for (uint32_t i = 0; i < nnames; i++) {
		rc = lf_register(&ws[0], &hit_names[i]);
		if (rc)
			ctl_fail(c, "cds_lfht preload of name %" PRIu32 ": %s", i, strerror(-rc));
	}
	c->preload_s = (double)(now_ns() - t0) / 1e9;
	urcu_memb_unregister_thread();
	for (unsigned i = 0; i < nworkers; i++) {
		rc = pthread_create(&tids[i], NULL, lf_thread, &ws[i]);
		if (rc)
			ctl_fail(c, "cds_lfht: pthread_create: %s", strerror(rc));
	}
	for (unsigned i = 0; i < nworkers; i++)
		pthread_join(tids[i], NULL);
	/* The table dies with the process. */
	_exit(0);
}

static void *names_alloc(size_t n)
{
	void *p = NULL;
	size_t bytes = n * sizeof(struct bname);

	if (posix_memalign(&p, 64, bytes ? bytes : 64))
		return NULL;
	return p;
}

void free_names(void)
{
	free(hit_names);
	free(miss_names);
	free(churn_names);
	hit_names = miss_names = churn_names = NULL;
}

int make_names(uint32_t n, unsigned nworkers)
{
	hit_names = names_alloc(n);
	miss_names = names_alloc(n);
	churn_names = names_alloc((size_t)nworkers * CHURN_NAMES);
	if (!hit_names || !miss_names || !churn_names) {
		free_names();
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		hit_names[i].len = (uint8_t)snprintf(hit_names[i].s, sizeof(hit_names[i].s),
						     "svc/worker/%08" PRIu32, i);
		miss_names[i].len = (uint8_t)snprintf(miss_names[i].s, sizeof(miss_names[i].s),
						      "svc/worker/%08" PRIu32 "~", i);
	}
	for (unsigned w = 0; w < nworkers; w++) {
		for (uint32_t i = 0; i < CHURN_NAMES; i++) {
			struct bname *b = &churn_names[(size_t)w * CHURN_NAMES + i];
			b->len = (uint8_t)snprintf(b->s, sizeof(b->s), "svc/churn%02u/%07" PRIu32, w, i);
		}
	}
	return 0;
}

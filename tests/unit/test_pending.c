/*
 * test_pending.c - lib/pending.c: the table of a mailbox's calls in flight.
 * Random adds, finds and removals against a plain list, with call ids
 * chosen to collide (the probe chains and the backward shift on removal
 * are what can go wrong), and the table's edges.
 */
#include <errno.h>
#include <stdlib.h>

#include "unit.h"

#include "dri.h"

TestSuite(pending, .timeout = UNIT_TIMEOUT);

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	uint64_t z = *s;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The table against a list, over rounds of the given id sources. */
static void against_list(uint64_t (*next_id)(uint64_t *seed, uint64_t k), uint64_t seed)
{
	enum { MAXN = 700, OPS = 200000 };
	static uint64_t ids[MAXN];
	struct dri_pendtab t = { 0 };
	size_t n = 0;

	for (uint64_t k = 0; k < OPS; k++) {
		uint64_t r = rnd(&seed);

		if (n < MAXN && (n == 0 || r % 100 < 52)) {
			uint64_t id = next_id(&seed, k);
			bool dup = false;

			for (size_t i = 0; i < n; i++)
				dup |= ids[i] == id;
			if (dup || id == 0)
				continue;
			struct dri_pending p = { .call_id = id, .target = (uint32_t)id ^ 7,
						 .deadline = id * 3 };
			cr_assert_eq(dri_pend_add(&t, &p), 0);
			ids[n++] = id;
		} else {
			size_t i = (size_t)(r >> 8) % n;
			struct dri_pending *p = dri_pend_find(&t, ids[i]);

			cr_assert_not_null(p, "op %llu: call %llu lost", (unsigned long long)k,
					   (unsigned long long)ids[i]);
			cr_assert_eq(p->call_id, ids[i]);
			cr_assert_eq(p->target, (uint32_t)ids[i] ^ 7);
			cr_assert_eq(p->deadline, ids[i] * 3);
			dri_pend_remove(&t, p);
			cr_assert_null(dri_pend_find(&t, ids[i]), "call %llu found after removal",
				       (unsigned long long)ids[i]);
			ids[i] = ids[--n];
		}
		cr_assert_eq(t.n, n);
		cr_assert(t.n * 2 <= t.cap, "more than half full: %zu of %zu", t.n, t.cap);
	}
	/* Every one left is there, and only those. */
	size_t live = 0;
	for (size_t i = 0; i < t.cap; i++)
		live += t.slot[i].call_id != 0;
	cr_assert_eq(live, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_not_null(dri_pend_find(&t, ids[i]));
	dri_pend_free(&t);
	cr_assert_eq(t.cap, 0);
}

/* As a mailbox issues them: consecutive, from blocks far apart. */
static uint64_t sequential(uint64_t *seed, uint64_t k)
{
	(void)seed;
	return 1000000 + k + (k / 5000) * 123456789ull;
}

/* Anything. */
static uint64_t random_id(uint64_t *seed, uint64_t k)
{
	(void)k;
	return rnd(seed);
}

/* One home for all: the hash keeps bits 32 and up of id * a constant, so
 * ids that are multiples of 2^48 all land in slot 0 of any table under 2^16
 * slots, and every one probes one long chain. */
static uint64_t colliding(uint64_t *seed, uint64_t k)
{
	(void)seed;
	return ((k % 1500) + 1) << 48;
}

Test(pending, sequential_ids_match_a_list)
{
	against_list(sequential, 1);
}

Test(pending, random_ids_match_a_list)
{
	against_list(random_id, 2);
}

Test(pending, ids_on_one_chain_match_a_list)
{
	against_list(colliding, 3);
}

Test(pending, id_zero_is_refused_and_never_found)
{
	struct dri_pendtab t = { 0 };
	struct dri_pending p = { .call_id = 0 };

	cr_assert_null(dri_pend_find(&t, 5), "found in an empty table");
	cr_assert_eq(dri_pend_add(&t, &p), -EINVAL);
	p.call_id = 5;
	cr_assert_eq(dri_pend_add(&t, &p), 0);
	cr_assert_null(dri_pend_find(&t, 0));
	cr_assert_not_null(dri_pend_find(&t, 5));
	dri_pend_free(&t);
}

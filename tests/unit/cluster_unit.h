/*
 * cluster_unit.h - what the unit tests of global names share: a segment
 * with room for a bridge, workers, callers and their lanes; a mailbox; a
 * made-up view of three hosts (alpha, this host; beta; gamma) and a bridge
 * that claims the role and publishes it. Include after unit.h.
 */
#ifndef DISTREG_CLUSTER_UNIT_H
#define DISTREG_CLUSTER_UNIT_H

#include <distreg_admin.h>


/* Room for a bridge, workers, callers and their lanes. */
static inline int open_g(const char *seg, dr_registry **r)
{
	struct dr_options o = {
		.segment = seg,
		.capacity = 256,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.max_mailboxes = 16,
		.max_lanes = 32,
		.lane_bytes = 8192,
	};

	*r = NULL;
	return dr_open(&o, r);
}

static inline dr_registry *open_or_die(const char *seg)
{
	dr_registry *r;
	int rc = open_g(seg, &r);

	cr_assert_eq(rc, 0, "dr_open(%s): %s", seg, dr_strerror(rc));
	return r;
}

static inline dr_mailbox *mailbox(dr_registry *r)
{
	dr_mailbox *mb;
	int rc = dr_mailbox_open(r, &mb);

	cr_assert_eq(rc, 0, "dr_mailbox_open: %s", dr_strerror(rc));
	return mb;
}

static inline struct dr_host host(const char *id, int state, int self)
{
	struct dr_host h;

	memset(&h, 0, sizeof(h));
	snprintf(h.id, sizeof(h.id), "%s", id);
	snprintf(h.rpc, sizeof(h.rpc), "tcp://%s:7000", id);
	h.incarnation = 1000 + (uint64_t)strlen(id);
	h.state = state;
	h.self = self;
	return h;
}

/* alpha (this host), beta, gamma; all up. */
static inline size_t three(struct dr_host *h)
{
	h[0] = host("alpha", DR_HOST_UP, 1);
	h[1] = host("beta", DR_HOST_UP, 0);
	h[2] = host("gamma", DR_HOST_UP, 0);
	return 3;
}

static inline dr_mailbox *bridge_up(dr_registry *r, uint64_t epoch)
{
	struct dr_host h[3];
	dr_mailbox *mb = mailbox(r);
	int rc = dr_admin_bridge_claim(mb, NULL);

	cr_assert_eq(rc, 0, "claim: %s", dr_strerror(rc));
	rc = dr_admin_view_publish(mb, h, three(h), epoch);
	cr_assert_eq(rc, 0, "publish: %s", dr_strerror(rc));
	return mb;
}

/* A name of the form <prefix>.<i> that owner `who` owns, into buf. */
static inline void name_owned_by(dr_registry *r, const char *prefix, const char *who, char *buf,
			  size_t len)
{
	char got[DR_HOST_MAX + 1];

	for (int i = 0; i < 10000; i++) {
		snprintf(buf, len, "%s.%d", prefix, i);
		cr_assert_eq(dr_owner(r, buf, got, sizeof(got)), 0);
		if (strcmp(got, who) == 0)
			return;
	}
	cr_assert_fail("no name owned by %s", who);
}

#endif

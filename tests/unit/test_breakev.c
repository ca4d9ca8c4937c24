/*
 * test_breakev.c - faults an adversarial review found in the eviction of
 * drained lanes from a mailbox's lane table (lib/mailbox.c: lane_evict,
 * lane_claim, lane_detach_evicted, dri_lane_send, dri_take). Each test
 * fails on the commit it was written against; see the comment of each for
 * the interleaving.
 *
 * Linked with the crash-point build (distreg_crash): children arm a point
 * in stop mode (crash_arm), the test process runs the racing path while
 * they are paused, then releases them with SIGCONT.
 */
#include <signal.h>
#include <sys/mman.h>
#include <time.h>

#include "unit.h"

#include "segmap.h"

TestSuite(breakev, .timeout = 60.0, .fini = unit_fini);


struct kid {
	const char *seg;
	struct link l;
	uint32_t mboxes, lanes, lane_bytes;
	int32_t lane; /* the lane the child sent on (filler_child) */
	char text[16];
};

static struct kid *kid_new(const char *seg, uint32_t mboxes, uint32_t lanes, uint32_t lane_bytes)
{
	struct kid *k = mmap(NULL, sizeof(*k), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			     -1, 0);

	cr_assert_neq(k, MAP_FAILED);
	memset(k, 0, sizeof(*k));
	k->seg = seg;
	k->mboxes = mboxes;
	k->lanes = lanes;
	k->lane_bytes = lane_bytes;
	k->lane = -1;
	cr_assert_eq(pipe(k->l.up), 0);
	cr_assert_eq(pipe(k->l.down), 0);
	return k;
}

static void kid_free(struct kid *k)
{
	close(k->l.up[0]);
	close(k->l.up[1]);
	close(k->l.down[0]);
	close(k->l.down[1]);
	munmap(k, sizeof(*k));
}

static int kid_open(struct kid *k, dr_registry **r)
{
	return open_geo(k->seg, k->mboxes, k->lanes, k->lane_bytes, r);
}

/* The lane r's process owns (the first one), or -1. */
static int32_t own_lane(dr_registry *r)
{
	for (uint32_t i = 0; i < r->max_lanes; i++)
		if (__atomic_load_n(&dri_lane_at(r, i)->owner, __ATOMIC_ACQUIRE) == r->owner)
			return (int32_t)i;
	return -1;
}

/* Sends k->text to "m", notes its lane, says 's' and waits to be killed. */
static int filler_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;

	if (kid_open(k, &r) || dr_send(r, "m", k->text, strlen(k->text), 0))
		return 10;
	k->lane = own_lane(r);
	write_byte(k->l.up[1], 's');
	for (;;)
		pause();
}

/* Sends k->text to "m" with lane_evicting armed: it stops having marked a
 * drained lane. Released, says 'e' (or 'f' if the send failed). */
static int evictor_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;
	int rc;

	crash_arm("lane_evicting", "stop", 0);
	if (kid_open(k, &r))
		return 10;
	rc = dr_send(r, "m", k->text, strlen(k->text), 0);
	write_byte(k->l.up[1], rc == 0 ? 'e' : 'f');
	for (;;)
		pause();
}

/* The slot of mailbox m whose lane's tail carries DRI_LANE_EVICTED, or -1. */
static int marked_slot(dr_registry *r, struct dri_mbox *m)
{
	for (int s = 0; s < DRI_MBOX_LANES; s++) {
		uint32_t v = __atomic_load_n(&m->lane[s], __ATOMIC_ACQUIRE);

		if (v && (__atomic_load_n(&dri_lane_at(r, DRI_LV_LANE(v))->tail,
					  __ATOMIC_ACQUIRE) &
			  DRI_LANE_EVICTED))
			return s;
	}
	return -1;
}

#define NFILL DRI_MBOX_LANES

/* ---------------------------------------------------------------------- */
/*
 * Finding 1: the 16-bit lane generation wraps with claims that publish
 * nothing, and a paused evictor's slot CAS then detaches a lane holding an
 * unread record.
 *
 * 32 live senders fill the table of "m" with drained lanes. Evictor E
 * marks one of them, victim lane L (value LV(L, g)) in slot s, and pauses
 * at lane_evicting (after its tail CAS, before its slot CAS). The receiver
 * detaches the marked lane (dri_take), its sender dies and is reaped: L is
 * free, generation g. A worker then answers 65535 calls whose callers'
 * reply mailbox has closed: each dr_reply() claims L (gen++), finds the
 * opening gone, frees it: nothing is published, and the tail (and so the
 * evictor's tail CAS, already done) protects nothing. The next claim of L
 * has generation g + 65536: a sender attaches it in slot s and publishes
 * "lost". E resumes: its CAS of slot s from LV(L, g) succeeds, detaching L
 * with its unread record. "lost", reported sent to a live mailbox, is
 * never received.
 */
Test(breakev, a_paused_evictor_never_detaches_a_lane_with_an_unread_record_after_a_generation_wrap)
{
	const char *seg = seg_new("bev1");
	const uint32_t lanes = NFILL + 1;
	struct kid *fk[NFILL], *ek;
	pid_t fp[NFILL], ep;
	dr_registry *r;
	dr_mailbox *mb, *x;
	struct dri_mbox *m;
	struct dr_msg msg;
	uint32_t xref, v, L, g;
	int s, victim = -1, got_lost = 0, got_e = 0, rc;

	cr_assert_eq(open_geo(seg, 2, lanes, 4096, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "m", NULL, 0), 0);
	m = &r->mboxes[DRI_MBOX_IDX(mb->ref)];
	/* A closed opening: the reply mailbox of callers gone. */
	cr_assert_eq(dr_mailbox_open(r, &x), 0);
	xref = x->ref;
	dr_mailbox_close(x);

	for (int i = 0; i < NFILL; i++) {
		fk[i] = kid_new(seg, 2, lanes, 4096);
		snprintf(fk[i]->text, sizeof(fk[i]->text), "f%d", i);
		fp[i] = spawn(filler_child, fk[i]);
		expect_byte(&fk[i]->l, 's', fp[i], "filler");
	}
	for (int i = 0; i < NFILL; i++)
		cr_assert_eq(dr_recv(mb, &msg, WAIT_MS), 0);
	cr_assert_eq(dr_recv(mb, &msg, 0), -EAGAIN); /* the last room given back */

	ek = kid_new(seg, 2, lanes, 4096);
	strcpy(ek->text, "E");
	ep = spawn(evictor_child, ek);
	cr_assert_eq(wait_stopped(ep, WAIT_MS), 0, "evictor never reached lane_evicting");

	s = marked_slot(r, m);
	cr_assert_geq(s, 0, "no marked lane");
	v = m->lane[s];
	L = DRI_LV_LANE(v);
	g = DRI_MBOX_GEN(v);
	for (int i = 0; i < NFILL; i++)
		if (fk[i]->lane == (int32_t)L)
			victim = i;
	cr_assert_geq(victim, 0);

	/* The receiver lets the marked lane go; its sender dies, is reaped. */
	cr_assert_eq(dr_recv(mb, &msg, 0), -EAGAIN);
	cr_assert_eq(m->lane[s], 0u, "the receiver did not detach the marked lane");
	kill(fp[victim], SIGKILL);
	wait_child(fp[victim]);
	fp[victim] = -1;
	dr_reap(r, NULL);
	cr_assert_eq(dri_lane_at(r, L)->owner, 0u, "the victim lane was not freed");

	/* Late answers: each claims L and frees it, publishing nothing. */
	struct dr_msg late = { .kind = DR_MSG_CALL, .reply_to = xref, .call_id = 1 };
	int n = 0;
	while (((dri_lane_at(r, L)->gen + 1) & 0xffffu) != (g & 0xffffu)) {
		uint32_t before = dri_lane_at(r, L)->gen;

		rc = dr_reply(mb, &late, "x", 1);
		cr_assert_eq(rc, -ENOENT, "dr_reply to a closed caller: %s", dr_strerror(rc));
		cr_assert_eq(dri_lane_at(r, L)->gen, before + 1, "the late answer claimed another lane");
		n++;
	}

	/* A sender claims L (generation g again), attaches it in slot s. */
	cr_assert_eq(dr_send(r, "m", "lost", 4, 0), 0);
	cr_assert_eq(m->lane[s], v, "the next claim did not reuse slot s with value %#x", v);

	kill(ep, SIGCONT);
	{
		char c = 0;
		cr_assert_eq(read_byte_within(ek->l.up[0], &c, WAIT_MS), 1);
	}

	for (int i = 0; i < 4; i++) {
		rc = dr_recv(mb, &msg, 200);
		if (rc)
			break;
		if (msg.len == 4 && memcmp(msg.data, "lost", 4) == 0)
			got_lost++;
		if (msg.len == 1 && memcmp(msg.data, "E", 1) == 0)
			got_e++;
	}
	cr_assert_eq(got_lost, 1,
		     "a message dr_send() reported sent to a live mailbox is never received: "
		     "lane %u's generation wrapped after %d claims that published nothing, and "
		     "the paused evictor's CAS of slot %d from %#x detached it with the record",
		     L, n, s, v);

	kill(ep, SIGKILL);
	wait_child(ep);
	for (int i = 0; i < NFILL; i++) {
		if (fp[i] > 0) {
			kill(fp[i], SIGKILL);
			wait_child(fp[i]);
		}
		kid_free(fk[i]);
	}
	kid_free(ek);
	dr_mailbox_close(mb);
	dr_close(r);
	dr_unlink(seg);
}

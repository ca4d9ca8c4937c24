/*
 * test_crashpoints.c - every labelled crash point of the test build
 * (crashpoint.h), each after 0, 1 and 3 passes: a child runs a scenario that
 * passes every point at least four times and is killed with SIGKILL at the
 * chosen one; then a fresh process must find the segment sound.
 *
 * The cast, per run:
 *  B  a bystander: holds 8 names for the whole run; they must survive intact.
 *  D  a doomed process: holds 8 names and is SIGKILLed once C has opened the
 *     segment (so C's own dr_open() cannot reap them), leaving names for C
 *     to take over and to reap.
 *  C  the crasher, with DISTREG_CRASH_AT and DISTREG_CRASH_SKIP set. Phases:
 *     1 open;  2 register, re-register with another value, look up and
 *     unregister 4 names, then register 4 "keep" names;  3 take over 4 of
 *     D's names, let 4 short-lived processes attach and die (dead reader
 *     slots) and dr_reap() the other 4 names and those slots, then register
 *     4 names and leave them as an unlinker that died before retiring
 *     leaves them (marked, unlinked, allocated: found only by the
 *     allocator's scan);  4 fill the table to -ENOSPC and drain it, 4 times
 *     (reclamation);  5 open 4 more handles, register 3
 *     names on each and dr_close() it;  6 create 4 new segments, a name in
 *     each;  7 open a mailbox, serve a name through it, cast to it and
 *     receive, receive from it empty, call itself asynchronously through
 *     it, let a process cast to it and die and dr_reap() its lane, let
 *     33 handles of its own cast to it twice (more senders than a lane
 *     table has slots: drained lanes evicted), close it, 4 times;
 *     8 be the bridge: open a mailbox, claim the role, publish a view,
 *     cast to a global name another host owns (forwarded to its own
 *     mailbox), receive and decode that, release, 4 times;
 *     9 dr_close(). D also leaves 4 mailboxes with a message each.
 *  V  the verifier, a fresh process once C is dead: dr_open(), dr_reap(),
 *     dr_check() == 0, dr_stats() accounts for every entry and shows nothing
 *     dead, retired or in flight; B's names are intact with their values and
 *     regids, C's and D's are gone; once B has closed, all `capacity` names
 *     can be registered; the bridge role is free (or its holder dead), the
 *     view readable, and V can claim the role and publish past it; and each
 *     of C's new segments (whether its creator died in it or not) opens, is
 *     sound and left no temporary file.
 */
#include <linux/futex.h>

#include <distreg_admin.h>

#include "crashpoint.h"
#include "pausemix.h"
#include "segmap.h"
#include "stress.h"

TestSuite(crashpoints, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define CAPACITY 64
#define NB 8        /* B's names */
#define ND 8        /* D's names */
#define NKEEP 4     /* C's names kept across phases 2 to 7 */
#define NEVICT 33   /* phase 7's handles sending to one mailbox */
#define REPEAT 4    /* passes of each phase: crash skips 0, 1 and 3 */

struct crash {
	struct stress_report rep;
	char seg[64];
	char newseg[REPEAT][80];
	const char *point;
	int skip;
	bool stop;     /* stop mode: C pauses at the point, the mix runs, C goes on */
	int mix_on;    /* the mix runs (stop mode); C waits for its end at a step */
	struct pmix mix;
	pid_t b_pid, c_pid;
	uint64_t b_regid[NB];
	char lane_to[48]; /* the name a lane ghost casts to */
	int c_phase;   /* the phase C was in when it died */
	int c_step;    /* the step within that phase */
};

/* The pipes of the child being spawned, from the child's side. */
static int kid_rd = -1, kid_wr = -1;

struct kid {
	pid_t pid;
	int wr; /* parent -> child */
	int rd; /* child -> parent */
};

static struct kid spawn_kid(stress_child_fn fn, void *arg)
{
	int down[2], up[2];
	struct kid k;

	cr_assert_eq(pipe(down), 0);
	cr_assert_eq(pipe(up), 0);
	kid_rd = down[0];
	kid_wr = up[1];
	k.pid = stress_spawn(fn, arg);
	close(down[0]);
	close(up[1]);
	k.wr = down[1];
	k.rd = up[0];
	return k;
}

static void kid_close(struct kid *k)
{
	close(k->wr);
	close(k->rd);
}

/* Child side: tell the parent c, or wait for c from it. */
static void kid_say(struct stress_report *rep, char c)
{
	if (stress_write_byte(kid_wr, c))
		CHILD_FAIL(rep, "write to parent: %s", strerror(errno));
}

static void kid_await(struct stress_report *rep, char want)
{
	char c = 0;
	int rc = stress_read_byte(kid_rd, &c, STRESS_WAIT_S);

	if (rc != 1 || c != want)
		CHILD_FAIL(rep, "waiting for '%c' from the parent: got %d '%c'", want, rc, c);
}

/* Parent side. */
static void parent_await(struct kid *k, char want, const char *who, const struct stress_report *rep)
{
	char c = 0;
	int rc = stress_read_byte(k->rd, &c, STRESS_WAIT_S);

	cr_assert(rc == 1 && c == want, "waiting for '%c' from %s: got %d '%c'; report: %s", want,
		  who, rc, c, rep->msg);
}

static dr_registry *open_or_fail(struct crash *s, const char *segment)
{
	/* Lanes for phase 7's NEVICT handles and everyone else's. */
	struct dr_options o = {
		.segment = segment,
		.capacity = CAPACITY,
		.max_procs = STRESS_MAX_PROCS,
		.max_threads = STRESS_MAX_THREADS,
		.max_lanes = 64,
		.lane_bytes = 16384,
	};
	dr_registry *r = NULL;
	int rc = dr_open(&o, &r);

	if (rc)
		CHILD_FAIL(&s->rep, "dr_open(%s): %s", segment, dr_strerror(rc));
	return r;
}

/*
 * Stop mode: C, released while the mix still runs, finishes the call it was
 * paused in against the mix, then waits here, at its next step, until the
 * mix has ended, so that its exact expectations hold again. True if it had
 * to wait (the call before may have met a table the mix had filled).
 */
static bool step_gate(struct crash *s)
{
	double deadline = stress_now() + STRESS_WAIT_S;

	if (!s->stop || !__atomic_load_n(&s->mix_on, __ATOMIC_ACQUIRE))
		return false;
	while (__atomic_load_n(&s->mix_on, __ATOMIC_ACQUIRE)) {
		if (stress_now() > deadline)
			CHILD_FAIL(&s->rep, "C: the mix never ended");
		stress_sleep_us(1000);
	}
	return true;
}

static void reg_or_fail(struct crash *s, dr_registry *r, const char *name, uint32_t tag,
			uint64_t seq)
{
	struct stress_value v;
	int rc;

	do
		rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), tag, seq));
	while ((rc == -ENOSPC || rc == -EBUSY) && step_gate(s));

	if (rc)
		CHILD_FAIL(&s->rep, "phase %d: register %s: %s", s->c_phase, name, dr_strerror(rc));
}

/* ---------------------------------------------------------------------- */

static int bystander(void *arg)
{
	struct crash *s = arg;
	dr_registry *r = open_or_fail(s, s->seg);
	struct stress_value v;
	struct dr_entry e;
	char name[32], why[200];

	for (int i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "b.%d", i);
		reg_or_fail(s, r, name, 1, (uint64_t)i);
		if (dr_whereis(r, name, &e))
			CHILD_FAIL(&s->rep, "B: whereis %s", name);
		s->b_regid[i] = e.regid;
	}
	kid_say(&s->rep, 'r');
	kid_await(&s->rep, 'q');
	for (int i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "b.%d", i);
		if (dr_whereis(r, name, &e))
			CHILD_FAIL(&s->rep, "B: own name %s lost", name);
		if (e.pid != getpid() || e.regid != s->b_regid[i] ||
		    !stress_value_check(&e, name, &v, why, sizeof(why)) || v.seq != (uint64_t)i)
			CHILD_FAIL(&s->rep, "B: own name %s changed: pid %d regid %llu: %s", name,
				   (int)e.pid, (unsigned long long)e.regid, why);
	}
	dr_close(r);
	return 0;
}

static int doomed(void *arg)
{
	struct crash *s = arg;
	dr_registry *r = open_or_fail(s, s->seg);
	char name[32], c;

	for (int i = 0; i < ND; i++) {
		snprintf(name, sizeof(name), "d.%d", i);
		reg_or_fail(s, r, name, 2, (uint64_t)i);
	}
	/* Mailboxes, each with a message in a lane of D's own, for C to
	 * reap with D. */
	for (int i = 0; i < REPEAT; i++) {
		dr_mailbox *mb;
		int rc;

		struct stress_value v;

		snprintf(name, sizeof(name), "dm.%d", i);
		rc = dr_mailbox_open(r, &mb);
		if (!rc)
			rc = dr_serve(mb, name, &v, stress_value_make(&v, name, getpid(), 2, 50));
		if (!rc)
			rc = dr_cast(r, name, "x", 1, 0);
		if (rc)
			CHILD_FAIL(&s->rep, "D: mailbox %s: %s", name, dr_strerror(rc));
	}
	kid_say(&s->rep, 'r');
	(void)stress_read_byte(kid_rd, &c, STRESS_WAIT_S); /* SIGKILLed meanwhile */
	_exit(3);
}

#define STEP(ph, st) (step_gate(s), s->c_phase = (ph), s->c_step = (st))

/* A process that attaches and dies without dr_close(): its process and
 * reader slots are left for reaping. It must not stop or die at C's point. */
static int ghost(void *arg)
{
	struct crash *s = arg;

	struct dr_options o = {
		.segment = s->seg,
		.max_procs = STRESS_MAX_PROCS,
		.max_threads = STRESS_MAX_THREADS,
		.flags = DR_OPEN_NOREAP, /* D's names are C's to reap */
	};
	dr_registry *r;
	int rc;

	unsetenv("DISTREG_CRASH_AT");
	rc = dr_open(&o, &r);
	if (rc)
		CHILD_FAIL(&s->rep, "ghost: dr_open: %s", dr_strerror(rc));
	_exit(0);
}

/* A sender that dies: casts one message to the name C gives it (s->lane_to)
 * and waits to be killed, its lane left attached to C's mailbox. */
static int lane_ghost(void *arg)
{
	struct crash *s = arg;
	struct dr_options o = {
		.segment = s->seg,
		.max_procs = STRESS_MAX_PROCS,
		.max_threads = STRESS_MAX_THREADS,
		.flags = DR_OPEN_NOREAP,
	};
	dr_registry *r;
	int rc;

	unsetenv("DISTREG_CRASH_AT");
	rc = dr_open(&o, &r);
	if (!rc)
		rc = dr_cast(r, s->lane_to, "g", 1, 1000);
	if (rc)
		CHILD_FAIL(&s->rep, "lane ghost: %s", dr_strerror(rc));
	kid_say(&s->rep, 'c');
	for (;;)
		pause();
}

static int crasher(void *arg)
{
	struct crash *s = arg;
	struct stress_value v;
	struct dr_entry e;
	dr_registry *r, *h;
	char name[48], why[200], skip[16], c;
	uint64_t id;
	unsigned n;
	int rc;

	snprintf(skip, sizeof(skip), "%d", s->skip);
	setenv("DISTREG_CRASH_AT", s->point, 1);
	setenv("DISTREG_CRASH_SKIP", skip, 1);
	setenv("DISTREG_CRASH_MODE", s->stop ? "stop" : "kill", 1);

	STEP(1, 0);
	r = open_or_fail(s, s->seg);
	kid_say(&s->rep, 'o');
	kid_await(&s->rep, 'g'); /* D is dead now */

	for (int k = 0; k < REPEAT; k++) {
		snprintf(name, sizeof(name), "c.%d", k);
		STEP(2, 4 * k);
		reg_or_fail(s, r, name, 3, 1);
		STEP(2, 4 * k + 1);
		reg_or_fail(s, r, name, 3, 2);
		STEP(2, 4 * k + 2);
		rc = dr_whereis(r, name, &e);
		if (rc || e.pid != getpid() || !stress_value_check(&e, name, &v, why, sizeof(why)) ||
		    v.seq != 2)
			CHILD_FAIL(&s->rep, "phase 2: whereis %s after update: %s %s", name,
				   dr_strerror(rc), rc ? "" : why);
		STEP(2, 4 * k + 3);
		rc = dr_unregister(r, name);
		if (rc)
			CHILD_FAIL(&s->rep, "phase 2: unregister %s: %s", name, dr_strerror(rc));
	}
	for (int k = 0; k < NKEEP; k++) {
		snprintf(name, sizeof(name), "keep.%d", k);
		STEP(2, 100 + k);
		reg_or_fail(s, r, name, 3, (uint64_t)k);
	}

	for (int k = 0; k < ND / 2; k++) {
		snprintf(name, sizeof(name), "d.%d", k);
		STEP(3, k);
		reg_or_fail(s, r, name, 3, 10);
	}
	for (int k = 0; k < 4; k++) {
		STEP(3, 50 + k);
		pid_t g = stress_spawn(ghost, s);
		if (stress_wait(g, STRESS_WAIT_S) != 0)
			CHILD_FAIL(&s->rep, "phase 3: a short-lived process failed");
	}
	STEP(3, 100);
	rc = dr_reap(r, &n);
	/* In stop mode the mix may have reaped some of D's names already, and
	 * left dead processes' names of its own: D's must be gone, whoever
	 * reaped them. */
	if (rc || (!s->stop && n != ND / 2 + REPEAT))
		CHILD_FAIL(&s->rep, "phase 3: dr_reap: %s, %u names reaped, want %d", dr_strerror(rc), n,
			   ND / 2 + REPEAT);
	for (int k = ND / 2; k < ND; k++) {
		snprintf(name, sizeof(name), "d.%d", k);
		if (dr_whereis(r, name, NULL) != -ENOENT)
			CHILD_FAIL(&s->rep, "phase 3: %s still there after dr_reap", name);
	}
	{
		size_t len;
		uint8_t *base = segmap_open(s->seg, &len);

		if (!base)
			CHILD_FAIL(&s->rep, "phase 3: map the segment: %s", strerror(errno));
		for (int k = 0; k < 4; k++) {
			struct dri_entry *e;

			snprintf(name, sizeof(name), "m.%d", k);
			STEP(3, 200 + k);
			reg_or_fail(s, r, name, 3, 20);
			step_gate(s); /* no mix while links are rewritten by hand */
			e = segmap_entry(base, name);
			if (!e)
				CHILD_FAIL(&s->rep, "phase 3: %s not found in the mapping", name);
			segmap_mark_unlinked(base, e);
		}
		munmap(base, len);
	}

	/* B's 8, our 4 kept and 4 taken over are live: 48 entries remain. */
	for (int k = 0; k < REPEAT; k++) {
		const int room = CAPACITY - NB - NKEEP - ND / 2;
		int got = 0;

		STEP(4, 2 * k);
		for (int i = 0; i < CAPACITY; i++) {
			snprintf(name, sizeof(name), "fill.%d.%d", k, i);
			step_gate(s);
			rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), 3, (uint64_t)i));
			if ((rc == -ENOSPC || rc == -EBUSY) && step_gate(s)) {
				i--; /* the mix had the table: again, now it is gone */
				continue;
			}
			if (rc == -ENOSPC)
				break;
			if (rc)
				CHILD_FAIL(&s->rep, "phase 4: register %s: %s", name, dr_strerror(rc));
			got++;
		}
		if (got != room)
			CHILD_FAIL(&s->rep, "phase 4, round %d: %d names fit, want %d", k, got, room);
		STEP(4, 2 * k + 1);
		for (int i = 0; i < got; i++) {
			snprintf(name, sizeof(name), "fill.%d.%d", k, i);
			rc = dr_unregister(r, name);
			if (rc)
				CHILD_FAIL(&s->rep, "phase 4: unregister %s: %s", name, dr_strerror(rc));
		}
	}

	for (int k = 0; k < REPEAT; k++) {
		STEP(5, 2 * k);
		h = open_or_fail(s, s->seg);
		for (int i = 0; i < 3; i++) {
			snprintf(name, sizeof(name), "e.%d.%d", k, i);
			reg_or_fail(s, h, name, 4, (uint64_t)i);
		}
		STEP(5, 2 * k + 1);
		dr_close(h);
		snprintf(name, sizeof(name), "e.%d.0", k);
		if (dr_whereis(r, name, NULL) != -ENOENT)
			CHILD_FAIL(&s->rep, "phase 5: %s survived dr_close() of its handle", name);
	}

	for (int k = 0; k < REPEAT; k++) {
		STEP(6, k);
		h = open_or_fail(s, s->newseg[k]);
		reg_or_fail(s, h, "f", 5, 0);
		dr_close(h);
	}

	for (int k = 0; k < REPEAT; k++) {
		dr_mailbox *mb;
		struct dr_msg m;

		snprintf(name, sizeof(name), "cm.%d", k);
		STEP(7, 10 * k);
		rc = dr_mailbox_open(r, &mb);
		if (rc)
			CHILD_FAIL(&s->rep, "phase 7: dr_mailbox_open: %s", dr_strerror(rc));
		STEP(7, 10 * k + 1);
		rc = dr_serve(mb, name, &v, stress_value_make(&v, name, getpid(), 7, (uint64_t)k));
		if (rc)
			CHILD_FAIL(&s->rep, "phase 7: serve %s: %s", name, dr_strerror(rc));
		for (int j = 0; j < REPEAT; j++) {
			STEP(7, 10 * k + 2 + j);
			rc = dr_cast(r, name, &j, sizeof(j), 1000);
			if (rc)
				CHILD_FAIL(&s->rep, "phase 7: cast %d to %s: %s", j, name,
					   dr_strerror(rc));
		}
		for (int j = 0; j < REPEAT; j++) {
			STEP(7, 10 * k + 6);
			rc = dr_recv(mb, &m, 1000);
			if (rc || m.kind != DR_MSG_CAST || m.len != sizeof(j) ||
			    memcmp(m.data, &j, sizeof(j)) != 0)
				CHILD_FAIL(&s->rep, "phase 7: message %d of %s: %s", j, name,
					   dr_strerror(rc));
		}
		/* Nothing waits: a wait that finds nothing (wait_empty). */
		STEP(7, 10 * k + 7);
		rc = dr_recv(mb, &m, 1);
		if (rc != -ETIMEDOUT)
			CHILD_FAIL(&s->rep, "phase 7: an empty receive on %s: %s", name,
				   dr_strerror(rc));
		/* An asynchronous call to ourselves (async_sent), answered. */
		STEP(7, 10 * k + 8);
		rc = dr_call_async(mb, name, "a", 1, 1000, &id);
		if (!rc)
			rc = dr_recv(mb, &m, 1000);
		if (!rc && m.kind == DR_MSG_CALL)
			rc = dr_reply(mb, &m, "A", 1);
		if (!rc)
			rc = dr_recv(mb, &m, 1000);
		if (rc || m.kind != DR_MSG_REPLY || m.call_id != id || m.status != 0)
			CHILD_FAIL(&s->rep, "phase 7: an async call to %s: %s", name, dr_strerror(rc));
		/* A sender that dies with its drained lane attached to our
		 * mailbox, which a reaper frees (reap_lane). */
		STEP(7, 10 * k + 9);
		snprintf(s->lane_to, sizeof(s->lane_to), "%s", name);
		{
			int rd = kid_rd, wr = kid_wr; /* ours, to the parent */
			struct kid g = spawn_kid(lane_ghost, s);

			kid_rd = rd;
			kid_wr = wr;

			if (stress_read_byte(g.rd, &c, STRESS_WAIT_S) != 1 || c != 'c')
				CHILD_FAIL(&s->rep, "phase 7: the lane ghost did not cast");
			rc = dr_recv(mb, &m, 1000);
			if (rc || m.kind != DR_MSG_CAST)
				CHILD_FAIL(&s->rep, "phase 7: the ghost's cast: %s", dr_strerror(rc));
			(void)dr_recv(mb, &m, 0); /* drained: its room given back */
			kill(g.pid, SIGKILL);
			stress_wait(g.pid, STRESS_WAIT_S);
			kid_close(&g);
			rc = dr_reap(r, NULL);
			if (rc)
				CHILD_FAIL(&s->rep, "phase 7: dr_reap: %s", dr_strerror(rc));
		}
		/* More senders than the lane table has slots (32), each
		 * drained before the next sends: each round evicts
		 * (lane_evicting, lane_evicted), and every message still
		 * arrives once, in order. */
		STEP(7, 10 * k + 9);
		{
			dr_registry *hs[NEVICT];

			for (int j = 0; j < NEVICT; j++)
				hs[j] = open_or_fail(s, s->seg);
			for (int round = 0; round < 2; round++) {
				for (int j = 0; j < NEVICT; j++) {
					int tag = round * NEVICT + j;

					rc = dr_cast(hs[j], name, &tag, sizeof(tag), 1000);
					if (rc)
						CHILD_FAIL(&s->rep, "phase 7: handle %d's cast %d: %s", j,
							   round, dr_strerror(rc));
					rc = dr_recv(mb, &m, 1000);
					if (rc || m.kind != DR_MSG_CAST || m.len != sizeof(tag) ||
					    memcmp(m.data, &tag, sizeof(tag)) != 0)
						CHILD_FAIL(&s->rep, "phase 7: handle %d's message %d: %s",
							   j, round, dr_strerror(rc));
				}
			}
			(void)dr_recv(mb, &m, 0); /* the last one's room given back */
			for (int j = 0; j < NEVICT; j++)
				dr_close(hs[j]);
		}
		STEP(7, 10 * k + 10);
		dr_mailbox_close(mb);
		if (dr_whereis(r, name, NULL) != -ENOENT)
			CHILD_FAIL(&s->rep, "phase 7: %s outlived its mailbox", name);
	}

	for (int k = 0; k < REPEAT; k++) {
		struct dr_host h[2];
		dr_mailbox *mb;
		struct dr_msg m;
		struct dr_fwd f;
		char id[DR_HOST_MAX + 1];
		pid_t holder = 0;

		STEP(8, 10 * k);
		rc = dr_mailbox_open(r, &mb);
		if (rc)
			CHILD_FAIL(&s->rep, "phase 8: dr_mailbox_open: %s", dr_strerror(rc));
		STEP(8, 10 * k + 1);
		do
			rc = dr_admin_bridge_claim(mb, &holder);
		while ((rc == -ENOSPC || rc == -EBUSY) && holder == 0 && step_gate(s));
		if (rc)
			CHILD_FAIL(&s->rep, "phase 8: claim: %s (holder %d)", dr_strerror(rc),
				   (int)holder);
		STEP(8, 10 * k + 2);
		memset(h, 0, sizeof(h));
		snprintf(h[0].id, sizeof(h[0].id), "c.self");
		snprintf(h[1].id, sizeof(h[1].id), "c.peer");
		h[0].state = h[1].state = DR_HOST_UP;
		h[0].self = 1;
		h[1].incarnation = (uint64_t)k;
		rc = dr_admin_view_publish(mb, h, 2, (uint64_t)k + 1);
		if (rc)
			CHILD_FAIL(&s->rep, "phase 8: publish epoch %d: %s", k + 1, dr_strerror(rc));
		STEP(8, 10 * k + 3);
		for (int i = 0;; i++) {
			snprintf(name, sizeof(name), "cg.%d", i);
			rc = dr_owner(r, name, id, sizeof(id));
			if (rc)
				CHILD_FAIL(&s->rep, "phase 8: dr_owner: %s", dr_strerror(rc));
			if (strcmp(id, "c.peer") == 0)
				break;
		}
		rc = dr_cast_global(r, name, &k, sizeof(k), 1000);
		if (rc)
			CHILD_FAIL(&s->rep, "phase 8: cast to %s: %s", name, dr_strerror(rc));
		STEP(8, 10 * k + 4);
		rc = dr_recv(mb, &m, 1000);
		if (!rc)
			rc = dr_admin_fwd_decode(&m, &f);
		if (rc || f.op != DR_FWD_CAST || strcmp(f.host, "c.peer") != 0 ||
		    f.name_len != strlen(name) || f.len != sizeof(k) || memcmp(f.data, &k, sizeof(k)))
			CHILD_FAIL(&s->rep, "phase 8: the forwarded cast %d: %s", k, dr_strerror(rc));
		STEP(8, 10 * k + 5);
		dr_admin_bridge_release(mb);
		if (dr_owner(r, name, id, sizeof(id)) != -ENOTCONN)
			CHILD_FAIL(&s->rep, "phase 8: a bridge still runs after release");
		STEP(8, 10 * k + 6);
		dr_mailbox_close(mb);
	}

	STEP(9, 0);
	dr_close(r);
	STEP(10, 0);
	return 0; /* the point was never reached: the parent fails the test */
}

/* ---------------------------------------------------------------------- */

struct walk {
	pid_t b_pid;
	int n;
	char why[160];
};

static int walk_fn(const struct dr_name_info *info, void *arg)
{
	struct walk *w = arg;

	w->n++;
	if (!info->alive || info->entry.pid != w->b_pid || info->name_len != 3 ||
	    memcmp(info->name, "b.", 2) != 0) {
		snprintf(w->why, sizeof(w->why), "unexpected name %.*s (pid %d, alive %d)",
			 (int)info->name_len, (const char *)info->name, (int)info->entry.pid,
			 info->alive);
		return 1;
	}
	return 0;
}

#define V_CHECK(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond))                                                                       \
			CHILD_FAIL(&s->rep, "V after %s/%d: " __VA_ARGS__);                        \
	} while (0)

static void stats_or_fail(struct crash *s, dr_registry *r, struct dr_stats *st, const char *when)
{
	int rc = dr_stats(r, st);

	if (rc)
		CHILD_FAIL(&s->rep, "V: dr_stats %s: %s", when, dr_strerror(rc));
	if (st->live + st->dead + st->retired + st->inflight + st->free_entries != CAPACITY)
		CHILD_FAIL(&s->rep,
			   "V after %s/%d, %s: entries leaked: live %u dead %u retired %u inflight %u "
			   "free %u, capacity %u", s->point, s->skip, when, st->live, st->dead,
			   st->retired, st->inflight, st->free_entries, CAPACITY);
}

static int verifier(void *arg)
{
	struct crash *s = arg;
	struct walk w = { .b_pid = s->b_pid };
	struct stress_value v;
	struct dr_stats st;
	struct dr_entry e;
	dr_registry *r;
	char name[48], why[200], msg[256];
	static const char *const gone[] = { "keep.%d", "c.%d", "d.%d", "fill.0.%d", "e.0.%d", "m.%d",
					    "cm.%d", "dm.%d" };
	unsigned n;
	int rc;

	r = open_or_fail(s, s->seg);
	rc = dr_reap(r, &n);
	V_CHECK(rc == 0, "dr_reap: %s", s->point, s->skip, dr_strerror(rc));
	rc = dr_check(r, msg, sizeof(msg));
	V_CHECK(rc == 0, "dr_check: %s", s->point, s->skip, msg);
	stats_or_fail(s, r, &st, "reap");
	V_CHECK(st.live == NB && st.dead == 0 && st.retired == 0 && st.inflight == 0 &&
		st.free_entries == CAPACITY - NB,
		"after dr_reap: live %u (want %d) dead %u retired %u inflight %u free %u",
		s->point, s->skip, st.live, NB, st.dead, st.retired, st.inflight, st.free_entries);
	V_CHECK(st.mailboxes == 0 && st.lanes == 0, "%u mailboxes and %u lanes left after dr_reap",
		s->point, s->skip, st.mailboxes, st.lanes);
	V_CHECK(st.procs == 2, "%u live processes attached, want 2 (B and V)", s->point, s->skip,
		st.procs);
	rc = dr_foreach(r, walk_fn, &w);
	V_CHECK(rc == 0 && w.n == NB, "dr_foreach: %d names, %s", s->point, s->skip, w.n, w.why);
	for (int i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "b.%d", i);
		rc = dr_whereis(r, name, &e);
		V_CHECK(rc == 0, "B's %s lost: %s", s->point, s->skip, name, dr_strerror(rc));
		V_CHECK(e.pid == s->b_pid && e.regid == s->b_regid[i] &&
			stress_value_check(&e, name, &v, why, sizeof(why)) && v.seq == (uint64_t)i &&
			v.tag == 1, "B's %s changed: pid %d regid %llu: %s", s->point, s->skip, name,
			(int)e.pid, (unsigned long long)e.regid, why);
	}
	for (size_t g = 0; g < sizeof(gone) / sizeof(gone[0]); g++) {
		for (int i = 0; i < 8; i++) {
			snprintf(name, sizeof(name), gone[g], i);
			rc = dr_whereis(r, name, &e);
			V_CHECK(rc == -ENOENT, "dead process's %s still there (pid %d)", s->point,
				s->skip, name, rc == 0 ? (int)e.pid : 0);
		}
	}

	/* The bridge role: free, or its holder (C) dead; the view readable,
	 * whole, at the epoch C last published whole (or none); V takes the
	 * role over and publishes past it; then it lets the role go, so that
	 * every entry is free for the churn below. */
	{
		struct dr_host h[4];
		dr_mailbox *mb;
		uint64_t epoch = 99;
		size_t nh = 0;
		char id[DR_HOST_MAX + 1];
		pid_t holder = 0;

		rc = dr_hosts(r, h, 4, &nh, &epoch);
		V_CHECK(rc == 0 || rc == -ENOTCONN, "dr_hosts: %s", s->point, s->skip,
			dr_strerror(rc));
		V_CHECK(epoch <= REPEAT && nh >= 1 && nh <= 2, "the view: epoch %llu, %zu hosts",
			s->point, s->skip, (unsigned long long)epoch, nh);
		V_CHECK(epoch == 0 || (strcmp(h[0].id, "c.self") == 0 && h[1].incarnation == epoch - 1),
			"the view of epoch %llu is not the one C published", s->point, s->skip,
			(unsigned long long)epoch);
		rc = dr_mailbox_open(r, &mb);
		V_CHECK(rc == 0, "dr_mailbox_open: %s", s->point, s->skip, dr_strerror(rc));
		rc = dr_admin_bridge_claim(mb, &holder);
		V_CHECK(rc == 0, "claim the bridge role: %s (holder %d)", s->point, s->skip,
			dr_strerror(rc), (int)holder);
#ifdef DRI_LIVE_WORD
		/* Whatever C held, V now holds the role's liveness lock and is
		 * named by it (a lock C died holding is taken over). */
		{
			uint32_t lw = CMM_LOAD_SHARED(*DRI_LIVE_WORD(r->cluster));
			uint64_t live = CMM_LOAD_SHARED(r->cluster->live);
			char task[64];

			snprintf(task, sizeof(task), "/proc/self/task/%u", lw & FUTEX_TID_MASK);
			V_CHECK(!(lw & FUTEX_OWNER_DIED) && (lw & FUTEX_TID_MASK) &&
					access(task, F_OK) == 0 &&
					live == ((uint64_t)(lw & FUTEX_TID_MASK) << DRI_LIVE_TID_SHIFT |
						 r->cluster->owner),
				"the role's liveness lock: word %x, live %llx", s->point, s->skip, lw,
				(unsigned long long)live);
		}
#endif
		memset(h, 0, sizeof(h));
		snprintf(h[0].id, sizeof(h[0].id), "v.self");
		h[0].state = DR_HOST_UP;
		h[0].self = 1;
		rc = dr_admin_view_publish(mb, h, 1, epoch + 1);
		V_CHECK(rc == 0, "publish epoch %llu: %s", s->point, s->skip,
			(unsigned long long)epoch + 1, dr_strerror(rc));
		rc = dr_owner(r, "anything", id, sizeof(id));
		V_CHECK(rc == 0 && strcmp(id, "v.self") == 0, "dr_owner: %s %s", s->point, s->skip,
			dr_strerror(rc), rc ? "" : id);
		rc = dr_check(r, msg, sizeof(msg));
		V_CHECK(rc == 0, "dr_check as the bridge: %s", s->point, s->skip, msg);
		dr_mailbox_close(mb);
	}

	/* B leaves; then every entry must be usable again. */
	kid_say(&s->rep, 'c');
	kid_await(&s->rep, 'g');
	for (int i = 0; i < CAPACITY; i++) {
		snprintf(name, sizeof(name), "churn.%d", i);
		rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), 6, (uint64_t)i));
		V_CHECK(rc == 0, "full-capacity churn: register %s (%d of %d): %s", s->point, s->skip,
			name, i + 1, CAPACITY, dr_strerror(rc));
	}
	stats_or_fail(s, r, &st, "churn");
	V_CHECK(st.live == CAPACITY && st.free_entries == 0, "full table: live %u free %u",
		s->point, s->skip, st.live, st.free_entries);
	rc = dr_check(r, msg, sizeof(msg));
	V_CHECK(rc == 0, "dr_check of the full table: %s", s->point, s->skip, msg);
	for (int i = 0; i < CAPACITY; i++) {
		snprintf(name, sizeof(name), "churn.%d", i);
		rc = dr_unregister(r, name);
		V_CHECK(rc == 0, "unregister %s: %s", s->point, s->skip, name, dr_strerror(rc));
	}
	rc = dr_reap(r, NULL);
	V_CHECK(rc == 0, "dr_reap: %s", s->point, s->skip, dr_strerror(rc));
	stats_or_fail(s, r, &st, "drain");
	V_CHECK(st.free_entries == CAPACITY, "after the drain %u entries free, want %u", s->point,
		s->skip, st.free_entries, CAPACITY);
	dr_close(r);

	/* C's new segments, including one whose creator C died in. */
	for (int k = 0; k < REPEAT; k++) {
		r = open_or_fail(s, s->newseg[k]);
		rc = dr_check(r, msg, sizeof(msg));
		V_CHECK(rc == 0, "dr_check of %s: %s", s->point, s->skip, s->newseg[k], msg);
		rc = dr_whereis(r, "f", &e);
		V_CHECK(rc == -ENOENT, "%s: C's name f still there", s->point, s->skip, s->newseg[k]);
		rc = dr_register(r, "v", &v, stress_value_make(&v, "v", getpid(), 6, 0));
		V_CHECK(rc == 0, "%s: register: %s", s->point, s->skip, s->newseg[k], dr_strerror(rc));
		rc = dr_stats(r, &st);
		V_CHECK(rc == 0 && st.capacity == CAPACITY, "%s: capacity %u", s->point, s->skip,
			s->newseg[k], st.capacity);
		dr_close(r);
		rc = seg_tmp_files(s->newseg[k], false);
		V_CHECK(rc == 0, "%s: %d temporary files left", s->point, s->skip, s->newseg[k], rc);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */

static const char *const phase_names[] = {
	"", "open", "register/update/unregister", "takeover/reap", "fill/drain",
	"extra handles", "new segments", "mailboxes", "bridge", "close", "finished",
};

/*
 * Stop mode, the parent's side: wait until C stops (at its point), sends a
 * byte, or ends. Returns 's' when stopped, 'b' with the byte in *ch, or 'e'
 * with its status in *st.
 */
static char await_c(struct kid *c, char *ch, int *st)
{
	double deadline = stress_now() + STRESS_WAIT_S;

	for (;;) {
		int w;
		pid_t p = waitpid(c->pid, &w, WUNTRACED | WNOHANG);

		if (p == c->pid) {
			if (WIFSTOPPED(w))
				return 's';
			*st = stress_status(w);
			return 'e';
		}
		if (stress_read_byte(c->rd, ch, 0.005) == 1)
			return 'b';
		cr_assert_lt(stress_now(), deadline, "C neither stopped, answered nor ended");
	}
}

/*
 * C stands paused at its point: run the mix on its segment, release C while
 * the mix still runs (C finishes the paused call against it, then waits for
 * the mix's end at its next step), then stop the mix.
 */
static void pause_mix(struct crash *s, struct kid *c)
{
	unsigned ms = stress_short() ? 60 : 300;

	__atomic_store_n(&s->mix_on, 1, __ATOMIC_RELEASE);
	pmix_start(&s->mix, s->seg, &s->rep);
	stress_sleep_us(ms * 1000);
	cr_assert_eq(kill(c->pid, SIGCONT), 0);
	pmix_run_stop(&s->mix, ms);
	__atomic_store_n(&s->mix_on, 0, __ATOMIC_RELEASE);
}

/*
 * One run. Returns false if C finished without reaching the point (allowed
 * only when !must_reach: then the segment is still verified). In stop mode
 * C pauses at the point while the mix runs, then finishes every phase.
 */
static bool crash_run(const char *point, int skip, bool stop, bool must_reach)
{
	struct crash *s = stress_shared(sizeof(*s));
	struct kid b, d, c, v;
	bool reached, paused = false;
	char ch = 0, ev;
	int st = 0, rc;

	snprintf(s->seg, sizeof(s->seg), "%s", seg_new("crash"));
	for (int k = 0; k < REPEAT; k++) {
		snprintf(s->newseg[k], sizeof(s->newseg[k]), "%s.n%d", s->seg, k);
		seg_track(s->newseg[k]);
	}
	s->point = point;
	s->skip = skip;
	s->stop = stop;

	b = spawn_kid(bystander, s);
	s->b_pid = b.pid;
	parent_await(&b, 'r', "B", &s->rep);
	d = spawn_kid(doomed, s);
	parent_await(&d, 'r', "D", &s->rep);
	c = spawn_kid(crasher, s);
	s->c_pid = c.pid;
	if (stop) {
		ev = await_c(&c, &ch, &st);
		if (ev == 's') { /* in dr_open */
			pause_mix(s, &c);
			paused = true;
			ev = await_c(&c, &ch, &st);
		}
		cr_assert(ev == 'b' && ch == 'o', "C: %c '%c' status %d; report: %s", ev, ch, st,
			  s->rep.msg);
		rc = 1;
	} else {
		rc = stress_read_byte(c.rd, &ch, STRESS_WAIT_S);
		cr_assert(rc == 0 || (rc == 1 && ch == 'o'), "C: %d '%c'; report: %s", rc, ch,
			  s->rep.msg);
	}
	kill(d.pid, SIGKILL);
	st = stress_wait(d.pid, STRESS_WAIT_S);
	cr_assert_eq(st, 128 + SIGKILL, "D ended with %d", st);
	if (rc == 1)
		cr_assert_eq(stress_write_byte(c.wr, 'g'), 0);
	ev = 0;
	if (stop && !paused) {
		ev = await_c(&c, &ch, &st);
		if (ev == 's') {
			pause_mix(s, &c);
			paused = true;
		}
	}
	if (ev != 'e') /* else await_c reaped it and st is its status */
		st = stress_wait(c.pid, STRESS_WAIT_S);
	ASSERT_REPORT_CLEAN(&s->rep);
	if (stop) {
		cr_assert(paused || !must_reach, "%s with skip %d: never reached (C finished every phase)",
			  point, skip);
		cr_assert_eq(st, 0, "%s with skip %d: C, paused and released, ended with %d in phase %d (%s) step %d",
			     point, skip, st, s->c_phase, phase_names[s->c_phase], s->c_step);
	} else {
		cr_assert(st != 0 || !must_reach, "%s with skip %d: never reached (C finished every phase)",
			  point, skip);
		cr_assert(st == 128 + SIGKILL || st == 0, "%s with skip %d: C ended with %d in phase %d (%s) step %d",
			  point, skip, st, s->c_phase, phase_names[s->c_phase], s->c_step);
		if (st == 128 + SIGKILL)
			cr_log_info("%s/%d: C killed in phase %s, step %d", point, skip,
				    phase_names[s->c_phase], s->c_step);
	}

	v = spawn_kid(verifier, s);
	parent_await(&v, 'c', "V", &s->rep);
	cr_assert_eq(stress_write_byte(b.wr, 'q'), 0);
	st = stress_wait(b.pid, STRESS_WAIT_S);
	cr_assert_eq(st, 0, "B ended with %d: %s", st, s->rep.msg);
	cr_assert_eq(stress_write_byte(v.wr, 'g'), 0);
	st = stress_wait(v.pid, STRESS_WAIT_S);
	ASSERT_REPORT_CLEAN(&s->rep);
	cr_assert_eq(st, 0, "V ended with %d", st);

	reached = stop ? paused : s->c_phase != 10;
	kid_close(&b);
	kid_close(&d);
	kid_close(&c);
	kid_close(&v);
	munmap(s, sizeof(*s));
	stress_fini(); /* the next run makes new segments */
	return reached;
}

/*
 * Skips 0, 1 and 3 must reach every point. The full mode then goes on with
 * growing skips, into later phases, until the scenario passes the point
 * fewer times than that.
 */
static void crash_point(const char *point, bool stop)
{
	static const int skips[] = { 0, 1, 3 };
	static const int more[] = { 5, 8, 13, 21, 34, 55, 89, 144, 233 };

	for (size_t i = 0; i < sizeof(skips) / sizeof(skips[0]); i++)
		crash_run(point, skips[i], stop, true);
	if (stress_short() || getenv("DISTREG_STRESS_ITERATIONS"))
		return;
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		if (!crash_run(point, more[i], stop, false))
			break;
}

/* Two tests per crash point, generated from the list itself: killed there
 * (suite crashpoints), and paused there while the mix runs (pausepoints). */
TestSuite(pausepoints, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define CRASH_TEST(name)                                                                           \
	Test(crashpoints, name)                                                                    \
	{                                                                                          \
		crash_point(#name, false);                                                         \
	}                                                                                          \
	Test(pausepoints, name)                                                                    \
	{                                                                                          \
		crash_point(#name, true);                                                          \
	}
DRI_CRASHPOINTS(CRASH_TEST)

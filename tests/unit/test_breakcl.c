/*
 * test_breakcl.c - faults an adversarial review found in the cluster side
 * of the library (lib/bridge.c, lib/cluster.c, lib/global.c) and in the
 * mailbox code its merge touched (lib/mailbox.c, lib/call.c). Each test
 * fails on the commit it was written against; see the comment of each for
 * the interleaving.
 *
 * Linked with the crash-point build (distreg_crash): children arm a point
 * in stop mode (or a thread of theirs in sleep mode), the test process
 * runs the racing path while they are paused, then releases them.
 * Children report through their exit status and pipes only (unit.h).
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>

#include <distreg_admin.h>

#include "unit.h"

#include "segmap.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

TestSuite(breakcl, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

#include "cluster_unit.h"

/* What a child is told and tells, in shared memory. */
struct shared {
	char seg[DR_SEGMENT_MAX + 1];
	char name[64];
	char point[32];
	char mode[32];
	int op;
	int rc;
	struct link l;        /* its pipes */
};

static struct shared *shared_new(const char *seg)
{
	struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(s, MAP_FAILED);
	memset(s, 0, sizeof(*s));
	snprintf(s->seg, sizeof(s->seg), "%s", seg);
	link_init(&s->l);
	return s;
}

static void shared_free(struct shared *s)
{
	link_close(&s->l);
	munmap(s, sizeof(*s));
}

__attribute__((unused)) static int await(struct shared *s, char want)
{
	char c;

	return read_byte_within(s->l.down[0], &c, WAIT_MS) == 1 && c == want ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* Finding 1: a bridge that goes between resolve and send: -ENOENT. */

#define OP_CALL 1
#define OP_WHEREIS 2
#define OP_CAST 3

/* Opens the segment, arms s->point in stop mode, then runs s->op on the
 * global name s->name (owned by another host: through the bridge); its
 * result goes to s->rc. */
static int global_sender_child(void *arg)
{
	struct shared *s = arg;
	dr_registry *r;
	char buf[64];
	size_t len = sizeof(buf);

	if (open_g(s->seg, &r))
		return 10;
	crash_arm(s->point, s->mode, 0);
	switch (s->op) {
	case OP_CALL:
		s->rc = dr_call_global(r, s->name, "q", 1, buf, &len, 2000);
		break;
	case OP_WHEREIS:
		s->rc = dr_whereis_global(r, s->name, NULL, NULL, 0, 2000);
		break;
	default:
		s->rc = dr_cast_global(r, s->name, "q", 1, 0);
		break;
	}
	dr_close(r);
	return 0;
}

static void bridge_goes_after_resolve(int op, const char *tag)
{
	const char *seg = seg_new(tag);
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1);
	struct shared *s = shared_new(seg);
	char id[DR_HOST_MAX + 1];
	pid_t kid;
	int st;

	name_owned_by(r, "f", "beta", s->name, sizeof(s->name));
	snprintf(s->point, sizeof(s->point), "fwd_resolved");
	snprintf(s->mode, sizeof(s->mode), "stop");
	s->op = op;
	s->rc = 1;
	kid = spawn(global_sender_child, s);
	cr_assert_eq(wait_stopped(kid, WAIT_MS), 0, "the sender never reached fwd_resolved");

	/* The bridge stops cleanly while the sender stands between finding
	 * the bridge's mailbox and writing to it. */
	dr_mailbox_close(b);
	cr_assert_eq(dr_owner(r, s->name, id, sizeof(id)), -ENOTCONN,
		     "no bridge runs now");

	kill(kid, SIGCONT);
	st = wait_child(kid);
	cr_assert_eq(st, 0, "sender child status %d", st);
	cr_assert_eq(s->rc, -ENOTCONN,
		     "op %d through a bridge that stopped between resolve and send: %d (%s), "
		     "want -ENOTCONN (-ENOENT says the name is not served on its owner)",
		     op, s->rc, dr_strerror(s->rc));
	shared_free(s);
	dr_close(r);
	dr_unlink(seg);
}

/*
 * dri_send() (lib/call.c) resolves the bridge's address, checks that its
 * mailbox is the live role holder's (else -ENOTCONN), and then
 * dri_lane_send() claims a lane to that mailbox. If the bridge closes its
 * mailbox in between (the sender paused at fwd_resolved), lane_claim()
 * finds the opening gone and returns -ENOENT, which dri_send() passes on:
 * dr_call_global() and dr_whereis_global() report -ENOENT ("the name is not
 * served on its owner") for a name nobody asked the owner about, where
 * distreg.h promises -ENOTCONN when no bridge runs.
 */
Test(breakcl, a_call_through_a_bridge_that_stops_before_the_send_is_enotconn)
{
	bridge_goes_after_resolve(OP_CALL, "bc1a");
}

Test(breakcl, a_lookup_through_a_bridge_that_stops_before_the_send_is_enotconn)
{
	bridge_goes_after_resolve(OP_WHEREIS, "bc1b");
}

Test(breakcl, a_cast_through_a_bridge_that_stops_before_the_send_is_enotconn)
{
	bridge_goes_after_resolve(OP_CAST, "bc1c");
}

/* ---------------------------------------------------------------------- */
/* Finding 2: a publication carries on after its process gave the role up. */

struct pub_thread {
	dr_mailbox *mb;
	int rc;
};

static void *publish_thread(void *p)
{
	struct pub_thread *a = p;
	struct dr_host h[4];

	h[0] = host("alpha", DR_HOST_UP, 1);
	h[1] = host("old1", DR_HOST_UP, 0);
	h[2] = host("old2", DR_HOST_UP, 0);
	h[3] = host("old3", DR_HOST_UP, 0);
	a->rc = dr_admin_view_publish(a->mb, h, 4, 2);
	return NULL;
}

/* A bridge of two threads: one publishes (paused mid-write by a crash
 * point in sleep mode, which stops that thread only), the other gives the
 * role back meanwhile. */
static int two_thread_bridge_child(void *arg)
{
	struct shared *s = arg;
	struct pub_thread a = { 0 };
	struct dr_host h[3];
	dr_registry *r;
	pthread_t t;

	if (open_g(s->seg, &r) || dr_mailbox_open(r, &a.mb) || dr_admin_bridge_claim(a.mb, NULL))
		return 10;
	if (dr_admin_view_publish(a.mb, h, three(h), 1))
		return 11;
	crash_arm("view_writing", "sleep:1500", 0);
	if (pthread_create(&t, NULL, publish_thread, &a))
		return 12;
	write_byte(s->l.up[1], 'p');
	if (await(s, 'r'))
		return 13;
	dr_admin_bridge_release(a.mb);
	write_byte(s->l.up[1], 'R');
	pthread_join(t, NULL);
	s->rc = a.rc;
	write_byte(s->l.up[1], 'd');
	if (await(s, 'q'))
		return 14;
	dr_close(r);
	return 0;
}

/* Whether the copy of the view that readers do not read is odd (being
 * written), seen through the segment file. */
static bool other_copy_odd(const char *seg)
{
	size_t len = 0;
	uint8_t *base = segmap_open(seg, &len);
	const struct dri_header *hd = (const struct dri_header *)base;
	struct dri_cluster *c;
	uint32_t w;
	bool odd;

	cr_assert_not_null(base);
	c = (struct dri_cluster *)(base + hd->off_cluster);
	w = (__atomic_load_n(&c->view_index, __ATOMIC_ACQUIRE) & 1) ^ 1;
	odd = __atomic_load_n(&c->view[w].seq, __ATOMIC_ACQUIRE) & 1;
	munmap(base, len);
	return odd;
}

/*
 * dr_admin_view_publish() checks that its process holds the role once,
 * under view_lock, then writes the copy the index does not name. Nothing
 * keeps the role while it writes: dr_admin_bridge_release() (or
 * dr_mailbox_close) in another thread of the bridge does not take
 * view_lock. Bridge A's publishing thread pauses mid-write (view_writing);
 * its other thread releases the role; bridge B claims it and publishes,
 * into the same copy (the index has not moved), and flips the index to
 * it. A's thread then resumes and writes the rest of its hosts into the
 * copy readers now read, with its sequence even, then stores an older
 * sequence and the index again. Readers get B's epoch and host count with
 * A's last host: a mixture, which dr_check() does not notice, and A's
 * publish returns 0 though A no longer holds the role (-EPERM promised).
 * Fixed: the release takes view_lock, so it waits for the publication.
 */
Test(breakcl, a_publication_paused_while_the_role_is_released_never_tears_the_next_bridges_view)
{
	const char *seg = seg_new("bc2");
	dr_registry *r = open_or_die(seg);
	struct shared *s = shared_new(seg);
	struct dr_host h[4], got[8];
	dr_mailbox *b;
	uint64_t epoch = 0;
	size_t n = 0;
	pid_t kid;
	char msg[256];
	int rc, st;

	kid = spawn(two_thread_bridge_child, s);
	expect_byte(&s->l, 'p', kid, "bridge A up");
	for (int i = 0; i < WAIT_MS && !other_copy_odd(seg); i++)
		usleep(1000);
	cr_assert(other_copy_odd(seg), "bridge A's publication never paused mid-write");
	write_byte(s->l.down[1], 'r');
	expect_byte(&s->l, 'R', kid, "bridge A released the role");

	/* Bridge B (this process) takes the role and publishes its view. */
	b = mailbox(r);
	rc = dr_admin_bridge_claim(b, NULL);
	cr_assert_eq(rc, 0, "claim after A released: %s", dr_strerror(rc));
	h[0] = host("alpha", DR_HOST_UP, 1);
	h[1] = host("beta", DR_HOST_UP, 0);
	h[2] = host("gamma", DR_HOST_UP, 0);
	h[3] = host("delta", DR_HOST_UP, 0);
	rc = dr_admin_view_publish(b, h, 4, 3);
	cr_assert_eq(rc, 0, "B's publish: %s", dr_strerror(rc));
	cr_assert_eq(dr_hosts(r, got, 8, &n, &epoch), 0);
	cr_assert(epoch == 3 && n == 4 && strcmp(got[3].id, "delta") == 0);

	/* A's paused thread carries on. */
	expect_byte(&s->l, 'd', kid, "bridge A's publication returned");
	write_byte(s->l.down[1], 'q');
	st = wait_child(kid);
	rc = dr_hosts(r, got, 8, &n, &epoch);
	cr_assert_eq(rc, 0);
	cr_assert_eq(st, 0);
	cr_assert(epoch == 3 && n == 4 && strcmp(got[1].id, "beta") == 0 &&
		  strcmp(got[3].id, "delta") == 0,
		  "B's view after A's released publication resumed: epoch %llu, %zu hosts, "
		  "[1] %s, [3] %s (want B's whole: 3, 4, beta, delta); A's publish returned %d, "
		  "dr_check %d",
		  (unsigned long long)epoch, n, got[1].id, got[3].id, s->rc,
		  dr_check(r, msg, sizeof(msg)));
	/* Release waits for the publication in progress (view_lock): A's
	 * publish completed while A held the role, or failed. */
	cr_assert(s->rc == 0 || s->rc == -EPERM, "A's publish returned %d", s->rc);
	shared_free(s);
	dr_mailbox_close(b);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 3: calls waiting on a bridge that released the role. */

/* Sends an asynchronous call to s->name through the bridge, says 's',
 * then waits for its completion: its status into s->rc. */
static int async_caller_child(void *arg)
{
	struct shared *s = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	uint64_t id = 0;
	int rc;

	if (open_g(s->seg, &r) || dr_mailbox_open(r, &mb))
		return 10;
	rc = dr_call_async_global(mb, s->name, "q", 1, 3000, &id);
	if (rc)
		return 11;
	write_byte(s->l.up[1], 's');
	rc = dr_recv(mb, &m, 5000);
	if (rc)
		return 12;
	if (m.kind != DR_MSG_REPLY || m.call_id != id)
		return 13;
	s->rc = m.status;
	dr_close(r);
	return 0;
}

/*
 * dr_admin_bridge_release() ends the role: the address is unregistered
 * and the owner word cleared, but the mailbox stays open (the role
 * "ends ... with dr_admin_bridge_release()"). A call forwarded before the
 * release waits in the mailbox; the caller's wait checks only that the
 * bridge's mailbox lives (dri_pending_look / target_look), so the call is
 * not ended with -ENOTCONN. When the former bridge next receives, the
 * record fails the stale check (still_ours: the address's registration
 * has ended) and dri_take answers it -ENOENT: the caller is told that the
 * name is not served on its owner, where distreg.h promises -ENOTCONN when
 * the bridge goes while a call waits. (Without that receive it waits for
 * its whole timeout: -ETIMEDOUT.) A release and a new claim through the
 * same mailbox does the same to every forward still queued.
 */
Test(breakcl, a_call_queued_at_a_bridge_that_releases_the_role_ends_with_enotconn)
{
	const char *seg = seg_new("bc3");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1);
	struct shared *s = shared_new(seg);
	struct dr_msg m;
	pid_t kid;
	int rc, st;

	name_owned_by(r, "f", "beta", s->name, sizeof(s->name));
	s->rc = 1;
	kid = spawn(async_caller_child, s);
	expect_byte(&s->l, 's', kid, "call sent");

	dr_admin_bridge_release(b);
	/* The former bridge drains its mailbox, as a bridge that stops
	 * would before closing it. */
	rc = dr_recv(b, &m, 0);
	cr_assert_eq(rc, -EAGAIN, "the forwarded call was dropped as stale: %s",
		     dr_strerror(rc));

	st = wait_child(kid);
	cr_assert_eq(st, 0, "caller child status %d", st);
	cr_assert_eq(s->rc, -ENOTCONN,
		     "a call waiting at a bridge that released the role completed with %d (%s), "
		     "want -ENOTCONN", s->rc, dr_strerror(s->rc));
	shared_free(s);
	dr_mailbox_close(b);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* A call made again elsewhere is not ended with its first worker's death. */

/* Serves the global name s->name, says 'r'; on 'g' stops serving it and
 * receives once (the call waiting for it is answered that it reached no
 * worker), says 'd', waits for 'q'. */
static int unserving_worker_child(void *arg)
{
	struct shared *s = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;

	if (open_g(s->seg, &r) || dr_mailbox_open(r, &mb) ||
	    dr_serve_global(mb, s->name, "w", 1))
		return 10;
	write_byte(s->l.up[1], 'r');
	if (await(s, 'g') || dr_unserve_global(mb, s->name))
		return 11;
	if (dr_recv(mb, &m, 200) != -ETIMEDOUT)
		return 12;
	write_byte(s->l.up[1], 'd');
	return await(s, 'q') ? 13 : 0;
}

/* Calls s->name asynchronously, then receives, stopping at the first look
 * that finds nothing (wait_empty); the completion's status into s->rc (1:
 * something else came). */
static int paused_global_caller_child(void *arg)
{
	struct shared *s = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	uint64_t id = 0;
	int rc;

	if (open_g(s->seg, &r) || dr_mailbox_open(r, &mb) ||
	    dr_call_async_global(mb, s->name, "q", 1, 5000, &id))
		return 10;
	crash_arm("wait_empty", "stop", 0);
	rc = dr_recv(mb, &m, 5000);
	unsetenv("DISTREG_CRASH_AT");
	s->rc = rc ? rc : m.kind == DR_MSG_REPLY && m.call_id == id ? m.status : 1;
	if (s->rc == 0 && (m.len != 2 || memcmp(m.data, "ok", 2)))
		s->rc = 1;
	return 0;
}

/*
 * dr_recv's look finds a call's worker dead and, before it ends the call,
 * takes what waits in the mailbox: here the worker's answer that the call
 * reached no worker (it stopped serving the name before it died), on
 * which the receiving thread makes the call again, under its id, through
 * the bridge. That new sending must not be ended with the first worker's
 * death: the caller gets the bridge's answer.
 */
Test(breakcl, a_call_made_again_elsewhere_is_not_ended_by_its_first_workers_death)
{
	const char *seg = seg_new("bc3a");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1);
	struct shared *ws = shared_new(seg), *cs = shared_new(seg);
	struct dr_msg m;
	pid_t w, c;
	int rc;

	name_owned_by(r, "g", "alpha", ws->name, sizeof(ws->name));
	snprintf(cs->name, sizeof(cs->name), "%s", ws->name);
	w = spawn(unserving_worker_child, ws);
	expect_byte(&ws->l, 'r', w, "worker ready");
	c = spawn(paused_global_caller_child, cs);
	cr_assert_eq(wait_stopped(c, WAIT_MS), 0, "caller never reached wait_empty");
	write_byte(ws->l.down[1], 'g');
	expect_byte(&ws->l, 'd', w, "worker stopped serving and answered");
	kill_reaped(w);
	kill(c, SIGCONT);
	/* The call made again reaches the bridge (us): answer it. */
	rc = dr_recv(b, &m, WAIT_MS);
	cr_assert_eq(rc, 0, "the call was not made again through the bridge: %s",
		     dr_strerror(rc));
	cr_assert_eq(m.kind, DR_MSG_CALL);
	cr_assert_eq(dr_reply(b, &m, "ok", 2), 0);
	cr_assert_eq(wait_child(c), 0);
	cr_assert_eq(cs->rc, 0, "the caller got %d (%s), not the answer of the call made again",
		     cs->rc, cs->rc < 0 ? dr_strerror(cs->rc) : "something else");
	shared_free(ws);
	shared_free(cs);
	dr_mailbox_close(b);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 4: the bridge's mailbox takes 32 sending processes, for ever. */

#define FANIN 33

/* Casts once to s->name through the bridge; says 'c' (sent) or 'E'
 * (refused: the error into s->rc), then waits to be told to exit. */
static int one_cast_child(void *arg)
{
	struct shared *s = arg;
	dr_registry *r;
	int rc;

	if (open_g(s->seg, &r))
		return 10;
	rc = dr_cast_global(r, s->name, "q", 1, 0);
	if (rc)
		s->rc = rc;
	write_byte(s->l.up[1], rc ? 'E' : 'c');
	if (await(s, 'q'))
		return 11;
	dr_close(r);
	return 0;
}

/*
 * Every forward goes to the one bridge mailbox, each sending process
 * through a lane of its own that is "claimed on the first send and kept"
 * while it lives; a mailbox's lane table has DRI_MBOX_LANES (32) slots,
 * and dri_take() detaches a drained lane only if its sender is dead. So
 * once 32 live processes of the host have sent one message each to a
 * remote global name (and the bridge has taken all of them), every other
 * process's global call, cast, send and lookup to another host fails with
 * -EUSERS ("no lane free") for as long as those 32 live, though max_lanes
 * has lanes to spare and the bridge's mailbox is empty.
 */
Test(breakcl, a_33rd_live_process_sending_to_a_remote_global_name_gets_a_lane)
{
	const char *seg = seg_new("bc4");
	struct dr_options o = {
		.segment = seg,
		.capacity = 256,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.max_mailboxes = 16,
		.max_lanes = 128,
		.lane_bytes = 4096,
	};
	dr_registry *r;
	dr_mailbox *b;
	struct shared *s;
	struct dr_msg m;
	pid_t kids[FANIN];
	int got = 0, nkids = 0, refused;
	char c;

	cr_assert_eq(dr_open(&o, &r), 0);
	b = bridge_up(r, 1);
	s = shared_new(seg);
	name_owned_by(r, "f", "beta", s->name, sizeof(s->name));
	for (int i = 0; i < FANIN; i++) {
		kids[nkids++] = spawn(one_cast_child, s);
		cr_assert_eq(read_byte_within(s->l.up[0], &c, WAIT_MS), 1);
		if (c == 'c')
			got++;
		/* The bridge keeps up: its mailbox is empty after each. */
		while (dr_recv(b, &m, 0) == 0)
			;
		if (c != 'c')
			break;
	}
	refused = s->rc;
	for (int i = 0; i < nkids; i++)
		write_byte(s->l.down[1], 'q');
	for (int i = 0; i < nkids; i++)
		wait_child(kids[i]);
	shared_free(s);
	dr_mailbox_close(b);
	dr_close(r);
	dr_unlink(seg);
	cr_assert_eq(got, FANIN,
		     "only %d of %d live processes could send to a remote global name, the next "
		     "got %d (%s), with the bridge's mailbox drained",
		     got, FANIN, refused, dr_strerror(refused));
}

/* ---------------------------------------------------------------------- */
/* Finding 5: an asynchronous call made while another thread receives
 * never times out there. */

struct recv_arg {
	dr_mailbox *mb;
	int timeout_ms;
	int rc;
	struct dr_msg m;
	double took;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *receiver_thread(void *p)
{
	struct recv_arg *a = p;
	double t0 = now_s();

	a->rc = dr_recv(a->mb, &a->m, a->timeout_ms);
	a->took = now_s() - t0;
	return NULL;
}

/*
 * dr_recv() picks its liveness hook once, at entry: dri_pending_look only
 * if mb->npend is nonzero then. dr_call_async() is documented thread-safe
 * "also while another thread receives from mb". A thread that entered
 * dr_recv() with nothing pending sleeps until its own deadline: an
 * asynchronous call another thread makes meanwhile, to a worker that does
 * not answer (or dies), gets its -ETIMEDOUT (or -EOWNERDEAD) completion
 * only after that receive ends, and never while a receive waits for ever
 * (dr_recv with -1, an event loop's usual call).
 */
Test(breakcl, an_async_call_made_while_another_thread_receives_times_out_there)
{
	const char *seg = seg_new("bc5");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *mb = mailbox(r), *worker = mailbox(r);
	struct recv_arg a = { .mb = mb, .timeout_ms = 1500 };
	pthread_t t;
	uint64_t id = 0;
	int rc;

	cr_assert_eq(dr_serve(worker, "silent", NULL, 0), 0);
	cr_assert_eq(pthread_create(&t, NULL, receiver_thread, &a), 0);
	usleep(100 * 1000); /* the receiver is asleep in dr_recv, nothing pending */
	rc = dr_call_async(mb, "silent", "q", 1, 100, &id);
	cr_assert_eq(rc, 0);
	pthread_join(t, NULL);
	cr_assert(a.rc == 0 && a.m.kind == DR_MSG_REPLY && a.m.call_id == id &&
		  a.m.status == -ETIMEDOUT && a.took < 1.0,
		  "a call with a 100 ms timeout, made while another thread received: dr_recv "
		  "returned %d (%s) after %.2f s, kind %d status %d (want its -ETIMEDOUT reply "
		  "at about 0.2 s)",
		  a.rc, dr_strerror(a.rc), a.took, a.rc == 0 ? a.m.kind : 0,
		  a.rc == 0 ? a.m.status : 0);
	dr_mailbox_close(worker);
	dr_mailbox_close(mb);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 6: a serve whose registration was replaced remembers regid 0,
 * which close takes for "any registration of ours". */

struct serve_arg {
	dr_mailbox *mb;
	int rc;
};

static void *serve_thread(void *p)
{
	struct serve_arg *a = p;

	a->rc = dr_serve(a->mb, "x", "1", 1);
	return NULL;
}

/* Exit status: 0 the name stayed served by mb2; 20 + ... the fault. */
static int serve_handover_child(void *arg)
{
	struct shared *s = arg;
	struct serve_arg a = { 0 };
	dr_mailbox *mb2;
	dr_registry *r;
	pthread_t t;
	int rc;

	if (open_g(s->seg, &r) || dr_mailbox_open(r, &a.mb) || dr_mailbox_open(r, &mb2))
		return 10;
	/* This thread passes reg_linked once, so that only the serving
	 * thread's first pass sleeps (the count is per thread). */
	crash_arm("reg_linked", "sleep:1", 0);
	if (dr_register(r, "warm", NULL, 0))
		return 11;
	setenv("DISTREG_CRASH_MODE", "sleep:1000", 1);
	if (pthread_create(&t, NULL, serve_thread, &a))
		return 12;
	/* The serving thread has linked "x" through mb1 and sleeps before
	 * it looks up the registration it made. */
	for (int i = 0; i < 500 && dr_whereis(r, "x", NULL) != 0; i++)
		usleep(1000);
	if (dr_whereis(r, "x", NULL))
		return 13;
	/* Meanwhile this thread hands the name over to mb2. */
	if (dr_unregister(r, "x") || dr_serve(mb2, "x", "2", 1))
		return 14;
	pthread_join(t, NULL);
	if (a.rc)
		return 15;
	dr_mailbox_close(a.mb);
	rc = dr_whereis(r, "x", NULL);
	dr_close(r);
	return rc == 0 ? 0 : rc == -ENOENT ? 20 : 21;
}

/*
 * dri_serve() (lib/mailbox.c) registers the name, then looks the
 * registration up again (registration_of) to remember its id for close;
 * if it is no longer there or not mb's (another thread of the process
 * unregistered it and served it through another mailbox in between), it
 * remembers regid 0. At close, dri_unregister(..., regid 0) means "any
 * registration of this handle": closing mb1 unregisters the name that
 * mb2 serves now. The serving thread is paused by reg_linked (sleep mode)
 * between the link and the look-up.
 */
Test(breakcl, closing_a_mailbox_whose_serve_lost_the_race_keeps_the_new_servers_name)
{
	const char *seg = seg_new("bc6");
	dr_registry *r = open_or_die(seg);
	struct shared *s = shared_new(seg);
	int st = wait_child(spawn(serve_handover_child, s));

	shared_free(s);
	dr_close(r);
	dr_unlink(seg);
	cr_assert_eq(st, 0,
		     "closing mb1 (whose serve of \"x\" found the name handed to mb2 already) left "
		     "\"x\" %s (child status %d)",
		     st == 20 ? "unregistered although mb2 serves it" : "in an unexpected state", st);
}

/* ---------------------------------------------------------------------- */
/* Finding 1, second path: a bridge that dies while a sender waits for room
 * in its lane: -EOWNERDEAD. */

/* The bridge: claims the role, publishes, says 'b', then waits to be
 * killed without ever receiving. */
static int idle_bridge_child(void *arg)
{
	struct shared *s = arg;
	struct dr_host h[3];
	dr_registry *r;
	dr_mailbox *mb;

	if (open_g(s->seg, &r) || dr_mailbox_open(r, &mb) || dr_admin_bridge_claim(mb, NULL) ||
	    dr_admin_view_publish(mb, h, three(h), 1))
		return 10;
	write_byte(s->l.up[1], 'b');
	for (;;)
		pause();
}

struct gcall_arg {
	dr_registry *r;
	const char *name;
	int rc;
};

static void *global_call_thread(void *p)
{
	struct gcall_arg *a = p;
	char buf[64];
	size_t len = sizeof(buf);

	a->rc = dr_call_global(a->r, a->name, "q", 1, buf, &len, 3000);
	return NULL;
}

/*
 * The same fault through dri_lane_send(): a call to a remote global name
 * waits for room in its full lane to the bridge, checking every 20 ms that
 * the receiver lives; when the bridge dies, the send fails with
 * -EOWNERDEAD ("the worker died before answering"), which dri_send()
 * passes on as is for the bridge's address, where -ENOTCONN is promised.
 */
Test(breakcl, a_call_waiting_for_room_at_a_bridge_that_dies_is_enotconn)
{
	const char *seg = seg_new("bc1d");
	dr_registry *r = open_or_die(seg);
	struct shared *s = shared_new(seg);
	struct gcall_arg a = { .r = r };
	char big[1024] = { 0 };
	pthread_t t;
	pid_t kid;
	int rc, sent = 0;

	kid = spawn(idle_bridge_child, s);
	expect_byte(&s->l, 'b', kid, "bridge up");
	name_owned_by(r, "f", "beta", s->name, sizeof(s->name));
	a.name = s->name;
	while ((rc = dr_cast_global(r, s->name, big, sizeof(big), 0)) == 0)
		sent++;
	cr_assert_eq(rc, -EAGAIN, "filling the lane to the bridge: %s", dr_strerror(rc));
	while ((rc = dr_cast_global(r, s->name, "q", 1, 0)) == 0)
		sent++;
	cr_assert_eq(rc, -EAGAIN, "filling the lane to the bridge: %s", dr_strerror(rc));
	cr_assert_gt(sent, 0);
	cr_assert_eq(pthread_create(&t, NULL, global_call_thread, &a), 0);
	usleep(100 * 1000); /* the call waits for room */
	kill(kid, SIGKILL);
	wait_child(kid);
	pthread_join(t, NULL);
	shared_free(s);
	dr_close(r);
	dr_unlink(seg);
	cr_assert_eq(a.rc, -ENOTCONN,
		     "a call waiting for room at a bridge that died: %d (%s), want -ENOTCONN", a.rc,
		     dr_strerror(a.rc));
}

/* ---------------------------------------------------------------------- */
/* Lane eviction: a mailbox's lane table has DRI_MBOX_LANES (32) slots; a
 * further live sender takes the slot of a drained lane, whose sender moves
 * to another lane at its next send. No message is lost, none delivered
 * twice, each sender's arrive in order. */

#define EV_MAX 64
#define EV_SLOTS 32

/* A sender's message: who, and its number (1, 2, ...). */
struct ev_msg {
	int who;
	int seq;
};

struct ev {
	char seg[DR_SEGMENT_MAX + 1];
	int go[EV_MAX];        /* atomic; the round sender i may send */
	int sent[EV_MAX];      /* atomic; the last round sender i sent */
	int rc[EV_MAX];        /* sender i's first failure */
	int eusers[EV_MAX];    /* -EUSERS answers it retried */
	int per_round;         /* messages per round */
	int quit;              /* atomic */
	char point[32];        /* armed in sender `armed` (stop mode), skipping `skip` */
	int armed;
	int skip;
};

static int ev_open(const char *seg, dr_registry **r)
{
	struct dr_options o = {
		.segment = seg,
		.capacity = 256,
		.max_procs = 96,
		.max_threads = UNIT_MAX_THREADS,
		.max_mailboxes = 8,
		.max_lanes = 192,
		.lane_bytes = 4096,
	};

	*r = NULL;
	return dr_open(&o, r);
}

static int ev_load(int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void ev_store(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Sender i: in each round it is let into, casts per_round messages to
 * "evt" (retrying -EUSERS: all 32 lanes then hold unread messages). */
static int ev_sender(struct ev *s, int i)
{
	dr_registry *r;
	int seq = 0;

	if (ev_open(s->seg, &r))
		return 10;
	if (s->point[0] && s->armed == i)
		crash_arm(s->point, "stop", s->skip);
	for (int round = 1;; round++) {
		while (ev_load(&s->go[i]) < round) {
			if (ev_load(&s->quit)) {
				dr_close(r);
				return 0;
			}
			usleep(2000); /* 64 of us: light on the CPUs of other tests */
		}
		for (int k = 0; k < s->per_round; k++) {
			struct ev_msg m = { i, ++seq };
			int rc;

			while ((rc = dr_cast(r, "evt", &m, sizeof(m), 2000)) == -EUSERS) {
				s->eusers[i]++;
				usleep(1000);
			}
			if (rc && !s->rc[i])
				s->rc[i] = rc;
		}
		ev_store(&s->sent[i], round);
	}
}

struct ev_arg {
	struct ev *s;
	int i;
};

static int ev_child(void *arg)
{
	struct ev_arg *a = arg; /* the parent's, copied by fork */

	return ev_sender(a->s, a->i);
}

static pid_t ev_spawn(struct ev *s, int i)
{
	struct ev_arg a = { s, i };

	return spawn(ev_child, &a);
}

static struct ev *ev_new(const char *seg, int per_round)
{
	struct ev *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			    -1, 0);

	cr_assert_neq(s, MAP_FAILED);
	memset(s, 0, sizeof(*s));
	snprintf(s->seg, sizeof(s->seg), "%s", seg);
	s->per_round = per_round;
	s->armed = -1;
	return s;
}

/* What the receiver has seen: each sender's last number. */
struct ev_seen {
	int last[EV_MAX];
	int got;
};

/* Receive one message into *seen, checking it is the sender's next. */
static int ev_take(dr_mailbox *mb, struct ev_seen *seen, int timeout_ms)
{
	struct dr_msg m;
	struct ev_msg e;
	int rc = dr_recv(mb, &m, timeout_ms);

	if (rc)
		return rc;
	cr_assert_eq(m.kind, DR_MSG_CAST);
	cr_assert_eq(m.len, sizeof(e));
	memcpy(&e, m.data, sizeof(e));
	cr_assert(e.who >= 0 && e.who < EV_MAX, "a message from sender %d", e.who);
	cr_assert_eq(e.seq, seen->last[e.who] + 1,
		     "sender %d: message %d after %d (lost, repeated or out of order)", e.who, e.seq,
		     seen->last[e.who]);
	seen->last[e.who] = e.seq;
	seen->got++;
	return 0;
}

/* Receive until `want` messages were seen in all; then nothing more. */
static void ev_drain(dr_mailbox *mb, struct ev_seen *seen, int want)
{
	while (seen->got < want) {
		int rc = ev_take(mb, seen, WAIT_MS);

		cr_assert_eq(rc, 0, "%d of %d messages, then %s", seen->got, want,
			     dr_strerror(rc));
	}
	cr_assert_eq(dr_recv(mb, &(struct dr_msg){ 0 }, 0), -EAGAIN, "a message too many");
}

/* Let sender i send its round `round` and wait until it has. */
static void ev_round_one(struct ev *s, int i, int round)
{
	ev_store(&s->go[i], round);
	for (int ms = 0; ev_load(&s->sent[i]) < round; ms++) {
		cr_assert_lt(ms, WAIT_MS * 5, "sender %d never sent round %d", i, round);
		usleep(200);
	}
}

static void ev_end(struct ev *s, pid_t *kids, int n)
{
	ev_store(&s->quit, 1);
	for (int i = 0; i < n; i++)
		if (kids[i] > 0)
			cr_assert_eq(wait_child(kids[i]), 0, "sender %d", i);
	for (int i = 0; i < n; i++)
		cr_assert_eq(s->rc[i], 0, "sender %d: %s", i, dr_strerror(s->rc[i]));
}

/* Nothing held after everyone closed and the reapers ran. */
static void ev_clean(dr_registry *r)
{
	struct dr_stats st;
	char msg[256];

	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.lanes, 0, "%u lanes still held", st.lanes);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "dr_check: %s", msg);
}

/*
 * (a) 33 live senders, one at a time, each one message: the 33rd evicts a
 * drained lane. Then each sends again (the evicted one on a new lane,
 * evicting another in turn): every message arrives once, in order.
 */
Test(breakcl, an_evicted_sender_s_next_message_arrives_once_in_order)
{
	const char *seg = seg_new("ev1");
	struct ev *s = ev_new(seg, 1);
	struct ev_seen seen = { 0 };
	pid_t kids[EV_SLOTS + 1];
	dr_registry *r;
	dr_mailbox *mb;
	int n = EV_SLOTS + 1;

	cr_assert_eq(ev_open(seg, &r), 0);
	mb = mailbox(r);
	cr_assert_eq(dr_serve(mb, "evt", NULL, 0), 0);
	for (int i = 0; i < n; i++)
		kids[i] = ev_spawn(s, i);
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < n; i++) {
			ev_round_one(s, i, round);
			ev_drain(mb, &seen, (round - 1) * n + i + 1);
		}
	}
	ev_end(s, kids, n);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(seen.last[i], 3, "sender %d: %d messages", i, seen.last[i]);
		cr_assert_eq(s->eusers[i], 0, "sender %d got -EUSERS with drained lanes", i);
	}
	dr_mailbox_close(mb);
	ev_clean(r);
	dr_close(r);
	dr_unlink(seg);
	munmap(s, sizeof(*s));
}

/* The 32 first senders each send round 1, one at a time, all taken. */
static void ev_fill(struct ev *s, dr_mailbox *mb, struct ev_seen *seen)
{
	for (int i = 0; i < EV_SLOTS; i++) {
		ev_round_one(s, i, 1);
		ev_drain(mb, seen, i + 1);
	}
}

/*
 * (b) A sender paused between writing its record and publishing it (its
 * lane drained: the receiver took all before) while the 33rd evicts its
 * lane, the only drained one (the 31 others hold a message each). The
 * paused sender, let go, publishes nothing into the evicted lane and sends
 * the record again on another: it arrives once.
 */
Test(breakcl, a_sender_paused_before_publishing_into_an_evicted_lane_loses_nothing)
{
	const char *seg = seg_new("ev2");
	struct ev *s = ev_new(seg, 1);
	struct ev_seen seen = { 0 };
	pid_t kids[EV_SLOTS + 1];
	dr_registry *r;
	dr_mailbox *mb;
	int p = 7, x = EV_SLOTS;

	cr_assert_eq(ev_open(seg, &r), 0);
	mb = mailbox(r);
	cr_assert_eq(dr_serve(mb, "evt", NULL, 0), 0);
	snprintf(s->point, sizeof(s->point), "send_written");
	s->armed = p;
	s->skip = 1; /* its first send goes through, the second pauses */
	for (int i = 0; i < EV_SLOTS + 1; i++)
		kids[i] = ev_spawn(s, i);
	ev_fill(s, mb, &seen);
	ev_store(&s->go[p], 2);
	cr_assert_eq(wait_stopped(kids[p], WAIT_MS), 0, "the sender never paused");
	for (int i = 0; i < EV_SLOTS; i++)
		if (i != p)
			ev_round_one(s, i, 2);
	/* All 32 slots taken, only p's lane drained: the 33rd evicts it. */
	ev_round_one(s, x, 1);
	cr_assert_eq(s->rc[x], 0, "the 33rd: %s", dr_strerror(s->rc[x]));
	cr_assert_eq(s->eusers[x], 0, "the 33rd got -EUSERS with p's lane drained");
	ev_drain(mb, &seen, EV_SLOTS + EV_SLOTS - 1 + 1);
	cr_assert_eq(seen.last[p], 1);
	cr_assert_eq(kill(kids[p], SIGCONT), 0);
	for (int ms = 0; ev_load(&s->sent[p]) < 2; ms++) {
		cr_assert_lt(ms, WAIT_MS * 5, "the paused sender never finished");
		usleep(200);
	}
	ev_drain(mb, &seen, 2 * EV_SLOTS + 1);
	cr_assert_eq(seen.last[p], 2);
	cr_assert_eq(dr_recv(mb, &(struct dr_msg){ 0 }, 200), -ETIMEDOUT, "delivered twice");
	ev_end(s, kids, EV_SLOTS + 1);
	dr_mailbox_close(mb);
	ev_clean(r);
	dr_close(r);
	dr_unlink(seg);
	munmap(s, sizeof(*s));
}

/*
 * (c) The 33rd sender paused in its eviction (after marking the victim's
 * tail, or after taking its slot), then killed. Every sender can send again
 * (the victim's on a new lane), all arrive once and in order, and the
 * reapers free what the dead evictor held.
 */
static void evictor_killed_at(const char *point, const char *tag)
{
	const char *seg = seg_new(tag);
	struct ev *s = ev_new(seg, 1);
	struct ev_seen seen = { 0 };
	pid_t kids[EV_SLOTS + 1];
	dr_registry *r;
	dr_mailbox *mb;
	int x = EV_SLOTS;

	cr_assert_eq(ev_open(seg, &r), 0);
	mb = mailbox(r);
	cr_assert_eq(dr_serve(mb, "evt", NULL, 0), 0);
	snprintf(s->point, sizeof(s->point), "%s", point);
	s->armed = x;
	for (int i = 0; i < EV_SLOTS + 1; i++)
		kids[i] = ev_spawn(s, i);
	ev_fill(s, mb, &seen);
	ev_store(&s->go[x], 1);
	cr_assert_eq(wait_stopped(kids[x], WAIT_MS), 0, "the evictor never paused at %s", point);
	cr_assert_eq(kill(kids[x], SIGKILL), 0);
	cr_assert_eq(wait_child(kids[x]), 128 + SIGKILL);
	kids[x] = -1;
	/* Everyone sends again, twice; the dead evictor's lane is reaped. */
	for (int round = 2; round <= 3; round++) {
		for (int i = 0; i < EV_SLOTS; i++) {
			ev_round_one(s, i, round);
			ev_drain(mb, &seen, (round - 1) * EV_SLOTS + i + 1);
		}
		cr_assert_eq(dr_reap(r, NULL), 0);
	}
	for (int i = 0; i < EV_SLOTS; i++)
		cr_assert_eq(s->eusers[i], 0, "sender %d got -EUSERS", i);
	ev_end(s, kids, EV_SLOTS + 1);
	dr_mailbox_close(mb);
	ev_clean(r);
	dr_close(r);
	dr_unlink(seg);
	munmap(s, sizeof(*s));
}

Test(breakcl, an_evictor_killed_after_marking_the_victim_leaves_nothing_stuck)
{
	evictor_killed_at("lane_evicting", "ev3");
}

Test(breakcl, an_evictor_killed_after_taking_the_slot_leaves_nothing_stuck)
{
	evictor_killed_at("lane_evicted", "ev4");
}

/*
 * (d) 64 live senders to one mailbox, all at once, in rounds of 3
 * messages: each arrives once, each sender's in order. -EUSERS (all 32
 * lanes holding unread messages) is retried.
 */
Test(breakcl, sixty_four_live_senders_in_rounds_lose_and_repeat_nothing)
{
	const char *seg = seg_new("ev5");
	struct ev *s = ev_new(seg, 3);
	struct ev_seen seen = { 0 };
	pid_t kids[EV_MAX];
	dr_registry *r;
	dr_mailbox *mb;
	int rounds = 8, eusers = 0;

	cr_assert_eq(ev_open(seg, &r), 0);
	mb = mailbox(r);
	cr_assert_eq(dr_serve(mb, "evt", NULL, 0), 0);
	for (int i = 0; i < EV_MAX; i++)
		kids[i] = ev_spawn(s, i);
	for (int round = 1; round <= rounds; round++) {
		for (int i = 0; i < EV_MAX; i++)
			ev_store(&s->go[i], round);
		ev_drain(mb, &seen, round * EV_MAX * s->per_round);
		for (int i = 0; i < EV_MAX; i++)
			while (ev_load(&s->sent[i]) < round)
				usleep(100);
	}
	ev_end(s, kids, EV_MAX);
	for (int i = 0; i < EV_MAX; i++) {
		cr_assert_eq(seen.last[i], rounds * s->per_round, "sender %d", i);
		eusers += s->eusers[i];
	}
	cr_log_info("64 senders: %d -EUSERS retried", eusers);
	dr_mailbox_close(mb);
	ev_clean(r);
	dr_close(r);
	dr_unlink(seg);
	munmap(s, sizeof(*s));
}

/*
 * test_breakmb.c - faults an adversarial review found in the mailbox and
 * lane protocol (lib/mailbox.c, lib/call.c). Each test fails on the commit
 * it was written against; see the comment of each for the interleaving.
 *
 * Linked with the crash-point build (distreg_crash): children arm a point
 * in stop mode (crash_arm), the test process runs the racing path while
 * they are paused, then releases them with SIGCONT.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "unit.h"

#include "segmap.h"

TestSuite(breakmb, .timeout = UNIT_TIMEOUT, .fini = unit_fini);


/* In a child: wait for the parent's byte. */
static int await(struct link *l, char want)
{
	char c;

	return read_byte_within(l->down[0], &c, WAIT_MS) == 1 && c == want ? 0 : -1;
}

struct kid {
	const char *seg;
	struct link l;
	uint32_t mboxes, lanes, lane_bytes;
};

static struct kid *kid_new(const char *seg, uint32_t mboxes, uint32_t lanes, uint32_t lane_bytes)
{
	struct kid *k = mmap(NULL, sizeof(*k), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			     -1, 0);

	cr_assert_neq(k, MAP_FAILED);
	k->seg = seg;
	k->mboxes = mboxes;
	k->lanes = lanes;
	k->lane_bytes = lane_bytes;
	link_init(&k->l);
	return k;
}

static void kid_free(struct kid *k)
{
	link_close(&k->l);
	munmap(k, sizeof(*k));
}

static int kid_open(struct kid *k, dr_registry **r)
{
	return open_geo(k->seg, k->mboxes, k->lanes, k->lane_bytes, r);
}

/* Opens a mailbox (the first free slot), says 'o' and waits to be killed. */
static int mbox_holder_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb))
		return 10;
	write_byte(k->l.up[1], 'o');
	for (;;)
		pause();
}

/* ---------------------------------------------------------------------- */
/* Finding 1: the mailbox reaper clears the lane table of a later opening. */

/* Opens the segment with reap_mbox armed: dr_open's reaping stops at the
 * dead process's mailbox. Released, says 'd' and waits for 'q'. */
static int reaper_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;

	crash_arm("reap_mbox", "stop", 0);
	if (kid_open(k, &r))
		return 10;
	write_byte(k->l.up[1], 'd');
	if (await(&k->l, 'q'))
		return 11;
	dr_close(r);
	return 0;
}

/*
 * dri_reap_mailboxes() loads a dead owner's mailbox word, then clears the
 * slot's lane table, then frees the slot by CAS. A reaper paused between
 * the load and the clearing (reap_mbox) comes back after another reaper
 * freed the slot and a new process opened it and attached a live sender's
 * lane holding a sent message: it clears that lane from the new opening's
 * table (only its final CAS of the owner word fails). The message, reported
 * as sent to a live mailbox, is never received.
 */
Test(breakmb, paused_mailbox_reaper_detaches_a_lane_of_the_next_opening)
{
	const char *seg = seg_new("bk1");
	struct kid *dk = kid_new(seg, 2, 8, 4096), *bk = kid_new(seg, 2, 8, 4096);
	struct dr_mailbox_stats st;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	pid_t d, b;
	int rc;

	cr_assert_eq(open_geo(seg, 2, 8, 4096, &r), 0);
	d = spawn(mbox_holder_child, dk);
	expect_byte(&dk->l, 'o', d, "holder");
	kill(d, SIGKILL);
	wait_child(d);

	b = spawn(reaper_child, bk);
	cr_assert_eq(wait_stopped(b, WAIT_MS), 0, "reaper never reached reap_mbox");

	/* Meanwhile: the slot is reaped, reopened, and a message sent to it. */
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "x", NULL, 0), 0);
	cr_assert_eq(dr_send(r, "x", "m1", 2, 0), 0);
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	cr_assert_eq(st.lanes, 1);

	kill(b, SIGCONT);
	expect_byte(&bk->l, 'd', b, "reaper after release");

	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	rc = dr_recv(mb, &m, 200);
	cr_assert_eq(rc, 0,
		     "a message dr_send() reported sent to a live mailbox is lost: dr_recv %s "
		     "(lanes attached after the paused reaper resumed: %u)",
		     dr_strerror(rc), st.lanes);
	cr_assert(m.len == 2 && memcmp(m.data, "m1", 2) == 0);

	write_byte(bk->l.down[1], 'q');
	wait_child(b);
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(dk);
	kid_free(bk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 2: detach() frees whatever lane owner it reloads after the CAS. */

/* A sender: sends "from-d" to "a", says 's' and waits to be killed. */
static int dsender_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;

	if (kid_open(k, &r) || dr_send(r, "a", "from-d", 6, 0))
		return 10;
	write_byte(k->l.up[1], 's');
	for (;;)
		pause();
}

/* The receiver of "a". Takes D's message on 'g'; on 'h' receives again
 * with lane_detached armed (it stops there, having detached D's drained
 * lane); released, it tries to send "XXXXXXXX" to its own name, says 'd'
 * and waits for 'q'. */
static int receiver_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	int rc;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "a", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	if (await(&k->l, 'g'))
		return 11;
	rc = dr_recv(mb, &m, WAIT_MS);
	if (rc || m.len != 6 || memcmp(m.data, "from-d", 6))
		return 12;
	write_byte(k->l.up[1], '1');
	if (await(&k->l, 'h'))
		return 13;
	crash_arm("lane_detached", "stop", 0);
	(void)dr_recv(mb, &m, 0);
	unsetenv("DISTREG_CRASH_AT");
	/* With one lane in the pool this succeeds only if ours was taken
	 * from the test process: either way, say done. */
	(void)dr_send(r, "a", "XXXXXXXX", 8, 0);
	write_byte(k->l.up[1], 'd');
	if (await(&k->l, 'q'))
		return 14;
	return 0;
}

/*
 * A receiver detaches a drained lane of a dead sender (dri_take ->
 * detach(sender_dead)) and is paused right after the CAS of its table slot
 * (lane_detached), before it reloads the lane's owner word and frees it.
 * Meanwhile dr_reap() frees the dead sender's lane (detached, owner dead),
 * and a live process claims it for its own mailbox, sends a message and
 * receives it (a zero-copy pointer into the lane). The receiver, released,
 * reloads the owner word, finds the live sender there and frees its lane;
 * the next claimer resets it and writes over the message the live reader
 * still holds. One lane (max_lanes 1) makes the reuse deterministic.
 */
Test(breakmb, receiver_paused_in_detach_frees_a_lane_a_live_sender_claimed)
{
	const char *seg = seg_new("bk2");
	struct kid *rk = kid_new(seg, 4, 1, 4096), *dk = kid_new(seg, 4, 1, 4096);
	struct dr_stats sst;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	char held[8];
	pid_t rp, dp;
	int rc;

	cr_assert_eq(open_geo(seg, 4, 1, 4096, &r), 0);
	rp = spawn(receiver_child, rk);
	expect_byte(&rk->l, 'r', rp, "receiver ready");
	dp = spawn(dsender_child, dk);
	expect_byte(&dk->l, 's', dp, "D sent");
	write_byte(rk->l.down[1], 'g');
	expect_byte(&rk->l, '1', rp, "receiver took D's message");
	kill(dp, SIGKILL);
	wait_child(dp);
	write_byte(rk->l.down[1], 'h');
	cr_assert_eq(wait_stopped(rp, WAIT_MS), 0, "receiver never reached lane_detached");

	/* Meanwhile: D's lane is reaped, and we take it for our own mailbox. */
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "b", NULL, 0), 0);
	cr_assert_eq(dr_send(r, "b", "ssssssss", 8, 0), 0);
	cr_assert_eq(dr_recv(mb, &m, 0), 0);
	cr_assert(m.len == 8 && memcmp(m.data, "ssssssss", 8) == 0);

	kill(rp, SIGCONT);
	expect_byte(&rk->l, 'd', rp, "receiver after release");
	cr_assert_eq(dr_stats(r, &sst), 0);

	memcpy(held, m.data, 8);
	rc = memcmp(held, "ssssssss", 8);
	cr_assert_eq(rc, 0,
		     "the message this live receiver holds (valid until its next dr_recv) was "
		     "overwritten: it reads \"%.8s\"; our lane was freed under us (lanes held: %u)",
		     held, sst.lanes);

	write_byte(rk->l.down[1], 'q');
	wait_child(rp);
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(rk);
	kid_free(dk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 3: a send with timeout 0 blocks behind another thread's wait. */

struct castarg {
	dr_registry *r;
	int timeout;
	int rc;
	double secs;
	volatile int done;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *cast_thread(void *p)
{
	struct castarg *a = p;
	static char buf[1000];
	double t0 = now_s();

	a->rc = dr_cast(a->r, "w", buf, sizeof(buf), a->timeout);
	a->secs = now_s() - t0;
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * dri_lane_send() holds the lane's mutex while it waits for room. Thread A
 * casts with timeout -1 into a full lane and waits; thread B of the same
 * process casts to the same mailbox with timeout 0, which the contract
 * says fails at once with -EAGAIN: B blocks on the mutex until A's wait
 * ends, here for the 1 s the test lets pass before it drains the lane.
 */
Test(breakmb, a_send_with_timeout_0_waits_behind_another_threads_wait_for_room)
{
	const char *seg = seg_new("bk3");
	static char buf[1000];
	struct castarg a = { 0 }, b = { 0 };
	pthread_t ta, tb;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	int n = 0;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	while (dr_cast(r, "w", buf, sizeof(buf), 0) == 0)
		n++;
	cr_assert_geq(n, 1);

	a.r = b.r = r;
	a.timeout = -1;
	b.timeout = 0;
	cr_assert_eq(pthread_create(&ta, NULL, cast_thread, &a), 0);
	usleep(100 * 1000); /* A waits for room */
	cr_assert_eq(pthread_create(&tb, NULL, cast_thread, &b), 0);
	for (int i = 0; i < 1000 && !__atomic_load_n(&b.done, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	/* Drain, so that both end. */
	while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE) || !__atomic_load_n(&b.done, __ATOMIC_ACQUIRE))
		(void)dr_recv(mb, &m, 10);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	cr_assert_eq(a.rc, 0);
	cr_assert(b.secs < 0.2,
		  "dr_cast(timeout 0) on a full lane took %.3f s (rc %s): it waited for another "
		  "thread's dr_cast(timeout -1)",
		  b.secs, dr_strerror(b.rc));
	dr_mailbox_close(mb);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 4: the -ENOENT of a stale call is dropped when the reply lane is
 * full, and the call never ends. */

#define BIG_REPLY 1320 /* 3 replies of 1360 bytes leave 16 of 4096 */

/* Worker of "w": answers 3 calls with BIG_REPLY bytes each, says 'f'; on
 * 'u' unregisters "w" and receives once more (the 4th call is now stale),
 * says 'k' if it was counted stale, and waits for 'q'; or, if
 * bigworker_sleeps (set before the fork), receives in dr_recv(-1) until
 * killed. */
static bool bigworker_sleeps;

static int bigworker_child(void *arg)
{
	struct kid *k = arg;
	static char big[BIG_REPLY];
	struct dr_mailbox_stats st;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	int rc;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "w", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	for (int i = 0; i < 3; i++) {
		if (dr_recv(mb, &m, WAIT_MS) || m.kind != DR_MSG_CALL)
			return 11;
		if (dr_reply(mb, &m, big, sizeof(big)))
			return 12;
	}
	write_byte(k->l.up[1], 'f');
	if (await(&k->l, 'u'))
		return 13;
	if (dr_unregister(r, "w"))
		return 14;
	write_byte(k->l.up[1], 'k');
	while (bigworker_sleeps)
		if (dr_recv(mb, &m, -1) != 0)
			return 18;
	/* A worker's loop, until told to quit: the stale call's -ENOENT
	 * goes out once its caller has made room in the lane. */
	for (;;) {
		char c;

		rc = dr_recv(mb, &m, 50);
		if (rc != -ETIMEDOUT)
			return 15; /* nothing else is sent to it */
		if (read_byte_within(k->l.down[0], &c, 0) == 1) {
			if (c != 'q')
				return 17;
			break;
		}
	}
	if (dr_mailbox_stats(mb, &st) || st.stale != 1)
		return 16;
	return 0;
}

/*
 * A caller has three answered asynchronous calls waiting in its mailbox
 * (the worker's lane to it is full) and makes a fourth, with no timeout;
 * the worker's registration ends before it takes the call. dri_take()
 * answers a stale call with dr_reply_error(-ENOENT) and ignores its
 * failure: the lane is full, the answer is dropped, and the call (its
 * worker alive) never completes, even after the caller drained the lane.
 */
/* Three answered calls fill the worker's lane to mb, then a fourth whose
 * name the worker unregisters before it takes it: the worker's pid. */
static pid_t stale_call_behind_a_full_lane(struct kid *wk, dr_mailbox *mb, uint64_t id[4])
{
	pid_t w = spawn(bigworker_child, wk);

	expect_byte(&wk->l, 'r', w, "worker ready");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(dr_call_async(mb, "w", "c", 1, -1, &id[i]), 0);
	expect_byte(&wk->l, 'f', w, "worker answered 3");
	cr_assert_eq(dr_call_async(mb, "w", "c4", 2, -1, &id[3]), 0);
	write_byte(wk->l.down[1], 'u');
	expect_byte(&wk->l, 'k', w, "worker unregistered");
	return w;
}

Test(breakmb, a_stale_call_whose_enoent_finds_the_reply_lane_full_never_ends)
{
	const char *seg = seg_new("bk4");
	struct kid *wk = kid_new(seg, 4, 8, 4096);
	uint64_t id[4];
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	pid_t w;
	int got = 0, rc;
	bool fourth = false;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	w = stale_call_behind_a_full_lane(wk, mb, id);

	for (;;) {
		rc = dr_recv(mb, &m, 2000);
		if (rc)
			break;
		if (m.kind != DR_MSG_REPLY)
			continue;
		if (m.call_id == id[3]) {
			fourth = true;
			break;
		}
		got++;
	}
	cr_assert_eq(got, 3);
	cr_assert(fourth,
		  "the 4th call (timeout -1, its registration ended) never completed: "
		  "dr_recv %s after 2 s with its worker alive",
		  dr_strerror(rc));
	cr_assert_eq(m.status, -ENOENT);

	write_byte(wk->l.down[1], 'q');
	cr_assert_eq(wait_child(w), 0, "the worker did not count exactly one stale call");
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(wk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 5: a wake-up that could not be sent is never made up for. */

/* Receiver of "a" with no timeout: says 'r', then 'g' once it got one. */
static int sleeper_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "a", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	if (dr_recv(mb, &m, -1))
		return 11;
	write_byte(k->l.up[1], 'g');
	return 0;
}

/* Sends "hi" to "a" with its descriptor limit at 0 (say, a server at its
 * RLIMIT_NOFILE for a moment): says 's' if dr_send reported success. */
static int emfile_sender_child(void *arg)
{
	struct kid *k = arg;
	struct rlimit rl;
	dr_registry *r;
	int rc;

	if (kid_open(k, &r))
		return 10;
	if (await(&k->l, 'g'))
		return 11;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 0;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return 12;
	rc = dr_send(r, "a", "hi", 2, 0);
	write_byte(k->l.up[1], rc == 0 ? 's' : rc == -EMFILE ? 'm' : 'e');
	if (await(&k->l, 'q'))
		return 13;
	return 0;
}

/*
 * wake() clears the receiver's waiting flag by CAS before it makes its
 * socket; if socket() fails (EMFILE) it returns, and nothing else ever
 * wakes the receiver: dr_recv(-1) with no call pending polls with no
 * timeout and no liveness look (the comment's "at most 100 ms on" holds
 * only while calls are pending). The message sits in the lane for ever.
 */
Test(breakmb, a_wake_up_lost_to_emfile_leaves_a_receiver_asleep_for_ever)
{
	const char *seg = seg_new("bk5");
	struct kid *rk = kid_new(seg, 4, 8, 4096), *sk = kid_new(seg, 4, 8, 4096);
	pid_t rp, sp;
	char c = 0;
	int rc;

	dr_registry *r;
	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	rp = spawn(sleeper_child, rk);
	expect_byte(&rk->l, 'r', rp, "receiver ready");
	sp = spawn(emfile_sender_child, sk);
	usleep(200 * 1000); /* the receiver sleeps in poll() */
	write_byte(sk->l.down[1], 'g');
	rc = read_byte_within(sk->l.up[0], &c, WAIT_MS);
	cr_assert(rc == 1 && (c == 's' || c == 'm'), "sender: %d '%c'", rc, c);
	if (c == 'm') {
		/* It could not make its socket and said so (-EMFILE), with
		 * nothing published: the receiver sleeps on, and wakes at
		 * the next message sent. */
		c = 0;
		cr_assert_eq(read_byte_within(rk->l.up[0], &c, 200), -ETIMEDOUT,
			     "the receiver got something from a send that failed");
		cr_assert_eq(dr_send(r, "a", "hi", 2, 0), 0);
	}
	rc = read_byte_within(rk->l.up[0], &c, 2000);
	kill(rp, SIGKILL);
	wait_child(rp);
	write_byte(sk->l.down[1], 'q');
	wait_child(sp);
	cr_assert(rc == 1 && c == 'g',
		  "dr_recv(-1) still asleep 2 s after dr_send() reported its message sent "
		  "(the sender could not make its wake-up socket): %s",
		  rc == 1 ? "?" : strerror(-rc));
	dr_close(r);
	kid_free(rk);
	kid_free(sk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 6: 2^16 openings later, a late reply completes another call. */

/* Echo worker of "w": answers every call with its request. */
static int echo_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "w", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	for (;;) {
		if (dr_recv(mb, &m, -1))
			return 11;
		if (m.kind == DR_MSG_CALL)
			(void)dr_reply(mb, &m, m.data, m.len);
	}
}

/*
 * A mailbox ref carries 16 bits of the slot's generation and call ids
 * restart at 1 in every opening. A call "first" times out while its worker
 * is paused; the caller closes its mailbox, and 65536 openings later the
 * same slot has the same ref again. The new opening's call "second" gets
 * id 1 too. The worker, resumed, answers "first" to that ref: the answer is
 * delivered as the completion of "second".
 */
Test(breakmb, after_2_16_openings_a_late_reply_completes_a_new_call)
{
	const char *seg = seg_new("bk6");
	struct kid *wk = kid_new(seg, 2, 8, 4096);
	uint64_t id1, id2;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	pid_t w;

	cr_assert_eq(open_geo(seg, 2, 8, 4096, &r), 0);
	w = spawn(echo_child, wk);
	expect_byte(&wk->l, 'r', w, "worker ready");
	kill(w, SIGSTOP);
	cr_assert_eq(wait_stopped(w, WAIT_MS), 0);

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_call_async(mb, "w", "first", 5, 50, &id1), 0);
	cr_assert_eq(dr_recv(mb, &m, 2000), 0);
	cr_assert(m.kind == DR_MSG_REPLY && m.call_id == id1 && m.status == -ETIMEDOUT);
	dr_mailbox_close(mb);
	for (int i = 0; i < 65535; i++) {
		cr_assert_eq(dr_mailbox_open(r, &mb), 0);
		dr_mailbox_close(mb);
	}
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_call_async(mb, "w", "second", 6, -1, &id2), 0);
	kill(w, SIGCONT);
	cr_assert_eq(dr_recv(mb, &m, 2000), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	cr_assert_eq(m.call_id, id2);
	cr_assert(m.len == 6 && memcmp(m.data, "second", 6) == 0,
		  "call %llu (\"second\") completed with \"%.*s\": the late answer to call %llu "
		  "of the opening 2^16 before",
		  (unsigned long long)id2, (int)m.len, (const char *)m.data,
		  (unsigned long long)id1);

	kill(w, SIGKILL);
	wait_child(w);
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(wk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 7: lanes of dead clients stay held while their worker sleeps,
 * and the pool never comes back. */

/* A client: one dr_call to "w", says 'c' (or 'e'), waits to be killed. */
static int oneshot_client_child(void *arg)
{
	struct kid *k = arg;
	char buf[16];
	size_t len = sizeof(buf);
	dr_registry *r;

	if (kid_open(k, &r))
		return 10;
	write_byte(k->l.up[1], dr_call(r, "w", "hi", 2, buf, &len, WAIT_MS) == 0 ? 'c' : 'e');
	for (;;)
		pause();
}

/*
 * Two clients each make one call to a worker and die (max_lanes 4: each
 * call took a lane client -> worker and a lane worker -> client's reply
 * mailbox). The worker sleeps in dr_recv(-1). dr_reap() frees nothing: a
 * dead client's drained lane attached to the live worker's mailbox is
 * "left to its reader", who only looks when it next takes a message; the
 * worker's lanes to the dead reply mailboxes (detached by the reaper) are
 * the worker's to give back, which it does only when it next claims a
 * lane. Every further call fails with -EUSERS, for ever: nobody can send
 * the message that would make the worker give the lanes back.
 */
Test(breakmb, dead_clients_lanes_are_never_given_back_while_their_worker_sleeps)
{
	const char *seg = seg_new("bk7");
	struct kid *wk = kid_new(seg, 8, 4, 4096), *ck[2];
	struct dr_stats st;
	char buf[16];
	size_t len;
	dr_registry *r;
	pid_t w, c[2];
	int rc = 0;

	cr_assert_eq(open_geo(seg, 8, 4, 4096, &r), 0);
	w = spawn(echo_child, wk);
	expect_byte(&wk->l, 'r', w, "worker ready");
	for (int i = 0; i < 2; i++) {
		ck[i] = kid_new(seg, 8, 4, 4096);
		c[i] = spawn(oneshot_client_child, ck[i]);
		expect_byte(&ck[i]->l, 'c', c[i], "client call");
	}
	usleep(100 * 1000); /* the worker sleeps */
	for (int i = 0; i < 2; i++) {
		kill(c[i], SIGKILL);
		wait_child(c[i]);
	}
	cr_assert_eq(dr_reap(r, NULL), 0);
	for (int i = 0; i < 20; i++) {
		len = sizeof(buf);
		rc = dr_call(r, "w", "hi", 2, buf, &len, 1000);
		if (rc != -EUSERS)
			break;
		usleep(50 * 1000);
		(void)dr_reap(r, NULL);
	}
	cr_assert_eq(dr_stats(r, &st), 0);
	kill(w, SIGKILL);
	wait_child(w);
	cr_assert_eq(rc, 0,
		     "dr_call: %s, for 1 s, with every other process but the (live, idle) worker "
		     "dead and reaped: %u of %u lanes held",
		     dr_strerror(rc), st.lanes, st.max_lanes);
	dr_close(r);
	kid_free(wk);
	for (int i = 0; i < 2; i++)
		kid_free(ck[i]);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 8: a receiving thread without a reader slot drops messages as
 * stale. */

struct recvarg {
	dr_mailbox *mb;
	int rc;
	struct dr_msg m;
};

static void *recv_thread(void *p)
{
	struct recvarg *a = p;

	a->rc = dr_recv(a->mb, &a->m, 200);
	return NULL;
}

/* Sends "m1" to "x", says 's', waits for 'q'. */
static int xsender_child(void *arg)
{
	struct kid *k = arg;
	struct dr_options o = {
		.segment = k->seg, .capacity = 64, .max_procs = UNIT_MAX_PROCS, .max_threads = 2,
		.max_mailboxes = 4, .max_lanes = 8, .lane_bytes = 4096,
	};
	dr_registry *r;

	if (dr_open(&o, &r) || dr_send(r, "x", "m1", 2, 0))
		return 10;
	write_byte(k->l.up[1], 's');
	if (await(&k->l, 'q'))
		return 11;
	dr_close(r);
	return 0;
}

/*
 * dri_take() checks a message's registration with still_ours(), which
 * needs the receiving thread's reader slot; when none is to be had
 * (-EUSERS: every slot held by live threads) it answers "not ours", and
 * the message is dropped as stale (a call would be failed with -ENOENT).
 * A message sent to a live registration is lost; dr_recv() should have
 * failed with -EUSERS and kept it.
 */
Test(breakmb, a_receiving_thread_without_a_reader_slot_drops_messages_as_stale)
{
	const char *seg = seg_new("bk8");
	struct kid *sk = kid_new(seg, 4, 8, 4096);
	struct dr_options o = {
		.segment = seg, .capacity = 64, .max_procs = UNIT_MAX_PROCS, .max_threads = 2,
		.max_mailboxes = 4, .max_lanes = 8, .lane_bytes = 4096,
	};
	struct dr_mailbox_stats st;
	struct recvarg a = { 0 };
	struct dr_msg m;
	pthread_t th;
	dr_registry *r;
	dr_mailbox *mb;
	pid_t s;
	int rc;

	cr_assert_eq(dr_open(&o, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "x", NULL, 0), 0);
	s = spawn(xsender_child, sk);
	expect_byte(&sk->l, 's', s, "sender");
	a.mb = mb;
	cr_assert_eq(pthread_create(&th, NULL, recv_thread, &a), 0);
	pthread_join(th, NULL);
	rc = dr_recv(mb, &m, 0); /* the main thread has a slot */
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	write_byte(sk->l.down[1], 'q');
	wait_child(s);
	cr_assert(a.rc == 0 || rc == 0,
		  "\"m1\", sent to a live registration, was lost: the receiving thread got %s, "
		  "the next dr_recv %s; stale count %llu",
		  dr_strerror(a.rc), dr_strerror(rc), (unsigned long long)st.stale);
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(sk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 9: closing a mailbox unregisters a name now served by another. */

/*
 * dri_mailbox_free() unregisters by name every name it ever served. If the
 * name was unregistered and is now served through another mailbox of the
 * same handle, closing the first ends the second's registration.
 */
Test(breakmb, closing_a_mailbox_unregisters_a_name_another_mailbox_serves)
{
	const char *seg = seg_new("bk9");
	dr_registry *r;
	dr_mailbox *a, *b;
	struct dr_msg m;
	int rc;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &a), 0);
	cr_assert_eq(dr_mailbox_open(r, &b), 0);
	cr_assert_eq(dr_serve(a, "n", NULL, 0), 0);
	cr_assert_eq(dr_unregister(r, "n"), 0);
	cr_assert_eq(dr_serve(b, "n", NULL, 0), 0);
	dr_mailbox_close(a);
	rc = dr_send(r, "n", "hi", 2, 0);
	cr_assert_eq(rc, 0, "\"n\", served by the open mailbox b, is gone after closing a: %s",
		     dr_strerror(rc));
	cr_assert_eq(dr_recv(b, &m, 0), 0);
	dr_mailbox_close(b);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 10: an answer already in the caller's lane is dropped for
 * -EOWNERDEAD when its worker closes its mailbox right after answering. */

/* Worker of "w": on 'g' takes one call, answers "ans", closes its
 * mailbox, says 'd', waits for 'q'. */
static int answer_then_close_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "w", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	if (await(&k->l, 'g'))
		return 11;
	if (dr_recv(mb, &m, WAIT_MS) || m.kind != DR_MSG_CALL)
		return 12;
	if (dr_reply(mb, &m, "ans", 3))
		return 13;
	dr_mailbox_close(mb);
	write_byte(k->l.up[1], 'd');
	if (await(&k->l, 'q'))
		return 14;
	return 0;
}

/* Calls "w", stopping at the first look that finds nothing (wait_empty);
 * says 'o' if the answer came, 'x' for -EOWNERDEAD, 'e' otherwise. */
static int paused_caller_child(void *arg)
{
	struct kid *k = arg;
	char buf[16];
	size_t len = sizeof(buf);
	dr_registry *r;
	int rc;

	if (kid_open(k, &r))
		return 10;
	crash_arm("wait_empty", "stop", 0);
	rc = dr_call(r, "w", "q", 1, buf, &len, WAIT_MS);
	unsetenv("DISTREG_CRASH_AT");
	write_byte(k->l.up[1], rc == 0 && len == 3 && !memcmp(buf, "ans", 3) ? 'o' :
			       rc == -EOWNERDEAD ? 'x' : 'e');
	if (await(&k->l, 'q'))
		return 11;
	return 0;
}

/* The case of the tests below: caller (a child that calls "w" and stops
 * at wait_empty) must get the answer the worker gave before it closed. */
static void answer_in_lane(const char *tag, dr_test_child_fn caller)
{
	const char *seg = seg_new(tag);
	struct kid *wk = kid_new(seg, 4, 8, 4096), *ck = kid_new(seg, 4, 8, 4096);
	dr_registry *r;
	pid_t w, c;
	char ch = 0;
	int rc;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	w = spawn(answer_then_close_child, wk);
	expect_byte(&wk->l, 'r', w, "worker ready");
	c = spawn(caller, ck);
	cr_assert_eq(wait_stopped(c, WAIT_MS), 0, "caller never reached wait_empty");
	write_byte(wk->l.down[1], 'g');
	expect_byte(&wk->l, 'd', w, "worker answered and closed");
	kill(c, SIGCONT);
	rc = read_byte_within(ck->l.up[0], &ch, WAIT_MS);
	write_byte(wk->l.down[1], 'q');
	write_byte(ck->l.down[1], 'q');
	wait_child(w);
	wait_child(c);
	cr_assert(rc == 1 && ch == 'o',
		  "the caller got %s though the answer was in its lane before the worker closed",
		  ch == 'x' ? "-EOWNERDEAD" : "something else");
	dr_close(r);
	kid_free(wk);
	kid_free(ck);
	dr_unlink(seg);
}

/*
 * dri_wait_take() runs the liveness hook after a look that found nothing,
 * and gives up on its verdict without looking again. A caller preempted
 * between the two (wait_empty) while its worker answers and then closes
 * its mailbox (a worker shutting down) gets -EOWNERDEAD, which says the
 * worker closed its mailbox "before answering", with the answer waiting
 * in its own lane.
 */
Test(breakmb, an_answer_in_the_lane_is_dropped_when_its_worker_then_closes)
{
	answer_in_lane("bk10", paused_caller_child);
}

/* The same, for an asynchronous call: makes it, stops at the first look
 * that finds nothing in dr_recv (wait_empty); says 'o' if the answer came,
 * 'x' for -EOWNERDEAD, 'e' otherwise. */
static int paused_async_caller_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	uint64_t id;
	int rc;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) ||
	    dr_call_async(mb, "w", "q", 1, WAIT_MS, &id))
		return 10;
	crash_arm("wait_empty", "stop", 0);
	rc = dr_recv(mb, &m, WAIT_MS);
	unsetenv("DISTREG_CRASH_AT");
	write_byte(k->l.up[1], rc == 0 && m.kind == DR_MSG_REPLY && m.call_id == id &&
					       m.status == 0 && m.len == 3 && !memcmp(m.data, "ans", 3) ?
				       'o' :
			       rc == 0 && m.status == -EOWNERDEAD ? 'x' : 'e');
	if (await(&k->l, 'q'))
		return 11;
	return 0;
}

/*
 * review-37, finding 3: dr_recv's look at the calls in flight ended an
 * asynchronous call with -EOWNERDEAD on its worker's death alone, though
 * the worker's answer waited in the lane; the answer was then dropped as
 * late. Messages now come first, and the call ends at a look that finds
 * none.
 */
Test(breakmb, an_async_answer_in_the_lane_is_taken_when_its_worker_then_closes)
{
	answer_in_lane("bk10a", paused_async_caller_child);
}

/* ---------------------------------------------------------------------- */
/* Finding 11: the lanes loop of the reaper detaches by lane index, on a
 * stale look. */

/* Serves "q"; on 'c' closes its mailbox, says 'd', waits for 'q'. */
static int closer_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "q", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	if (await(&k->l, 'c'))
		return 11;
	dr_mailbox_close(mb);
	write_byte(k->l.up[1], 'd');
	if (await(&k->l, 'q'))
		return 12;
	return 0;
}

/* Sends to "q", stopping in lane_claim between its check that the target
 * is current and attaching (lane_checked); released, it attaches and dies
 * right after (lane_attached), before it looks again whether the target
 * is current (which would have it take the lane back). */
static int late_attacher_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;
	int rc;

	if (kid_open(k, &r))
		return 10;
	crash_arm("lane_checked", "stop", 0);
	setenv("DISTREG_CRASH_THEN", "lane_attached,kill", 1);
	rc = dr_send(r, "q", "zz", 2, 0);
	write_byte(k->l.up[1], rc == 0 ? 's' : 'e');
	for (;;)
		pause();
}

/* Opens with reap_lane armed: dr_open's reaping stops before it detaches
 * a dead sender's lane from a gone mailbox. Released, says 'd'. */
static int lane_reaper_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;

	crash_arm("reap_lane", "stop", 0);
	if (kid_open(k, &r))
		return 10;
	write_byte(k->l.up[1], 'd');
	if (await(&k->l, 'q'))
		return 11;
	dr_close(r);
	return 0;
}

/*
 * A sender attaches its lane to a mailbox just closed (it found the
 * opening current before the close, attached after), then dies before it
 * sees that and takes the lane back: its lane
 * is attached to a slot nobody holds. A reaper finds it (dead sender,
 * attached, mailbox not alive) and is paused before it clears the table
 * slot by CAS on (lane index + 1). Another reaper frees the lane; the slot
 * is opened again, and a live sender claims the same lane (same index)
 * and attaches it to the same table slot, and sends. The paused reaper's
 * CAS then succeeds on the new attachment: the message is never received.
 * (Needs the two crash points lane_checked and reap_lane added in this
 * branch.)
 */
Test(breakmb, paused_lane_reaper_detaches_a_live_senders_lane_by_index)
{
	const char *seg = seg_new("bk11");
	struct kid *qk = kid_new(seg, 1, 1, 4096), *sk = kid_new(seg, 1, 1, 4096),
		   *rk = kid_new(seg, 1, 1, 4096);
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	pid_t q, s, rp;
	int rc;

	cr_assert_eq(open_geo(seg, 1, 1, 4096, &r), 0);
	q = spawn(closer_child, qk);
	expect_byte(&qk->l, 'r', q, "closer ready");
	s = spawn(late_attacher_child, sk);
	cr_assert_eq(wait_stopped(s, WAIT_MS), 0, "sender never reached lane_checked");
	write_byte(qk->l.down[1], 'c');
	expect_byte(&qk->l, 'd', q, "closer closed");
	kill(s, SIGCONT);
	cr_assert_eq(wait_child(s), 128 + SIGKILL, "the late sender did not die attached");

	rp = spawn(lane_reaper_child, rk);
	cr_assert_eq(wait_stopped(rp, WAIT_MS), 0, "reaper never reached reap_lane");

	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "x", NULL, 0), 0);
	cr_assert_eq(dr_send(r, "x", "m1", 2, 0), 0);
	{
		struct dr_mailbox_stats st;

		cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
		cr_assert_eq(st.lanes, 1, "setup: our lane is attached before the release");
	}

	kill(rp, SIGCONT);
	expect_byte(&rk->l, 'd', rp, "reaper after release");
	rc = dr_recv(mb, &m, 200);
	write_byte(rk->l.down[1], 'q');
	write_byte(qk->l.down[1], 'q');
	wait_child(rp);
	wait_child(q);
	cr_assert_eq(rc, 0, "a message dr_send() reported sent to a live mailbox is lost: %s",
		     dr_strerror(rc));
	cr_assert(m.len == 2 && memcmp(m.data, "m1", 2) == 0);
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(qk);
	kid_free(sk);
	kid_free(rk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 12: an asynchronous call's answer can come before the call is
 * pending, and is dropped as late. */

struct asyncarg {
	dr_mailbox *mb;
	int rc;
	uint64_t id;
};

static void *async_call_thread(void *p)
{
	struct asyncarg *a = p;

	/* This thread alone passes async_sent: it sleeps there 300 ms. */
	a->rc = dr_call_async(a->mb, "w", "q", 1, -1, &a->id);
	return NULL;
}

/*
 * dr_call_async() sends the call, then adds it to the mailbox's pending
 * list. A thread receiving on the mailbox meanwhile (an event loop; the
 * call is made from another thread) takes the answer before the call is
 * pending: dri_pending_take() fails and the answer is counted late and
 * dropped. The call, timeout -1, then never completes. Paused with the
 * added crash point async_sent (sleep mode: that thread only).
 */
Test(breakmb, an_async_answer_that_beats_pending_add_is_dropped_as_late)
{
	const char *seg = seg_new("bk12");
	struct kid *wk = kid_new(seg, 4, 8, 4096);
	struct dr_mailbox_stats st;
	struct asyncarg a = { 0 };
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	pthread_t th;
	pid_t w;
	int rc;
	bool done = false;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	w = spawn(echo_child, wk);
	expect_byte(&wk->l, 'r', w, "worker ready");
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	a.mb = mb;
	crash_arm("async_sent", "sleep:300", 0);
	cr_assert_eq(pthread_create(&th, NULL, async_call_thread, &a), 0);
	/* This thread is the mailbox's receiver. */
	uint64_t got = 0;
	for (int i = 0; i < 40 && !got; i++) {
		rc = dr_recv(mb, &m, 50);
		if (rc == 0 && m.kind == DR_MSG_REPLY)
			got = m.call_id;
	}
	pthread_join(th, NULL);
	done = got != 0 && got == a.id;
	unsetenv("DISTREG_CRASH_AT");
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	kill(w, SIGKILL);
	wait_child(w);
	cr_assert(done,
		  "call %llu (timeout -1, worker alive) never completed in 2 s: its answer "
		  "was dropped as late (late count %llu)",
		  (unsigned long long)a.id, (unsigned long long)st.late);
	dr_mailbox_close(mb);
	dr_close(r);
	kid_free(wk);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Finding 13 (table, liveness): a forked child keeps a dead parent's
 * liveness lock until its atfork handler has run. */

static void stop_in_child(void)
{
	raise(SIGSTOP);
}

/* Whether pid (not necessarily our child) is stopped within ms. */
static bool proc_stopped_within(pid_t pid, int ms)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i <= ms; i++) {
		FILE *f = fopen(path, "r");
		size_t k = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[k] = 0;
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'T')
			return true;
		usleep(1000);
	}
	return false;
}

struct forkstop {
	struct link l;
	const char *seg;
	pid_t grandchild;
};

/* Registers an atfork child handler before its first dr_open() (so it
 * runs before the library's, as preemption of the new child would let
 * time pass there), registers "held", forks a child (which stops in the
 * handler), says 'r' and dies. */
static int forking_owner_child(void *arg)
{
	struct forkstop *a = arg;
	dr_registry *r;
	pid_t g;

	if (pthread_atfork(NULL, NULL, stop_in_child))
		return 10;
	if (seg_open_opts(a->seg, 16, &r) || dr_register(r, "held", "h", 1))
		return 11;
	g = fork();
	if (g == 0)
		_exit(0); /* after its handlers: close what the library says, exit */
	a->grandchild = g;
	write_byte(a->l.up[1], 'r');
	kill(getpid(), SIGKILL);
	return 12;
}

/*
 * The liveness lock is an OFD lock: a forked child shares the locking
 * description until atfork_child() closes its copy. A child stopped (or
 * not yet scheduled) between fork() and that handler keeps a dead
 * parent's lock, so all its names, alive: nobody can take them over or
 * reap them while the child stays there. (The existing regression test
 * races::fork_during_dr_open_keeps_a_dead_parents_names_alive fails now
 * and then for the same reason: the new child had not run its handler
 * yet when the test looked.)
 */
Test(breakmb, a_child_paused_before_its_atfork_handler_keeps_a_dead_parents_names)
{
	const char *seg = seg_new("bk13");
	struct forkstop *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	dr_registry *r;
	unsigned n = 0;
	pid_t s;
	int rc = -1, st;

	cr_assert_neq(a, MAP_FAILED);
	a->seg = seg;
	link_init(&a->l);
	/* No dr_open() in this process before the spawn: the child's first
	 * one registers the library's atfork handlers after its own. */
	s = spawn(forking_owner_child, a);
	expect_byte(&a->l, 'r', s, "owner registered and forked");
	st = wait_child(s);
	cr_assert_eq(st, 128 + SIGKILL);
	bool stopped = proc_stopped_within(a->grandchild, WAIT_MS);

	if (stopped) {
		r = seg_open(seg, 16);
		cr_assert_eq(dr_reap(r, &n), 0);
		rc = dr_register(r, "held", "mine", 4);
	}
	kill(a->grandchild, SIGKILL); /* not our child: init reaps it */
	cr_assert(stopped, "the child never stopped");
	cr_assert_eq(rc, 0,
		     "the dead owner's name cannot be taken over while a child it forked is paused "
		     "before its atfork handler: %s (reaped %u)",
		     dr_strerror(rc), n);
	link_close(&a->l);
	munmap(a, sizeof(*a));
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* A drained lane whose sender publishes, then dies, while its receiver
 * looks (found by tests/model/e1_evict.pml on branch evmodel). */

/* Sends "one" to "a", says 's'; on 'x' sends "two" and exits. */
static int send_then_exit_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;

	if (kid_open(k, &r) || dr_send(r, "a", "one", 3, 0))
		return 10;
	write_byte(k->l.up[1], 's');
	if (await(&k->l, 'x'))
		return 11;
	return dr_send(r, "a", "two", 3, 0) ? 12 : 0;
}

/* The receiver of "a": takes "one" on 'g', then receives again with
 * lane_drained armed (it stops there, having seen the sender's lane
 * drained and the sender alive); released, it says 'Y' if "two" comes
 * within WAIT_MS, else 'N'. */
static int drained_receiver_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	int rc;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "a", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	if (await(&k->l, 'g'))
		return 11;
	rc = dr_recv(mb, &m, WAIT_MS);
	if (rc || m.len != 3 || memcmp(m.data, "one", 3))
		return 12;
	write_byte(k->l.up[1], '1');
	crash_arm("lane_drained", "stop", 0);
	rc = dr_recv(mb, &m, WAIT_MS);
	unsetenv("DISTREG_CRASH_AT");
	write_byte(k->l.up[1], rc == 0 && m.len == 3 && memcmp(m.data, "two", 3) == 0 ? 'Y' : 'N');
	return 0;
}

/*
 * The receiver reads a lane's head and tail (equal: drained) and its
 * sender's owner id, and is paused before it asks whether that sender
 * died. The sender publishes "two" (dr_send returns 0) and exits. The
 * receiver, released, finds the sender dead and the lane drained as it saw
 * it earlier: detached and freed with "two" in it, a message reported sent
 * to a live receiver and never delivered.
 */
Test(breakmb, a_message_published_before_its_sender_exits_reaches_a_receiver_paused_at_its_lane)
{
	const char *seg = seg_new("bk14");
	struct kid *rk = kid_new(seg, 4, 8, 4096), *sk = kid_new(seg, 4, 8, 4096);
	pid_t rp, sp;

	rp = spawn(drained_receiver_child, rk);
	expect_byte(&rk->l, 'r', rp, "receiver ready");
	sp = spawn(send_then_exit_child, sk);
	expect_byte(&sk->l, 's', sp, "sender sent one");
	write_byte(rk->l.down[1], 'g');
	expect_byte(&rk->l, '1', rp, "receiver took one");
	cr_assert_eq(wait_stopped(rp, WAIT_MS), 0, "receiver never reached lane_drained");
	write_byte(sk->l.down[1], 'x');
	cr_assert_eq(wait_child(sp), 0, "the sender could not send two");
	kill(rp, SIGCONT);
	expect_byte(&rk->l, 'Y', rp,
		    "\"two\", sent before its sender exited, never reached the receiver");
	cr_assert_eq(wait_child(rp), 0);
	kid_free(rk);
	kid_free(sk);
	dr_unlink(seg);
}

/*
 * dr_set_wait_spin(): a receiver's wait passes wait_empty (its look that
 * found nothing) at every turn of its spin. With the spin set to 0 a
 * 30 ms receive that gets nothing passes it twice (before it sleeps, and
 * when its deadline wakes it), so a kill armed at the sixth passage never
 * comes; with the default spin (20 us at first) it passes it dozens of
 * times before it sleeps, and the kill comes.
 */
struct spinkid {
	const char *seg;
	int set;          /* call dr_set_wait_spin(r, spin_us) first */
	unsigned spin_us;
};

static int spin_receiver_child(void *arg)
{
	struct spinkid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	int rc;

	if (open_geo(k->seg, 4, 8, 4096, &r) || dr_mailbox_open(r, &mb))
		return 10;
	if (k->set && dr_set_wait_spin(r, k->spin_us))
		return 11;
	crash_arm("wait_empty", "kill", 5);
	rc = dr_recv(mb, &m, 30);
	unsetenv("DISTREG_CRASH_AT");
	return rc == -ETIMEDOUT ? 0 : 12;
}

Test(breakmb, a_wait_spin_of_0_sleeps_at_once_and_the_default_spins)
{
	const char *seg = seg_new("bk15");
	struct spinkid none = { seg, 1, 0 }, dflt = { seg, 0, 0 };
	dr_registry *r;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	cr_assert_eq(dr_set_wait_spin(NULL, 0), -EINVAL);
	cr_assert_eq(dr_set_wait_spin(r, DR_WAIT_SPIN_MAX_US + 1), -EINVAL);
	cr_assert_eq(dr_set_wait_spin(r, DR_WAIT_SPIN_MAX_US), 0);
	cr_assert_eq(wait_child(spawn(spin_receiver_child, &none)), 0,
		     "with the spin at 0 the receive passed wait_empty 6 times or more");
	cr_assert_eq(wait_child(spawn(spin_receiver_child, &dflt)), 128 + SIGKILL,
		     "with the default spin the receive passed wait_empty fewer than 6 times");
	dr_close(r);
	dr_unlink(seg);
}

/*
 * The learning rule of the wait's spin (dri_spin_learn), with the default
 * bounds: 20 us at first, up to 1.5 times a wait of at most 200 us, never
 * less while messages keep coming that soon, halved after a longer wait,
 * and always within 20-200 us. With dr_set_wait_spin(r, 0) it stays 0.
 */
Test(breakmb, the_wait_spin_learns_from_the_last_wait_within_its_bounds)
{
	const uint64_t us = 1000, base = 20 * us, max = DR_WAIT_SPIN_DEFAULT_US * us;
	uint64_t s;

	cr_assert_eq(dri_spin_learn(0, 1 * us, base, max), base, "a quick first wait keeps 20 us");
	cr_assert_eq(dri_spin_learn(0, 100 * us, base, max), 150 * us, "1.5 times a 100 us wait");
	cr_assert_eq(dri_spin_learn(150 * us, 10 * us, base, max), 150 * us,
		     "a quicker wait does not shorten the spin");
	cr_assert_eq(dri_spin_learn(150 * us, 190 * us, base, max), max, "never over the cap");
	cr_assert_eq(dri_spin_learn(max, 201 * us, base, max), max / 2,
		     "a wait longer than the cap halves the spin");
	s = max;
	for (int i = 0; i < 10; i++)
		s = dri_spin_learn(s, 1000 * 1000 * us, base, max);
	cr_assert_eq(s, base, "long waits bring the spin down to 20 us, not under");
	cr_assert_eq(dri_spin_learn(0, 50 * us, 0, 0), 0, "a cap of 0 never spins");
	cr_assert_eq(dri_spin_learn(0, 10 * us, 5 * us, 5 * us), 5 * us,
		     "a cap under 20 us is also the least spin");
}

/*
 * review-39: a sender killed in its wake-up of a sleeping receiver. The
 * wake-up cleared the receiver's waiting flag, then sent the datagram: a
 * sender killed between the two left the receiver asleep and every later
 * sender sure it had been woken, so nothing sent to that mailbox arrived
 * until something else woke it (dr_recv(-1): never). Now the datagram
 * goes first and the flag is cleared after it (wake_sent is between the
 * two). A sender killed after publishing but before waking anyone
 * (send_published) delays its own message, and nobody else's, until a
 * reaper finds its unread lane and wakes the receiver (here dr_reap(); the
 * bridge's reaper, a dr_open()), or the next message does.
 */
static int sleepy_receiver_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_set_wait_spin(r, 0) || dr_mailbox_open(r, &mb) ||
	    dr_serve(mb, "sleepy", NULL, 0))
		return 10;
	write_byte(k->l.up[1], 'r');
	for (;;) {
		if (dr_recv(mb, &m, -1) != 0 || m.len != 1)
			return 11;
		write_byte(k->l.up[1], *(const char *)m.data);
	}
}

struct castkid {
	const char *seg;
	const char *point; /* armed (in kill mode unless stop), or NULL */
	char text;
	bool stop;
	const char *name;  /* "sleepy" if NULL */
};

static int one_cast_child(void *arg)
{
	struct castkid *c = arg;
	dr_registry *r;

	if (open_geo(c->seg, 4, 8, 4096, &r))
		return 10;
	if (c->point)
		crash_arm(c->point, c->stop ? "stop" : "kill", 0);
	return dr_cast(r, c->name ? c->name : "sleepy", &c->text, 1, 1000) ? 11 : 0;
}

/* Until some mailbox's owner is asleep (its waiting flag set). */
static void await_sleeper(dr_registry *r)
{
	for (int i = 0; i < WAIT_MS; i++) {
		for (uint32_t j = 0; j < r->max_mailboxes; j++)
			if (CMM_LOAD_SHARED(r->mboxes[j].owner) &&
			    (CMM_LOAD_SHARED(r->mboxes[j].waiting) & 1))
				return;
		usleep(1000);
	}
	cr_assert_fail("the receiver never went to sleep");
}

/* Reads n bytes from the receiver within ms each; returns them in got. */
static void expect_msgs(struct kid *k, pid_t pid, int n, int ms, char *got, const char *what)
{
	for (int i = 0; i < n; i++) {
		int rc = read_byte_within(k->l.up[0], &got[i], ms);

		cr_assert_eq(rc, 1, "%s: message %d of %d not received within %d ms (%d, receiver %s)",
			     what, i + 1, n, ms, rc, kill(pid, 0) == 0 ? "alive" : "gone");
	}
	got[n] = 0;
}

static void killed_waker(const char *tag, const char *point, bool own_message_at_once)
{
	const char *seg = seg_new(tag);
	struct kid *k = kid_new(seg, 4, 8, 4096);
	struct castkid a = { seg, point, 'a', false, NULL }, b = { seg, NULL, 'b', false, NULL };
	dr_registry *r;
	char got[3];
	pid_t rp;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	rp = spawn(sleepy_receiver_child, k);
	expect_byte(&k->l, 'r', rp, "receiver");
	await_sleeper(r);
	cr_assert_eq(wait_child(spawn(one_cast_child, &a)), 128 + SIGKILL,
		     "the sender never reached %s", point);
	if (!own_message_at_once) {
		/* Nobody woke the receiver, which never wakes on its own... */
		char c;

		cr_assert_eq(read_byte_within(k->l.up[0], &c, 300), -ETIMEDOUT,
			     "the receiver woke with nobody to wake it");
		/* ...until a reaper finds the dead sender's unread lane. */
		cr_assert_eq(dr_reap(r, NULL), 0);
		expect_msgs(k, rp, 1, 2000, got, "the killed sender's message, after dr_reap");
		cr_assert_eq(got[0], 'a');
		await_sleeper(r);
		cr_assert_eq(wait_child(spawn(one_cast_child, &b)), 0);
		expect_msgs(k, rp, 1, 500, got, "the next sender's message");
		cr_assert_eq(got[0], 'b');
	} else {
		cr_assert_eq(wait_child(spawn(one_cast_child, &b)), 0);
		expect_msgs(k, rp, 2, 500, got, "both messages");
		cr_assert(strchr(got, 'a') && strchr(got, 'b'), "got '%s'", got);
	}
	kill_reaped(rp);
	kid_free(k);
	dr_close(r);
	dr_unlink(seg);
}

Test(breakmb, a_sender_killed_after_it_woke_a_sleeping_receiver_leaves_it_wakeable)
{
	killed_waker("bk16", "wake_sent", true);
}

Test(breakmb, a_sender_killed_before_it_woke_a_sleeping_receiver_delays_only_its_message)
{
	killed_waker("bk17", "send_published", false);
}

/*
 * helper-40 (from the model): EAGAIN from sendto() on the handle's wake
 * socket also means its own send buffer is full (its datagrams still
 * queued at mailboxes whose owners do not drain them), not only the
 * owner's queue. The wake-up counted it as sent and cleared the flag: a
 * sleep no datagram covered. Now a fresh socket sends it. Here the
 * handle's buffer is shrunk and filled with datagrams to a socket nobody
 * reads; the next cast must still wake the sleeping receiver.
 */
Test(breakmb, a_sender_whose_wake_socket_is_full_still_wakes_a_sleeping_receiver)
{
	const char *seg = seg_new("bk18");
	struct kid *k = kid_new(seg, 4, 8, 4096);
	struct sockaddr_un sink = { .sun_family = AF_UNIX };
	socklen_t sink_len;
	int snk, small = 1, n = 0;
	dr_registry *r;
	char got[2];
	pid_t rp;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	rp = spawn(sleepy_receiver_child, k);
	expect_byte(&k->l, 'r', rp, "receiver");
	await_sleeper(r);
	cr_assert_eq(dr_cast(r, "sleepy", "a", 1, 1000), 0); /* makes the wake socket */
	expect_msgs(k, rp, 1, 2000, got, "the first message");
	await_sleeper(r);

	snk = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(snk, 0);
	sink_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			       (size_t)snprintf(sink.sun_path + 1, sizeof(sink.sun_path) - 1,
						"distreg-test-sink.%d", getpid()));
	cr_assert_eq(bind(snk, (struct sockaddr *)&sink, sink_len), 0, "%s", strerror(errno));
	cr_assert_geq(r->wake_sock, 0);
	cr_assert_eq(setsockopt(r->wake_sock, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	while (sendto(r->wake_sock, "", 1, MSG_DONTWAIT, (struct sockaddr *)&sink, sink_len) == 1)
		n++;
	cr_assert_eq(errno, EAGAIN, "filling the wake socket: %s", strerror(errno));
	cr_assert_lt(n, 100, "%d datagrams fit: the sink's queue, not our buffer, is full", n);

	cr_assert_eq(dr_cast(r, "sleepy", "b", 1, 1000), 0);
	expect_msgs(k, rp, 1, 500, got, "the message sent through a full wake socket");
	cr_assert_eq(got[0], 'b');

	/* helper-42: and at the descriptor limit, where no fresh socket can
	 * be made (every number below the limit in use): the spare. */
	{
		struct rlimit old, lim;
		int fd, rc;

		await_sleeper(r);
		fd = dup(0);
		cr_assert_geq(fd, 0);
		cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
		lim = old;
		lim.rlim_cur = (rlim_t)fd + 1;
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
		cr_assert_lt(socket(AF_UNIX, SOCK_DGRAM, 0), 0, "a socket could still be made");
		rc = dr_cast(r, "sleepy", "c", 1, 1000);
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
		close(fd);
		cr_assert_eq(rc, 0, "%s", dr_strerror(rc));
		expect_msgs(k, rp, 1, 500, got, "the message sent at the descriptor limit");
		cr_assert_eq(got[0], 'c');
	}
	kill_reaped(rp);
	close(snk);
	kid_free(k);
	dr_close(r);
	dr_unlink(seg);
}

/*
 * helper-41: a sender to an earlier opening of a mailbox slot. It pauses
 * after publishing to R1's opening; R1 closes, R2 takes the slot and
 * sleeps; the sender resumes and reads R2's word (the sleep count goes on
 * across openings), sends its datagram to R1's address, which a child R1
 * forked still holds, and its CAS cleared R2's flag: the next sender to
 * R2 woke nobody. Now wake() gives up once the slot's generation is not
 * its opening's.
 */
static int forking_old_owner_child(void *arg)
{
	struct kid *k = arg;
	dr_registry *r;
	dr_mailbox *mb;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "old", NULL, 0))
		return 10;
	if (fork() == 0) { /* keeps R1's socket, bound to its address */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	write_byte(k->l.up[1], 'o');
	if (await(&k->l, 'c'))
		return 12;
	dr_mailbox_close(mb);
	write_byte(k->l.up[1], 'x');
	for (;;)
		pause();
}

Test(breakmb, a_paused_sender_to_an_earlier_opening_does_not_clear_the_new_owners_sleep)
{
	const char *seg = seg_new("bk19");
	struct kid *k1 = kid_new(seg, 4, 8, 4096), *k2 = kid_new(seg, 4, 8, 4096);
	struct castkid s = { seg, "send_published", 's', true, "old" }, b = { seg, NULL, 'b', false, NULL };
	dr_registry *r;
	pid_t p1, ps, p2;
	char got[2];

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	p1 = spawn(forking_old_owner_child, k1);
	expect_byte(&k1->l, 'o', p1, "R1");
	ps = spawn(one_cast_child, &s);
	cr_assert_eq(wait_stopped(ps, WAIT_MS), 0, "the sender never paused after publishing");
	write_byte(k1->l.down[1], 'c');
	expect_byte(&k1->l, 'x', p1, "R1 closed");
	p2 = spawn(sleepy_receiver_child, k2);
	expect_byte(&k2->l, 'r', p2, "R2");
	cr_assert_neq(CMM_LOAD_SHARED(r->mboxes[0].owner), 0, "R2 did not take R1's slot");
	await_sleeper(r);
	kill(ps, SIGCONT);
	cr_assert_eq(wait_child(ps), 0);
	cr_assert(CMM_LOAD_SHARED(r->mboxes[0].waiting) & 1,
		  "the earlier opening's sender cleared R2's flag");
	cr_assert_eq(wait_child(spawn(one_cast_child, &b)), 0);
	expect_msgs(k2, p2, 1, 500, got, "the next sender's message");
	cr_assert_eq(got[0], 'b');
	kill_reaped(p2);
	kill_reaped(p1);
	kid_free(k1);
	kid_free(k2);
	dr_close(r);
	dr_unlink(seg);
}

/*
 * helper-42: a stale call (its name unregistered before the worker took
 * it) whose answer finds no room in the caller's lane, the caller not
 * reading: the worker, asleep in dr_recv(-1), tried again every 20 ms, 50
 * wake-ups a second for as long as the caller did not read. Now 20 ms,
 * then 40, ... up to a second; and the answer still reaches the caller.
 */
static long voluntary_switches(pid_t pid)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

Test(breakmb, a_stale_calls_answer_waiting_for_room_backs_off)
{
	const char *seg = seg_new("bk20");
	struct kid *k = kid_new(seg, 4, 8, 4096);
	uint64_t id[4];
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	long a, b;
	int got = 0, stale = 0;
	pid_t w;

	cr_assert_eq(open_geo(seg, 4, 8, 4096, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	bigworker_sleeps = true;
	w = stale_call_behind_a_full_lane(k, mb, id);
	bigworker_sleeps = false;
	usleep(200 * 1000);
	a = voluntary_switches(w);
	usleep(1000 * 1000);
	b = voluntary_switches(w);
	cr_assert_lt(b - a, 10, "the worker woke %ld times in 1 s with nothing it could do", b - a);
	/* The caller reads: the three answers, then the stale call's end. */
	while (got + stale < 4 && dr_recv(mb, &m, 3000) == 0) {
		cr_assert_eq(m.kind, DR_MSG_REPLY);
		if (m.call_id == id[3]) {
			cr_assert_eq(m.status, -ENOENT, "%s", dr_strerror(m.status));
			stale++;
		} else {
			got++;
		}
	}
	cr_assert_eq(got, 3);
	cr_assert_eq(stale, 1, "the stale call never ended");
	kill_reaped(w);
	kid_free(k);
	dr_mailbox_close(mb);
	dr_close(r);
	dr_unlink(seg);
}

/*
 * helper-42: a receiver found dead while it waits (its program closed the
 * segment's lock descriptor; others then take it for dead and reap its
 * mailbox) woke on its watch's 20 ms timer, walked the lane table of the
 * slot's next opening, detached its lanes (their target was not its ref)
 * and armed its waiting word: the next opening's message was lost. Now
 * the wait ends with -ENOLCK once it is buried or its slot is not its own.
 */
static int buried_receiver_child(void *arg)
{
	struct kid *k = arg;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	int rc;

	if (kid_open(k, &r) || dr_mailbox_open(r, &mb) || dr_watch(mb, "nothing"))
		return 10;
	write_byte(k->l.up[1], 'r');
	close(r->fd); /* the lock goes: others will find us dead */
	rc = dr_recv(mb, &m, -1);
	write_byte(k->l.up[1], rc == -ENOLCK ? 'L' : 'o');
	for (;;)
		pause();
}

Test(breakmb, a_buried_receiver_leaves_the_next_opening_of_its_slot_alone)
{
	const char *seg = seg_new("bk21");
	struct kid *k = kid_new(seg, 1, 8, 4096);
	struct dr_mailbox_stats st;
	struct dr_msg m;
	dr_registry *r;
	dr_mailbox *mb;
	char c = 0;
	pid_t p;

	cr_assert_eq(open_geo(seg, 1, 8, 4096, &r), 0);
	p = spawn(buried_receiver_child, k);
	expect_byte(&k->l, 'r', p, "R1");
	usleep(50 * 1000);
	kill(p, SIGSTOP);
	cr_assert_eq(wait_stopped(p, WAIT_MS), 0);
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0, "R1's mailbox was not reaped");
	cr_assert_eq(dr_serve(mb, "x", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "x", "m", 1, 0), 0);
	kill(p, SIGCONT);
	cr_assert_eq(read_byte_within(k->l.up[0], &c, 2000), 1, "R1's wait did not end");
	cr_assert_eq(c, 'L', "R1's wait ended with '%c', not -ENOLCK", c);
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	cr_assert_eq(st.lanes, 1, "R2's lane was detached");
	cr_assert_eq(dr_recv(mb, &m, 1000), 0, "the message to the new opening was lost");
	cr_assert(m.len == 1 && *(const char *)m.data == 'm');
	kill_reaped(p);
	kid_free(k);
	dr_mailbox_close(mb);
	dr_close(r);
	dr_unlink(seg);
}

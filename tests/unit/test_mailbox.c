/*
 * test_mailbox.c - lib/mailbox.c and lib/call.c: mailboxes, serving names,
 * call, asynchronous call, cast and inform, replies, and what each does at
 * its limits (full lanes, the largest message, ended registrations, dead
 * workers, late replies).
 */
#include <poll.h>
#include <sys/mman.h>
#include <time.h>

#include "unit.h"
#include <distreg_admin.h>

#include "segmap.h"

TestSuite(mailbox, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A segment with small lanes, so filling one is quick. */
static dr_registry *open_mb(const char *seg, uint32_t lane_bytes, uint32_t max_mailboxes)
{
	struct dr_options o = {
		.segment = seg,
		.capacity = 256,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.max_mailboxes = max_mailboxes,
		.max_lanes = 64,
		.lane_bytes = lane_bytes,
	};
	dr_registry *r = NULL;
	int rc = dr_open(&o, &r);

	cr_assert_eq(rc, 0, "dr_open(%s): %s", seg, dr_strerror(rc));
	return r;
}

/* ---------------------------------------------------------------------- */
/* One process */

Test(mailbox, cast_and_send_arrive_in_order_with_name_and_regid)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct dr_entry e;
	struct dr_msg m;
	dr_mailbox *mb;
	char buf[16];

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_geq(dr_mailbox_fd(mb), 0);
	cr_assert_eq(dr_serve(mb, "w", "addr", 4), 0);
	cr_assert_eq(dr_whereis(r, "w", &e), 0, "a served name is a registered name");
	cr_assert_eq(e.value_len, 4);
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		cr_assert_eq(i % 2 ? dr_send(r, "w", buf, strlen(buf), 0) :
				     dr_cast(r, "w", buf, strlen(buf), 0), 0);
	}
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		cr_assert_eq(dr_recv(mb, &m, 1000), 0);
		cr_assert_eq(m.kind, i % 2 ? DR_MSG_INFO : DR_MSG_CAST);
		cr_assert_eq(m.len, strlen(buf));
		cr_assert_arr_eq(m.data, buf, m.len, "message %d out of order", i);
		cr_assert_eq(m.name_len, 1);
		cr_assert_eq(m.name[0], 'w');
		cr_assert_eq(m.regid, e.regid);
		cr_assert_eq(m.sender, getpid());
	}
	cr_assert_eq(dr_recv(mb, &m, 0), -EAGAIN, "nothing more");
	dr_mailbox_close(mb);
	cr_assert_eq(dr_whereis(r, "w", NULL), -ENOENT, "close unregisters what it served");
	dr_close(r);
}

Test(mailbox, errors_of_sending)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	char big[8192] = { 0 };
	dr_mailbox *mb;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	cr_assert_eq(dr_register(r, "plain", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "absent", "x", 1, 0), -ENOENT);
	cr_assert_eq(dr_cast(r, "plain", "x", 1, 0), -EDESTADDRREQ);
	cr_assert_eq(dr_message_max(r), 8192 - DR_MSG_OVERHEAD);
	cr_assert_eq(dr_cast(r, "w", big, dr_message_max(r) + 1, 0), -EMSGSIZE);
	cr_assert_eq(dr_cast(r, "w", big, dr_message_max(r), 0), 0, "the largest message fits");
	cr_assert_eq(dr_cast(r, "w", NULL, 1, 0), -EINVAL);
	cr_assert_eq(dr_cast(r, "", "x", 1, 0), -EINVAL);
	cr_assert_eq(dr_cast(r, "w", "x", 1, -2), -EINVAL);
	cr_assert_eq(dr_serve(NULL, "x", NULL, 0), -EINVAL);
	cr_assert_eq(dr_recv(mb, NULL, 0), -EINVAL);
	dr_mailbox_close(mb);
	dr_mailbox_close(NULL);
	dr_close(r);
}

Test(mailbox, the_largest_message_arrives_whole_across_the_end_of_the_ring)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 4096, 0);
	size_t max = dr_message_max(r);
	unsigned char *buf = malloc(max);
	struct dr_msg m;
	dr_mailbox *mb;

	cr_assert_not_null(buf);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	/* Sizes that move the ring's position to every offset. */
	for (size_t n = 1, k = 0; k < 200; k++, n = (n * 7 + 13) % max + 1) {
		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)(i * 31 + k);
		cr_assert_eq(dr_cast(r, "w", buf, n, 0), 0, "message %zu of %zu bytes", k, n);
		cr_assert_eq(dr_recv(mb, &m, 0), 0);
		cr_assert_eq(m.len, n);
		cr_assert_arr_eq(m.data, buf, n, "message %zu of %zu bytes came torn", k, n);
	}
	free(buf);
	dr_mailbox_close(mb);
	dr_close(r);
}

Test(mailbox, a_full_lane_fails_at_once_or_waits_for_room)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 4096, 0);
	struct dr_msg m;
	dr_mailbox *mb;
	char payload[200] = { 0 };
	int sent = 0, rc;
	double t0;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	while ((rc = dr_cast(r, "w", payload, sizeof(payload), 0)) == 0)
		sent++;
	cr_assert_eq(rc, -EAGAIN, "a full lane: %s", dr_strerror(rc));
	cr_assert_gt(sent, 10);
	t0 = now_s();
	rc = dr_cast(r, "w", payload, sizeof(payload), 50);
	cr_assert_eq(rc, -ETIMEDOUT);
	cr_assert_geq(now_s() - t0, 0.045, "waited %.3f s of 0.05", now_s() - t0);
	/* Nothing reported as sent was dropped. */
	for (int i = 0; i < sent; i++)
		cr_assert_eq(dr_recv(mb, &m, 0), 0, "message %d of %d", i, sent);
	cr_assert_eq(dr_recv(mb, &m, 0), -EAGAIN);
	cr_assert_eq(dr_cast(r, "w", payload, sizeof(payload), 0), 0, "room again");
	dr_mailbox_close(mb);
	dr_close(r);
}

Test(mailbox, a_message_for_an_ended_registration_is_not_delivered_to_the_next)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct dr_mailbox_stats st;
	struct dr_msg m;
	dr_mailbox *mb;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "w", "old", 3, 0), 0);
	cr_assert_eq(dr_unregister(r, "w"), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0); /* a new registration, same mailbox */
	cr_assert_eq(dr_cast(r, "w", "new", 3, 0), 0);
	cr_assert_eq(dr_recv(mb, &m, 0), 0);
	cr_assert_eq(m.len, 3);
	cr_assert_arr_eq(m.data, "new", 3, "the old registration's message reached the new one");
	cr_assert_eq(dr_recv(mb, &m, 0), -EAGAIN);
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	cr_assert_eq(st.stale, 1);
	dr_mailbox_close(mb);
	dr_close(r);
}

Test(mailbox, the_descriptor_polls_readable_when_a_message_waits)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct pollfd p;
	struct dr_msg m;
	dr_mailbox *mb;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	p = (struct pollfd){ .fd = dr_mailbox_fd(mb), .events = POLLIN };
	for (int round = 0; round < 3; round++) {
		/* As an event loop does: receive until empty, then poll. */
		cr_assert_eq(dr_recv(mb, &m, 0), -EAGAIN);
		cr_assert_eq(poll(&p, 1, 0), 0, "round %d: readable with nothing sent", round);
		cr_assert_eq(dr_cast(r, "w", "x", 1, 0), 0);
		cr_assert_eq(poll(&p, 1, 1000), 1, "round %d: not readable after a send", round);
		cr_assert_eq(dr_recv(mb, &m, 0), 0);
		cr_assert_arr_eq(m.data, "x", 1);
	}
	dr_mailbox_close(mb);
	dr_close(r);
}

/* ---------------------------------------------------------------------- */
/* Workers in other processes */

struct worker {
	const char *seg;
	const char *name;
	int up[2];      /* worker -> test: 'r' ready */
	int delay_ms;   /* before answering */
	int die_at;     /* SIGKILL itself on this call (1-based), 0 never */
	volatile int calls;
};

/* An echo worker: answers every call with its payload; "fail" calls with
 * -EPROTO; stops on "quit". */
static int worker_main(void *arg)
{
	struct worker *w = arg;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	struct dr_options o = { .segment = w->seg };

	if (dr_open(&o, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, w->name, NULL, 0))
		return 10;
	write_byte(w->up[1], 'r');
	for (;;) {
		int rc = dr_recv(mb, &m, 10000);

		if (rc)
			return 11;
		if (m.kind != DR_MSG_CALL)
			continue;
		if (++w->calls == w->die_at)
			raise(SIGKILL);
		if (w->delay_ms)
			usleep((useconds_t)w->delay_ms * 1000);
		if (m.len == 4 && memcmp(m.data, "quit", 4) == 0) {
			dr_reply(mb, &m, "bye", 3);
			break;
		}
		if (m.len == 4 && memcmp(m.data, "fail", 4) == 0)
			rc = dr_reply_error(mb, &m, -EPROTO);
		else if (m.len == 5 && memcmp(m.data, "spoof", 5) == 0)
			/* A worker cannot claim that its call reached no one. */
			rc = dr_reply_error(mb, &m, DR_NOTSERVED) == -EINVAL &&
					     dr_reply_error(mb, &m, -4096) == -EINVAL &&
					     dr_reply_error(mb, &m, 0) == -EINVAL
				     ? dr_reply(mb, &m, "refused", 7)
				     : dr_reply(mb, &m, "taken", 5);
		else
			rc = dr_reply(mb, &m, m.data, m.len);
		if (rc)
			return 12;
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

static struct worker *start_worker(const char *seg, const char *name, pid_t *pid)
{
	struct worker *w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(w, MAP_FAILED);
	w->seg = seg;
	w->name = name;
	cr_assert_eq(pipe(w->up), 0);
	(void)pid;
	return w;
}

static void worker_go(struct worker *w, pid_t *pid)
{
	char c = 0;

	*pid = spawn(worker_main, w);
	cr_assert_eq(read_byte_within(w->up[0], &c, 10000), 1, "worker not ready");
}

/* Stop worker w (pid) serving name: no delay, a "quit" call, exit 0. */
static void worker_quit(dr_registry *r, struct worker *w, const char *name, pid_t pid)
{
	char buf[8];
	size_t len = sizeof(buf);

	w->delay_ms = 0;
	cr_assert_eq(dr_call(r, name, "quit", 4, buf, &len, 5000), 0);
	cr_assert_eq(wait_child(pid), 0);
}

Test(mailbox, call_gets_the_answer_and_the_workers_errors)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct worker *w = start_worker(seg, "echo", NULL);
	char buf[64];
	size_t len;
	pid_t pid;

	worker_go(w, &pid);
	for (int i = 0; i < 100; i++) {
		char req[32];

		snprintf(req, sizeof(req), "ping %d", i);
		len = sizeof(buf);
		cr_assert_eq(dr_call(r, "echo", req, strlen(req), buf, &len, 5000), 0);
		cr_assert_eq(len, strlen(req));
		cr_assert_arr_eq(buf, req, len);
	}
	len = sizeof(buf);
	cr_assert_eq(dr_call(r, "echo", "fail", 4, buf, &len, 5000), -EPROTO);
	len = sizeof(buf);
	cr_assert_eq(dr_call(r, "echo", "spoof", 5, buf, &len, 5000), 0);
	cr_assert_eq(len, 7);
	cr_assert_arr_eq(buf, "refused", 7, "dr_reply_error() took a status out of errno's range");
	len = 2;
	cr_assert_eq(dr_call(r, "echo", "too long", 8, buf, &len, 5000), -EMSGSIZE);
	cr_assert_eq(len, 8, "the answer's length, for a buffer that was too small");
	cr_assert_eq(dr_call(r, "echo", "no data", 7, NULL, NULL, 5000), 0);
	cr_assert_eq(dr_call(r, "absent", "x", 1, NULL, NULL, 100), -ENOENT);
	worker_quit(r, w, "echo", pid);
	dr_close(r);
}

Test(mailbox, a_slow_worker_times_the_call_out_and_its_late_reply_is_dropped_and_counted)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct worker *w = start_worker(seg, "slow", NULL);
	char buf[16];
	size_t len;
	double t0;
	pid_t pid;

	w->delay_ms = 300;
	worker_go(w, &pid);
	t0 = now_s();
	len = sizeof(buf);
	cr_assert_eq(dr_call(r, "slow", "a", 1, buf, &len, 50), -ETIMEDOUT);
	cr_assert_lt(now_s() - t0, 0.25, "timed out after %.3f s, asked 0.05", now_s() - t0);
	cr_assert_eq(dr_late_replies(r), 0, "nothing dropped before the late answer came");
	/* The next call gets its own answer, never the late one, which it
	 * drops (it comes first, on the same lane) and counts. */
	len = sizeof(buf);
	cr_assert_eq(dr_call(r, "slow", "b", 1, buf, &len, 5000), 0);
	cr_assert_eq(len, 1);
	cr_assert_eq(buf[0], 'b', "a late reply was taken for the next call");
	cr_assert_eq(dr_late_replies(r), 1, "late answers counted: %llu",
		     (unsigned long long)dr_late_replies(r));
	cr_assert_eq(dr_late_replies(NULL), 0);
	worker_quit(r, w, "slow", pid);
	dr_close(r);
}

/* An asynchronous call's late answer: dropped by the caller's mailbox,
 * and counted there (dr_mailbox_stats), not in dr_late_replies(). */
Test(mailbox, a_late_answer_to_an_asynchronous_call_is_dropped_and_counted)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct worker *w = start_worker(seg, "slow", NULL);
	struct dr_mailbox_stats st;
	struct dr_msg m;
	dr_mailbox *mb;
	uint64_t id;
	pid_t pid;

	w->delay_ms = 200;
	worker_go(w, &pid);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_call_async(mb, "slow", "a", 1, 30, &id), 0);
	cr_assert_eq(dr_recv(mb, &m, 5000), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	cr_assert_eq(m.call_id, id);
	cr_assert_eq(m.status, -ETIMEDOUT, "%s", dr_strerror(m.status));
	/* The answer comes after 200 ms: the receive drops it. */
	cr_assert_eq(dr_recv(mb, &m, 600), -ETIMEDOUT, "a late answer was delivered");
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	cr_assert_eq(st.late, 1, "late answers counted: %llu", (unsigned long long)st.late);
	cr_assert_eq(dr_late_replies(r), 0);
	worker_quit(r, w, "slow", pid);
	dr_mailbox_close(mb);
	dr_close(r);
}

Test(mailbox, a_worker_that_dies_with_calls_pending_fails_them_within_100_ms)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct worker *w = start_worker(seg, "doomed", NULL);
	struct dr_msg m;
	dr_mailbox *mb;
	uint64_t ids[32];
	double t0, died;
	char buf[8];
	size_t len = sizeof(buf);
	int got = 0;
	pid_t pid;

	w->die_at = 1;
	w->delay_ms = 0;
	worker_go(w, &pid);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(dr_call_async(mb, "doomed", "x", 1, -1, &ids[i]), 0);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	died = now_s();
	while (got < 32) {
		cr_assert_eq(dr_recv(mb, &m, 2000), 0, "completion %d of 32", got);
		cr_assert_eq(m.kind, DR_MSG_REPLY);
		cr_assert_eq(m.status, -EOWNERDEAD, "call %llu: %s", (unsigned long long)m.call_id,
			     dr_strerror(m.status));
		got++;
	}
	/* All of them within the contract, not one per look (20 ms each:
	 * 32 looks would take 640 ms). */
	cr_assert_lt(now_s() - died, 0.1, "took %.3f s (the contract: 100 ms)", now_s() - died);
	/* A waiting call too. */
	t0 = now_s();
	cr_assert_eq(dr_call(r, "doomed", "x", 1, buf, &len, 5000), -EOWNERDEAD);
	cr_assert_lt(now_s() - t0, 0.1, "took %.3f s (the contract: 100 ms)", now_s() - t0);
	dr_mailbox_close(mb);
	dr_close(r);
}

/* review-37, finding 2: a call to a worker that died before it (its name
 * not reaped yet) ends with -EOWNERDEAD whatever its timeout, also when
 * the timeout is shorter than the 20 ms between looks, and a waiting call
 * at once. */
Test(mailbox, a_call_to_a_dead_worker_says_so_whatever_its_timeout)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct worker *w = start_worker(seg, "gone", NULL);
	struct dr_msg m;
	dr_mailbox *mb;
	char buf[8];
	size_t len;
	uint64_t id;
	double t0;
	pid_t pid;

	worker_go(w, &pid);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	cr_assert_eq(dr_whereis(r, "gone", NULL), 0, "reaped already: nothing to test");
	for (int timeout = 0; timeout <= 10; timeout += 5) {
		len = sizeof(buf);
		t0 = now_s();
		cr_assert_eq(dr_call(r, "gone", "x", 1, buf, &len, timeout), -EOWNERDEAD,
			     "timeout %d ms", timeout);
		cr_assert_lt(now_s() - t0, 0.5);
	}
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_recv(mb, &m, 0), -EAGAIN); /* a look just now: the next in 20 ms */
	cr_assert_eq(dr_call_async(mb, "gone", "x", 1, 5, &id), 0);
	cr_assert_eq(dr_recv(mb, &m, 1000), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	cr_assert_eq(m.call_id, id);
	cr_assert_eq(m.status, -EOWNERDEAD, "%s", dr_strerror(m.status));
	dr_mailbox_close(mb);
	dr_close(r);
}

/* An event loop: its descriptor stays quiet when a worker dies with calls
 * in flight, so the loop waits at most dr_mailbox_timeout() before it
 * receives again, and the calls end within the contract. */
Test(mailbox, an_event_loop_learns_of_a_dead_worker_through_the_timeout)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 8192, 0);
	struct worker *w = start_worker(seg, "doomed", NULL);
	struct dr_msg m;
	dr_mailbox *mb;
	struct pollfd p;
	uint64_t id;
	double died;
	int got = 0, t;
	pid_t pid;

	cr_assert_eq(dr_mailbox_timeout(NULL), -EINVAL);
	w->die_at = 1;
	worker_go(w, &pid);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_mailbox_timeout(mb), -1, "nothing in flight, nothing watched");
	p = (struct pollfd){ .fd = dr_mailbox_fd(mb), .events = POLLIN };
	for (int i = 0; i < 16; i++)
		cr_assert_eq(dr_call_async(mb, "doomed", "x", 1, -1, &id), 0);
	t = dr_mailbox_timeout(mb);
	cr_assert(t >= 0 && t <= 20, "16 calls in flight: timeout %d ms", t);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	died = now_s();
	while (got < 16) {
		int rc;

		t = dr_mailbox_timeout(mb);
		cr_assert(t >= 0 && t <= 20, "call %d in flight: timeout %d ms", got, t);
		cr_assert(poll(&p, 1, t) >= 0);
		while ((rc = dr_recv(mb, &m, 0)) == 0) {
			cr_assert_eq(m.kind, DR_MSG_REPLY);
			cr_assert_eq(m.status, -EOWNERDEAD, "%s", dr_strerror(m.status));
			got++;
		}
		cr_assert_eq(rc, -EAGAIN);
		cr_assert_lt(now_s() - died, 2.0, "%d of 16 ended in 2 s", got);
	}
	cr_assert_lt(now_s() - died, 0.1, "took %.3f s (the contract: 100 ms)", now_s() - died);
	cr_assert_eq(dr_mailbox_timeout(mb), -1, "none in flight any more");
	/* A watch needs looks too. */
	cr_assert_eq(dr_watch(mb, "doomed"), 0);
	t = dr_mailbox_timeout(mb);
	cr_assert(t >= 0 && t <= 20, "a watch: timeout %d ms", t);
	dr_mailbox_close(mb);
	dr_close(r);
}

Test(mailbox, many_asynchronous_calls_in_flight_complete_once_each)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 65536, 0);
	struct worker *w = start_worker(seg, "echo", NULL);
	static bool seen[2000];
	static uint64_t ids[2000];
	struct dr_msg m;
	dr_mailbox *mb;
	int done = 0, sent = 0, i;
	pid_t pid;

	worker_go(w, &pid);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	while (done < 2000) {
		while (sent < 2000 && sent - done < 256) {
			uint64_t id;
			int rc = dr_call_async(mb, "echo", &sent, sizeof(sent), 5000, &id);

			if (rc == -EAGAIN)
				break;
			cr_assert_eq(rc, 0, "%s", dr_strerror(rc));
			ids[sent] = id;
			sent++;
		}
		cr_assert_eq(dr_recv(mb, &m, 5000), 0);
		cr_assert_eq(m.kind, DR_MSG_REPLY);
		cr_assert_eq(m.status, 0);
		/* The echo is the call's index: its id must be that call's. */
		cr_assert_eq(m.len, sizeof(int));
		memcpy(&i, m.data, sizeof(i));
		cr_assert(i >= 0 && i < sent && ids[i] == m.call_id, "reply %llu for call %d",
			  (unsigned long long)m.call_id, i);
		cr_assert_not(seen[i], "call %d completed twice", i);
		seen[i] = true;
		done++;
	}
	worker_quit(r, w, "echo", pid);
	dr_mailbox_close(mb);
	dr_close(r);
}

/* The calls in flight are a hash table: replies in any order, and calls
 * that time out among them, must each find their own call, once. */
Test(mailbox, calls_answered_out_of_order_or_timed_out_complete_once_each)
{
	enum { N = 600 };
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 65536, 0);
	static struct dr_msg calls[N];
	static uint64_t ids[N];
	static bool done[N];
	dr_mailbox *w, *c;
	struct dr_msg m;
	int i, k, replies = 0, timeouts = 0;

	cr_assert_eq(dr_mailbox_open(r, &w), 0);
	cr_assert_eq(dr_mailbox_open(r, &c), 0);
	cr_assert_eq(dr_serve(w, "w", NULL, 0), 0);
	/* Every 7th call times out after 50 ms; the others wait long. */
	for (i = 0; i < N; i++)
		cr_assert_eq(dr_call_async(c, "w", &i, sizeof(i), i % 7 ? 10000 : 50, &ids[i]),
			     0, "call %d", i);
	/* The worker takes them all, in order, keeping copies of their
	 * headers (their payloads are their indexes). */
	for (i = 0; i < N; i++) {
		cr_assert_eq(dr_recv(w, &m, 1000), 0);
		cr_assert_eq(m.kind, DR_MSG_CALL);
		memcpy(&k, m.data, sizeof(k));
		cr_assert_eq(k, i);
		calls[i] = m;
		calls[i].data = NULL;
		calls[i].len = 0;
	}
	/* The timed-out ones complete first, with -ETIMEDOUT. */
	while (timeouts < (N + 6) / 7) {
		cr_assert_eq(dr_recv(c, &m, 2000), 0);
		cr_assert_eq(m.status, -ETIMEDOUT, "call %llu: %d", (unsigned long long)m.call_id,
			     m.status);
		for (i = 0; i < N && ids[i] != m.call_id; i++)
			;
		cr_assert(i < N && i % 7 == 0 && !done[i], "timeout for call %d", i);
		done[i] = true;
		timeouts++;
	}
	/* Then the worker answers every call, in a scrambled order (a
	 * stride prime to N): the late answers to timed-out calls are
	 * dropped, the others each reach their call. */
	for (k = 0; k < N; k++) {
		i = (int)((k * 233L + 17) % N);
		cr_assert_eq(dr_reply(w, &calls[i], &i, sizeof(i)), 0);
	}
	while (replies < N - timeouts) {
		cr_assert_eq(dr_recv(c, &m, 2000), 0);
		cr_assert_eq(m.kind, DR_MSG_REPLY);
		cr_assert_eq(m.status, 0);
		memcpy(&i, m.data, sizeof(i));
		cr_assert(i >= 0 && i < N && ids[i] == m.call_id && i % 7 != 0,
			  "reply %llu as call %d", (unsigned long long)m.call_id, i);
		cr_assert_not(done[i], "call %d completed twice", i);
		done[i] = true;
		replies++;
	}
	cr_assert_eq(dr_recv(c, &m, 100), -ETIMEDOUT, "a late answer was delivered");
	dr_mailbox_close(c);
	dr_mailbox_close(w);
	dr_close(r);
}

/* One mailbox serving many names (a factory's workers): served, served
 * again (a value update), stopped in any order, and ended at close. */
Test(mailbox, a_mailbox_serves_thousands_of_names_and_stops_any_of_them)
{
	enum { N = 5000 };
	const char *seg = seg_new("mb");
	struct dr_options o = { .segment = seg, .capacity = 2 * N, .max_procs = UNIT_MAX_PROCS,
				.max_threads = UNIT_MAX_THREADS };
	dr_registry *r;
	dr_mailbox *mb;
	char name[32];
	int i;

	cr_assert_eq(dr_open(&o, &r), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "w.%d", i);
		cr_assert_eq(dr_serve(mb, name, "a", 1), 0);
	}
	cr_assert_eq(dr_serve(mb, "w.7", "b", 1), 0); /* an update, kept once */
	for (i = 0; i < N; i += 2) {
		snprintf(name, sizeof(name), "w.%d", (int)((i * 7919L) % N));
		if ((i * 7919L) % N % 2 == 0)
			continue;
		cr_assert_eq(dr_unserve(mb, name), 0, "%s", name);
		cr_assert_eq(dr_unserve(mb, name), -ENOENT, "%s twice", name);
	}
	for (i = 0; i < N; i++) {
		struct dr_entry e;
		bool odd_gone = false;

		snprintf(name, sizeof(name), "w.%d", i);
		for (int k = 0; k < N; k += 2)
			if ((k * 7919L) % N == i && i % 2)
				odd_gone = true;
		cr_assert_eq(dr_whereis(r, name, &e), odd_gone ? -ENOENT : 0, "%s", name);
	}
	cr_assert_eq(dr_unserve(mb, "never"), -ENOENT);
	dr_mailbox_close(mb);
	cr_assert_eq(dr_whereis(r, "w.0", NULL), -ENOENT, "a served name outlived its mailbox");
	cr_assert_eq(dr_whereis(r, "w.7", NULL), -ENOENT);
	dr_close(r);
}

/* ---------------------------------------------------------------------- */
/* Resources of the dead */

static int open_mailbox_and_die(void *arg)
{
	const char *seg = arg;
	struct dr_options o = { .segment = seg };
	dr_registry *r;
	dr_mailbox *mb;

	if (dr_open(&o, &r) || dr_mailbox_open(r, &mb) || dr_serve(mb, "gone", NULL, 0) ||
	    dr_cast(r, "gone", "x", 1, 0))
		return 10;
	raise(SIGKILL);
	return 11;
}

Test(mailbox, a_dead_processs_mailboxes_and_lanes_are_reused)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 4096, 2);
	dr_mailbox *a, *b;

	for (int i = 0; i < 10; i++)
		cr_assert_eq(wait_child(spawn(open_mailbox_and_die, (void *)seg)), 128 + SIGKILL);
	/* Both slots come back (the reaping runs when none is free). */
	cr_assert_eq(dr_mailbox_open(r, &a), 0);
	cr_assert_eq(dr_mailbox_open(r, &b), 0);
	dr_mailbox_close(a);
	dr_mailbox_close(b);
	dr_close(r);
}

/* ---------------------------------------------------------------------- */
/* A lane another process wrote garbage into */

Test(mailbox, a_corrupt_record_gives_ebadmsg_once_and_the_other_lanes_go_on)
{
	const char *seg = seg_new("mb");
	dr_registry *r = open_mb(seg, 4096, 0);
	struct dr_mailbox_stats st;
	struct dri_header *h;
	struct dr_msg m;
	dr_mailbox *mb;
	uint8_t *base;
	size_t len;
	int lanes = 0;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_serve(mb, "w", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "w", "first", 5, 0), 0);
	/* The record's length, as a buggy writer would leave it. */
	base = segmap_open(seg, &len);
	cr_assert_not_null(base);
	h = (struct dri_header *)base;
	for (uint32_t i = 0; i < h->max_lanes; i++) {
		struct dri_lane *l = (struct dri_lane *)(base + h->off_lanes +
							 (uint64_t)i * (sizeof(*l) + h->lane_bytes));
		struct dri_rec *rec = (struct dri_rec *)(l + 1);

		if (l->owner == 0)
			continue;
		lanes++;
		rec->len = 3; /* not a multiple of 8, below the header */
	}
	cr_assert_eq(lanes, 1);
	cr_assert_eq(dr_recv(mb, &m, 0), -EBADMSG);
	cr_assert_eq(dr_recv(mb, &m, 0), -EAGAIN, "the corrupt lane was dropped");
	cr_assert_eq(dr_mailbox_stats(mb, &st), 0);
	cr_assert_eq(st.corrupt, 1);
	/* A new message goes through (the sender takes a new lane). */
	cr_assert_eq(dr_cast(r, "w", "again", 5, 0), 0);
	cr_assert_eq(dr_recv(mb, &m, 0), 0);
	cr_assert_arr_eq(m.data, "again", 5);
	munmap(base, len);
	dr_mailbox_close(mb);
	dr_close(r);
}

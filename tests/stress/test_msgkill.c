/*
 * test_msgkill.c - messages between processes that are SIGKILLed at random:
 * workers serve names through mailboxes and answer calls; senders call,
 * call asynchronously and cast to them; the test kills a random worker or
 * sender every few milliseconds and starts a new one in its place.
 *
 * Every message carries (sender pid, sender sequence, target name), every
 * answer echoes the request. What must hold:
 *  - a worker receives a message only for the registration it holds (the
 *    message's regid is the one its name has now), never a message twice,
 *    and a sender's messages in the order it sent them;
 *  - every call ends with its own answer, or with -ENOENT, -EOWNERDEAD,
 *    -ETIMEDOUT or -EAGAIN: nothing else, and never another call's answer;
 *    a sender that lives to the end sees every asynchronous call it made
 *    end (they time out after 100 ms);
 *  - no mailbox is stuck: after the last kill, every name of every worker
 *    answers a call within 800 ms, so a lost wake-up fails it. Worker 0
 *    sleeps in dr_recv(-1), where only a wake-up ends its wait;
 *  - once everyone has gone, after dr_reap: no mailbox and no lane is left
 *    held, dr_check passes, and every entry is free.
 */
#include "stress.h"

TestSuite(msgkill, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NWORKERS 3
#define NSENDERS 3
#define CAPACITY 256
#define MAXPID (1 << 22)

struct payload {
	int32_t pid;      /* the sender */
	uint16_t slot;    /* which sender */
	uint16_t life;    /* its incarnation in that slot */
	uint64_t seq;     /* the sender's count, from 1 */
	char name[16];    /* the name it was sent to */
};

struct mk {
	struct stress_report rep;
	const char *seg;
	int stop;
	pid_t workers[NWORKERS], senders[NSENDERS];
	unsigned long calls_ok, calls_err, casts, received;
	uint16_t life[NSENDERS + 1]; /* incarnations of each sender slot (the
	                              * last: the test's own final calls) */
};

static int open_seg(struct mk *s, dr_registry **r)
{
	struct dr_options o = {
		.segment = s->seg,
		.capacity = CAPACITY,
		.max_procs = STRESS_MAX_PROCS,
		.max_threads = STRESS_MAX_THREADS,
		.max_mailboxes = 32,
		.max_lanes = 64,
		.lane_bytes = 8192,
	};

	return dr_open(&o, r);
}

static int worker_slot;

/* Worker i: serves "w.<i>.<k>" for k < 4 through one mailbox. */
static int worker(void *arg)
{
	struct mk *s = arg;
	int id = worker_slot;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	uint64_t regid[4], mine_seq[NSENDERS + 1] = { 0 };
	uint16_t mine_life[NSENDERS + 1] = { 0 };
	char name[16];
	int rc;

	if ((rc = open_seg(s, &r)) || (rc = dr_mailbox_open(r, &mb)))
		CHILD_FAIL(&s->rep, "worker %d: open: %s", id, dr_strerror(rc));
	for (int k = 0; k < 4; k++) {
		struct dr_entry e;

		snprintf(name, sizeof(name), "w.%d.%d", id, k);
		/* The last incarnation's name may wait to be reaped. */
		for (int tries = 0; (rc = dr_serve(mb, name, NULL, 0)) == -EEXIST && tries < 2000;
		     tries++)
			stress_sleep_us(500);
		if (rc)
			CHILD_FAIL(&s->rep, "worker %d: serve %s: %s", id, name, dr_strerror(rc));
		if ((rc = dr_whereis(r, name, &e)))
			CHILD_FAIL(&s->rep, "worker %d: whereis %s: %s", id, name, dr_strerror(rc));
		regid[k] = e.regid;
	}
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct payload p;
		int k;

		/* Worker 0 sleeps until a message comes (the test's cast at
		 * the end stops it); the others look at the stop flag. */
		rc = dr_recv(mb, &m, id == 0 ? -1 : 50);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc)
			CHILD_FAIL(&s->rep, "worker %d: dr_recv: %s", id, dr_strerror(rc));
		if (m.kind == DR_MSG_REPLY || m.kind == DR_MSG_SYSTEM)
			continue;
		if (m.len != sizeof(p) || m.name_len < 5 || m.name_len > 8)
			CHILD_FAIL(&s->rep, "worker %d: a message of %zu bytes for a name of %zu", id,
				   m.len, m.name_len);
		memcpy(&p, m.data, sizeof(p));
		k = m.name[m.name_len - 1] - '0';
		if (memcmp(m.name, name, 2) != 0 || m.name[2] - '0' != id || k < 0 || k > 3 ||
		    strncmp(p.name, (const char *)m.name, m.name_len) != 0 || p.name[m.name_len])
			CHILD_FAIL(&s->rep, "worker %d: a message for %.*s (sent to %s)", id,
				   (int)m.name_len, m.name, p.name);
		if (m.regid != regid[k])
			CHILD_FAIL(&s->rep, "worker %d: a message for registration %llu of %.*s, "
				   "which we hold as %llu", id, (unsigned long long)m.regid,
				   (int)m.name_len, m.name, (unsigned long long)regid[k]);
		if (p.pid != m.sender)
			CHILD_FAIL(&s->rep, "worker %d: sender %d, payload says %d", id, (int)m.sender,
				   p.pid);
		/* Order, and no duplicate, per sender incarnation. */
		if (p.slot > NSENDERS)
			CHILD_FAIL(&s->rep, "worker %d: sender slot %u", id, p.slot);
		if (p.life == mine_life[p.slot] && p.seq <= mine_seq[p.slot])
			CHILD_FAIL(&s->rep, "worker %d: from sender %u.%u, seq %llu after %llu", id,
				   p.slot, p.life, (unsigned long long)p.seq,
				   (unsigned long long)mine_seq[p.slot]);
		if (p.life >= mine_life[p.slot]) {
			mine_life[p.slot] = p.life;
			mine_seq[p.slot] = p.seq;
		}
		__atomic_add_fetch(&s->received, 1, __ATOMIC_RELAXED);
		if (m.kind == DR_MSG_CALL) {
			rc = dr_reply(mb, &m, m.data, m.len);
			if (rc && rc != -ENOENT && rc != -EAGAIN)
				CHILD_FAIL(&s->rep, "worker %d: dr_reply: %s", id, dr_strerror(rc));
		}
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

static bool ok_err(int rc)
{
	return rc == -ENOENT || rc == -EOWNERDEAD || rc == -ETIMEDOUT || rc == -EAGAIN;
}

static int sender_slot;

/* Sender: calls (waiting and asynchronous) and casts to random names. */
static int sender(void *arg)
{
	struct mk *s = arg;
	uint16_t slot = (uint16_t)sender_slot, life = s->life[slot];
	uint64_t rng = stress_seed((uint64_t)getpid()), seq = 0, sent[1024] = { 0 };
	unsigned outstanding = 0; /* asynchronous calls not yet ended */
	bool stopping = false;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	int rc;

	if ((rc = open_seg(s, &r)) || (rc = dr_mailbox_open(r, &mb)))
		CHILD_FAIL(&s->rep, "sender: open: %s", dr_strerror(rc));
	for (;;) {
		uint64_t x = stress_rand(&rng), id;
		struct payload p = { .pid = getpid(), .slot = slot, .life = life }, back;
		size_t len = sizeof(back);

		if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
			/* Every asynchronous call made ends: each has a
			 * 100 ms timeout, seen by the library's look every
			 * 20 ms, or its answer comes. */
			if (!outstanding)
				break;
			if (stopping)
				CHILD_FAIL(&s->rep, "sender: %u asynchronous calls never ended",
					   outstanding);
			stopping = true;
			while (outstanding && (rc = dr_recv(mb, &m, 2000)) == 0) {
				if (m.kind == DR_MSG_REPLY)
					outstanding--;
				if (m.kind == DR_MSG_REPLY && m.status && !ok_err(m.status))
					CHILD_FAIL(&s->rep, "sender: async call ended with %s",
						   dr_strerror(m.status));
			}
			continue;
		}

		snprintf(p.name, sizeof(p.name), "w.%d.%d", (int)(x % NWORKERS), (int)((x >> 8) % 4));
		p.seq = ++seq;
		switch ((x >> 16) % 4) {
		case 0:
			rc = dr_call(r, p.name, &p, sizeof(p), &back, &len, 100);
			if (rc == 0 && (len != sizeof(p) || memcmp(&back, &p, sizeof(p)) != 0))
				CHILD_FAIL(&s->rep, "sender: call %llu got another answer",
					   (unsigned long long)p.seq);
			if (rc && !ok_err(rc))
				CHILD_FAIL(&s->rep, "sender: dr_call %s: %s", p.name, dr_strerror(rc));
			__atomic_add_fetch(rc ? &s->calls_err : &s->calls_ok, 1, __ATOMIC_RELAXED);
			break;
		case 1:
			rc = dr_call_async(mb, p.name, &p, sizeof(p), 100, &id);
			if (rc == 0) {
				sent[id % 1024] = p.seq;
				outstanding++;
			} else if (!ok_err(rc))
				CHILD_FAIL(&s->rep, "sender: dr_call_async %s: %s", p.name,
					   dr_strerror(rc));
			break;
		default:
			rc = dr_cast(r, p.name, &p, sizeof(p), 0);
			if (rc && !ok_err(rc))
				CHILD_FAIL(&s->rep, "sender: dr_cast %s: %s", p.name, dr_strerror(rc));
			if (rc == 0)
				__atomic_add_fetch(&s->casts, 1, __ATOMIC_RELAXED);
			break;
		}
		while ((rc = dr_recv(mb, &m, 0)) == 0) {
			if (m.kind != DR_MSG_REPLY)
				CHILD_FAIL(&s->rep, "sender: a message of kind %d", m.kind);
			outstanding--;
			if (m.status == 0) {
				memcpy(&back, m.data, sizeof(back));
				if (m.len != sizeof(back) || back.seq != sent[m.call_id % 1024] ||
				    back.pid != getpid())
					CHILD_FAIL(&s->rep, "sender: async call %llu got another answer",
						   (unsigned long long)m.call_id);
				__atomic_add_fetch(&s->calls_ok, 1, __ATOMIC_RELAXED);
			} else if (!ok_err(m.status)) {
				CHILD_FAIL(&s->rep, "sender: async call ended with %s",
					   dr_strerror(m.status));
			} else {
				__atomic_add_fetch(&s->calls_err, 1, __ATOMIC_RELAXED);
			}
		}
		if (rc != -EAGAIN)
			CHILD_FAIL(&s->rep, "sender: dr_recv: %s", dr_strerror(rc));
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

static pid_t start_worker(struct mk *s, int i)
{
	worker_slot = i;
	return stress_spawn(worker, s);
}

static pid_t start_sender(struct mk *s, int i)
{
	sender_slot = i;
	s->life[i]++;
	return stress_spawn(sender, s);
}

/*
 * After the last kill, with the senders still running: every name of every
 * worker answers a call of ours (sender slot NSENDERS) within 800 ms. A
 * name not served yet (its worker just restarted) is asked again; a call
 * that times out means a mailbox whose receiver was not woken.
 */
static void final_calls(struct mk *s, dr_registry *r)
{
	uint64_t seq = 0;

	for (int i = 0; i < NWORKERS; i++) {
		for (int k = 0; k < 4; k++) {
			struct payload p = { .pid = getpid(), .slot = NSENDERS, .life = 1 }, back;
			double t0 = stress_now();
			size_t len;
			int rc;

			snprintf(p.name, sizeof(p.name), "w.%d.%d", i, k);
			do {
				p.seq = ++seq;
				len = sizeof(back);
				rc = dr_call(r, p.name, &p, sizeof(p), &back, &len, 800);
				if (rc == -ENOENT || rc == -EOWNERDEAD)
					stress_sleep_us(2000);
			} while ((rc == -ENOENT || rc == -EOWNERDEAD) && stress_now() - t0 < 10);
			cr_assert_eq(rc, 0, "the final call to %s: %s (%s)", p.name, dr_strerror(rc),
				     s->rep.msg);
			cr_assert(len == sizeof(p) && memcmp(&back, &p, sizeof(p)) == 0,
				  "the final call to %s got another answer", p.name);
		}
	}
}

Test(msgkill, senders_and_workers_killed_at_random)
{
	struct mk *s = stress_shared(sizeof(*s));
	unsigned rounds = stress_iters(600, 150), kills = 0;
	uint64_t rng = stress_seed(7);
	struct dr_stats st;
	dr_registry *r, *h;
	char msg[256];
	int rc;

	s->seg = seg_new("msgkill");
	cr_assert_eq(open_seg(s, &r), 0);
	for (int i = 0; i < NWORKERS; i++)
		s->workers[i] = start_worker(s, i);
	for (int i = 0; i < NSENDERS; i++)
		s->senders[i] = start_sender(s, i);
	for (unsigned n = 0; n < rounds && !s->rep.nfail; n++) {
		uint64_t x = stress_rand(&rng);
		bool w = x & 1;
		int i = (int)((x >> 8) % (w ? NWORKERS : NSENDERS));
		pid_t *pp = w ? &s->workers[i] : &s->senders[i];

		stress_sleep_us((unsigned)(1000 + (x >> 32) % 4000));
		kill(*pp, SIGKILL);
		rc = stress_wait(*pp, STRESS_WAIT_S);
		cr_assert(rc == 128 + SIGKILL || rc == 0, "a %s ended with %d: %s",
			  w ? "worker" : "sender", rc, s->rep.msg);
		kills++;
		*pp = w ? start_worker(s, i) : start_sender(s, i);
	}
	ASSERT_REPORT_CLEAN(&s->rep);
	/* A handle of their own: its reply mailbox and lanes go with it. */
	cr_assert_eq(open_seg(s, &h), 0);
	final_calls(s, h);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	/* Worker 0 waits in dr_recv(-1): a message ends its wait. */
	{
		struct payload p = { .pid = getpid(), .slot = NSENDERS, .life = 1, .seq = 1000 };

		snprintf(p.name, sizeof(p.name), "w.0.0");
		rc = dr_cast(h, p.name, &p, sizeof(p), 1000);
		cr_assert_eq(rc, 0, "the cast that stops worker 0: %s", dr_strerror(rc));
	}
	stress_wait_all(s->workers, NWORKERS, STRESS_WAIT_S, &s->rep);
	stress_wait_all(s->senders, NSENDERS, STRESS_WAIT_S, &s->rep);
	dr_close(h);
	ASSERT_REPORT_CLEAN(&s->rep);
	cr_log_info("%u kills; calls %lu answered, %lu failed cleanly; %lu casts; %lu received",
		    kills, s->calls_ok, s->calls_err, s->casts, s->received);
	cr_assert_gt(s->calls_ok, 100, "only %lu calls answered", s->calls_ok);

	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.mailboxes, 0, "%u mailboxes held after everyone left", st.mailboxes);
	cr_assert_eq(st.lanes, 0, "%u lanes held after everyone left", st.lanes);
	cr_assert_eq(st.free_entries, CAPACITY, "%u of %u entries free", st.free_entries, CAPACITY);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	dr_close(r);
}

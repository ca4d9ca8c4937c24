/*
 * test_start.c - lib/start.c on one host (no bridge: a cluster of one):
 * dr_start() through a factory process, get-or-create under concurrent
 * starts, the errors (no factory, refused, factory dead, bad input), and
 * the reserved factory names.
 */
#include <signal.h>
#include <sys/mman.h>

#include "unit.h"

#include "cluster_unit.h"

TestSuite(start, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

struct factory {
	const char *seg;
	const char *kind;
	struct link l;
};

/*
 * A factory of f->kind that serves every worker it starts in its own
 * mailbox and echoes their calls. The start's arg steers it: "no" refuses,
 * "slow" waits 300 ms first, "die" SIGKILLs the factory. "quit" (a call to
 * any of its workers) stops it.
 */
static int factory_main(void *arg)
{
	struct factory *f = arg;
	struct dr_options o = { .segment = f->seg };
	struct dr_start_req req;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	int rc;

	if (dr_open(&o, &r) || dr_mailbox_open(r, &mb) || dr_factory_serve(mb, f->kind))
		return 10;
	write_byte(f->l.up[1], 'r');
	for (;;) {
		if (dr_recv(mb, &m, WAIT_MS))
			return 11;
		rc = dr_start_request(mb, &m, &req);
		if (rc == -EBADMSG) {
			dr_reply_error(mb, &m, -EBADMSG);
			continue;
		}
		if (rc == -EEXIST) {
			dr_start_answer(mb, &m, -EEXIST, NULL);
			continue;
		}
		if (rc == 0) {
			if (req.arg_len == 2 && memcmp(req.arg, "no", 2) == 0) {
				dr_start_answer(mb, &m, -EPERM, "not today");
				continue;
			}
			if (req.arg_len == 4 && memcmp(req.arg, "slow", 4) == 0)
				usleep(300 * 1000);
			if (req.arg_len == 3 && memcmp(req.arg, "die", 3) == 0)
				raise(SIGKILL);
			rc = dr_serve_global_bin(mb, req.name, req.name_len, "w", 1);
			if (dr_start_answer(mb, &m, rc, "cannot serve"))
				return 12;
			continue;
		}
		if (m.kind != DR_MSG_CALL)
			continue;
		if (m.len == 4 && memcmp(m.data, "quit", 4) == 0) {
			dr_reply(mb, &m, "bye", 3);
			break;
		}
		if (dr_reply(mb, &m, m.data, m.len))
			return 13;
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

static pid_t factory_go(struct factory *f, const char *seg, const char *kind)
{
	pid_t pid;

	f->seg = seg;
	f->kind = kind;
	link_init(&f->l);
	pid = spawn(factory_main, f);
	expect_byte(&f->l, 'r', pid, "factory ready");
	return pid;
}

static void factory_quit(dr_registry *r, const char *worker, pid_t pid)
{
	char buf[8];
	size_t len = sizeof(buf);

	cr_assert_eq(dr_call_global(r, worker, "quit", 4, buf, &len, WAIT_MS), 0);
	cr_assert_eq(wait_child(pid), 0);
}

Test(start, creates_once_then_answers_where_it_is)
{
	const char *seg = seg_new("st");
	dr_registry *r = seg_open(seg, 64);
	struct factory f;
	pid_t pid = factory_go(&f, seg, "echo");
	struct dr_started a, b;
	char buf[16];
	size_t len = sizeof(buf);

	cr_assert_eq(dr_start(r, "w1", "echo", NULL, 0, &a, WAIT_MS), 0);
	cr_assert_eq(a.created, 1);
	cr_assert_eq(a.entry.pid, pid);
	cr_assert_str_not_empty(a.host);
	cr_assert_eq(a.entry.value_len, 1);
	cr_assert_eq(dr_call_global(r, "w1", "hi", 2, buf, &len, WAIT_MS), 0);
	cr_assert_eq(len, 2);
	/* Again: served already, the same registration, nothing created. */
	cr_assert_eq(dr_start(r, "w1", "echo", NULL, 0, &b, WAIT_MS), 0);
	cr_assert_eq(b.created, 0);
	cr_assert_eq(b.entry.regid, a.entry.regid);
	cr_assert_str_eq(b.host, a.host);
	/* A local name of the same bytes is another name. */
	cr_assert_eq(dr_whereis(r, "w1", NULL), -ENOENT);
	factory_quit(r, "w1", pid);
	/* The worker went with its factory: a new start needs a factory. */
	cr_assert_eq(dr_start(r, "w1", "echo", NULL, 0, NULL, WAIT_MS), -ESRCH);
	dr_close(r);
}

Test(start, no_factory_refusal_and_a_factory_that_dies)
{
	const char *seg = seg_new("st");
	dr_registry *r = seg_open(seg, 64);
	struct factory f;
	struct dr_started st;
	pid_t pid;

	cr_assert_eq(dr_start(r, "w", "echo", NULL, 0, NULL, WAIT_MS), -ESRCH);
	pid = factory_go(&f, seg, "echo");
	cr_assert_eq(dr_start(r, "w", "other", NULL, 0, NULL, WAIT_MS), -ESRCH);
	memset(&st, 0, sizeof(st));
	cr_assert_eq(dr_start(r, "w", "echo", "no", 2, &st, WAIT_MS), -ECANCELED);
	cr_assert_str_eq(st.reason, "not today");
	cr_assert_eq(dr_whereis_global(r, "w", NULL, NULL, 0, 0), -ENOENT);
	/* A factory killed while it starts: the caller learns it well
	 * before its timeout. */
	cr_assert_eq(dr_start(r, "w", "echo", "die", 3, NULL, 60000), -EOWNERDEAD);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	dr_close(r);
}

Test(start, a_start_that_outlives_its_timeout_times_out)
{
	const char *seg = seg_new("st");
	dr_registry *r = seg_open(seg, 64);
	struct factory f;
	pid_t pid = factory_go(&f, seg, "echo");
	struct dr_started st;

	cr_assert_eq(dr_start(r, "late", "echo", "slow", 4, NULL, 50), -ETIMEDOUT);
	/* The factory started it all the same: the next start finds it. */
	cr_assert_eq(dr_start(r, "late", "echo", NULL, 0, &st, WAIT_MS), 0);
	cr_assert_eq(st.created, 0);
	factory_quit(r, "late", pid);
	dr_close(r);
}

/* Concurrent starters of the same names. */
enum { STARTERS = 4, NAMES = 40 };

struct race {
	const char *seg;
	int created[STARTERS][NAMES];
	uint64_t regid[STARTERS][NAMES];
	int who;
};

static int starter_main(void *arg)
{
	struct race *rc = arg;
	int me = __atomic_fetch_add(&rc->who, 1, __ATOMIC_SEQ_CST);
	struct dr_options o = { .segment = rc->seg };
	dr_registry *r;

	if (dr_open(&o, &r))
		return 10;
	for (int k = 0; k < NAMES; k++) {
		int i = me % 2 ? NAMES - 1 - k : k;
		struct dr_started st;
		char name[16];

		snprintf(name, sizeof(name), "n%d", i);
		if (dr_start(r, name, "echo", NULL, 0, &st, WAIT_MS))
			return 11;
		rc->created[me][i] = st.created;
		rc->regid[me][i] = st.entry.regid;
	}
	dr_close(r);
	return 0;
}

Test(start, concurrent_starts_of_one_name_give_one_instance)
{
	const char *seg = seg_new("st");
	dr_registry *r = seg_open(seg, 256);
	struct race *rc = mmap(NULL, sizeof(*rc), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct factory f1;
	pid_t fp = factory_go(&f1, seg, "echo"), kids[STARTERS];

	cr_assert_neq(rc, MAP_FAILED);
	rc->seg = seg;
	for (int s = 0; s < STARTERS; s++)
		kids[s] = spawn(starter_main, rc);
	for (int s = 0; s < STARTERS; s++)
		cr_assert_eq(wait_child(kids[s]), 0, "starter %d", s);
	for (int i = 0; i < NAMES; i++) {
		int created = 0;

		for (int s = 0; s < STARTERS; s++) {
			created += rc->created[s][i];
			cr_assert_eq(rc->regid[s][i], rc->regid[0][i], "n%d: two instances", i);
		}
		cr_assert_eq(created, 1, "n%d created %d times", i, created);
	}
	factory_quit(r, "n0", fp);
	dr_close(r);
}

Test(start, bad_input_changes_nothing)
{
	const char *seg = seg_new("st");
	dr_registry *r = seg_open(seg, 64);
	char kind64[DR_KIND_MAX + 2], name[DR_NAME_MAX + 2], buf[16];
	size_t len = sizeof(buf);
	struct factory f;
	dr_mailbox *mb, *mb2;
	struct dr_start_req req;
	struct dr_msg m;
	pid_t pid;

	memset(kind64, 'k', sizeof(kind64) - 1);
	kind64[sizeof(kind64) - 1] = 0;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_mailbox_open(r, &mb2), 0);
	/* Kinds and names. */
	cr_assert_eq(dr_factory_serve(mb, ""), -EINVAL);
	cr_assert_eq(dr_factory_serve(mb, NULL), -EINVAL);
	cr_assert_eq(dr_factory_serve(mb, kind64), -EINVAL);
	cr_assert_eq(dr_start(r, "w", "", NULL, 0, NULL, 0), -EINVAL);
	cr_assert_eq(dr_start(r, "w", kind64, NULL, 0, NULL, 0), -EINVAL);
	cr_assert_eq(dr_start(r, name, "k", NULL, 0, NULL, 0), -ENAMETOOLONG);
	cr_assert_eq(dr_start(r, "", "k", NULL, 0, NULL, 0), -EINVAL);
	cr_assert_eq(dr_start(r, "w", "k", NULL, 1, NULL, 0), -EINVAL);
	cr_assert_eq(dr_start(r, "w", "k", NULL, 0, NULL, -2), -EINVAL);
	/* One factory per kind; its name is the library's own. */
	cr_assert_eq(dr_factory_serve(mb, "k"), 0);
	cr_assert_eq(dr_factory_serve(mb2, "k"), -EEXIST);
	cr_assert_eq(dr_register_bin(r, "\0distreg.factory.k", 18, NULL, 0), -EINVAL);
	cr_assert_eq(dr_serve_bin(mb2, "\0distreg.factory.j", 18, NULL, 0), -EINVAL);
	/* A plain message is not a start request, and cannot be answered
	 * as one. */
	cr_assert_eq(dr_cast(r, "x", "a", 1, 0), -ENOENT);
	cr_assert_eq(dr_serve(mb2, "x", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "x", "a", 1, 0), 0);
	cr_assert_eq(dr_recv(mb2, &m, WAIT_MS), 0);
	cr_assert_eq(dr_start_request(mb2, &m, &req), -EINVAL);
	cr_assert_eq(dr_start_answer(mb2, &m, 0, NULL), -EINVAL);
	dr_mailbox_close(mb2);
	dr_mailbox_close(mb);
	/* A malformed request to a factory: it can tell, and says so. */
	pid = factory_go(&f, seg, "echo");
	cr_assert_eq(dr_call_bin(r, "\0distreg.factory.echo", 21, "garbage", 7, buf, &len, WAIT_MS), -EBADMSG);
	cr_assert_eq(dr_start(r, "w", "echo", NULL, 0, NULL, WAIT_MS), 0);
	factory_quit(r, "w", pid);
	dr_close(r);
}

/* What a bridge does to the loser of a duplicate: the event arrives,
 * although the registration ended as it was sent. */
Test(start, dienow_reaches_a_worker_whose_registration_it_ended)
{
	const char *seg = seg_new("st");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r), *w = mailbox(r);
	struct dr_host me = host("alpha", DR_HOST_UP, 1);
	struct dr_admin_loser l;
	struct dr_msg m;

	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	cr_assert_eq(dr_admin_view_publish(b, &me, 1, 1), 0);
	cr_assert_eq(dr_serve_global(w, "dup", NULL, 0), 0);
	cr_assert_eq(dr_admin_tell(b, "dup", 3, DR_EVENT_DIENOW, "", &l), -EINVAL);
	cr_assert_eq(dr_admin_tell(b, "dup", 3, 7, "beta", &l), -EINVAL);
	cr_assert_eq(dr_admin_tell(b, "dup", 3, DR_EVENT_DIENOW, "beta", &l), 0);
	cr_assert_eq(l.pid, getpid());
	cr_assert(dr_admin_mailbox_open(r, l.mailbox), "the loser's mailbox is open");
	cr_assert_eq(dr_whereis_global(r, "dup", NULL, NULL, 0, 0), -ENOENT, "still registered");
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_SYSTEM);
	cr_assert(m.global && m.name_len == 3 && memcmp(m.name, "dup", 3) == 0);
	cr_assert(m.len == 5 && ((const uint8_t *)m.data)[0] == DR_EVENT_DIENOW &&
		  memcmp((const char *)m.data + 1, "beta", 4) == 0);
	/* Once: the name is not served here any more. */
	cr_assert_eq(dr_admin_tell(b, "dup", 3, DR_EVENT_DIENOW, "beta", &l), -ENOENT);
	cr_assert_eq(dr_unserve_global(w, "dup"), -ENOENT);
	dr_mailbox_close(w);
	cr_assert_not(dr_admin_mailbox_open(r, l.mailbox), "a closed mailbox is open");
	dr_mailbox_close(b);
	dr_close(r);
}

/* Bytes from another process or host, at random and mutated from valid
 * ones, through every parser of the start formats: each answers within its
 * documented set, and reads nothing outside what it was given (the unit
 * suite also runs under AddressSanitizer in CI). */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap, uint64_t *s)
{
	switch (rnd_next(s) % 4) {
	case 0: /* flip bytes */
		for (int k = 0; k < 3 && len; k++)
			buf[rnd_next(s) % len] ^= (uint8_t)(1u << (rnd_next(s) % 8));
		return len;
	case 1: /* cut */
		return len ? (size_t)(rnd_next(s) % len) : 0;
	case 2: /* grow with noise */
		while (len < cap && rnd_next(s) % 4)
			buf[len++] = (uint8_t)rnd_next(s);
		return len;
	default: /* all noise */
		len = (size_t)(rnd_next(s) % cap);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rnd_next(s);
		return len;
	}
}

Test(start, malformed_start_messages_are_refused)
{
	const char *seg = seg_new("st");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *mb = mailbox(r);
	static const char fname[] = "\0distreg.factory.echo";
	uint8_t valid_req[64] = { 1, 1, 0, 0, 2, 0, 0, 0, 'w', 'h', 'i' };
	uint8_t valid_fwd[64] = { 1, 4, 0, 0, 2, 0, 0, 0, 'e', 'c', 'h', 'o', 'h', 'i' };
	uint8_t valid_ans[64] = { 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t buf[96], out[DR_START_WIRE_MAX];
	uint64_t s = 0x9e3779b97f4a7c15ull, cid;
	struct dr_start_req req;
	size_t len, olen;
	int rc;

	for (int i = 0; i < 20000; i++) {
		struct dr_msg m = { .kind = DR_MSG_CALL, .name = (const unsigned char *)fname,
				    .name_len = sizeof(fname) - 1 };
		uint8_t *copy;

		/* A start request, as a factory receives it. */
		memcpy(buf, valid_req, sizeof(valid_req));
		len = mutate(buf, 11, sizeof(buf), &s);
		copy = malloc(len ? len : 1);
		memcpy(copy, buf, len);
		m.data = copy;
		m.len = len;
		rc = dr_start_request(mb, &m, &req);
		cr_assert(rc == 0 || rc == -EBADMSG, "request: %d", rc);
		if (rc == 0) {
			cr_assert(req.name >= copy && req.name + req.name_len <= copy + len);
			cr_assert(!req.arg_len || ((const uint8_t *)req.arg >= copy &&
						   (const uint8_t *)req.arg + req.arg_len <= copy + len));
			cr_assert_eq(req.kind_len, 4);
		}
		free(copy);

		/* A start forwarded from another host: no factory here, so
		 * every one is answered at once, or refused. */
		memcpy(buf, valid_fwd, sizeof(valid_fwd));
		len = mutate(buf, 14, sizeof(buf), &s);
		copy = malloc(len ? len : 1);
		memcpy(copy, buf, len);
		olen = sizeof(out);
		rc = dr_admin_start_begin(mb, "w", 1, copy, len, 100, &cid, out, &olen);
		cr_assert(rc == 1 || rc == -EINVAL, "begin: %d", rc);
		if (rc == 1)
			cr_assert(olen >= 8 && olen <= DR_START_WIRE_MAX);
		free(copy);

		/* A factory's answer, as the owner's bridge turns it into the
		 * answer for the host that asked. */
		memcpy(buf, valid_ans, sizeof(valid_ans));
		len = mutate(buf, 16, sizeof(buf), &s);
		copy = malloc(len ? len : 1);
		memcpy(copy, buf, len);
		m = (struct dr_msg){ .kind = DR_MSG_REPLY, .status = (rnd_next(&s) % 8) ? 0 : -ETIMEDOUT,
				     .data = copy, .len = len };
		olen = sizeof(out);
		cr_assert_eq(dr_admin_start_end(r, "w", 1, &m, out, &olen), 0);
		cr_assert(olen >= 8 && olen <= DR_START_WIRE_MAX);
		free(copy);
	}
	dr_mailbox_close(mb);
	dr_close(r);
}

/* A factory that does not read: the starts a bridge hands it fill its
 * lane, and then dr_admin_start_begin fails at once with -EAGAIN (nothing
 * sent), not an answer and not a wait: the bridge tries again later. */
Test(start, a_bridge_start_never_waits_for_a_full_factory)
{
	const char *seg = seg_new("stfull");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r), *f = mailbox(r);
	static char fwd[8192] = { 1, 4, 0, 0, 0x00, 0x1f, 0, 0, 'e', 'c', 'h', 'o' };
	uint8_t out[DR_START_WIRE_MAX];
	struct dr_msg m;
	size_t olen;
	uint64_t cid;
	char name[32];
	int n = 0, rc;

	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	cr_assert_eq(dr_factory_serve(f, "echo"), 0);
	for (;;) {
		snprintf(name, sizeof(name), "full.%d", n);
		olen = sizeof(out);
		rc = dr_admin_start_begin(b, name, strlen(name), fwd, 12 + 0x1f00, 5000, &cid, out,
					  &olen);
		if (rc != 0)
			break;
		cr_assert_lt(++n, 100000, "the lane never filled");
	}
	cr_assert_eq(rc, -EAGAIN, "a full factory: %d (%s) after %d", rc, dr_strerror(rc), n);
	cr_assert_gt(n, 0);
	for (int i = 0; i < n; i++) {
		cr_assert_eq(dr_recv(f, &m, 2000), 0);
		cr_assert_eq(m.kind, DR_MSG_CALL);
	}
	cr_assert_eq(dr_recv(f, &m, 0), -EAGAIN, "the refused start was not sent");
	olen = sizeof(out);
	cr_assert_eq(dr_admin_start_begin(b, name, strlen(name), fwd, 12 + 0x1f00, 5000, &cid, out,
					  &olen), 0, "room again");
	dr_mailbox_close(f);
	dr_mailbox_close(b);
	dr_close(r);
}

Test(start, a_start_without_waiting_completes_in_the_mailbox)
{
	const char *seg = seg_new("st");
	dr_registry *r = seg_open(seg, 64);
	struct factory f;
	pid_t pid = factory_go(&f, seg, "echo");
	struct dr_started st, now;
	dr_mailbox *mb;
	struct dr_msg m;
	uint64_t id;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_start_async(mb, "a1", "echo", NULL, 0, WAIT_MS, &now, &id), 0);
	cr_assert_eq(dr_start_async(mb, "a2", "nokind", NULL, 0, WAIT_MS, &now, &id), -ESRCH);
	cr_assert_eq(dr_start_async(mb, "a1", "echo", NULL, 0, WAIT_MS, &now, NULL), -EINVAL);
	cr_assert_eq(dr_recv(mb, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	/* A reply that answers no start: both helpers leave it alone. */
	struct dr_msg other = { .kind = DR_MSG_REPLY, .call_id = m.call_id + 1000 };

	cr_assert_eq(dr_restart_moved_finish(mb, &other, NULL), -EINVAL);
	cr_assert_eq(dr_start_finish(mb, &other, NULL), -EINVAL);
	cr_assert_eq(dr_start_finish(mb, &m, &st), 0);
	cr_assert_eq(dr_start_finish(mb, &m, &st), -EINVAL, "finished twice");
	cr_assert_eq(st.created, 1);
	cr_assert_eq(st.entry.pid, pid);
	/* Served now: answered at once. */
	cr_assert_eq(dr_start_async(mb, "a1", "echo", NULL, 0, WAIT_MS, &now, &id), 1);
	cr_assert_eq(now.entry.regid, st.entry.regid);
	cr_assert_eq(now.created, 0);
	dr_mailbox_close(mb);
	factory_quit(r, "a1", pid);
	dr_close(r);
}

/* A process that serves the global name "dead" and waits to be killed;
 * it writes the registration's id to fd first. */
struct holder_arg {
	const char *seg;
	int fd;
};

static int dead_holder(void *arg)
{
	const struct holder_arg *a = arg;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_entry e;

	if (open_g(a->seg, &r) || dr_mailbox_open(r, &mb) ||
	    dr_serve_global(mb, "dead", "d", 1) || dr_whereis_global(r, "dead", &e, NULL, 0, 1000))
		return 10;
	if (write(a->fd, &e.regid, sizeof(e.regid)) != (ssize_t)sizeof(e.regid))
		return 11;
	for (;;)
		pause();
}

/* The answer dr_admin_start_end() makes of a factory's answer (made: the
 * registration the factory says it made) from the process sender. */
static void start_end(dr_registry *r, const char *name, uint64_t made, pid_t sender,
		      uint8_t *out, size_t *olen)
{
	uint8_t ans[16] = { 1, 0, 0, 0, 0, 0, 0, 0 };
	struct dr_msg m = { .kind = DR_MSG_REPLY, .sender = sender, .data = ans, .len = 16 };

	memcpy(ans + 8, &made, sizeof(made)); /* little-endian, as the wire */
	*olen = DR_START_WIRE_MAX;
	cr_assert_eq(dr_admin_start_end(r, name, strlen(name), &m, out, olen), 0);
}

/* The owner's bridge answers a start with the registration the factory
 * made, and never with one whose holder is dead, even the factory that
 * answered (review-37, finding 1: taken as read when the factory answered
 * itself, an answer that waited in the bridge's mailbox while its factory
 * died said started, with a dead pid). */
Test(start, a_start_answer_names_the_created_registration_never_a_dead_one)
{
	const char *seg = seg_new("st");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *mb = mailbox(r);
	struct holder_arg a = { .seg = seg };
	uint8_t out[DR_START_WIRE_MAX];
	uint64_t regid, dead_regid;
	struct dr_entry e;
	int fds[2];
	size_t olen;
	int32_t st;
	pid_t pid;

	/* Ours, made by us as the factory: the answer carries it. */
	cr_assert_eq(dr_serve_global(mb, "mine", "v1", 2), 0);
	cr_assert_eq(dr_whereis_global(r, "mine", &e, NULL, 0, 1000), 0);
	regid = e.regid;
	start_end(r, "mine", regid, getpid(), out, &olen);
	memcpy(&st, out + 4, 4);
	cr_assert_eq(out[0], 2, "an owner's answer");
	cr_assert_eq(st, 0, "status %d", st);
	cr_assert_eq(out[1], 1, "created by this start");
	cr_assert_eq(olen, 8 + 24 + 2);
	cr_assert_eq(memcmp(out + 8 + 4, &(uint32_t){ (uint32_t)getpid() }, 4), 0);
	cr_assert_eq(memcmp(out + 8 + 8, &regid, 8), 0);
	cr_assert_eq(memcmp(out + 8 + 24, "v1", 2), 0);

	/* Held by a process that died (not reaped yet), answered by
	 * another: not started. */
	cr_assert_eq(pipe(fds), 0);
	a.fd = fds[1];
	pid = spawn(dead_holder, &a);
	cr_assert_eq(read(fds[0], &dead_regid, sizeof(dead_regid)), (ssize_t)sizeof(dead_regid));
	kill_reaped(pid);
	cr_assert_eq(dr_whereis_global(r, "dead", &e, NULL, 0, 1000), 0, "reaped already");
	cr_assert_eq(e.regid, dead_regid);
	start_end(r, "dead", dead_regid, getpid(), out, &olen);
	memcpy(&st, out + 4, 4);
	cr_assert_eq(st, -ENOENT, "a dead holder's registration was answered: status %d", st);
	/* The dead holder answered itself, before it died. */
	start_end(r, "dead", dead_regid, pid, out, &olen);
	memcpy(&st, out + 4, 4);
	cr_assert_eq(st, -ENOENT, "a dead factory's own answer said started: status %d", st);
	close(fds[0]);
	close(fds[1]);
	dr_mailbox_close(mb);
	dr_close(r);
}

/*
 * test_global.c - global names and the bridge's side of the segment:
 * lib/cluster.c (the view, owners), lib/bridge.c (the role, publishing)
 * and lib/global.c (serving, lookups, calls through the bridge, the
 * forwarding header, delivery on the owner).
 *
 * The test process (or a child) plays the bridge: it claims the role,
 * publishes views of made-up hosts, and answers what arrives in its
 * mailbox as a real bridge would after a round trip to the owner host.
 * Children report through their exit status only (unit.h). Linked with
 * the crash-point build, to pause a publisher in the middle of a
 * publication (DISTREG_CRASH_MODE=stop).
 */
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>

#include <distreg_admin.h>

#include "unit.h"

#include "segmap.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

TestSuite(global, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

/* Built with AddressSanitizer (CI's sanitizer run of the unit suite): it
 * reports a false stack overflow when a cancelled thread unwinds (its
 * stack is left poisoned), and its leak check at exit cannot run in a pid
 * namespace without its own /proc. The tests that would meet either say
 * so and are skipped there; the plain build runs them. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#include "cluster_unit.h"

/* ---------------------------------------------------------------------- */
/* The owner, computed here from DESIGN.md alone */

static uint64_t fmix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

static const char *expected_owner(const char *name, const struct dr_host *h, size_t n)
{
	uint64_t hn = XXH3_64bits_withSeed(name, strlen(name), DRI_OWNER_SEED), best = 0;
	const char *who = NULL;

	for (size_t i = 0; i < n; i++) {
		uint64_t s;

		if (h[i].state != DR_HOST_UP && h[i].state != DR_HOST_SUSPECT)
			continue;
		s = fmix(hn ^ XXH3_64bits(h[i].id, strlen(h[i].id)));
		if (!who || s > best || (s == best && strcmp(h[i].id, who) < 0)) {
			best = s;
			who = h[i].id;
		}
	}
	return who;
}

static const char *nodename(void)
{
	static char n[DR_HOST_MAX + 1];
	struct utsname u;

	cr_assert_eq(uname(&u), 0);
	snprintf(n, sizeof(n), "%.*s", DR_HOST_MAX, u.nodename);
	return n;
}

/* ---------------------------------------------------------------------- */
/* Namespaces */

struct seen {
	int local, global;
	uint64_t local_regid, global_regid;
};

static int seen_x(const struct dr_name_info *info, void *arg)
{
	struct seen *s = arg;

	if (info->name_len != 1 || info->name[0] != 'x')
		return 0;
	if (info->global) {
		s->global++;
		s->global_regid = info->entry.regid;
	} else {
		s->local++;
		s->local_regid = info->entry.regid;
	}
	return 0;
}

Test(global, local_and_global_names_of_the_same_bytes_never_meet)
{
	const char *seg = seg_new("gns");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *w = mailbox(r);
	struct dr_entry le, ge;
	struct seen s = { 0 };
	struct dr_msg m;
	char buf[16], host_id[DR_HOST_MAX + 1];
	size_t len = sizeof(buf);

	cr_assert_eq(dr_register(r, "x", "local", 5), 0);
	cr_assert_eq(dr_serve_global(w, "x", "global", 6), 0, "a global x beside a local x");
	cr_assert_eq(dr_whereis(r, "x", &le), 0);
	cr_assert_eq(le.value_len, 5);
	cr_assert_arr_eq(le.value, "local", 5);
	cr_assert_eq(dr_whereis_global(r, "x", &ge, host_id, sizeof(host_id), 0), 0);
	cr_assert_eq(ge.value_len, 6);
	cr_assert_arr_eq(ge.value, "global", 6);
	cr_assert_neq(le.regid, ge.regid);
	cr_assert_str_eq(host_id, nodename(), "no bridge ever: this host, by its node name");

	/* dr_foreach says which is which. */
	cr_assert_eq(dr_foreach(r, seen_x, &s), 0);
	cr_assert_eq(s.local, 1);
	cr_assert_eq(s.global, 1);
	cr_assert_eq(s.local_regid, le.regid);
	cr_assert_eq(s.global_regid, ge.regid);

	/* Messages: the local x takes none (no mailbox), the global one
	 * does, and says it was global. */
	cr_assert_eq(dr_cast(r, "x", "m", 1, 0), -EDESTADDRREQ);
	cr_assert_eq(dr_cast_global(r, "x", "g", 1, 0), 0);
	cr_assert_eq(dr_recv(w, &m, 1000), 0);
	cr_assert_eq(m.kind, DR_MSG_CAST);
	cr_assert_eq(m.global, 1);
	cr_assert_eq(m.regid, ge.regid);
	cr_assert_eq(m.name_len, 1);
	cr_assert_eq(m.name[0], 'x');

	/* A local name served through a mailbox is not a global one. */
	cr_assert_eq(dr_serve(w, "only-local", NULL, 0), 0);
	cr_assert_eq(dr_cast_global(r, "only-local", "m", 1, 0), -ENOENT);
	cr_assert_eq(dr_whereis_global(r, "only-local", NULL, NULL, 0, 0), -ENOENT);
	cr_assert_eq(dr_serve_global(w, "only-global", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "only-global", "m", 1, 0), -ENOENT);
	cr_assert_eq(dr_whereis(r, "only-global", NULL), -ENOENT);
	cr_assert_eq(dr_unregister(r, "only-global"), -ENOENT, "local calls never see globals");
	cr_assert_eq(dr_unregister_force(r, "only-global"), -ENOENT);
	cr_assert_eq(dr_recv(w, &m, 0), -EAGAIN);

	/* Removing the local x leaves the global x. */
	cr_assert_eq(dr_unregister(r, "x"), 0);
	cr_assert_eq(dr_whereis(r, "x", NULL), -ENOENT);
	cr_assert_eq(dr_whereis_global(r, "x", NULL, NULL, 0, 0), 0);
	cr_assert_eq(dr_call_global(r, "x", "q", 1, buf, &len, 0), -ETIMEDOUT,
		     "the global x takes calls (nobody answers here)");

	/* The bridge's address is nobody's to register. */
	cr_assert_eq(dr_serve_global_bin(w, "", 0, NULL, 0), -EINVAL);
	cr_assert_eq(dr_serve_global(w, "", NULL, 0), -EINVAL);
	cr_assert_eq(dr_whereis_global_bin(r, "", 0, NULL, NULL, 0, 0), -EINVAL);
	cr_assert_eq(dr_cast_global_bin(r, "", 0, "m", 1, 0), -EINVAL);
	cr_assert_eq(dr_register_bin(r, "", 0, NULL, 0), -EINVAL);
	cr_assert_eq(dr_admin_deliver(w, DR_FWD_CAST, "", 0, "m", 1, 0, NULL), -EINVAL);

	cr_assert_eq(dr_check(r, NULL, 0), 0);
	dr_mailbox_close(w);
	cr_assert_eq(dr_whereis_global(r, "x", NULL, NULL, 0, 0), -ENOENT,
		     "closing the mailbox ends its global names");
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(global, many_names_in_both_namespaces_stay_apart)
{
	const char *seg = seg_new("gns");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *w = mailbox(r);
	char name[32];
	struct dr_entry e;

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, "L", 1), 0);
		cr_assert_eq(dr_serve_global(w, name, "G", 1), 0);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_whereis(r, name, &e), 0);
		cr_assert_eq(e.value[0], 'L');
		cr_assert_eq(dr_whereis_global(r, name, &e, NULL, 0, 0), 0);
		cr_assert_eq(e.value[0], 'G');
	}
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	for (int i = 0; i < 100; i += 2) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_unregister(r, name), 0);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_whereis(r, name, NULL), i % 2 ? 0 : -ENOENT);
		cr_assert_eq(dr_whereis_global(r, name, NULL, NULL, 0, 0), 0);
	}
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	dr_mailbox_close(w);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Owners */

Test(global, with_no_bridge_ever_this_host_owns_every_name)
{
	const char *seg = seg_new("gown");
	dr_registry *r = open_or_die(seg);
	char id[DR_HOST_MAX + 1], small[2];
	struct dr_host hs[2];
	struct dr_stats st;
	uint64_t epoch = 99;
	size_t n = 0;

	cr_assert_eq(dr_owner(r, "anything", id, sizeof(id)), 0);
	cr_assert_str_eq(id, nodename());
	cr_assert_eq(dr_owner_bin(r, "\0bin", 4, id, sizeof(id)), 0);
	cr_assert_str_eq(id, nodename());
	cr_assert_eq(dr_owner(r, "anything", small, sizeof(small)), -ERANGE);
	cr_assert_eq(dr_owner(r, "anything", id, strlen(nodename())), -ERANGE);
	cr_assert_eq(dr_owner(r, "anything", id, strlen(nodename()) + 1), 0);
	cr_assert_eq(dr_owner(r, NULL, id, sizeof(id)), -EINVAL);
	cr_assert_eq(dr_owner(r, "", id, sizeof(id)), -EINVAL);
	cr_assert_eq(dr_owner(r, "x", NULL, sizeof(id)), -EINVAL);
	cr_assert_eq(dr_owner(NULL, "x", id, sizeof(id)), -EINVAL);
	{
		char longname[DR_NAME_MAX + 2];
		memset(longname, 'a', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = 0;
		cr_assert_eq(dr_owner(r, longname, id, sizeof(id)), -ENAMETOOLONG);
	}

	cr_assert_eq(dr_hosts(r, hs, 2, &n, &epoch), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(epoch, 0);
	cr_assert_str_eq(hs[0].id, nodename());
	cr_assert_str_eq(hs[0].rpc, "");
	cr_assert_eq(hs[0].state, DR_HOST_UP);
	cr_assert_eq(hs[0].self, 1);
	cr_assert_eq(dr_hosts(r, NULL, 0, &n, NULL), -ERANGE);
	cr_assert_eq(n, 1);
	cr_assert_eq(dr_hosts(r, hs, 2, NULL, NULL), -EINVAL);

	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.bridge_pid, 0);
	cr_assert_eq(st.bridge_ran, 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(global, owners_follow_rendezvous_hashing_and_a_join_moves_a_quarter)
{
	const char *seg = seg_new("gown");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1);
	struct dr_host h[4];
	char id[DR_HOST_MAX + 1], name[32];
	static char before[10000][DR_HOST_MAX + 1];
	int moved = 0, n = 10000;
	size_t n3 = three(h);

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "svc/%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		cr_assert_str_eq(id, expected_owner(name, h, n3), "%s", name);
		snprintf(before[i], sizeof(before[i]), "%s", id);
	}

	/* delta joins: it takes about a quarter, from each of the others. */
	h[3] = host("delta", DR_HOST_UP, 0);
	cr_assert_eq(dr_admin_view_publish(b, h, 4, 2), 0);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "svc/%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		cr_assert_str_eq(id, expected_owner(name, h, 4), "%s", name);
		if (strcmp(id, before[i]) != 0) {
			cr_assert_str_eq(id, "delta", "%s moved from %s to %s, not to the new host",
					 name, before[i], id);
			moved++;
		}
	}
	cr_log_info("a fourth host took %d of %d names (%.1f%%)", moved, n, 100.0 * moved / n);
	cr_assert(moved >= n * 15 / 100 && moved <= n * 35 / 100, "%d of %d moved", moved, n);

	/* A suspect host still owns its names; a down or ignored one owns
	 * none, and only its names move. */
	h[1].state = DR_HOST_SUSPECT;
	cr_assert_eq(dr_admin_view_publish(b, h, 4, 3), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "svc/%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		cr_assert_str_eq(id, expected_owner(name, h, 4));
	}
	h[1].state = DR_HOST_DOWN;
	h[2].state = DR_HOST_IGNORED;
	cr_assert_eq(dr_admin_view_publish(b, h, 4, 4), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "svc/%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		cr_assert(strcmp(id, "alpha") == 0 || strcmp(id, "delta") == 0, "%s", id);
		cr_assert_str_eq(id, expected_owner(name, h, 4));
	}
	/* Nobody up at all. */
	h[0].state = DR_HOST_DOWN;
	h[3].state = DR_HOST_DOWN;
	cr_assert_eq(dr_admin_view_publish(b, h, 4, 5), 0);
	cr_assert_eq(dr_owner(r, "svc/1", id, sizeof(id)), -EHOSTUNREACH);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(global, hosts_lists_the_view)
{
	const char *seg = seg_new("ghosts");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 7);
	struct dr_host want[3], got[3], one;
	struct dr_stats st;
	uint64_t epoch = 0;
	size_t n = 0;

	three(want);
	cr_assert_eq(dr_hosts(r, got, 3, &n, &epoch), 0);
	cr_assert_eq(n, 3);
	cr_assert_eq(epoch, 7);
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(got[i].id, want[i].id);
		cr_assert_str_eq(got[i].rpc, want[i].rpc);
		cr_assert_eq(got[i].incarnation, want[i].incarnation);
		cr_assert_eq(got[i].state, want[i].state);
		cr_assert_eq(got[i].self, want[i].self);
	}
	memset(&one, 0x5a, sizeof(one));
	cr_assert_eq(dr_hosts(r, &one, 1, &n, &epoch), -ERANGE);
	cr_assert_eq(n, 3, "the total");
	cr_assert_str_eq(one.id, "alpha", "the first max hosts");
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.bridge_pid, getpid());
	cr_assert_eq(st.bridge_ran, 1);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Serving */

Test(global, serving_a_name_another_host_owns_is_eremote)
{
	const char *seg = seg_new("gserve");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1), *w = mailbox(r);
	char mine[32], theirs[32];

	name_owned_by(r, "s", "alpha", mine, sizeof(mine));
	name_owned_by(r, "s", "gamma", theirs, sizeof(theirs));
	cr_assert_eq(dr_serve_global(w, theirs, NULL, 0), -EREMOTE);
	cr_assert_eq(dr_whereis_global(r, theirs, NULL, NULL, 0, 0), -ETIMEDOUT,
		     "the lookup went to the bridge, which did not answer in 0 ms");
	cr_assert_eq(dr_serve_global(w, mine, "v", 1), 0);
	cr_assert_eq(dr_serve_global(w, mine, "w", 1), 0, "an update of its value");
	cr_assert_eq(dr_serve_global(NULL, mine, NULL, 0), -EINVAL);
	cr_assert_eq(dr_serve_global(w, NULL, NULL, 0), -EINVAL);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* The bridge role */

struct role_arg {
	const char *seg;
	int fd;          /* written to once the role is held */
	int hold_fd;     /* read until end of file while holding it, or -1 */
	int other_fd;    /* the other end of hold_fd's pipe: closed in the child */
	bool close;      /* end with dr_close() rather than dying */
	bool thread;     /* claim and publish from a thread that then exits */
	const char *stop_at; /* a crash point to stop at (DISTREG_CRASH_MODE=stop) */
	uint64_t epoch;  /* of the view it publishes */
};

struct claim_arg {
	dr_registry *r;
	uint64_t epoch;
	int rc;
};

static void *claim_thread(void *p)
{
	struct claim_arg *a = p;
	struct dr_host h[3];
	dr_mailbox *mb;

	a->rc = dr_mailbox_open(a->r, &mb);
	if (!a->rc)
		a->rc = dr_admin_bridge_claim(mb, NULL);
	if (!a->rc)
		a->rc = dr_admin_view_publish(mb, h, three(h), a->epoch);
	return NULL;
}

static int role_child(void *arg)
{
	struct role_arg *a = arg;
	struct dr_host h[3];
	dr_registry *r;
	dr_mailbox *mb;
	char c;

	if (a->hold_fd >= 0)
		close(a->other_fd);
	if (a->stop_at)
		crash_arm(a->stop_at, "stop", 0);
	if (open_g(a->seg, &r))
		return 2;
	if (a->thread) {
		struct claim_arg ca = { .r = r, .epoch = a->epoch, .rc = -1 };
		pthread_t t;

		if (pthread_create(&t, NULL, claim_thread, &ca) || pthread_join(t, NULL))
			return 6;
		if (ca.rc)
			return 3;
	} else {
		if (dr_mailbox_open(r, &mb))
			return 2;
		if (dr_admin_bridge_claim(mb, NULL))
			return 3;
		if (dr_admin_view_publish(mb, h, three(h), a->epoch))
			return 4;
	}
	if (write_byte(a->fd, 'c'))
		return 5;
	if (a->hold_fd >= 0)
		(void)read_byte(a->hold_fd, &c);
	if (a->close)
		dr_close(r);
	return 0; /* without dr_close the process just dies */
}

Test(global, after_the_bridge_dies_global_operations_fail_with_enotconn)
{
	const char *seg = seg_new("gdead");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *w = mailbox(r);
	int p[2];
	struct role_arg a = { .seg = seg, .hold_fd = -1, .epoch = 5 };
	struct dr_host hs[4];
	struct dr_stats st;
	size_t n = 0;
	uint64_t epoch = 0;
	char id[DR_HOST_MAX + 1], buf[8];
	size_t len = sizeof(buf);
	char c;

	cr_assert_eq(pipe(p), 0);
	a.fd = p[1];
	cr_assert_eq(wait_child(spawn(role_child, &a)), 0);
	cr_assert_eq(read_byte(p[0], &c), 1);

	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	cr_assert_eq(dr_hosts(r, hs, 4, &n, &epoch), -ENOTCONN);
	cr_assert_eq(n, 3, "the last view is still returned");
	cr_assert_eq(epoch, 5);
	cr_assert_str_eq(hs[1].id, "beta");
	cr_assert_eq(dr_serve_global(w, "x", NULL, 0), -ENOTCONN);
	cr_assert_eq(dr_call_global(r, "x", "q", 1, buf, &len, 100), -ENOTCONN);
	cr_assert_eq(dr_cast_global(r, "x", "q", 1, 0), -ENOTCONN);
	cr_assert_eq(dr_send_global(r, "x", "q", 1, 0), -ENOTCONN);
	cr_assert_eq(dr_call_async_global(w, "x", "q", 1, 0, NULL), -ENOTCONN);
	cr_assert_eq(dr_whereis_global(r, "x", NULL, NULL, 0, 0), -ENOTCONN);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.bridge_pid, 0);
	cr_assert_eq(st.bridge_ran, 1);
	/* Local names go on as usual. */
	cr_assert_eq(dr_serve(w, "x", NULL, 0), 0);
	cr_assert_eq(dr_cast(r, "x", "q", 1, 0), 0);

	/* The same after a bridge that stopped cleanly. */
	a.close = true;
	a.epoch = 6;
	cr_assert_eq(wait_child(spawn(role_child, &a)), 0);
	cr_assert_eq(read_byte(p[0], &c), 1);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	close(p[0]);
	close(p[1]);
	dr_mailbox_close(w);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* A child that holds the role (role_child) until hold[1] is closed;
 * returns once it holds it. */
/* fn(a) in a child, with its pipes in a: up, which the child writes to
 * once it holds the role, and hold (NULL: none), which it reads while it
 * holds it. Waits for the child's byte unless `stops` (a child that stops
 * on the way there). */
static pid_t child_start(unit_child_fn fn, struct role_arg *a, int up[2], int hold[2], bool stops)
{
	pid_t kid;
	char c;

	cr_assert_eq(pipe(up), 0);
	a->fd = up[1];
	a->hold_fd = -1;
	if (hold) {
		cr_assert_eq(pipe(hold), 0);
		a->hold_fd = hold[0];
		a->other_fd = hold[1];
	}
	kid = spawn(fn, a);
	if (!stops)
		cr_assert_eq(read_byte_within(up[0], &c, WAIT_MS), 1, "the child never held the role");
	return kid;
}

static pid_t holder_start(struct role_arg *a, int up[2], int hold[2])
{
	return child_start(role_child, a, up, hold, false);
}

/* Both ends of up and of hold (may be NULL); an end closed already is -1. */
static void pipes_close(int up[2], int hold[2])
{
	for (int i = 0; i < 2; i++) {
		if (up[i] >= 0)
			close(up[i]);
		if (hold && hold[i] >= 0)
			close(hold[i]);
	}
}

/* dr_owner() asks no system call while the holder's liveness lock vouches
 * for it (cluster.c, holder_vouched), and a holder killed just after it was
 * found alive is seen dead at once: the kernel marked its lock before
 * waitpid() returned. */
Test(global, dr_owner_sees_a_killed_bridge_at_once)
{
	const char *seg = seg_new("gtrust");
	dr_registry *r = open_or_die(seg);
	int up[2], hold[2];
	struct role_arg a = { .seg = seg, .epoch = 5 };
	char id[DR_HOST_MAX + 1];
	pid_t kid;

	kid = holder_start(&a, up, hold);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0);
	kill_reaped(kid);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	pipes_close(up, hold);
	dr_close(r);
	dr_unlink(seg);
}

Test(global, a_live_holder_keeps_the_role_and_a_dead_one_loses_it)
{
	const char *seg = seg_new("grole");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *mb = mailbox(r), *other = mailbox(r);
	int up[2], hold[2];
	struct role_arg a = { .seg = seg, .epoch = 5 };
	struct dr_host h[3];
	pid_t kid, who = 0;
	char id[DR_HOST_MAX + 1];

	kid = holder_start(&a, up, hold);

	cr_assert_eq(dr_admin_bridge_claim(mb, &who), -EBUSY);
	cr_assert_eq(who, kid, "the holder's pid");
	cr_assert_eq(dr_admin_bridge_claim(mb, NULL), -EBUSY);
	cr_assert_eq(dr_admin_view_publish(mb, h, three(h), 6), -EPERM, "not the holder");
	dr_admin_bridge_release(mb); /* not ours: nothing happens */
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0);

	/* The holder dies: its role can be taken over. */
	close(hold[1]);
	cr_assert_eq(wait_child(kid), 0);
	/* What sends through the bridge sees it at once, and so does
	 * dr_owner(), alive just above. */
	cr_assert_eq(dr_whereis_global(r, "x", NULL, NULL, 0, 0), -ENOTCONN);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN,
		     "dr_owner trusted a bridge that a call had just found dead");
	cr_assert_eq(dr_admin_bridge_claim(mb, &who), 0);
	cr_assert_eq(dr_admin_bridge_claim(mb, &who), 0, "claiming again is harmless");
	cr_assert_eq(dr_admin_bridge_claim(other, &who), -EBUSY);
	cr_assert_eq(who, getpid(), "a second mailbox of the holder's process");
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0, "a bridge runs again");
	cr_assert_eq(dr_admin_view_publish(mb, h, three(h), 5), -EINVAL,
		     "the epoch must pass the dead bridge's last one");
	cr_assert_eq(dr_admin_view_publish(mb, h, three(h), 6), 0);

	/* Release, then a claim from the other mailbox; closing that
	 * mailbox ends the role too. */
	dr_admin_bridge_release(mb);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	cr_assert_eq(dr_admin_view_publish(mb, h, three(h), 7), -EPERM);
	cr_assert_eq(dr_admin_bridge_claim(other, &who), 0);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0);
	dr_mailbox_close(other);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	cr_assert_eq(dr_admin_bridge_claim(mb, &who), 0);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	cr_assert_eq(dr_admin_bridge_claim(NULL, &who), -EINVAL);
	dr_admin_bridge_release(NULL);
	close(up[0]);
	close(up[1]);
	close(hold[0]);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* The role's liveness lock (bridge.c, struct dri_live; cluster.c, holder_vouched) */

static uint32_t live_word(dr_registry *r)
{
	return __atomic_load_n(DRI_LIVE_WORD(r->cluster), __ATOMIC_ACQUIRE);
}

static uint64_t live_of(dr_registry *r)
{
	return __atomic_load_n(&r->cluster->live, __ATOMIC_ACQUIRE);
}

/* Whether tid is a thread of process pid. */
static bool thread_of(pid_t pid, uint32_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%u", (int)pid, tid);
	return tid != 0 && access(path, F_OK) == 0;
}

/* The lock is held by a thread of holder pid's, and `live` names that
 * thread and the role's owner id exactly: what lets readers skip the
 * kernel. */
static void assert_vouched_by(dr_registry *r, pid_t pid)
{
	uint32_t lw = live_word(r);

	cr_assert(!(lw & FUTEX_OWNER_DIED), "the lock is marked: %#x", lw);
	cr_assert(thread_of(pid, lw & FUTEX_TID_MASK), "the lock's holder %u is no thread of %d",
		  lw & FUTEX_TID_MASK, (int)pid);
	cr_assert_eq(live_of(r),
		     (uint64_t)(lw & FUTEX_TID_MASK) << DRI_LIVE_TID_SHIFT | r->cluster->owner,
		     "live names the lock's holder thread and the role's owner");
}

/* A holder's lock vouches for it; stopped, it is still alive; once killed
 * and reaped, the kernel has marked the lock and every global operation
 * says -ENOTCONN at once. A claimer then takes the marked lock over, with
 * a thread of the library's that is not the claiming one; giving the role
 * back clears `live` and ends that thread, which marks the lock. */
Test(global, the_holder_s_lock_vouches_for_it_until_it_dies_and_passes_to_the_next_holder)
{
	const char *seg = seg_new("glive");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *w = mailbox(r), *mb;
	int up[2], hold[2];
	struct role_arg a = { .seg = seg, .epoch = 5 };
	char id[DR_HOST_MAX + 1], name[32];
	uint32_t lw;
	pid_t kid;

	kid = holder_start(&a, up, hold);
	name_owned_by(r, "lv", "beta", name, sizeof(name));
	assert_vouched_by(r, kid);
	cr_assert_neq(live_word(r) & FUTEX_TID_MASK, (uint32_t)kid,
		      "held by the library's thread, not the claiming one");
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0);
	cr_assert_eq(kill(kid, SIGSTOP), 0);
	cr_assert_eq(wait_stopped(kid, WAIT_MS), 0);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0, "a stopped bridge is alive");
	kill_reaped(kid);
	cr_assert(live_word(r) & FUTEX_OWNER_DIED, "the kernel marks the lock of a dead holder");
	cr_assert_eq(dr_cast_global(r, name, "q", 1, 0), -ENOTCONN);
	cr_assert_eq(dr_send_global(r, name, "q", 1, 0), -ENOTCONN);
	cr_assert_eq(dr_serve_global(w, "x", NULL, 0), -ENOTCONN);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);

	mb = bridge_up(r, 6);
	assert_vouched_by(r, getpid());
	lw = live_word(r);
	cr_assert_neq(lw & FUTEX_TID_MASK, (uint32_t)gettid());
	dr_admin_bridge_release(mb);
	cr_assert_eq(live_of(r), 0, "live names no one once the role is given back");
	cr_assert(!thread_of(getpid(), lw & FUTEX_TID_MASK), "the holder thread is gone");
	cr_assert(live_word(r) & FUTEX_OWNER_DIED, "its exit marked the lock");
	mb = bridge_up(r, 7);
	assert_vouched_by(r, getpid());
	dr_mailbox_close(mb);
	cr_assert_eq(live_of(r), 0, "closing the role's mailbox ends it too");
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	pipes_close(up, hold);
	dr_close(r);
	dr_unlink(seg);
}

/* The lock is not the claiming thread's: a holder whose claiming thread
 * has exited still vouches for itself, and is seen dead once killed. */
Test(global, a_holder_whose_claiming_thread_exited_still_vouches_for_itself)
{
	const char *seg = seg_new("gthr");
	dr_registry *r = open_or_die(seg);
	int up[2], hold[2];
	struct role_arg a = { .seg = seg, .epoch = 5, .thread = true };
	char id[DR_HOST_MAX + 1];
	pid_t kid;

	kid = holder_start(&a, up, hold);
	assert_vouched_by(r, kid);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0);
	kill_reaped(kid);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	pipes_close(up, hold);
	dr_close(r);
	dr_unlink(seg);
}

/* A holder whose claiming thread (not the main one) execs: exec gives
 * that thread the leader's tid before the kernel walks its robust list,
 * so a lock it had taken itself would never be marked, and the dead
 * bridge would be called alive for ever (review of c197e68). The library's
 * own thread holds it, and exec ends that thread: marked. */
static int exec_claimer_child(void *arg)
{
	struct role_arg *a = arg;
	struct claim_arg ca = { .epoch = a->epoch, .rc = -1 };
	pthread_t t;
	char c;

	close(a->other_fd);
	if (open_g(a->seg, &ca.r))
		return 2;
	if (pthread_create(&t, NULL, claim_thread, &ca) || pthread_join(t, NULL) || ca.rc)
		return 3;
	if (write_byte(a->fd, 'c'))
		return 5;
	(void)read_byte(a->hold_fd, &c);
	execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
	return 7;
}

static int exec_fd = -1;

static void *exec_from_thread(void *p)
{
	char c;

	(void)p;
	(void)read_byte(exec_fd, &c);
	execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
	return NULL;
}

/* A holder whose main thread claimed and whose other thread execs; the
 * main thread waits for the exec to replace it. */
static int exec_other_child(void *arg)
{
	struct role_arg *a = arg;
	pthread_t t;
	int rc;

	close(a->other_fd);
	exec_fd = a->hold_fd;
	a->hold_fd = -1;
	if (pthread_create(&t, NULL, exec_from_thread, NULL))
		return 6;
	rc = role_child(arg);
	if (rc)
		return rc;
	for (;;)
		pause();
}

static void exec_ends_the_holder(int (*child)(void *), const char *tag)
{
	const char *seg = seg_new(tag);
	dr_registry *r = open_or_die(seg);
	int up[2], hold[2];
	struct role_arg a = { .seg = seg, .epoch = 5 };
	char id[DR_HOST_MAX + 1];
	pid_t kid;

	kid = child_start(child, &a, up, hold, false);
	assert_vouched_by(r, kid);
	cr_assert_eq(write_byte(hold[1], 'e'), 0);
	cr_assert_eq(wait_child(kid), 0, "the exec'd program's status");
	cr_assert(live_word(r) & FUTEX_OWNER_DIED, "the exec marked the lock: %#x", live_word(r));
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN, "a dead bridge called alive");
	cr_assert_eq(dr_cast_global(r, "x", "q", 1, 0), -ENOTCONN);
	dr_mailbox_close(bridge_up(r, 6));
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	pipes_close(up, hold);
	dr_close(r);
	dr_unlink(seg);
}

Test(global, a_holder_whose_claiming_thread_execs_is_dead_once_the_program_ends)
{
	exec_ends_the_holder(exec_claimer_child, "gexec1");
}

Test(global, a_holder_another_thread_of_which_execs_is_dead_once_the_program_ends)
{
	exec_ends_the_holder(exec_other_child, "gexec2");
}

/* The lock's bytes are in the segment, which every attached process may
 * write: overwritten while held (its list pointers, or its word), giving
 * the role back must not crash, and the role stays claimable (review of
 * c197e68: glibc followed the overwritten pointers when it unlocked). */
static void scribble_while_held(bool pointers, const char *tag)
{
	const char *seg = seg_new(tag);
	dr_registry *r = open_or_die(seg);
	pthread_mutex_t *m = &r->cluster->live_lock;
	dr_mailbox *mb = bridge_up(r, 5);
	struct dr_host h[3];
	char id[DR_HOST_MAX + 1];

	assert_vouched_by(r, getpid());
	if (pointers) {
		m->__data.__list.__prev = (void *)0x10;
		m->__data.__list.__next = (void *)0x7ff0;
	} else {
		__atomic_store_n(DRI_LIVE_WORD(r->cluster), 0x12345u, __ATOMIC_RELEASE);
	}
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0, "the holder itself is alive");
	dr_admin_bridge_release(mb);
	cr_assert_eq(live_of(r), 0);
	cr_assert_eq(dr_admin_bridge_claim(mb, NULL), 0, "the role is claimable again");
	cr_assert_eq(dr_admin_view_publish(mb, h, three(h), 6), 0, "and held");
	dr_mailbox_close(mb);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	dr_close(r);
	dr_unlink(seg);
}

Test(global, overwritten_lock_pointers_do_not_crash_a_bridge_that_gives_the_role_back)
{
	scribble_while_held(true, "gscr1");
}

Test(global, an_overwritten_lock_word_does_not_crash_a_bridge_that_gives_the_role_back)
{
	scribble_while_held(false, "gscr2");
}

/* A process whose kernel refused set_robust_list (a seccomp filter
 * installed after start-up; glibc goes on without it): no lock the holder
 * thread took would ever be marked, so it takes none and readers ask the
 * kernel (review of e555950: a dead bridge was called alive). */
static int seccomp_claimer_child(void *arg)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_set_robust_list, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 9;
	return role_child(arg);
}

Test(global, a_holder_thread_the_kernel_keeps_no_robust_list_of_vouches_for_no_one)
{
	const char *seg = seg_new("gsecc");
	dr_registry *r = open_or_die(seg);
	int up[2], hold[2];
	struct role_arg a = { .seg = seg, .epoch = 5 };
	char id[DR_HOST_MAX + 1];
	pid_t kid;

	kid = child_start(seccomp_claimer_child, &a, up, hold, false);
	cr_assert_eq(live_of(r), 0, "live names a holder whose lock the kernel would never mark");
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0, "the holder lives (the kernel says so)");
	kill_reaped(kid);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN, "a dead bridge called alive");
	dr_mailbox_close(bridge_up(r, 6)); /* the role is taken over */
	pipes_close(up, hold);
	dr_close(r);
	dr_unlink(seg);
}

/* A claim or a release cancelled (deferred, the default) inside the call:
 * the role's calls are not cancellation points, or the thread unwound
 * with view_lock held and the next release of the handle hung (review of
 * e555950). Run in a child, so that a hang is a status, not a stuck test. */
struct cancel_arg {
	const char *seg;
	dr_mailbox *mb;
	bool release;
	pthread_barrier_t bar;
};

static void *cancel_victim(void *p)
{
	struct cancel_arg *a = p;
	struct dr_host h[3];

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	if (a->release && (dr_admin_bridge_claim(a->mb, NULL) ||
			   dr_admin_view_publish(a->mb, h, three(h), 5)))
		_exit(2);
	pthread_barrier_wait(&a->bar);
	pthread_barrier_wait(&a->bar); /* the cancel is pending now */
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	if (a->release)
		dr_admin_bridge_release(a->mb);
	else
		(void)dr_admin_bridge_claim(a->mb, NULL);
	pthread_testcancel();
	return NULL;
}

static int cancel_child(void *arg)
{
	struct cancel_arg *a = arg;
	dr_registry *r;
	pthread_t t;

	if (open_g(a->seg, &r) || dr_mailbox_open(r, &a->mb))
		return 2;
	pthread_barrier_init(&a->bar, NULL, 2);
	if (pthread_create(&t, NULL, cancel_victim, a))
		return 3;
	pthread_barrier_wait(&a->bar);
	pthread_cancel(t);
	pthread_barrier_wait(&a->bar);
	pthread_join(t, NULL);
	alarm(5); /* a hang ends the child with SIGALRM */
	dr_admin_bridge_release(a->mb);
	if (dr_admin_bridge_claim(a->mb, NULL))
		return 4;
	dr_close(r);
	return 0;
}

static void cancelled_in(bool release, const char *tag)
{
#ifdef UNDER_ASAN
	cr_skip_test("AddressSanitizer misreads a cancelled thread's unwinding");
#endif
	const char *seg = seg_new(tag);
	dr_registry *r = open_or_die(seg);
	struct cancel_arg a = { .seg = seg, .release = release };
	char id[DR_HOST_MAX + 1];

	cr_assert_eq(wait_child(spawn(cancel_child, &a)), 0,
		     "the handle of a thread cancelled in the call hung or failed");
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	dr_close(r);
	dr_unlink(seg);
}

Test(global, a_claim_cancelled_inside_the_call_leaves_the_handle_usable)
{
	cancelled_in(false, "gcan1");
}

Test(global, a_release_cancelled_inside_the_call_leaves_the_handle_usable)
{
	cancelled_in(true, "gcan2");
}

/* A holder whose main thread ends with pthread_exit() as its last own
 * thread: the process ends, as it would without the library's holder
 * thread (review of e555950: that thread kept it running for ever). */
static int main_exit_child(void *arg)
{
	struct role_arg *a = arg;

	a->hold_fd = -1;
	if (role_child(arg))
		return 3;
	pthread_exit(NULL);
}

Test(global, a_holder_whose_own_threads_have_all_ended_exits)
{
	const char *seg = seg_new("gmex");
	dr_registry *r = open_or_die(seg);
	int up[2];
	struct role_arg a = { .seg = seg, .epoch = 5, .hold_fd = -1 };
	char id[DR_HOST_MAX + 1];
	pid_t kid;
	int st = -1;

	kid = child_start(main_exit_child, &a, up, NULL, false);
	for (int i = 0; i < WAIT_MS / 10 && waitpid(kid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (st == -1) {
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
		cr_assert_fail("the holder's process still runs %d ms after its last own thread ended",
			       WAIT_MS);
	}
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	pipes_close(up, NULL);
	dr_close(r);
	dr_unlink(seg);
}

/* The same in a pid namespace of its own that has not mounted its /proc:
 * /proc names the holder thread by another number than gettid() does
 * (review of 5a2f043: it never found itself, and the process never
 * ended). Needs CAP_SYS_ADMIN (unshare); skipped without. */
static int pidns_child(void *arg)
{
	pid_t k;
	int st;

	if (unshare(CLONE_NEWPID))
		return 77;
	k = fork();
	if (k == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(main_exit_child(arg));
	}
	alarm(WAIT_MS / 1000 + 1); /* a process that never ends: SIGALRM */
	if (k < 0 || waitpid(k, &st, 0) != k)
		return 78;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

Test(global, a_holder_in_a_pid_namespace_without_its_own_proc_exits_after_its_last_thread)
{
#ifdef UNDER_ASAN
	cr_skip_test("LeakSanitizer cannot run in a pid namespace without its own /proc");
#endif
	const char *seg = seg_new("gpns");
	dr_registry *r = open_or_die(seg);
	int up[2], st;
	struct role_arg a = { .seg = seg, .epoch = 5, .hold_fd = -1 };
	char id[DR_HOST_MAX + 1];

	st = wait_child(child_start(pidns_child, &a, up, NULL, true));
	if (st == 77) {
		dr_close(r);
		dr_unlink(seg);
		cr_skip_test("unshare(CLONE_NEWPID): not permitted here");
	}
	cr_assert_eq(st, 0, "status %d (128 + 14: still running %d ms after its last thread ended)",
		     st, WAIT_MS);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	pipes_close(up, NULL);
	dr_close(r);
	dr_unlink(seg);
}

/* The same, with exit handlers that close the handle: glibc runs them on
 * the holder thread, the last one (review of 5a2f043: that thread unmapped
 * the lock's page while its robust list still pointed into it, the lock
 * was never marked, and no later holder could take it). The next claimer
 * takes the lock over and vouches. */
static dr_registry *exit_r;
static dr_mailbox *exit_mb;

static void close_at_exit(void)
{
	dr_mailbox_close(exit_mb);
	dr_close(exit_r);
}

static int main_exit_closing_child(void *arg)
{
	struct role_arg *a = arg;
	struct dr_host h[3];

	if (open_g(a->seg, &exit_r) || dr_mailbox_open(exit_r, &exit_mb) ||
	    dr_admin_bridge_claim(exit_mb, NULL) || dr_admin_view_publish(exit_mb, h, three(h), 5))
		return 3;
	atexit(close_at_exit);
	if (write_byte(a->fd, 'c'))
		return 5;
	pthread_exit(NULL);
}

Test(global, exit_handlers_run_by_the_last_holder_thread_leave_the_lock_to_the_next_holder)
{
	const char *seg = seg_new("gmexc");
	dr_registry *r = open_or_die(seg);
	int up[2];
	struct role_arg a = { .seg = seg, .hold_fd = -1 };
	char id[DR_HOST_MAX + 1];
	dr_mailbox *mb;
	pid_t kid;

	kid = child_start(main_exit_closing_child, &a, up, NULL, false);
	cr_assert_eq(wait_child(kid), 0);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	mb = bridge_up(r, 6);
	assert_vouched_by(r, getpid());
	dr_mailbox_close(mb);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	pipes_close(up, NULL);
	dr_close(r);
	dr_unlink(seg);
}

/* A holder short of descriptors when it looks whether it is the last
 * thread: a thread it cannot look at is alive, and the holder stays
 * (review of 5a2f043: it ended, and readers asked the kernel for the rest
 * of the role). */
static int emfile_child(void *arg)
{
	struct role_arg *a = arg;
	struct rlimit rl = { 64, 64 };
	struct dr_host h[3];
	dr_registry *r;
	dr_mailbox *mb;
	int fds[64], n = 0;

	if (open_g(a->seg, &r) || dr_mailbox_open(r, &mb) || dr_admin_bridge_claim(mb, NULL) ||
	    dr_admin_view_publish(mb, h, three(h), 5))
		return 3;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return 4;
	while (n < 64 && (fds[n] = dup(0)) >= 0)
		n++;
	if (n == 0)
		return 6;
	close(fds[--n]); /* one free: opendir takes it, a task's stat finds none */
	usleep(2500000);  /* two of the holder's looks */
	while (n > 0)
		close(fds[--n]);
	if (write_byte(a->fd, 'c'))
		return 5;
	pause();
	return 0;
}

Test(global, a_holder_short_of_descriptors_stays)
{
	const char *seg = seg_new("gemf");
	dr_registry *r = open_or_die(seg);
	int up[2];
	struct role_arg a = { .seg = seg, .hold_fd = -1 };
	pid_t kid;

	kid = child_start(emfile_child, &a, up, NULL, false);
	assert_vouched_by(r, kid);
	kill_reaped(kid);
	pipes_close(up, NULL);
	dr_close(r);
	dr_unlink(seg);
}

/* The number of mappings of the segment file seg in this process. */
static int seg_mappings(const char *seg)
{
	char line[512];
	struct stat st;
	FILE *f;
	int n = 0;

	/* By inode: the file was made unnamed and linked later, so the maps
	 * name it otherwise. */
	if (stat(dr_test_seg_path(seg), &st) || !(f = fopen("/proc/self/maps", "r")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long ino = 0;

		if (sscanf(line, "%*s %*s %*s %*s %llu", &ino) == 1 && ino == (unsigned long long)st.st_ino)
			n++;
	}
	fclose(f);
	return n;
}

/* A child forked while its parent holds the role does not inherit the
 * holder's page (review of 5a2f043: forked while the holder started or
 * ended, it kept that page mapped, and the segment with it, after its
 * dr_close()). */
static int fork_maps_child(void *arg)
{
	const char *seg = arg;
	dr_registry *r;
	int n;

	if (open_g(seg, &r))
		return 2;
	{
		dr_mailbox *mb;
		struct dr_host h[3];
		pid_t k;
		int st;

		if (dr_mailbox_open(r, &mb) || dr_admin_bridge_claim(mb, NULL) ||
		    dr_admin_view_publish(mb, h, three(h), 5))
			return 3;
		if (seg_mappings(seg) < 2)
			return 4; /* the segment and the holder's page */
		k = fork();
		if (k == 0) {
			n = seg_mappings(seg);
			dr_close(r);
			_exit(n == 1 && seg_mappings(seg) == 0 ? 0 : 10 + n);
		}
		if (waitpid(k, &st, 0) != k || !WIFEXITED(st))
			return 5;
		if (WEXITSTATUS(st))
			return WEXITSTATUS(st);
	}
	dr_close(r);
	return seg_mappings(seg) == 0 ? 0 : 6;
}

Test(global, a_child_forked_while_its_parent_holds_the_role_inherits_no_holder_page)
{
	const char *seg = seg_new("gfmap");
	int st;

	st = wait_child(spawn(fork_maps_child, (void *)seg));
	cr_assert_eq(st, 0, "status %d (1x: the child had x mappings of the segment)", st);
	dr_unlink(seg);
}

/* A child made without the fork handlers (it has its parent's cached pid)
 * that closes or releases the inherited mailbox holding the role ends
 * nothing of its parent's (review of e555950; older than it). */
static int raw_fork_release(dr_mailbox *mb, bool release)
{
	pid_t kid = (pid_t)syscall(SYS_fork);
	int st;

	if (kid == 0) {
		if (release)
			dr_admin_bridge_release(mb);
		else
			dr_mailbox_close(mb);
		_exit(0);
	}
	if (kid < 0 || waitpid(kid, &st, 0) != kid)
		return -1;
	return st;
}

Test(global, a_child_forked_without_the_handlers_ends_no_role_of_its_parent)
{
	const char *seg = seg_new("grawf");
	dr_registry *r = open_or_die(seg), *other = open_or_die(seg);
	dr_mailbox *mb = bridge_up(r, 5);
	char id[DR_HOST_MAX + 1];

	cr_assert_eq(raw_fork_release(mb, true), 0);
	cr_assert_eq(dr_owner(other, "x", id, sizeof(id)), 0, "the child released its parent's role");
	cr_assert_eq(raw_fork_release(mb, false), 0);
	cr_assert_eq(dr_owner(other, "x", id, sizeof(id)), 0, "the child's close ended its parent's role");
	assert_vouched_by(other, getpid());
	dr_mailbox_close(mb);
	cr_assert_eq(dr_owner(other, "x", id, sizeof(id)), -ENOTCONN);
	dr_close(other);
	dr_close(r);
	dr_unlink(seg);
}

/* A claimer clears `live` before it takes the lock: stopped between the
 * two (bridge_live_locked), it holds the lock while `live` names no one,
 * never the dead predecessor (whose tid a reused one could match:
 * tests/model/l1_live.pml). The claimer is alive all the same (the kernel
 * says so), and the role is its own once it goes on. */
Test(global, a_claimer_holding_the_lock_before_naming_itself_leaves_no_predecessor_in_live)
{
	const char *seg = seg_new("gclr");
	dr_registry *r = open_or_die(seg);
	int up[2], hold[2], up2[2], hold2[2];
	struct role_arg a = { .seg = seg, .epoch = 5 };
	struct role_arg b = { .seg = seg, .epoch = 6, .stop_at = "bridge_live_locked" };
	char id[DR_HOST_MAX + 1], c;
	uint64_t dead;
	pid_t kid, kid2;

	kid = holder_start(&a, up, hold);
	dead = live_of(r);
	kill_reaped(kid);
	cr_assert_eq(live_of(r), dead, "the dead holder is still named");

	kid2 = child_start(role_child, &b, up2, hold2, true);
	cr_assert_eq(wait_stopped(kid2, WAIT_MS), 0, "the claimer never reached bridge_live_locked");
	cr_assert(thread_of(kid2, live_word(r)), "the claimer's thread holds the lock");
	cr_assert_eq(live_of(r), 0, "live was cleared before the lock was taken");
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), 0, "the claimer is alive");
	cr_assert_eq(kill(kid2, SIGCONT), 0);
	cr_assert_eq(read_byte_within(up2[0], &c, WAIT_MS), 1);
	assert_vouched_by(r, kid2);
	close(hold2[1]);
	hold2[1] = -1;
	cr_assert_eq(wait_child(kid2), 0);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -ENOTCONN);
	pipes_close(up, hold);
	pipes_close(up2, hold2);
	dr_close(r);
	dr_unlink(seg);
}

/* ---------------------------------------------------------------------- */
/* Publishing */

/* The view now, as a comparable string. */
static void view_text(dr_registry *r, char *buf, size_t len)
{
	struct dr_host hs[DR_HOSTS_MAX];
	uint64_t epoch = 0;
	size_t n = 0, at;
	int rc = dr_hosts(r, hs, DR_HOSTS_MAX, &n, &epoch);

	cr_assert(rc == 0 || rc == -ENOTCONN, "dr_hosts: %s", dr_strerror(rc));
	at = (size_t)snprintf(buf, len, "epoch %llu:", (unsigned long long)epoch);
	for (size_t i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, " %s/%s/%llu/%d/%d", hs[i].id, hs[i].rpc,
				       (unsigned long long)hs[i].incarnation, hs[i].state,
				       hs[i].self);
}

Test(global, bad_views_are_refused_and_change_nothing)
{
	const char *seg = seg_new("gpub");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 10);
	static struct dr_host many[DR_HOSTS_MAX + 1];
	struct dr_host h[3];
	char was[4096], now[4096];

	view_text(r, was, sizeof(was));
#define REFUSED(call, why)                                                                 \
	do {                                                                               \
		three(h);                                                                  \
		cr_assert_eq(call, -EINVAL, "%s", why);                                    \
		view_text(r, now, sizeof(now));                                            \
		cr_assert_str_eq(now, was, "%s changed the view", why);                    \
	} while (0)

	REFUSED(dr_admin_view_publish(b, NULL, 3, 11), "no hosts");
	REFUSED(dr_admin_view_publish(b, h, 0, 11), "0 hosts");
	REFUSED(dr_admin_view_publish(b, h, 3, 10), "the same epoch");
	REFUSED(dr_admin_view_publish(b, h, 3, 9), "an older epoch");
	REFUSED(dr_admin_view_publish(b, h, 3, 0), "epoch 0");
	REFUSED((h[1].id[0] = 0, dr_admin_view_publish(b, h, 3, 11)), "an empty id");
	REFUSED((memset(h[1].id, 'i', sizeof(h[1].id)), dr_admin_view_publish(b, h, 3, 11)),
		"an id of 64 bytes");
	REFUSED((memset(h[2].rpc, 'a', sizeof(h[2].rpc)), dr_admin_view_publish(b, h, 3, 11)),
		"an rpc address of 128 bytes");
	REFUSED((h[0].self = 0, dr_admin_view_publish(b, h, 3, 11)), "no host is this one");
	REFUSED((h[2].self = 1, dr_admin_view_publish(b, h, 3, 11)), "two are this one");
	REFUSED((h[0].self = 2, dr_admin_view_publish(b, h, 3, 11)), "self 2");
	REFUSED((h[0].self = -1, dr_admin_view_publish(b, h, 3, 11)), "self -1");
	REFUSED((strcpy(h[2].id, "beta"), dr_admin_view_publish(b, h, 3, 11)), "a duplicate id");
	REFUSED((h[1].state = 0, dr_admin_view_publish(b, h, 3, 11)), "state 0");
	REFUSED((h[1].state = DR_HOST_IGNORED + 1, dr_admin_view_publish(b, h, 3, 11)),
		"state 5");
	for (int i = 0; i < DR_HOSTS_MAX + 1; i++) {
		char id[16];

		snprintf(id, sizeof(id), "h%d", i);
		many[i] = host(id, DR_HOST_UP, i == 0);
	}
	REFUSED(dr_admin_view_publish(b, many, DR_HOSTS_MAX + 1, 11), "257 hosts");
#undef REFUSED
	cr_assert_eq(dr_admin_view_publish(NULL, h, 3, 11), -EINVAL);

	/* The largest view, and the longest strings, are fine. */
	memset(many[1].id, 'i', DR_HOST_MAX);
	many[1].id[DR_HOST_MAX] = 0;
	memset(many[1].rpc, 'a', DR_ADDR_MAX);
	many[1].rpc[DR_ADDR_MAX] = 0;
	cr_assert_eq(dr_admin_view_publish(b, many, DR_HOSTS_MAX, 11), 0);
	{
		static struct dr_host got[DR_HOSTS_MAX];
		size_t n = 0;

		cr_assert_eq(dr_hosts(r, got, DR_HOSTS_MAX, &n, NULL), 0);
		cr_assert_eq(n, DR_HOSTS_MAX);
		cr_assert_str_eq(got[1].id, many[1].id);
		cr_assert_str_eq(got[1].rpc, many[1].rpc);
		cr_assert_str_eq(got[255].id, "h255");
	}
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* A publisher: claims, publishes view A (epoch 1, three hosts), then view
 * B (epoch 2, with delta) with `point` armed in `mode`; then says 'd'. */
struct pub_arg {
	const char *seg;
	const char *point, *mode;
	int fd;
};

static int publisher(void *arg)
{
	struct pub_arg *a = arg;
	struct dr_host h[4];
	dr_registry *r;
	dr_mailbox *mb;

	if (open_g(a->seg, &r) || dr_mailbox_open(r, &mb) || dr_admin_bridge_claim(mb, NULL))
		return 2;
	if (dr_admin_view_publish(mb, h, three(h), 1))
		return 3;
	if (write_byte(a->fd, 'a'))
		return 4;
	crash_arm(a->point, a->mode, 0);
	h[3] = host("delta", DR_HOST_UP, 0);
	if (dr_admin_view_publish(mb, h, 4, 2))
		return 5;
	if (write_byte(a->fd, 'd'))
		return 6;
	dr_close(r);
	return 0;
}

static void expect_view_a(dr_registry *r, int want_rc)
{
	struct dr_host hs[8];
	uint64_t epoch = 0;
	size_t n = 0;
	char id[DR_HOST_MAX + 1], name[32];

	cr_assert_eq(dr_hosts(r, hs, 8, &n, &epoch), want_rc);
	cr_assert_eq(epoch, 1, "the view before the paused publication");
	cr_assert_eq(n, 3);
	cr_assert_str_eq(hs[0].id, "alpha");
	cr_assert_str_eq(hs[2].id, "gamma");
	cr_assert_str_eq(hs[2].rpc, "tcp://gamma:7000");
	if (want_rc)
		return;
	three(hs);
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		cr_assert_str_eq(id, expected_owner(name, hs, 3));
	}
}

static void paused_publication(const char *point)
{
	const char *seg = seg_new("gpause");
	dr_registry *r = open_or_die(seg);
	struct pub_arg a = { .seg = seg, .point = point, .mode = "stop" };
	struct dr_host hs[8];
	uint64_t epoch = 0;
	size_t n = 0;
	int p[2];
	pid_t kid;
	char c, msg[256];

	cr_assert_eq(pipe(p), 0);
	a.fd = p[1];
	kid = spawn(publisher, &a);
	cr_assert_eq(read_byte_within(p[0], &c, WAIT_MS), 1);
	cr_assert_eq(c, 'a');
	cr_assert_eq(wait_stopped(kid, WAIT_MS), 0, "the publisher never reached %s", point);

	/* Readers neither wait nor see a mixture while it stands there. */
	for (int i = 0; i < 200; i++)
		expect_view_a(r, 0);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "a paused publisher is no corruption: %s",
		     msg);

	cr_assert_eq(kill(kid, SIGCONT), 0);
	cr_assert_eq(read_byte_within(p[0], &c, WAIT_MS), 1);
	cr_assert_eq(c, 'd');
	cr_assert_eq(wait_child(kid), 0);
	cr_assert_eq(dr_hosts(r, hs, 8, &n, &epoch), -ENOTCONN, "the publisher has closed");
	cr_assert_eq(epoch, 2);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(hs[3].id, "delta");
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	close(p[0]);
	close(p[1]);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(global, readers_get_a_whole_view_while_a_publisher_is_paused_mid_write)
{
	paused_publication("view_writing");
}

Test(global, readers_get_a_whole_view_while_a_publisher_is_paused_before_the_flip)
{
	paused_publication("view_written");
}

Test(global, a_publisher_killed_mid_write_leaves_the_last_view_and_a_free_role)
{
	static const char *const points[] = { "view_writing", "view_written" };

	for (int k = 0; k < 2; k++) {
		const char *seg = seg_new("gkill");
		dr_registry *r = open_or_die(seg);
		struct pub_arg a = { .seg = seg, .point = points[k], .mode = "kill" };
		struct dr_host h[3];
		dr_mailbox *mb;
		char msg[256];
		int p[2];
		char c;

		cr_assert_eq(pipe(p), 0);
		a.fd = p[1];
		cr_assert_eq(wait_child(spawn(publisher, &a)), 128 + SIGKILL);
		cr_assert_eq(read_byte(p[0], &c), 1);
		expect_view_a(r, -ENOTCONN);
		cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s: %s", points[k], msg);
		/* A new bridge takes over and publishes past what the dead one
		 * may have written. */
		mb = mailbox(r);
		cr_assert_eq(dr_admin_bridge_claim(mb, NULL), 0);
		cr_assert_eq(dr_admin_view_publish(mb, h, three(h), 2), 0);
		{
			struct dr_host hs[8];
			uint64_t epoch = 0;
			size_t n = 0;

			cr_assert_eq(dr_hosts(r, hs, 8, &n, &epoch), 0);
			cr_assert_eq(epoch, 2);
			cr_assert_eq(n, 3);
		}
		cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s: %s", points[k], msg);
		close(p[0]);
		close(p[1]);
		dr_close(r);
		cr_assert_eq(dr_unlink(seg), 0);
	}
}

/* ---------------------------------------------------------------------- */
/* Forwarding: the test process is the bridge */

/* A process of this host that calls, or looks up, a global name another
 * host owns, and checks what comes back. */
struct caller_arg {
	const char *seg;
	char name[32];
	char op;             /* 'c' dr_call_global, 'w' dr_whereis_global */
	int want_rc;
	char want_reply[16];
	struct dr_entry want_entry;
};

/* An unexpected code as an exit status: 50 + its errno. */
static int rc_status(int rc)
{
	return 50 + (-rc & 0x7f);
}

static int caller(void *arg)
{
	struct caller_arg *a = arg;
	struct dr_entry e;
	dr_registry *r;
	char buf[64], id[DR_HOST_MAX + 1];
	size_t len = sizeof(buf);
	int rc;

	if (open_g(a->seg, &r))
		return 2;
	if (a->op == 'c') {
		rc = dr_call_global(r, a->name, "ping", 4, buf, &len, 5000);
		if (rc != a->want_rc)
			return rc_status(rc);
		if (rc == 0 && (len != strlen(a->want_reply) || memcmp(buf, a->want_reply, len)))
			return 3;
	} else {
		rc = dr_whereis_global(r, a->name, &e, id, sizeof(id), 5000);
		if (rc != a->want_rc)
			return rc_status(rc);
		if (rc == 0 && (e.pid != a->want_entry.pid || e.regid != a->want_entry.regid ||
				e.value_len != a->want_entry.value_len ||
				memcmp(e.value, a->want_entry.value, e.value_len) != 0))
			return 4;
		if (rc == 0 && strcmp(id, "beta") != 0)
			return 5;
	}
	dr_close(r);
	return 0;
}

/* Take the next forwarded message from the bridge's mailbox and decode it. */
static void take_fwd(dr_mailbox *b, struct dr_msg *m, struct dr_fwd *f, int kind, int op)
{
	int rc = dr_recv(b, m, WAIT_MS);

	cr_assert_eq(rc, 0, "dr_recv at the bridge: %s", dr_strerror(rc));
	cr_assert_eq(m->kind, kind);
	cr_assert_eq(m->name_len, 0, "sent to the bridge's address");
	cr_assert_eq(m->global, 1);
	rc = dr_admin_fwd_decode(m, f);
	cr_assert_eq(rc, 0, "decode: %s", dr_strerror(rc));
	cr_assert_eq(f->op, op);
}

Test(global, a_call_to_another_host_goes_through_the_bridge_and_back)
{
	const char *seg = seg_new("gfwd");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 3);
	struct caller_arg a = { .seg = seg, .op = 'c', .want_reply = "pong" };
	struct dr_msg m;
	struct dr_fwd f;
	pid_t kid;

	name_owned_by(r, "f", "beta", a.name, sizeof(a.name));
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_CALL);
	cr_assert_eq(m.sender, kid);
	cr_assert_str_eq(f.host, "beta");
	cr_assert_eq(f.name_len, strlen(a.name));
	cr_assert_arr_eq(f.name, a.name, f.name_len);
	cr_assert_eq(f.len, 4);
	cr_assert_arr_eq(f.data, "ping", 4);
	cr_assert(f.timeout_ms > 0 && f.timeout_ms <= 5000, "timeout %d", f.timeout_ms);
	cr_assert_eq(f.epoch, 3);
	/* As a bridge does once the owner has answered. */
	cr_assert_eq(dr_reply(b, &m, "pong", 4), 0);
	cr_assert_eq(wait_child(kid), 0);

	/* An error the bridge reports reaches the caller as is. */
	a.want_rc = -EHOSTUNREACH;
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_CALL);
	cr_assert_eq(dr_reply_error(b, &m, -EHOSTUNREACH), 0);
	cr_assert_eq(wait_child(kid), 0);

	/* The bridge goes while the call is in flight: -ENOTCONN. */
	a.want_rc = -ENOTCONN;
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_CALL);
	dr_mailbox_close(b);
	cr_assert_eq(wait_child(kid), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(global, casts_sends_and_asynchronous_calls_to_another_host)
{
	const char *seg = seg_new("gfwd");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 4), *c = mailbox(r), *w = mailbox(r);
	char remote[32], mine[32];
	static char big[8192];
	size_t hdr;
	struct dr_msg m;
	struct dr_fwd f;
	uint64_t id = 0;

	name_owned_by(r, "k", "gamma", remote, sizeof(remote));
	name_owned_by(r, "k", "alpha", mine, sizeof(mine));
	cr_assert_eq(dr_serve_global(w, mine, NULL, 0), 0);

	cr_assert_eq(dr_cast_global(r, remote, "k1", 2, 0), 0);
	take_fwd(b, &m, &f, DR_MSG_CAST, DR_FWD_CAST);
	cr_assert_str_eq(f.host, "gamma");
	cr_assert_eq(f.len, 2);
	cr_assert_arr_eq(f.data, "k1", 2);
	cr_assert_eq(f.timeout_ms, 0);
	cr_assert_eq(dr_send_global(r, remote, "s1", 2, 250), 0);
	take_fwd(b, &m, &f, DR_MSG_CAST, DR_FWD_INFO);
	cr_assert_arr_eq(f.data, "s1", 2);
	cr_assert_eq(f.timeout_ms, 250);
	cr_assert_eq(dr_reply(b, &m, "x", 1), -EINVAL, "a cast takes no answer");

	/* To this host's own name: delivered here, never to the bridge. */
	cr_assert_eq(dr_cast_global(r, mine, "here", 4, 0), 0);
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.global, 1);
	cr_assert_arr_eq(m.data, "here", 4);
	cr_assert_eq(dr_recv(b, &m, 0), -EAGAIN);

	/* The forwarding header takes room in the message. */
	hdr = 16 + strlen("gamma") + 1 + strlen(remote);
	cr_assert_eq(dr_cast_global(r, remote, big, dr_message_max(r), 0), -EMSGSIZE);
	cr_assert_eq(dr_cast_global(r, remote, big, dr_message_max(r) - hdr + 1, 0), -EMSGSIZE);
	cr_assert_eq(dr_cast_global(r, remote, big, dr_message_max(r) - hdr, 0), 0);
	take_fwd(b, &m, &f, DR_MSG_CAST, DR_FWD_CAST);
	cr_assert_eq(f.len, dr_message_max(r) - hdr);

	/* An asynchronous call: the answer comes to the caller's mailbox. */
	cr_assert_eq(dr_call_async_global(c, remote, "a", 1, 5000, &id), 0);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_CALL);
	cr_assert_eq(dr_reply(b, &m, "A", 1), 0);
	cr_assert_eq(dr_recv(c, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	cr_assert_eq(m.call_id, id);
	cr_assert_eq(m.status, 0);
	cr_assert_arr_eq(m.data, "A", 1);

	/* And when the bridge goes first: -ENOTCONN as its status. */
	cr_assert_eq(dr_call_async_global(c, remote, "a", 1, 5000, &id), 0);
	dr_mailbox_close(b);
	cr_assert_eq(dr_recv(c, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	cr_assert_eq(m.call_id, id);
	cr_assert_eq(m.status, -ENOTCONN);
	cr_assert_eq(dr_call_async_global(c, remote, "a", 1, 5000, &id), -ENOTCONN);
	cr_assert_eq(dr_call_async_global(NULL, remote, "a", 1, 5000, &id), -EINVAL);
	dr_mailbox_close(c);
	dr_mailbox_close(w);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* A forwarded message built by hand: data, kind, and the rest valid. */
static struct dr_msg fwd_msg(int kind, const uint8_t *data, size_t len)
{
	struct dr_msg m;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.global = 1;
	m.data = data;
	m.len = len;
	return m;
}

/* The header of DESIGN.md's layout (global.c), with a payload. */
static size_t fwd_build(uint8_t *p, int op, const char *host, const char *name,
			int32_t timeout, uint64_t epoch, const char *payload)
{
	size_t hl = strlen(host), nl = strlen(name), pl = strlen(payload);

	p[0] = 1;
	p[1] = (uint8_t)op;
	p[2] = (uint8_t)hl;
	p[3] = (uint8_t)nl;
	for (int i = 0; i < 4; i++)
		p[4 + i] = (uint8_t)((uint32_t)timeout >> (8 * i));
	for (int i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(epoch >> (8 * i));
	memcpy(p + 16, host, hl);
	p[16 + hl] = 0;
	memcpy(p + 17 + hl, name, nl);
	memcpy(p + 17 + hl + nl, payload, pl);
	return 17 + hl + nl + pl;
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

Test(global, forwarding_headers_are_decoded_strictly)
{
	uint8_t good[256], bad[256];
	size_t n = fwd_build(good, DR_FWD_CALL, "beta", "svc", 1500, 42, "payload");
	struct dr_msg m = fwd_msg(DR_MSG_CALL, good, n);
	struct dr_fwd f;

	cr_assert_eq(dr_admin_fwd_decode(&m, &f), 0);
	cr_assert_eq(f.op, DR_FWD_CALL);
	cr_assert_str_eq(f.host, "beta");
	cr_assert_eq(f.name_len, 3);
	cr_assert_arr_eq(f.name, "svc", 3);
	cr_assert_eq(f.len, 7);
	cr_assert_arr_eq(f.data, "payload", 7);
	cr_assert_eq(f.timeout_ms, 1500);
	cr_assert_eq(f.epoch, 42);
	cr_assert_eq(dr_admin_fwd_decode(NULL, &f), -EINVAL);
	cr_assert_eq(dr_admin_fwd_decode(&m, NULL), -EINVAL);

	/* Every truncation. */
	for (size_t len = 0; len < n - 7; len++) {
		m = fwd_msg(DR_MSG_CALL, good, len);
		cr_assert_eq(dr_admin_fwd_decode(&m, &f), -EBADMSG, "%zu bytes", len);
	}
	m = fwd_msg(DR_MSG_CALL, good, n - 7);
	cr_assert_eq(dr_admin_fwd_decode(&m, &f), 0, "no payload");

#define BAD(kind, mutate, why)                                                            \
	do {                                                                              \
		memcpy(bad, good, n);                                                     \
		m = fwd_msg(kind, bad, n);                                                \
		mutate;                                                                   \
		cr_assert_eq(dr_admin_fwd_decode(&m, &f), -EBADMSG, "%s", why);           \
	} while (0)
	BAD(DR_MSG_CALL, bad[0] = 2, "version 2");
	BAD(DR_MSG_CALL, bad[1] = 0, "op 0");
	BAD(DR_MSG_CALL, bad[1] = DR_FWD_START + 1, "op 6");
	BAD(DR_MSG_CAST, bad[1] = DR_FWD_START, "a start sent as a CAST");
	BAD(DR_MSG_CALL, bad[1] = DR_FWD_CAST, "a cast sent as a CALL");
	BAD(DR_MSG_CAST, (void)0, "a call sent as a CAST");
	BAD(DR_MSG_CAST, bad[1] = DR_FWD_WHEREIS, "a lookup sent as a CAST");
	BAD(DR_MSG_INFO, bad[1] = DR_FWD_INFO, "an INFO message");
	BAD(DR_MSG_REPLY, (void)0, "a REPLY");
	BAD(DR_MSG_CALL, bad[2] = 0, "host length 0");
	BAD(DR_MSG_CALL, bad[2] = DR_HOST_MAX + 1, "host length 64");
	BAD(DR_MSG_CALL, bad[2] = 200, "host length past the message");
	BAD(DR_MSG_CALL, bad[3] = 0, "name length 0");
	BAD(DR_MSG_CALL, bad[3] = DR_NAME_MAX + 1, "name length 128");
	BAD(DR_MSG_CALL, bad[3] = 250, "name length past the message");
	BAD(DR_MSG_CALL, memset(bad + 4, 0xfe, 4), "timeout -2");
	BAD(DR_MSG_CALL, (bad[4] = 0, bad[7] = 0x80), "timeout INT_MIN");
	BAD(DR_MSG_CALL, bad[17] = 0, "a NUL inside the host");
	BAD(DR_MSG_CALL, bad[20] = 'x', "no NUL after the host");
	BAD(DR_MSG_CALL, m.name_len = 3, "not sent to the bridge's address");
	BAD(DR_MSG_CALL, m.global = 0, "sent to a local name");
	BAD(DR_MSG_CALL, m.data = NULL, "no data");
	BAD(DR_MSG_CALL, bad[1] = DR_FWD_WHEREIS, "a lookup with a payload");
#undef BAD
	n = fwd_build(good, DR_FWD_WHEREIS, "beta", "svc", -1, 1, "");
	m = fwd_msg(DR_MSG_CALL, good, n);
	cr_assert_eq(dr_admin_fwd_decode(&m, &f), 0);
	cr_assert_eq(f.timeout_ms, -1);
	cr_assert_eq(f.len, 0);

	/* Random messages: valid ones with a byte changed, cut or grown,
	 * and random bytes. Never a crash, and what decodes lies within. */
	uint64_t s = 0x5eed;
	unsigned ok = 0;
	for (int round = 0; round < 20000; round++) {
		uint8_t *buf = malloc(512);
		char hs[DR_HOST_MAX + 1], ns[DR_NAME_MAX + 1], ps[64];
		size_t len;

		cr_assert_not_null(buf);
		if (xs(&s) % 4) {
			size_t hl = 1 + xs(&s) % DR_HOST_MAX, nl = 1 + xs(&s) % DR_NAME_MAX;
			size_t pl = xs(&s) % sizeof(ps);

			memset(hs, 'h', hl);
			hs[hl] = 0;
			memset(ns, 'n', nl);
			ns[nl] = 0;
			memset(ps, 'p', pl);
			ps[pl] = 0;
			len = fwd_build(buf, (int)(1 + xs(&s) % 4), hs, ns,
					(int32_t)(xs(&s) % 3) - 1, xs(&s), ps);
			switch (xs(&s) % 4) {
			case 0: buf[xs(&s) % len] = (uint8_t)xs(&s); break;
			case 1: len = xs(&s) % len; break;
			case 2: buf[len] = (uint8_t)xs(&s); len++; break;
			default: break;
			}
		} else {
			len = xs(&s) % 240;
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)xs(&s);
		}
		m = fwd_msg(xs(&s) % 2 ? DR_MSG_CALL : DR_MSG_CAST, buf, len);
		if (dr_admin_fwd_decode(&m, &f) == 0) {
			const uint8_t *end = buf + len;

			ok++;
			cr_assert((const uint8_t *)f.host >= buf &&
				  (const uint8_t *)f.host + strlen(f.host) < end);
			cr_assert(strlen(f.host) >= 1 && strlen(f.host) <= DR_HOST_MAX);
			cr_assert(f.name >= buf && f.name + f.name_len <= end);
			cr_assert(f.name_len >= 1 && f.name_len <= DR_NAME_MAX);
			cr_assert((const uint8_t *)f.data + f.len == end);
			cr_assert(f.op >= DR_FWD_CALL && f.op <= DR_FWD_WHEREIS);
			cr_assert(f.timeout_ms >= -1);
		}
		free(buf);
	}
	cr_log_info("random forwarding headers: %u of 20000 decoded", ok);
}

Test(global, delivery_on_the_owner_ignores_the_view)
{
	const char *seg = seg_new("gdeliv");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r), *w = mailbox(r);
	struct dr_host h[3];
	struct dr_entry e;
	struct dr_msg m;
	uint8_t wire[DR_ENTRY_WIRE_MAX];
	size_t wl = 0;
	char name[32], id[DR_HOST_MAX + 1];
	uint64_t call_id = 0;

	/* A name beta will own, served here while the bridge has no view
	 * yet (this host alone), as a worker that started before the
	 * view moved the name away would have it. */
	three(h);
	for (int i = 0;; i++) {
		snprintf(name, sizeof(name), "d.%d", i);
		if (strcmp(expected_owner(name, h, 3), "beta") == 0)
			break;
	}
	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	cr_assert_eq(dr_serve_global(w, name, "val", 3), 0);
	cr_assert_eq(dr_admin_view_publish(b, h, 3, 1), 0);
	cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
	cr_assert_str_eq(id, "beta");

	cr_assert_eq(dr_admin_deliver(b, DR_FWD_CALL, name, strlen(name), "q", 1, 1000, &call_id), 0);
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_CALL);
	cr_assert_eq(m.global, 1);
	cr_assert_eq(m.sender, getpid(), "sent by the bridge");
	cr_assert_arr_eq(m.data, "q", 1);
	cr_assert_eq(dr_reply(w, &m, "R", 1), 0);
	cr_assert_eq(dr_recv(b, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_REPLY);
	cr_assert_eq(m.call_id, call_id);
	cr_assert_eq(m.status, 0);
	cr_assert_arr_eq(m.data, "R", 1);

	cr_assert_eq(dr_admin_deliver(b, DR_FWD_CAST, name, strlen(name), "c", 1, 0, NULL), 0);
	cr_assert_eq(dr_admin_deliver(b, DR_FWD_INFO, name, strlen(name), "i", 1, 0, NULL), 0);
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_CAST);
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_INFO);

	/* A worker that does not read: the deliveries fill its lane, and
	 * then fail at once with -EAGAIN, whatever the call's timeout (a
	 * bridge must never wait for a worker), until it reads again. */
	{
		static char big[4000];
		int n = 0, rc;

		while ((rc = dr_admin_deliver(b, DR_FWD_CALL, name, strlen(name), big, sizeof(big),
					      5000, &call_id)) == 0)
			cr_assert_lt(++n, 100000, "the lane never filled");
		cr_assert_eq(rc, -EAGAIN, "a full lane: %s (after %d)", dr_strerror(rc), n);
		cr_assert_gt(n, 0);
		cr_assert_eq(dr_admin_deliver(b, DR_FWD_CAST, name, strlen(name), big, sizeof(big),
					      0, NULL), -EAGAIN);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
			cr_assert_eq(m.kind, DR_MSG_CALL);
			cr_assert_eq(dr_reply_error(w, &m, -ECANCELED), 0);
			cr_assert_eq(dr_recv(b, &m, WAIT_MS), 0);
			cr_assert_eq(m.status, -ECANCELED);
		}
		cr_assert_eq(dr_recv(w, &m, 0), -EAGAIN, "the refused ones were not delivered");
		cr_assert_eq(dr_admin_deliver(b, DR_FWD_CALL, name, strlen(name), "q", 1, 5000,
					      &call_id), 0, "room again");
		cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
		cr_assert_eq(dr_reply(w, &m, "R", 1), 0);
		cr_assert_eq(dr_recv(b, &m, WAIT_MS), 0);
		cr_assert_eq(m.call_id, call_id);
	}

	cr_assert_eq(dr_serve(w, "localonly", NULL, 0), 0);
	cr_assert_eq(dr_admin_deliver(b, DR_FWD_CAST, "localonly", 9, "c", 1, 0, NULL), -ENOENT);
	cr_assert_eq(dr_admin_deliver(b, DR_FWD_CALL, "nobody", 6, "c", 1, 0, NULL), DR_NOTSERVED);
	cr_assert_eq(dr_admin_deliver(b, DR_FWD_WHEREIS, name, strlen(name), NULL, 0, 0, NULL),
		     -EINVAL);
	cr_assert_eq(dr_admin_deliver(b, 0, name, strlen(name), NULL, 0, 0, NULL), -EINVAL);
	cr_assert_eq(dr_admin_deliver(NULL, DR_FWD_CAST, name, strlen(name), NULL, 0, 0, NULL),
		     -EINVAL);

	/* The answer to a lookup, byte by byte. */
	cr_assert_eq(dr_whereis_global(r, name, &e, NULL, 0, 0), -ETIMEDOUT,
		     "from here the lookup goes to beta");
	cr_assert_eq(dr_admin_entry_encode(r, name, strlen(name), wire, &wl), 0);
	cr_assert_eq(wl, 24 + 3);
	cr_assert_eq(wire[0], 1);
	cr_assert_eq(wire[1] | wire[2] | wire[3], 0);
	cr_assert_eq((pid_t)(wire[4] | wire[5] << 8 | wire[6] << 16 | (uint32_t)wire[7] << 24),
		     getpid());
	cr_assert_eq(wire[16], 3);
	cr_assert_arr_eq(wire + 24, "val", 3);
	cr_assert_eq(dr_admin_entry_encode(r, "nobody", 6, wire, &wl), -ENOENT);
	cr_assert_eq(dr_admin_entry_encode(r, "localonly", 9, wire, &wl), -ENOENT);
	cr_assert_eq(dr_admin_entry_encode(r, name, strlen(name), NULL, &wl), -EINVAL);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(global, whereis_global_here_and_through_the_bridge)
{
	const char *seg = seg_new("gwhere");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 2), *w = mailbox(r);
	struct caller_arg a = { .seg = seg, .op = 'w' };
	char here[32], id[DR_HOST_MAX + 1], small[4];
	uint8_t wire[DR_ENTRY_WIRE_MAX];
	size_t wl = 0;
	struct dr_entry e;
	struct dr_msg m;
	struct dr_fwd f;
	pid_t kid;

	name_owned_by(r, "h", "alpha", here, sizeof(here));
	cr_assert_eq(dr_serve_global(w, here, "V1", 2), 0);
	cr_assert_eq(dr_whereis_global(r, here, &e, id, sizeof(id), 0), 0);
	cr_assert_str_eq(id, "alpha");
	cr_assert_eq(e.pid, getpid());
	cr_assert_arr_eq(e.value, "V1", 2);
	cr_assert_eq(dr_whereis_global(r, here, &e, small, sizeof(small), 0), -ERANGE);
	cr_assert_eq(dr_whereis_global(r, here, NULL, NULL, 0, 0), 0);

	/* beta's bridge answers with an entry of its own (here, ours). */
	a.want_entry = e;
	name_owned_by(r, "q", "beta", a.name, sizeof(a.name));
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_WHEREIS);
	cr_assert_str_eq(f.host, "beta");
	cr_assert_arr_eq(f.name, a.name, f.name_len);
	cr_assert_eq(f.len, 0);
	cr_assert_eq(dr_admin_entry_encode(r, here, strlen(here), wire, &wl), 0);
	cr_assert_eq(dr_reply(b, &m, wire, wl), 0);
	cr_assert_eq(wait_child(kid), 0);

	a.want_rc = -ENOENT;
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_WHEREIS);
	cr_assert_eq(dr_reply_error(b, &m, -ENOENT), 0);
	cr_assert_eq(wait_child(kid), 0);

	a.want_rc = -EBADMSG;
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_WHEREIS);
	cr_assert_eq(dr_reply(b, &m, "junk", 4), 0);
	cr_assert_eq(wait_child(kid), 0);
	wire[0] = 9;
	kid = spawn(caller, &a);
	take_fwd(b, &m, &f, DR_MSG_CALL, DR_FWD_WHEREIS);
	cr_assert_eq(dr_reply(b, &m, wire, wl), 0);
	cr_assert_eq(wait_child(kid), 0);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Processes, for a reaper */

static uint64_t start_time_of_self(void)
{
	char buf[1024], *p;
	FILE *fp = fopen("/proc/self/stat", "r");
	size_t n;

	cr_assert_not_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	p = strrchr(buf, ')');
	cr_assert_not_null(p);
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		cr_assert_not_null(p);
	}
	return strtoull(p + 1, NULL, 10);
}

static int attach_and_die(void *arg)
{
	dr_registry *r;

	return open_g(arg, &r) ? 2 : 0; /* no dr_close */
}

Test(global, admin_procs_lists_attached_processes)
{
	const char *seg = seg_new("gprocs");
	dr_registry *r = open_or_die(seg);
	struct dr_proc_info p[UNIT_MAX_PROCS];
	size_t n = 0, mine = SIZE_MAX;
	pid_t kid;
	bool found;

	cr_assert_eq(dr_admin_procs(r, p, UNIT_MAX_PROCS, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(p[0].pid, getpid());
	cr_assert_eq(p[0].start_time, start_time_of_self());
	mine = p[0].slot;

	kid = spawn(attach_and_die, (void *)seg);
	cr_assert_eq(wait_child(kid), 0);
	cr_assert_eq(dr_admin_procs(r, p, UNIT_MAX_PROCS, &n), 0);
	cr_assert_eq(n, 2, "a dead process is listed until it is reaped");
	found = false;
	for (size_t i = 0; i < n; i++)
		found |= p[i].pid == kid && p[i].slot != mine && p[i].start_time != 0;
	cr_assert(found);
	cr_assert_eq(dr_admin_procs(r, p, 1, &n), -ERANGE);
	cr_assert_eq(n, 2);
	cr_assert_eq(dr_admin_procs(r, NULL, 0, &n), -ERANGE);
	cr_assert_eq(dr_admin_procs(r, p, 2, NULL), -EINVAL);
	cr_assert_eq(dr_admin_procs(r, NULL, 2, &n), -EINVAL);
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_admin_procs(r, p, UNIT_MAX_PROCS, &n), 0);
	cr_assert_eq(n, 1);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* A view another process scribbled on */

Test(global, a_scribbled_view_is_not_used_and_dr_check_says_so)
{
	const char *seg = seg_new("gscrib");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1);
	struct dr_host h[4];
	struct dri_cluster *c;
	struct dri_view *cur;
	char msg[256], id[DR_HOST_MAX + 1], name[32];
	uint8_t *base;
	size_t len, n;
	uint64_t epoch;

	three(h);
	h[3] = host("delta", DR_HOST_UP, 0);
	cr_assert_eq(dr_admin_view_publish(b, h, 4, 2), 0);
	base = segmap_open(seg, &len);
	cr_assert_not_null(base);
	c = (struct dri_cluster *)(base + ((struct dri_header *)base)->off_cluster);
	cur = &c->view[c->view_index & 1];
	cr_assert_eq(cur->epoch, 2);

	/* Too many hosts in the current copy: readers use the other (the
	 * view of epoch 1), dr_check names the damage. */
	cur->nhosts = DR_HOSTS_MAX + 44;
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), -EBADMSG);
	cr_assert(strstr(msg, "view copy"), "%s", msg);
	cr_assert_eq(dr_hosts(r, h, 4, &n, &epoch), 0);
	cr_assert_eq(epoch, 1);
	cr_assert_eq(n, 3);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "z.%d", i);
		cr_assert_eq(dr_owner(r, name, id, sizeof(id)), 0);
		cr_assert_str_neq(id, "delta");
	}
	cr_assert_eq(dr_admin_view_publish(b, h, 3, 2), 0,
		     "epoch 2 is new: the copy that said so is unreadable");
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), -EBADMSG, "the old copy is still bad");
	cr_assert_eq(dr_admin_view_publish(b, h, 3, 3), 0);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "overwritten: %s", msg);

	/* Each field of a host, one at a time. */
	cur = &c->view[c->view_index & 1];
#define SCRIBBLE(field, value, expect)                                                   \
	do {                                                                             \
		typeof(field) keep = field;                                              \
		field = value;                                                           \
		cr_assert_eq(dr_check(r, msg, sizeof(msg)), -EBADMSG, #field);           \
		cr_assert(strstr(msg, expect), "%s: %s", #field, msg);                    \
		field = keep;                                                            \
		cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s", msg);               \
	} while (0)
	SCRIBBLE(cur->hot[1].state, 0, "state");
	SCRIBBLE(cur->hot[1].state, 9, "state");
	SCRIBBLE(cur->hot[2].self, 1, "marked as this host");
	SCRIBBLE(cur->hot[0].self, 0, "marked as this host");
	SCRIBBLE(cur->hot[0].self, 3, "self flag");
	SCRIBBLE(cur->hot[1].id_len, 0, "id length");
	SCRIBBLE(cur->hot[1].id_len, DR_HOST_MAX + 1, "id length");
	SCRIBBLE(cur->hot[1].rpc_len, DR_ADDR_MAX + 1, "rpc length");
	SCRIBBLE(cur->hot[1].seed, 12345, "seed");
	SCRIBBLE(cur->host[1].id[1], 0, "NUL");
	{
		/* gamma renamed beta, its seed and length too: a duplicate. */
		struct dri_vhost_hot hot = cur->hot[2];
		struct dri_vhost x = cur->host[2];

		memcpy(cur->host[2].id, "beta", 5);
		cur->hot[2].id_len = 4;
		cur->hot[2].seed = XXH3_64bits("beta", 4);
		cr_assert_eq(dr_check(r, msg, sizeof(msg)), -EBADMSG);
		cr_assert(strstr(msg, "one id"), "%s", msg);
		cur->hot[2] = hot;
		cur->host[2] = x;
	}
	SCRIBBLE(cur->epoch, 0, "epoch");
	SCRIBBLE(cur->nhosts, 0, "epoch");
	SCRIBBLE(cur->seq, cur->seq + 1, "odd sequence");
	SCRIBBLE(c->owner, DRI_OWNER(UNIT_MAX_PROCS + 3, 1), "bad owner");
	SCRIBBLE(c->ever, 7, "ran");
	SCRIBBLE(c->mbox, DRI_MBOX_REF(60000, 1), "mailbox");
#undef SCRIBBLE

	/* The index counts publications: any value names a copy (bit 0). */
	c->view_index += 2;
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(dr_hosts(r, h, 4, &n, &epoch), 0);
	cr_assert_eq(epoch, 3);
	c->view_index = UINT32_MAX - (c->view_index & 1 ? 0 : 1);
	cr_assert_eq(dr_hosts(r, h, 4, &n, &epoch), 0);
	cr_assert_eq(epoch, 3, "the same copy, named by a wrapping count");

	/* Readers: a bad state makes the copy unusable, and with the other
	 * copy usable they fall back to it. */
	cur->hot[1].state = 0;
	cr_assert_eq(dr_hosts(r, h, 4, &n, &epoch), 0);
	cr_assert_eq(epoch, 2, "the previous view");
	cur->hot[1].state = DR_HOST_UP;
	/* Both copies bad: no view to read, and the readers say so. */
	c->view[0].nhosts = 1000;
	c->view[1].nhosts = 1000;
	cr_assert_eq(dr_hosts(r, h, 4, &n, &epoch), -EBADMSG);
	cr_assert_eq(dr_owner(r, "x", id, sizeof(id)), -EBADMSG);
	cr_assert_eq(dr_cast_global(r, "x", "m", 1, 0), -EBADMSG);
	munmap(base, len);
	dr_mailbox_close(b);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

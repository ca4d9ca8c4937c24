/*
 * test_netns.c - three bridges in three Linux network namespaces, one host
 * each, joined by veth pairs to a Linux bridge device in a fourth namespace
 * (the "switch"): real TCP between real interfaces, with a key (the
 * addresses are not loopback). The hosts converge, a call from host A
 * reaches a worker on its owner host; then host C's link goes down: A and B
 * see C down, C sees A and B down, and each side carries on alone, and
 * starts the same global workers (through a factory on every host); the
 * link comes back: the views converge again, calls work again, and every
 * worker started on both sides ends with one instance, on its owner.
 * A second test takes random steps on the same network: cuts, heals,
 * bridge crashes and starts on both sides of a cut (netns chaos).
 *
 * Needs root (ip netns, veth, bridge devices); skipped otherwise. Every name
 * (namespaces, segments, key, logs) carries the test process's pid, and
 * nothing is created in the caller's own network namespace: the veths are
 * made inside the test's namespaces, and go with them.
 *
 * A host is its namespace and its segment. The segments are in /dev/shm,
 * which network namespaces share, so the test reads every host's view from
 * outside. But the workers and the callers run inside their host's
 * namespace, as the bridge does (cl_call, worker_start): mailbox wake-ups
 * are datagrams to abstract Unix sockets, which are per network namespace,
 * so a worker in another namespace than its bridge is never woken for a
 * call the bridge delivers (the call times out, with nothing in any log).
 */
#include <sched.h>
#include <stdarg.h>

#include "cluster.h"

TestSuite(netns, .timeout = CL_TIMEOUT);

#define NH 3            /* hosts A, B, C; the switch is namespace NH */
#define SW NH

static struct cl C;
static char ns[NH + 1][32];     /* "drt<pid>a".."drt<pid>c", "drt<pid>s" */
static bool ns_made[NH + 1];
static char ip_log[128];        /* what the ip commands said */
static pid_t workers[NH], factories[NH];
static int net_a, net_b;        /* 10.<a>.<b>.0/24 */

/* Run "ip arg..." (NULL-terminated), its output appended to ip_log; its
 * exit status, -1 if it died, -ENOENT (and so on) if it could not start. */
static int ip(const char *arg, ...)
{
	const char *argv[32];
	int k = 0, st, fd, rc;
	pid_t pid;
	va_list ap;
	posix_spawn_file_actions_t fa;

	argv[k++] = "ip";
	va_start(ap, arg);
	for (const char *a = arg; a && k < 31; a = va_arg(ap, const char *))
		argv[k++] = a;
	va_end(ap);
	argv[k] = NULL;

	fd = open(ip_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dprintf(fd, "+");
		for (int j = 0; j < k; j++)
			dprintf(fd, " %s", argv[j]);
		dprintf(fd, "\n");
	}
	posix_spawn_file_actions_init(&fa);
	if (fd >= 0) {
		posix_spawn_file_actions_adddup2(&fa, fd, 1);
		posix_spawn_file_actions_adddup2(&fa, fd, 2);
	}
	rc = posix_spawnp(&pid, "ip", &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (fd >= 0)
		close(fd);
	if (rc)
		return -rc;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The last lines of ip_log, for a message (a static buffer). */
static const char *ip_said(void)
{
	static char buf[1024];

	return cl_file_tail(ip_log, buf, sizeof(buf));
}

/* Whether this process may make network namespaces at all: unshare(2) in
 * a child (so that ours stays as it is). 0, or the errno. */
static int can_unshare_net(void)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(unshare(CLONE_NEWNET) < 0 ? (errno & 0x7f) : 0);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : EPERM;
}

static void teardown(void);

/* Skip the test, having undone what was made: Criterion runs no .fini
 * after a skip. what, and then what ip said if ip_said. */
static void skip_net(bool said, const char *fmt, ...)
{
	static char msg[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (said && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ":\n%s", ip_said());
	teardown();
	cr_skip_test("%s", msg);
}

static void addr_of(int i, char *buf, size_t len)
{
	snprintf(buf, len, "10.%d.%d.%d", net_a, net_b, i + 1);
}

/*
 * The namespaces: the switch (a bridge device, br0) and one per host, whose
 * eth0 is a veth with its peer ("p<i>") on br0; 10.<a>.<b>.<i+1>/24 on eth0.
 * Skips the test when namespaces or the devices cannot be made.
 */
static void make_network(void)
{
	int pid = (int)getpid(), rc;
	char cidr[32], addr[24], port[8];

	if (geteuid() != 0)
		skip_net(false, "network namespaces need root (euid %d)", (int)geteuid());
	rc = can_unshare_net();
	if (rc)
		skip_net(false, "unshare(CLONE_NEWNET) is not permitted here: %s", strerror(rc));
	rc = ip("-V", NULL);
	if (rc < 0)
		skip_net(false, "no usable ip binary (iproute2): %s", strerror(-rc));

	net_a = (pid >> 8) & 0xff;
	net_b = pid & 0xff;
	for (int i = 0; i <= NH; i++) {
		snprintf(ns[i], sizeof(ns[i]), "drt%d%c", pid, i == SW ? 's' : 'a' + i);
		if (ip("netns", "add", ns[i], NULL) != 0)
			skip_net(true, "cannot add network namespace %s", ns[i]);
		ns_made[i] = true;
	}
	if (ip("-n", ns[SW], "link", "add", "br0", "type", "bridge", NULL) != 0)
		skip_net(true, "cannot make a bridge device");
	cr_assert_eq(ip("-n", ns[SW], "link", "set", "br0", "up", NULL), 0, "%s", ip_said());
	for (int i = 0; i < NH; i++) {
		snprintf(port, sizeof(port), "p%d", i);
		addr_of(i, addr, sizeof(addr));
		snprintf(cidr, sizeof(cidr), "%s/24", addr);
		if (ip("-n", ns[i], "link", "add", "eth0", "type", "veth", "peer", "name", port,
		       "netns", ns[SW], NULL) != 0)
			skip_net(true, "cannot make a veth pair");
		cr_assert_eq(ip("-n", ns[SW], "link", "set", port, "master", "br0", NULL), 0, "%s",
			     ip_said());
		cr_assert_eq(ip("-n", ns[SW], "link", "set", port, "up", NULL), 0, "%s", ip_said());
		cr_assert_eq(ip("-n", ns[i], "addr", "add", cidr, "dev", "eth0", NULL), 0, "%s",
			     ip_said());
		cr_assert_eq(ip("-n", ns[i], "link", "set", "lo", "up", NULL), 0, "%s", ip_said());
		cr_assert_eq(ip("-n", ns[i], "link", "set", "eth0", "up", NULL), 0, "%s", ip_said());
	}
}

/* Everything, whatever state the test left it in. */
static void teardown(void)
{
	for (int i = 0; i < NH; i++) {
		if (workers[i] > 0) {
			kill(workers[i], SIGKILL);
			waitpid(workers[i], NULL, 0);
			workers[i] = 0;
		}
		if (factories[i] > 0) {
			kill(factories[i], SIGKILL);
			waitpid(factories[i], NULL, 0);
			factories[i] = 0;
		}
	}
	cl_fini(&C); /* bridges first: a namespace lives while a process is in it */
	for (int i = 0; i <= NH; i++)
		if (ns_made[i]) {
			(void)ip("netns", "delete", ns[i], NULL);
			ns_made[i] = false;
		}
	if (ip_log[0])
		unlink(ip_log);
}

static void setup(void)
{
	snprintf(ip_log, sizeof(ip_log), "/tmp/drt.%s.ip.log", dr_test_uniq());
}

/* Whether pid runs in network namespace name. */
static bool runs_in(pid_t pid, const char *name)
{
	char a[64], b[64];
	struct stat sa, sb;

	snprintf(a, sizeof(a), "/proc/%d/ns/net", (int)pid);
	snprintf(b, sizeof(b), "/run/netns/%s", name);
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
	       sa.st_dev == sb.st_dev;
}

/* A call from host i to name answered by host `by`; fails the test if not. */
static void call_ok(int i, const char *name, int by, const char *when)
{
	char reply[256], want[256];
	size_t len = sizeof(reply) - 1;
	int rc = cl_call(&C, i, name, "ping", 4, reply, &len, 5000);

	cr_assert_eq(rc, 0, "%s: call %s from %s: %s\n%s log:\n%s", when, name, C.h[i].id,
		     dr_strerror(rc), C.h[i].id, cl_log_tail(&C, i));
	reply[len] = 0;
	snprintf(want, sizeof(want), "%s|%s|ping", C.h[by].id, name);
	cr_assert_str_eq(reply, want, "%s: call %s from %s", when, name, C.h[i].id);
}

/* Host i's call to name fails with err (the name is not served where its
 * owner is now). */
static void call_fails(int i, const char *name, int err, const char *when)
{
	char reply[256];
	size_t len = sizeof(reply);
	int rc = cl_call(&C, i, name, "ping", 4, reply, &len, 3000);

	cr_assert_eq(rc, err, "%s: call %s from %s: %s (wanted %s)\n%s", when, name, C.h[i].id,
		     dr_strerror(rc), dr_strerror(err), cl_log_tail(&C, i));
}

/* Whether host i's view has host j up (or suspect, which still counts). */
static bool up_in(int i, int j)
{
	int st = cl_state_of(&C, i, j);

	return st == DR_HOST_UP || st == DR_HOST_SUSPECT;
}

/* dr_start(name) from host i: the host it runs on, and whether created. */
static void start_ok(int i, const char *name, int *created, char *host, const char *when)
{
	char reply[128];
	size_t len = sizeof(reply) - 1;
	int rc = cl_call_or_start(&C, i, name, "echo", NULL, 0, reply, &len, 5000);

	cr_assert_eq(rc, 0, "%s: start %s from %s: %s\n%s", when, name, C.h[i].id, dr_strerror(rc),
		     cl_log_tail(&C, i));
	reply[len] = 0;
	cr_assert(len > 2 && reply[1] == '|', "%s: start %s: %s", when, name, reply);
	*created = reply[0] == '1';
	cr_assert_lt(len - 2, DR_HOST_MAX + 1);
	memcpy(host, reply + 2, len - 1);
}

/* How many hosts' segments have the global name, and on which (the last). */
static int instances(const char *name, int *where)
{
	int n = 0;

	for (int i = 0; i < NH; i++) {
		if (cl_serves(&C, i, name)) {
			n++;
			*where = i;
		}
	}
	return n;
}

static double since(double t0)
{
	return cl_now() - t0;
}

/* Down within this (the detector says down-after, 800 ms here). */
#define DOWN_MS 10000
/* How long the partition lasts once both sides saw it. */
#define HOLD_MS 4000
/* Workers started on both sides of the partition. */
#define NSTART 12
static char pnames[NSTART][16];

/* C: one host per namespace, with a key, on tcp port 7420 (bus) and 7421. */
static void net_hosts(const char *tag)
{
	char addr[24];

	cl_init(&C, NH, tag, false);
	cl_make_key(&C);
	for (int i = 0; i < NH; i++) {
		struct cl_host *h = &C.h[i];

		addr_of(i, addr, sizeof(addr));
		h->netns = ns[i];
		snprintf(h->bus, sizeof(h->bus), "tcp://%s:7420", addr);
		snprintf(h->rpc, sizeof(h->rpc), "tcp://%s:7421", addr);
	}
}

Test(netns, three_hosts_converge_partition_and_heal, .init = setup, .fini = teardown)
{
	const char *name_b, *name_c;
	struct counters *cnt = counters_new();
	double t0, t_start = cl_now();

	make_network();
	net_hosts("ns");

	/* Converge: host 0 is everyone's seed, the rest is gossip. */
	t0 = cl_now();
	cl_start_all(&C);
	cl_wait_converged(&C, "start");
	cr_log_info("netns: 3 hosts converged in %.2f s", since(t0));
	for (int i = 0; i < NH; i++) {
		struct dr_host hosts[DR_HOSTS_MAX];
		size_t n = 0;

		cr_assert(runs_in(C.h[i].pid, ns[i]), "bridge %s is not in namespace %s", C.h[i].id,
			  ns[i]);
		cr_assert_eq(dr_hosts(cl_reg(&C, i), hosts, DR_HOSTS_MAX, &n, NULL), 0);
		cr_assert_eq(n, NH, "%s lists %zu hosts", C.h[i].id, n);
		for (size_t k = 0; k < n; k++) {
			int j = -1;

			for (int m = 0; m < NH; m++)
				if (strcmp(hosts[k].id, C.h[m].id) == 0)
					j = m;
			cr_assert_geq(j, 0, "%s lists an unknown host %s", C.h[i].id, hosts[k].id);
			cr_assert(hosts[k].state == DR_HOST_UP || hosts[k].state == DR_HOST_SUSPECT);
			cr_assert_eq(hosts[k].self, j == i);
			if (j != i)
				cr_assert_str_eq(hosts[k].rpc, C.h[j].rpc, "%s's view of %s",
						 C.h[i].id, C.h[j].id);
		}
	}

	/* Calls across the namespaces: a worker on B and one on C, each for a
	 * name its host owns; callers on A and C. */
	name_b = name_owned_by(&C, 1, "nb");
	name_c = name_owned_by(&C, 2, "nc");
	for (int i = 1; i < NH; i++) {
		cr_assert_eq(cl_owner(&C, i, name_b), 1);
		cr_assert_eq(cl_owner(&C, i, name_c), 2);
	}
	workers[1] = worker_start(&C, 1, &name_b, 1, cnt);
	workers[2] = worker_start(&C, 2, &name_c, 1, cnt);
	for (int i = 0; i < NH; i++)
		factories[i] = worker_spawn(&C, i, NULL, 0, cnt, "echo");
	call_ok(0, name_b, 1, "converged");
	call_ok(0, name_c, 2, "converged");
	call_ok(2, name_b, 1, "converged");

	/* Partition C: its link down. */
	cr_assert_eq(ip("-n", ns[2], "link", "set", "eth0", "down", NULL), 0, "%s", ip_said());
	t0 = cl_now();
	cl_wait_state(&C, 0, 2, DR_HOST_DOWN, DOWN_MS);
	cl_wait_state(&C, 1, 2, DR_HOST_DOWN, DOWN_MS);
	cl_wait_state(&C, 2, 0, DR_HOST_DOWN, DOWN_MS);
	cl_wait_state(&C, 2, 1, DR_HOST_DOWN, DOWN_MS);
	cr_log_info("netns: the partition was seen on both sides in %.2f s", since(t0));
	cr_assert(up_in(0, 1) && up_in(1, 0), "A and B still talk");
	cr_assert(cl_log_has(&C, 0, "silent"), "%s", cl_log_tail(&C, 0));
	cr_assert(cl_log_has(&C, 2, "silent"), "%s", cl_log_tail(&C, 2));

	/* Each side carries on alone: A and B own C's name now and nobody
	 * serves it there; C owns everything, and serves its own name. */
	call_ok(0, name_b, 1, "partitioned");
	cr_assert_neq(cl_owner(&C, 0, name_c), 2);
	call_fails(0, name_c, -ENOENT, "partitioned");
	cr_assert_eq(cl_owner(&C, 2, name_b), 2);
	call_ok(2, name_c, 2, "partitioned");
	call_fails(2, name_b, -ENOENT, "partitioned");

	/* Both sides start the same workers: A and B's on their owners
	 * there, C's all on C, which owns everything in its view. */
	for (int k = 0; k < NSTART; k++) {
		char host[DR_HOST_MAX + 1];
		int created, owner;

		snprintf(pnames[k], sizeof(pnames[k]), "pt.%d", k);
		owner = cl_owner(&C, 0, pnames[k]);
		start_ok(0, pnames[k], &created, host, "partitioned, side A-B");
		cr_assert(created && strcmp(host, C.h[owner].id) == 0 && owner != 2,
			  "%s: %d on %s", pnames[k], created, host);
		start_ok(2, pnames[k], &created, host, "partitioned, side C");
		cr_assert(created && strcmp(host, C.h[2].id) == 0, "%s: %d on %s", pnames[k],
			  created, host);
	}

	/* A partition that lasts: several down-afters, long enough for
	 * nanomsg's redial backoff and TCP's retransmission backoff to grow.
	 * Nobody comes back meanwhile. */
	cl_sleep_ms(HOLD_MS);
	cr_assert(up_in(0, 1) && up_in(1, 0), "A and B still talk");
	for (int i = 0; i < 2; i++)
		cr_assert_eq(cl_state_of(&C, i, 2), DR_HOST_DOWN, "%s", cl_log_tail(&C, i));
	cr_assert_eq(cl_state_of(&C, 2, 0), DR_HOST_DOWN, "%s", cl_log_tail(&C, 2));
	cr_assert_eq(cl_state_of(&C, 2, 1), DR_HOST_DOWN, "%s", cl_log_tail(&C, 2));

	/* Heal. */
	cr_assert_eq(ip("-n", ns[2], "link", "set", "eth0", "up", NULL), 0, "%s", ip_said());
	t0 = cl_now();
	cl_wait_converged(&C, "heal");
	cr_log_info("netns: the views converged %.2f s after the link came back", since(t0));
	for (int i = 0; i < NH; i++) {
		cr_assert_eq(cl_owner(&C, i, name_b), 1);
		cr_assert_eq(cl_owner(&C, i, name_c), 2);
	}
	call_ok(0, name_b, 1, "healed");
	call_ok(0, name_c, 2, "healed");
	call_ok(1, name_c, 2, "healed");
	call_ok(2, name_b, 1, "healed");

	/* The workers started on both sides: the instance off its owner is
	 * told to restart there (shouldrestart), finds the owner's, and
	 * stops. One each, on its owner, and it answers. */
	for (int k = 0; k < NSTART; k++) {
		int owner = cl_owner(&C, 0, pnames[k]), where = -1;

		while (instances(pnames[k], &where) != 1 || where != owner) {
			cr_assert_lt(since(t0), 20, "%s: still %d instances (one on %s, owner %s) 20 s "
				     "after the heal; restarts done %d %d %d, failed %d %d %d",
				     pnames[k], instances(pnames[k], &where), C.h[where].id,
				     C.h[owner].id, cnt->moved[0], cnt->moved[1], cnt->moved[2],
				     cnt->move_failed[0], cnt->move_failed[1], cnt->move_failed[2]);
			cl_sleep_ms(20);
		}
		call_ok(1, pnames[k], owner, "healed");
	}
	cr_log_info("netns: %d workers started on both sides: one instance each, on its owner, "
		    "%.2f s after the link came back", NSTART, since(t0));
	cr_log_info("netns: %.1f s in all", since(t_start));
}


/*
 * Random steps on the namespaces' network: a host cut off (its link down:
 * a real partition, both sides carry on) or healed, a bridge killed and
 * started again (a crash: a new incarnation), workers started from a
 * random host (while cut off, on both sides). After every step, once each
 * side's views agree: when nobody is cut off, every worker started so far
 * has one instance, on its owner, and answers a call from a random host.
 * DISTREG_NETNS_STEPS (default 8: the CI's short run; the soak suite runs
 * 40) and DISTREG_NETNS_SEED (default: the pid; printed) pick the run.
 */
#define CH_MAX 256
static char chnames[CH_MAX][16];

static uint64_t ch_seed;

static unsigned ch_rnd(unsigned n)
{
	ch_seed ^= ch_seed << 13;
	ch_seed ^= ch_seed >> 7;
	ch_seed ^= ch_seed << 17;
	return (unsigned)(ch_seed % n);
}

/* Calls that failed while the views settled (a host taken for down and
 * back under load, a restarted bridge's peers still reconnecting), and
 * their last status. */
static int ch_retried, ch_last_err;

/*
 * Every worker: one instance, on its owner, answering a call from a random
 * host (nobody cut off) within 20 s of the views agreeing: a call that
 * fails while the views move again is made again, as the chaos test's
 * settle() does.
 */
static void all_placed(int n, const char *when, int step, unsigned long long seed0)
{
	double t0 = cl_now();

	for (int k = 0; k < n; k++) {
		int owner, where = -1, copies, rc, from;
		char reply[256], want[4400];
		size_t len;

		for (;;) {
			if (!cl_converged(&C))
				goto wait;
			owner = cl_owner(&C, 0, chnames[k]);
			copies = instances(chnames[k], &where);
			if (copies != 1 || where != owner)
				goto wait;
			from = (int)ch_rnd(NH);
			len = sizeof(reply) - 1;
			rc = cl_call(&C, from, chnames[k], "ping", 4, reply, &len, 5000);
			if (rc == 0) {
				reply[len] = 0;
				snprintf(want, sizeof(want), "%s|%s|ping", C.h[owner].id, chnames[k]);
				cr_assert_str_eq(reply, want, "step %d (%s), seed %llu: call %s from %s",
						 step, when, seed0, chnames[k], C.h[from].id);
				break;
			}
			ch_retried++;
			ch_last_err = rc;
		wait:
			cr_assert_lt(since(t0), 20, "step %d (%s), DISTREG_NETNS_SEED=%llu: %s: %d "
				     "instances (one on %s), owner %s, views %s, 20 s on; the last "
				     "call: %s\n%s", step, when, seed0, chnames[k],
				     instances(chnames[k], &where), where >= 0 ? C.h[where].id : "-",
				     C.h[cl_owner(&C, 0, chnames[k])].id,
				     cl_converged(&C) ? "agree" : "differ", dr_strerror(ch_last_err),
				     cl_log_tail(&C, 0));
			cl_sleep_ms(20);
		}
	}
}

/* dr_start(name) from host i, made again (within 20 s) while it fails
 * with a status the header gives for hosts that are away: a peer taken
 * for down and back after a heal (seen here: see the note in all_placed). */
static bool ch_start(int i, const char *name, int *created, char *host, int step,
		     unsigned long long seed0)
{
	bool again = false;

	double t0 = cl_now();
	char reply[128];
	size_t len;
	int rc;

	for (;;) {
		len = sizeof(reply) - 1;
		rc = cl_call_or_start(&C, i, name, "echo", NULL, 0, reply, &len, 5000);
		if (rc != -EHOSTUNREACH && rc != -ETIMEDOUT && rc != -ENOTCONN)
			break;
		ch_retried++;
		ch_last_err = rc;
		again = true;
		cr_assert_lt(since(t0), 20, "step %d, seed %llu: start %s from %s: %s for 20 s\n%s",
			     step, seed0, name, C.h[i].id, dr_strerror(rc), cl_log_tail(&C, i));
		cl_sleep_ms(50);
	}
	cr_assert_eq(rc, 0, "step %d, seed %llu: start %s from %s: %s\n%s", step, seed0, name,
		     C.h[i].id, dr_strerror(rc), cl_log_tail(&C, i));
	reply[len] = 0;
	cr_assert(len > 2 && reply[1] == '|', "start %s: %s", name, reply);
	*created = reply[0] == '1';
	cr_assert_lt(len - 2, DR_HOST_MAX + 1);
	memcpy(host, reply + 2, len - 1);
	return again; /* a start that failed may have run: not created now */
}

Test(netns, random_partitions_crashes_and_starts_converge, .init = setup, .fini = teardown,
     .timeout = 900)
{
	const char *env = getenv("DISTREG_NETNS_STEPS"), *senv = getenv("DISTREG_NETNS_SEED");
	int steps = env ? atoi(env) : 8, cut = -1, n = 0, dups = 0, counts[4] = { 0 };
	unsigned long long seed0;
	struct counters *cnt = counters_new();
	static const char *const what[] = { "cut", "heal", "crash", "start" };

	make_network();
	net_hosts("nc");
	ch_seed = senv ? strtoull(senv, NULL, 10) : (uint64_t)getpid() * 2654435761u + 1;
	seed0 = (unsigned long long)ch_seed;
	fprintf(stderr, "netns chaos: %d steps, DISTREG_NETNS_SEED=%llu\n", steps, seed0);
	cl_start_all(&C);
	cl_wait_converged(&C, "start");
	for (int i = 0; i < NH; i++)
		factories[i] = worker_spawn(&C, i, NULL, 0, cnt, "echo");

	for (int step = 1; step <= steps; step++) {
		int kind = (int)ch_rnd(4), i = -1;

		if (kind == 0 && cut >= 0)
			kind = 1;
		else if (kind == 1 && cut < 0)
			kind = 0;
		switch (kind) {
		case 0: /* cut host i off; each side sees the other down */
			i = cut = (int)ch_rnd(NH);
			cr_assert_eq(ip("-n", ns[i], "link", "set", "eth0", "down", NULL), 0, "%s",
				     ip_said());
			for (int j = 0; j < NH; j++)
				if (j != i) {
					cl_wait_state(&C, j, i, DR_HOST_DOWN, DOWN_MS);
					cl_wait_state(&C, i, j, DR_HOST_DOWN, DOWN_MS);
				}
			break;
		case 1: /* heal */
			i = cut;
			cr_assert_eq(ip("-n", ns[i], "link", "set", "eth0", "up", NULL), 0, "%s",
				     ip_said());
			cut = -1;
			cl_wait_converged(&C, "heal");
			break;
		case 2: /* a bridge crashes and starts again */
			i = (int)ch_rnd(NH);
			cl_stop(&C, i, SIGKILL);
			cl_sleep_ms((int)ch_rnd(1500));
			cl_start(&C, i);
			if (cut < 0) {
				cl_wait_converged(&C, "crash");
			} else {
				/* Its side's views agree again: wait for it to
				 * run (its view lists itself: dr_hosts fails
				 * while no bridge runs) and to hold the hosts
				 * of its side. */
				double t0 = cl_now();

				for (int j = 0; j < NH; j++)
					while ((j == i || (i == cut) == (j == cut)) &&
					       !up_in(i, j)) {
						cr_assert_lt(since(t0), DOWN_MS / 1000.0,
							     "step %d, seed %llu: restarted %s "
							     "never saw %s up (%d); %s cut off\n"
							     "%s log:\n%s\n%s log:\n%s", step,
							     seed0, C.h[i].id, C.h[j].id,
							     cl_state_of(&C, i, j), C.h[cut].id,
							     C.h[i].id, cl_log_tail(&C, i),
							     C.h[j].id, cl_log_tail(&C, j));
						cl_sleep_ms(10);
					}
			}
			break;
		default: /* 4 workers from a random host; while a host is cut
			  * off, the same 4 on the other side too: duplicates,
			  * which the heal must resolve */
			i = (int)ch_rnd(NH);
			for (int k = 0; k < 4 && n < CH_MAX; k++, n++) {
				char host[DR_HOST_MAX + 1];
				int created, other = cut < 0 ? -1 : i == cut ? (cut + 1) % NH : cut;
				bool again;

				snprintf(chnames[n], sizeof(chnames[n]), "nc.%d", n);
				again = ch_start(i, chnames[n], &created, host, step, seed0);
				cr_assert(created || again, "%s: a new name was not created",
					  chnames[n]);
				if (other < 0)
					continue;
				again = ch_start(other, chnames[n], &created, host, step, seed0);
				cr_assert(created || again, "%s: not created on the other side",
					  chnames[n]);
				dups++;
			}
			break;
		}
		counts[kind]++;
		cr_log_info("netns chaos: step %d: %s %s (%s cut off, %d workers)", step, what[kind],
			    C.h[i].id, cut >= 0 ? C.h[cut].id : "none", n);
		if (cut < 0)
			all_placed(n, what[kind], step, seed0);
	}
	if (cut >= 0) {
		cr_assert_eq(ip("-n", ns[cut], "link", "set", "eth0", "up", NULL), 0, "%s",
			     ip_said());
		cl_wait_converged(&C, "final heal");
	}
	all_placed(n, "the end", steps + 1, seed0);
	cr_log_info("netns chaos: %d cuts, %d heals, %d crashes, %d start rounds; %d workers (%d "
		    "started on both sides of a cut), one instance each on its owner, answering; "
		    "%d calls and starts made again while the views settled (the last: %s) "
		    "(seed %llu)",
		    counts[0], counts[1], counts[2], counts[3], n, dups, ch_retried,
		    ch_retried ? dr_strerror(ch_last_err) : "none", seed0);
}

/*
 * bench_cluster.c - calls between hosts, side by side in one run on this
 * machine: two "hosts" (two segments, two bridges on loopback TCP), and
 *
 *   nanomsg tcp       a cooked REQ/REP round trip between two processes,
 *                     the floor a remote call is measured against;
 *   nanomsg raw D     raw (AF_SP_RAW) REQ/REP with D requests in flight,
 *                     one per message: what a bridge without batching does;
 *   local call        dr_call to a worker on the same host;
 *   remote call       dr_call_global from host A to a worker on host B:
 *                     caller -> bridge A -> (tcp) -> bridge B -> worker, and
 *                     back;
 *   remote call, busy-poll 0
 *                     the same between two other hosts whose bridges
 *                     sleep at once when no message waits (--busy-poll-us
 *                     0): what the bridges' busy polling buys, and at what
 *                     CPU (the last two columns: the CPU time per call of
 *                     the two bridges, and of the caller and the worker
 *                     together; the bridges' CPU over 1 s idle is printed
 *                     after);
 *   remote async D    dr_call_async_global with D calls in flight;
 *   reaper            a process killed with SIGKILL on a host with a bridge:
 *                     the time until dr_whereis() stops finding its name.
 *   global workers    a third host joins; a factory of kind "echo" on each:
 *                     dr_start of N workers (10 k, then 100 k; 2 k with
 *                     --short) from one host, then from all
 *                     three at once (starts/s); then a fourth host joins and
 *                     the workers it now owns move to it (shouldrestart):
 *                     the fraction moved beside the optimum (1/4), and the
 *                     time from the join being seen to the last worker
 *                     placed (served on its owner and nowhere else).
 *
 *   bench_cluster [--seconds S] [--short] [--global N] [--keep-logs] [--bridge PATH]
 *
 * --global N runs only the global workers, with N of them; --keep-logs keeps
 * the bridges' logs (/tmp/bench-cluster-PID-HOST.log) instead of removing
 * them.
 *
 * The bridge is --bridge, or $DISTREG_BRIDGE, or the one built next to this
 * program (../bridge/distreg-bridge from its directory).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include <distreg.h>

#include "proc.h"
#include "hosts.h"

#define MAXLAT (1u << 22)
#define MSG 16

static double seconds = 1.0;

static struct host A, B;
/* Two more hosts, a cluster of their own, with --busy-poll-us 0. */
static struct host E, F;

const char *bench_prog = "bench_cluster";

struct result {
	char name[32];
	double p50_us, p99_us, calls_s;
	double cpu_us;                 /* the bridges' CPU per call; < 0 not measured */
	double ends_cpu_us;            /* the caller's and the worker's */
};

static struct result results[16];
static int nresults;

/* The CPU time of the bridges of the two hosts so far (ns). */
static uint64_t bridges_cpu(const struct host *h1, const struct host *h2)
{
	return cpu_ns_of(h1->bridge) + cpu_ns_of(h2->bridge);
}

static struct result *report(const char *name, uint64_t *lat, size_t n, uint64_t elapsed)
{
	struct result *r = &results[nresults++];

	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->p50_us = n ? (double)lat[n / 2] / 1e3 : 0;
	r->p99_us = n ? (double)lat[n * 99 / 100] / 1e3 : 0;
	r->calls_s = (double)n / ((double)elapsed / 1e9);
	r->cpu_us = -1;
	printf("%-24s %10.1f %10.1f %12.0f", r->name, r->p50_us, r->p99_us, r->calls_s);
	return r;
}

/* End r's line, with the CPU per call of the bridges (cpu_ns) and of the
 * caller and the worker (ends_ns), where measured. */
static struct result *report_end(struct result *r, uint64_t cpu_ns, uint64_t ends_ns,
				 double seconds_run)
{
	if (cpu_ns) {
		double calls = r->calls_s * seconds_run;

		r->cpu_us = (double)cpu_ns / 1e3 / calls;
		r->ends_cpu_us = (double)ends_ns / 1e3 / calls;
		printf(" %14.1f %14.1f", r->cpu_us, r->ends_cpu_us);
	}
	printf("\n");
	fflush(stdout);
	return r;
}

/* A global name that host on owns in from's view, prefix.N, into name
 * (32 bytes). */
static const char *name_on(const struct host *from, const struct host *on, const char *prefix,
			   char *name)
{
	char owner[DR_HOST_MAX + 1];

	for (int k = 0;; k++) {
		snprintf(name, 32, "%s.%d", prefix, k);
		if (dr_owner(from->r, name, owner, sizeof(owner)) == 0 && strcmp(owner, on->id) == 0)
			return name;
	}
}

/* ---------------------------------------------------------------------- */
/* Workers */

/* Calls one after the other; each must return expect (0, or -ENOENT for a
 * name served nowhere). */
/* The CPU time of this process (the caller) and of worker so far (ns). */
static uint64_t ends_cpu(pid_t worker)
{
	return cpu_ns_of(getpid()) + cpu_ns_of(worker);
}

/* Calls from r to name, which worker serves; with h1 and h2 (the caller's
 * host and the worker's), the CPU they cost. */
static struct result *bench_sync(const char *label, dr_registry *r, const char *name, bool global,
				 int expect, uint64_t *lat, const struct host *h1,
				 const struct host *h2, pid_t worker)
{
	uint64_t elapsed, cpu = h1 ? bridges_cpu(h1, h2) : 0, ends = h1 ? ends_cpu(worker) : 0;
	size_t n;
	struct result *res;

	calls_sync(r, name, global, expect, MSG, seconds, lat, MAXLAT, &n, &elapsed);
	cpu = h1 ? bridges_cpu(h1, h2) - cpu : 0;
	ends = h1 ? ends_cpu(worker) - ends : 0;
	res = report(label, lat, n, elapsed);
	return report_end(res, cpu, ends, (double)elapsed / 1e9);
}

static struct result *bench_async(dr_registry *r, const char *name, unsigned depth, uint64_t *lat,
				  pid_t worker)
{
	char label[32];
	size_t n;
	uint64_t elapsed, cpu = bridges_cpu(&A, &B), ends = ends_cpu(worker);
	struct result *res;

	snprintf(label, sizeof(label), "remote async %u", depth);
	calls_async(r, name, depth, MSG, seconds, lat, MAXLAT, &n, &elapsed);
	cpu = bridges_cpu(&A, &B) - cpu;
	ends = ends_cpu(worker) - ends;
	res = report(label, lat, n, elapsed);
	return report_end(res, cpu, ends, (double)elapsed / 1e9);
}

/* ---------------------------------------------------------------------- */
/* nanomsg alone */

static char nn_url[64];

static struct result *bench_nn_cooked(uint64_t *lat)
{
	size_t n;
	uint64_t elapsed;

	nn_cooked_run(nn_url, MSG, seconds, lat, MAXLAT, &n, &elapsed);
	return report_end(report("nanomsg tcp req/rep", lat, n, elapsed), 0, 0, 0);
}

static struct result *bench_nn_raw(unsigned depth, uint64_t *lat)
{
	char label[32];
	size_t n;
	uint64_t elapsed;

	snprintf(label, sizeof(label), "nanomsg raw %u", depth);
	nn_raw_run(nn_url, MSG, depth, seconds, lat, MAXLAT, &n, &elapsed);
	return report_end(report(label, lat, n, elapsed), 0, 0, 0);
}

/* ---------------------------------------------------------------------- */
/* The reaper */

static const char *victim_seg;

static void victim(void *arg)
{
	struct dr_options o = { .segment = victim_seg };
	dr_registry *r;

	if (dr_open(&o, &r) || dr_register(r, (const char *)arg, "v", 1))
		_exit(1);
	for (;;)
		pause();
}

/* The CPU that h1's and h2's bridges use in 1 s with no calls (heartbeats
 * only), each. */
static void idle_cpu(const struct host *h1, const struct host *h2, const char *busy_poll)
{
	uint64_t a = cpu_ns_of(h1->bridge), b = cpu_ns_of(h2->bridge);

	usleep(1000000);
	printf("idle bridges (busy-poll-us: %s): %.2f ms and %.2f ms of CPU in 1 s\n", busy_poll,
	       (double)(cpu_ns_of(h1->bridge) - a) / 1e6, (double)(cpu_ns_of(h2->bridge) - b) / 1e6);
}

static void bench_reaper(uint64_t *lat, size_t rounds)
{
	size_t n = 0;

	victim_seg = A.seg;
	for (size_t i = 0; i < rounds; i++) {
		char name[32];
		pid_t p;
		uint64_t t0;

		snprintf(name, sizeof(name), "victim.%zu", i);
		p = fork_child(victim, name);
		while (dr_whereis(A.r, name, NULL) != 0)
			usleep(100);
		usleep(60000); /* the bridge's scan (every 25 ms) has seen it */
		t0 = now_ns();
		kill(p, SIGKILL);
		while (dr_whereis(A.r, name, NULL) == 0) {
			if (now_ns() - t0 > 5000000000ull)
				die("reaper", "a killed process's name still there after 5 s");
			usleep(100);
		}
		lat[n++] = now_ns() - t0;
		waitpid(p, NULL, 0);
	}
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	printf("\nreaper: a SIGKILLed process's name gone after p50 %.2f ms, max %.2f ms (%zu kills)\n",
	       (double)lat[n / 2] / 1e6, (double)lat[n - 1] / 1e6, n);
	results[nresults].p50_us = (double)lat[n - 1] / 1e3; /* the max, for the target */
	snprintf(results[nresults++].name, sizeof(results[0].name), "reaper max");
}

/* ---------------------------------------------------------------------- */
/* Global workers */

static struct host C, D;

/* Asynchronous calls to the n workers in a random order, JOIN_DEPTH in
 * flight, from a host that stays, while a host joins: how many fail. */
#define JOIN_DEPTH 64

struct joincalls {
	const struct host *h;
	size_t n;
	volatile int stop;             /* set by the parent */
	volatile int done;             /* set by the child: counts final */
	long calls, failed;
	int last_err;
};

static void join_caller(void *arg)
{
	struct joincalls *jc = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	dr_mailbox *mb = mailbox_on(jc->h->seg, "join caller");
	int inflight = 0, rc;

	while (!jc->stop || inflight) {
		struct dr_msg m;
		char name[32];
		uint64_t id;

		while (!jc->stop && inflight < JOIN_DEPTH) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			gw_name(name, sizeof(name), (size_t)(rng % jc->n));
			jc->calls++;
			rc = dr_call_async_global(mb, name, "ping", 4, 10000, &id);
			if (rc) {
				jc->failed++;
				jc->last_err = rc;
			} else {
				inflight++;
			}
		}
		if (!inflight)
			break;
		if (dr_recv(mb, &m, 15000) != 0)
			die("join caller", "no answer within 15 s");
		if (m.kind != DR_MSG_REPLY)
			continue;
		inflight--;
		if (m.status) {
			jc->failed++;
			jc->last_err = m.status;
		}
	}
	jc->done = 1;
	for (;;)
		pause();
}

static void bench_global(size_t n, double settle_s)
{
	static int round;

	struct host *hs[4] = { &A, &B, &C, &D }, *one[1] = { &A };
	int *before = malloc(n * sizeof(int)), *after = malloc(n * sizeof(int));
	unsigned char *served = malloc(4 * n);
	pid_t fp[4], caller;
	struct joincalls *jc;
	size_t moved = 0, left;
	uint64_t t_join, t_placed = 0;
	double one_s, all_s;
	char name[32];

	if (!before || !after || !served)
		die("malloc", strerror(ENOMEM));
	snprintf(gw_prefix, sizeof(gw_prefix), "gw%d.", round++);
	host_init(&C, "cluster", "C");
	bridge_start(&C, &A, "100", "2000");
	hosts_wait(hs, 3, 3, 15);
	for (int i = 0; i < 3; i++)
		fp[i] = fork_child(factory, hs[i]);
	usleep(200000);

	one_s = starts(one, 1, 0, n / 2, 1);
	all_s = starts(hs, 3, n / 2, n, 1);
	for (size_t k = 0; k < n; k++) {
		gw_name(name, sizeof(name), k);
		before[k] = owner_index(A.r, hs, 3, name);
	}
	left = misplaced(hs, 3, before, n, served);
	if (left)
		die("starts", "workers not on their owner before the join");

	/* A fourth host joins, with calls all along from A. */
	jc = mmap(NULL, sizeof(*jc), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (jc == MAP_FAILED)
		die("mmap", strerror(errno));
	*jc = (struct joincalls){ .h = &A, .n = n };
	caller = fork_child(join_caller, jc);
	host_init(&D, "cluster", "D");
	fp[3] = fork_child(factory, &D);
	usleep(100000);
	bridge_start(&D, &A, "100", "2000");
	hosts_wait(hs, 4, 4, 60);
	t_join = now_ns();
	for (size_t k = 0; k < n; k++) {
		gw_name(name, sizeof(name), k);
		after[k] = owner_index(A.r, hs, 4, name);
		moved += after[k] != before[k];
	}
	do {
		left = misplaced(hs, 4, after, n, served);
		if (left == 0) {
			t_placed = now_ns();
			break;
		}
		usleep(5000);
	} while (now_ns() - t_join < (uint64_t)(settle_s * 1e9));
	usleep(100000); /* and a little after */
	jc->stop = 1;
	while (!jc->done)
		usleep(1000);
	stop_child(caller);

	printf("\nglobal workers (dr_start through a factory per host, %zu workers):\n", n);
	printf("  starts from one host:    %8.0f /s\n", one_s);
	printf("  starts from three hosts: %8.0f /s\n", all_s);
	printf("  a 4th host joins: %zu of %zu workers changed owner (%.1f%%, optimum 25%%)\n",
	       moved, n, 100.0 * (double)moved / (double)n);
	if (t_placed)
		printf("  every worker placed %.0f ms after all hosts saw the join\n",
		       (double)(t_placed - t_join) / 1e6);
	else
		printf("  %zu workers still misplaced %.0f s after the join\n", left, settle_s);
	printf("  calls from A during the join (%d asynchronous in flight): %ld, %ld failed%s%s\n",
	       JOIN_DEPTH, jc->calls, jc->failed, jc->failed ? ", the last: " : "",
	       jc->failed ? dr_strerror(jc->last_err) : "");
	results[nresults].p50_us = (double)jc->failed;
	results[nresults].calls_s = (double)jc->calls;
	snprintf(results[nresults++].name, sizeof(results[0].name), "join calls %zu", n);
	munmap(jc, sizeof(*jc));
	results[nresults].p50_us = t_placed ? (double)(t_placed - t_join) / 1e3 : -1;
	snprintf(results[nresults++].name, sizeof(results[0].name), "rebalance %zu", n);
	for (int i = 0; i < 4; i++)
		stop_child(fp[i]);
	host_fini(&D, true);
	host_fini(&C, true);
	free(served);
	free(after);
	free(before);
}

static const struct result *find(const char *name)
{
	for (int i = 0; i < nresults; i++)
		if (strcmp(results[i].name, name) == 0)
			return &results[i];
	die("no result", name);
	return NULL;
}

/* The target line for the calls made during the join of n workers. */
static const struct result *join_calls_target(size_t n)
{
	char label[32];
	const struct result *jr;

	snprintf(label, sizeof(label), "join calls %zu", n);
	jr = find(label);
	printf("  %s  no call lost while workers move: %.0f of %.0f failed\n",
	       jr->p50_us == 0 ? "PASS" : "MISS", jr->p50_us, jr->calls_s);
	return jr;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "short", no_argument, NULL, 'S' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "global", required_argument, NULL, 'g' },
		{ "keep-logs", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t *lat = malloc(MAXLAT * sizeof(*lat));
	struct wargs wl, wg;
	pid_t local_w, remote_w, srv;
	const char *name;
	char echo[32], nobody[32];
	const struct result *nn, *remote, *sleeping, *raw, *async, *rebalance;
	struct wargs wef;
	pid_t remote_ef;
	char echo_ef[32];
	size_t reaps = 20, workers = 10000, only_global = 0;
	bool short_run = false;
	double settle = 60;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			seconds = atof(optarg);
			if (!(seconds > 0 && seconds <= 60))
				goto usage;
			break;
		case 'S':
			seconds = 0.3;
			reaps = 5;
			workers = 2000;
			short_run = true;
			settle = 20;
			break;
		case 'b':
			bridge_bin = optarg;
			break;
		case 'g': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (end == optarg || *end || v < 4 || v > 1000000)
				goto usage;
			only_global = v;
			break;
		}
		case 'k':
			keep_logs = true;
			break;
		case 'h':
			printf("usage: bench_cluster [--seconds S] [--short] [--global N] [--keep-logs] "
			       "[--bridge PATH]\n");
			return 0;
		default:
		usage:
			fprintf(stderr, "usage: bench_cluster [--seconds S (0-60]] [--short] "
					"[--global N (4-1000000)] [--keep-logs] [--bridge PATH]\n");
			return 2;
		}
	}
	bridge_locate();
	if (!lat)
		die("malloc", strerror(ENOMEM));

	host_init(&A, "cluster", "A");
	host_init(&B, "cluster", "B");
	bridge_start(&A, &B, "100", "2000");
	bridge_start(&B, &A, "100", "2000");
	hosts_wait((struct host *[]){ &A, &B }, 2, 2, 15);

	if (only_global) {
		const struct result *jr, *rb;
		char label[32];

		printf("bench_cluster --global %zu: the global workers only\n", only_global);
		bench_global(only_global, settle);
		snprintf(label, sizeof(label), "rebalance %zu", only_global);
		rb = find(label);
		printf("\n");
		jr = join_calls_target(only_global);
		host_fini(&A, true);
		host_fini(&B, true);
		free(lat);
		return jr->p50_us == 0 && rb->p50_us >= 0 ? 0 : 1;
	}
	host_init(&E, "cluster", "E");
	host_init(&F, "cluster", "F");
	bridge_busy_poll_us = "0";
	bridge_start(&E, &F, "100", "2000");
	bridge_start(&F, &E, "100", "2000");
	bridge_busy_poll_us = NULL;
	hosts_wait((struct host *[]){ &E, &F }, 2, 2, 15);
	printf("bench_cluster: two hosts on loopback tcp, a bridge each; %.1f s per row, "
	       "%d-byte messages\n\n", seconds, MSG);
	printf("%-24s %10s %10s %12s %14s %14s\n", "system", "p50 us", "p99 us", "calls/s",
	       "bridges CPU us", "ends CPU us");

	snprintf(nn_url, sizeof(nn_url), "tcp://127.0.0.1:%d", free_port());
	srv = fork_child(nn_cooked_server, nn_url);
	usleep(100000);
	nn = bench_nn_cooked(lat);
	stop_child(srv);
	snprintf(nn_url, sizeof(nn_url), "tcp://127.0.0.1:%d", free_port());
	srv = fork_child(nn_raw_server, nn_url);
	usleep(100000);
	raw = bench_nn_raw(256, lat);
	stop_child(srv);

	wl = (struct wargs){ .seg = A.seg, .name = "local.echo", .global = false };
	local_w = fork_child(echo_worker, &wl);
	while (dr_whereis(A.r, "local.echo", NULL) != 0)
		usleep(1000);
	bench_sync("local call", A.r, "local.echo", false, 0, lat, NULL, NULL, 0);
	stop_child(local_w);

	name = name_on(&A, &B, "echo", echo);
	wg = (struct wargs){ .seg = B.seg, .name = name, .global = true };
	remote_w = fork_child(echo_worker, &wg);
	while (dr_whereis_global(B.r, name, NULL, NULL, 0, 1000) != 0)
		usleep(1000);
	remote = bench_sync("remote call", A.r, name, true, 0, lat, &A, &B, remote_w);
	/* The same between E and F, whose bridges never busy-poll. */
	name_on(&E, &F, "echo", echo_ef);
	wef = (struct wargs){ .seg = F.seg, .name = echo_ef, .global = true };
	remote_ef = fork_child(echo_worker, &wef);
	while (dr_whereis_global(F.r, echo_ef, NULL, NULL, 0, 1000) != 0)
		usleep(1000);
	sleeping = bench_sync("remote call, busy-poll 0", E.r, echo_ef, true, 0, lat, &E, &F,
			      remote_ef);
	stop_child(remote_ef);
	/* The same owner, a name nobody serves: its -ENOENT takes the turns
	 * over the hosts that a call to a moving worker gets. */
	bench_sync("remote, served nowhere", A.r, name_on(&A, &B, "nobody", nobody), true, -ENOENT,
		   lat, &A, &B, remote_w);
	bench_async(A.r, name, 16, lat, remote_w);
	async = bench_async(A.r, name, 256, lat, remote_w);
	stop_child(remote_w);
	idle_cpu(&A, &B, "the bridge's default");
	idle_cpu(&E, &F, "0");
	host_fini(&E, true);
	host_fini(&F, true);

	bench_reaper(lat, reaps);
	bench_global(workers, settle);
	if (!short_run)
		bench_global(10 * workers, settle); /* and 100 k */

	printf("\ntargets:\n");
	printf("  %s  remote call p50 <= 1.5x nanomsg tcp req/rep p50: %.1f us vs %.1f us (x%.2f)\n",
	       remote->p50_us <= 1.5 * nn->p50_us ? "PASS" : "MISS", remote->p50_us, nn->p50_us,
	       remote->p50_us / nn->p50_us);
	printf("        (bridges that never busy-poll: %.1f us, x%.2f; the bridges' CPU per call "
	       "%.1f us against %.1f us)\n",
	       sleeping->p50_us, sleeping->p50_us / nn->p50_us, sleeping->cpu_us, remote->cpu_us);
	printf("  %s  remote throughput >= 100 k calls/s: %.0f k\n",
	       async->calls_s >= 1e5 ? "PASS" : "MISS", async->calls_s / 1e3);
	printf("  %s  remote throughput >= raw req/rep with as many in flight: %.0f k vs %.0f k "
	       "(x%.2f)\n",
	       async->calls_s >= raw->calls_s ? "PASS" : "MISS", async->calls_s / 1e3,
	       raw->calls_s / 1e3, async->calls_s / raw->calls_s);
	printf("  %s  the reaper removes a killed process's names within 100 ms: max %.1f ms\n",
	       find("reaper max")->p50_us <= 100000 ? "PASS" : "MISS",
	       find("reaper max")->p50_us / 1e3);
	{
		char label[32];

		snprintf(label, sizeof(label), "rebalance %zu", workers);
		rebalance = find(label);
	}
	if (rebalance->p50_us >= 0)
		printf("  %s  all %zu workers placed on their owner within 2 s of a join: %.0f ms\n",
		       rebalance->p50_us <= 2e6 ? "PASS" : "MISS", workers, rebalance->p50_us / 1e3);
	else
		printf("  MISS  all %zu workers placed on their owner within 2 s of a join: "
		       "not all placed after %.0f s\n", workers, settle);
	join_calls_target(workers);
	host_fini(&A, true);
	host_fini(&B, true);
	free(lat);
	return 0;
}

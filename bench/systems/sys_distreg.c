/*
 * sys_distreg.c - distreg's side of the cluster benchmark against other
 * systems (bench_systems): three hosts on this machine (three segments,
 * three bridges on loopback TCP, the bridges' default settings), a factory
 * of kind "echo" on each, and the scenarios of CONTRACT.md:
 *
 *   register  dr_start of N workers from one host and from all three, one
 *             start after the other and 256 in flight (dr_start_async);
 *   lookup    from a host that does not own the name: dr_owner (computed
 *             from the view in the segment) and dr_whereis_global (asks the
 *             owner's bridge);
 *   call      dr_call_global to a worker on another host, 1 in flight, and
 *             dr_call_async_global with 64 in flight; beside them, as system
 *             "nanomsg", a REQ/REP echo over TCP with no registry at all
 *             (cooked, and raw with 64 in flight): the floor of a
 *             hand-made registry over nanomsg;
 *   failure   SIGKILL of a worker's process: until neither other host finds
 *             it; SIGKILL of a whole host (bridge and factory): until the
 *             others' views drop it, and until each of its workers runs
 *             again on its new owner (restarted by dr_start from a
 *             surviving host: get-or-create); SIGSTOP of a host's bridge
 *             (a hung host, its connections open): until the others' views
 *             drop it;
 *   join      a 4th host joins with N workers running: the fraction that
 *             changed owner, the time to the last one placed, and how many
 *             are misplaced 10 s (and, in the full run, 60 s) after.
 *
 *   sys_distreg [--short] [--names N] [--bridge PATH]
 *
 * Output: CONTRACT.md's lines on stdout, progress on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <distreg.h>

#include "../proc.h"
#include "../hosts.h"

#ifndef DISTREG_VERSION
#define DISTREG_VERSION "unknown"
#endif

#define MSG 16
#define DEPTH 64
#define MAXLAT (1u << 21)

const char *bench_prog = "sys_distreg";

static struct host A, B, C, D;
static struct host *three[3] = { &A, &B, &C }, *four[4] = { &A, &B, &C, &D };
static pid_t factories[4];
static size_t names = 10000;
static bool short_run;
static double seconds = 2.0;
static uint64_t *lat;

static void row(const char *sys, const char *config, const char *scenario, const char *metric,
		double value, const char *unit)
{
	printf("%s,%s,%s,%s,%.6g,%s\n", sys, config, scenario, metric, value, unit);
	fflush(stdout);
}

static void progress(const char *what)
{
	fprintf(stderr, "sys_distreg: %s\n", what);
}

/* p50, p99 and the rate of n latencies taken in elapsed_ns. */
static void latency_rows(const char *sys, const char *config, const char *scenario,
			 const char *rate, size_t n, uint64_t elapsed_ns)
{
	if (!n)
		die(config, "no sample");
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	row(sys, config, scenario, "p50_us", (double)lat[n / 2] / 1e3, "us");
	row(sys, config, scenario, "p99_us", (double)lat[n * 99 / 100] / 1e3, "us");
	row(sys, config, scenario, rate, (double)n / ((double)elapsed_ns / 1e9), "1/s");
}

/* A global name that host o owns (in A's view): prefix.N */
static const char *name_owned_by(const struct host *o, const char *prefix, int from, char *name)
{
	char owner[DR_HOST_MAX + 1];

	for (int k = from;; k++) {
		snprintf(name, 32, "%s.%d", prefix, k);
		if (dr_owner(A.r, name, owner, sizeof(owner)) == 0 && strcmp(owner, o->id) == 0)
			return name;
	}
}

/* ---------------------------------------------------------------------- */

static void scenario_register(void)
{
	static const struct {
		const char *config;
		int hosts;
		unsigned depth;
	} cfg[] = {
		{ "dr_start from 1 host", 1, 1 },
		{ "dr_start from 3 hosts", 3, 1 },
		{ "dr_start_async 256 in flight from 1 host", 1, 256 },
		{ "dr_start_async 256 in flight from 3 hosts", 3, 256 },
	};

	for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++) {
		double rate;

		progress(cfg[i].config);
		snprintf(gw_prefix, sizeof(gw_prefix), "r%zu.", i);
		rate = starts(three, cfg[i].hosts, 0, names, cfg[i].depth);
		row("distreg", cfg[i].config, "register", "names_per_s", rate, "names/s");
	}
}

static void scenario_lookup(void)
{
	size_t ops = short_run ? 20000 : 200000, n = 0;
	char name[32], host[DR_HOST_MAX + 1];
	struct wargs w;
	uint64_t t0;
	pid_t wp;
	int rc;

	/* dr_owner of names that B owns, from A: a computation on A's view. */
	progress("lookup: dr_owner");
	name_owned_by(&B, "look", 0, name);
	t0 = now_ns();
	for (size_t i = 0; i < ops && n < MAXLAT; i++) {
		uint64_t a = now_ns();

		rc = dr_owner(A.r, name, host, sizeof(host));
		lat[n++] = now_ns() - a;
		if (rc || strcmp(host, "B") != 0)
			die("dr_owner", rc ? dr_strerror(rc) : "not B");
	}
	latency_rows("distreg", "dr_owner on a non-owner (no round trip)", "lookup", "ops_per_s",
		     n, now_ns() - t0);

	/* dr_whereis_global from A of a worker that B serves: A's bridge
	 * asks B's. */
	progress("lookup: dr_whereis_global");
	w = (struct wargs){ .seg = B.seg, .name = name, .global = true };
	wp = fork_child(echo_worker, &w);
	while (dr_whereis_global(B.r, name, NULL, NULL, 0, 1000) != 0)
		usleep(1000);
	n = 0;
	ops = short_run ? 2000 : 20000;
	for (int i = 0; i < 20; i++) /* warm */
		dr_whereis_global(A.r, name, NULL, NULL, 0, 5000);
	t0 = now_ns();
	for (size_t i = 0; i < ops && n < MAXLAT; i++) {
		uint64_t a = now_ns();

		rc = dr_whereis_global(A.r, name, NULL, host, sizeof(host), 5000);
		lat[n++] = now_ns() - a;
		if (rc)
			die("dr_whereis_global", dr_strerror(rc));
	}
	latency_rows("distreg", "dr_whereis_global on a non-owner (asks the owner)", "lookup",
		     "ops_per_s", n, now_ns() - t0);
	stop_child(wp);
}

static void scenario_call(void)
{
	char name[32], url[64];
	struct wargs w;
	uint64_t elapsed;
	size_t n;
	pid_t p;

	progress("call: distreg");
	name_owned_by(&B, "echo", 0, name);
	w = (struct wargs){ .seg = B.seg, .name = name, .global = true };
	p = fork_child(echo_worker, &w);
	while (dr_whereis_global(B.r, name, NULL, NULL, 0, 1000) != 0)
		usleep(1000);
	calls_sync(A.r, name, true, 0, MSG, seconds, lat, MAXLAT, &n, &elapsed);
	latency_rows("distreg", "dr_call_global 1 in flight", "call", "calls_per_s", n, elapsed);
	calls_async(A.r, name, DEPTH, MSG, seconds, lat, MAXLAT, &n, &elapsed);
	latency_rows("distreg", "dr_call_async_global 64 in flight", "call", "calls_per_s", n,
		     elapsed);
	stop_child(p);

	progress("call: nanomsg alone");
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", free_port());
	p = fork_child(nn_cooked_server, url);
	usleep(100000);
	nn_cooked_run(url, MSG, seconds, lat, MAXLAT, &n, &elapsed);
	latency_rows("nanomsg", "REQ/REP tcp 1 in flight (no registry)", "call", "calls_per_s", n,
		     elapsed);
	stop_child(p);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", free_port());
	p = fork_child(nn_raw_server, url);
	usleep(100000);
	nn_raw_run(url, MSG, DEPTH, seconds, lat, MAXLAT, &n, &elapsed);
	latency_rows("nanomsg", "raw REQ/REP tcp 64 in flight (no registry)", "call", "calls_per_s",
		     n, elapsed);
	stop_child(p);
}

/* ---------------------------------------------------------------------- */
/* Failure */

/* 0 when neither A nor C finds name (their bridges ask its owner, B). */
static bool found_from_others(const char *name)
{
	return dr_whereis_global(A.r, name, NULL, NULL, 0, 2000) == 0 ||
	       dr_whereis_global(C.r, name, NULL, NULL, 0, 2000) == 0;
}

static void failure_worker(void)
{
	int kills = short_run ? 3 : 7;
	size_t n = 0;

	progress("failure: SIGKILL of a worker's process");
	for (int i = 0; i < kills; i++) {
		char name[32];
		struct wargs w;
		uint64_t t0;
		pid_t p;

		name_owned_by(&B, "victim", i * 1000, name);
		w = (struct wargs){ .seg = B.seg, .name = name, .global = true };
		p = fork_child(echo_worker, &w);
		while (!found_from_others(name))
			usleep(1000);
		usleep(60000); /* B's bridge has seen the process */
		t0 = now_ns();
		kill(p, SIGKILL);
		while (found_from_others(name)) {
			if (now_ns() - t0 > 10000000000ull)
				die("failure", "a killed worker still found after 10 s");
			usleep(200);
		}
		lat[n++] = now_ns() - t0;
		waitpid(p, NULL, 0);
	}
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	row("distreg", "kill worker process (median of kills)", "failure", "gone_ms",
	    (double)lat[n / 2] / 1e6, "ms");
	printf("#note,distreg,failure: a killed worker's names are removed by its host's bridge "
	       "(the reaper); %d kills took %.1f to %.1f ms until neither other host found it; "
	       "distreg restarts a worker only when someone calls dr_start for it\n", kills,
	       (double)lat[0] / 1e6, (double)lat[n - 1] / 1e6);
}

/* Whether h's view has host id up or suspect: owning names. */
static bool still_owner(const struct host *h, const char *id)
{
	struct dr_host v[8];
	size_t n = 0;

	if (dr_hosts(h->r, v, 8, &n, NULL) < 0)
		return true;
	for (size_t i = 0; i < n && i < 8; i++)
		if (strcmp(v[i].id, id) == 0)
			return v[i].state == DR_HOST_UP || v[i].state == DR_HOST_SUSPECT;
	return false;
}

/* Kill host victim (its bridge and its factory) out of the hosts hs (nh,
 * with the workers of round gw_prefix, owners in owner[]); the others see
 * it gone, then every one of its workers is started again from hs[0]. */
static void failure_host(struct host **hs, int nh, int victim, const int *owner)
{
	size_t lost = 0;
	uint64_t t0, t_gone;
	struct host *rest[4];
	int nr = 0;
	char name[32], host[DR_HOST_MAX + 1];
	unsigned char *served = malloc((size_t)nh * names);
	int *after = malloc(names * sizeof(int));

	if (!served || !after)
		die("malloc", strerror(ENOMEM));
	for (int i = 0; i < nh; i++)
		if (i != victim)
			rest[nr++] = hs[i];
	for (size_t k = 0; k < names; k++)
		lost += owner[k] == victim;
	progress("failure: SIGKILL of a whole host");
	t0 = now_ns();
	kill(hs[victim]->bridge, SIGKILL);
	kill(factories[victim], SIGKILL);
	waitpid(hs[victim]->bridge, NULL, 0);
	waitpid(factories[victim], NULL, 0);
	hs[victim]->bridge = 0;
	factories[victim] = 0;
	/* Until no other host's view has it: before that a lookup or a call of
	 * one of its workers fails (-EHOSTUNREACH, -ETIMEDOUT); after, its
	 * workers have other owners, which do not serve them (-ENOENT). */
	for (bool up = true; up;) {
		up = false;
		for (int i = 0; i < nr; i++)
			up |= still_owner(rest[i], hs[victim]->id);
		if (now_ns() - t0 > 60000000000ull)
			die("failure", "the others still have the killed host after 60 s");
		usleep(1000);
	}
	t_gone = now_ns();
	for (size_t k = 0; k < names; k++) {
		gw_name(name, sizeof(name), k);
		int rc = owner[k] == victim ? dr_whereis_global(rest[nr - 1]->r, name, NULL, host,
							       sizeof(host), 5000)
					    : -ENOENT;

		if (rc != -ENOENT) {
			fprintf(stderr, "%s: %s on %s\n", name, dr_strerror(rc), host);
			die("failure", "a dead host's worker is still found after the view dropped it");
		}
	}
	/* Every worker again, 64 starts in flight from the first host:
	 * get-or-create, so only the lost ones are made. */
	starts(rest, 1, 0, names, DEPTH);
	for (size_t k = 0; k < names; k++) {
		gw_name(name, sizeof(name), k);
		after[k] = owner_index(rest[0]->r, rest, nr, name);
	}
	if (misplaced(rest, nr, after, names, served))
		die("failure", "workers not placed after the restarts");
	row("distreg", "kill host", "failure", "gone_ms", (double)(t_gone - t0) / 1e6, "ms");
	row("distreg", "kill host", "failure", "restarted_ms", (double)(now_ns() - t0) / 1e6, "ms");
	printf("#note,distreg,failure: kill host = SIGKILL of host %s's bridge and factory in "
	       "the %d-host cluster after the join; gone_ms until the other hosts' views drop it "
	       "(a lookup of its workers fails until then; none returns a dead worker); "
	       "restarted_ms until all %zu of its workers were started again on their new "
	       "owners by dr_start (64 in flight) from host %s\n",
	       hs[victim]->id, nh, lost, rest[0]->id);
	free(after);
	free(served);
}

/* SIGSTOP of host B's bridge: a host that hangs, or is cut off, and whose
 * connections stay open; until the other hosts' views drop it. Then it
 * goes on (SIGCONT) and comes back as a restarted peer would. */
static void failure_freeze(void)
{
	uint64_t t0;

	progress("failure: SIGSTOP of a host's bridge");
	t0 = now_ns();
	kill(B.bridge, SIGSTOP);
	while (still_owner(&A, B.id) || still_owner(&C, B.id)) {
		if (now_ns() - t0 > 60000000000ull)
			die("failure", "the others still have the stopped host after 60 s");
		usleep(1000);
	}
	row("distreg", "freeze host (SIGSTOP)", "failure", "gone_ms", (double)(now_ns() - t0) / 1e6,
	    "ms");
	kill(B.bridge, SIGCONT);
}

/* ---------------------------------------------------------------------- */
/* Join */

static void scenario_join(void)
{
	int *before = malloc(names * sizeof(int)), *after = malloc(names * sizeof(int));
	unsigned char *served = malloc(4 * names);
	size_t moved = 0, left = 0, at10 = 0;
	uint64_t t_join, t_placed = 0;
	char name[32], msg[96];
	double wait_s = short_run ? 10 : 60;

	if (!before || !after || !served)
		die("malloc", strerror(ENOMEM));
	progress("join: the workers");
	/* The registration rounds' workers go: a fresh set of N. */
	for (int i = 0; i < 3; i++) {
		stop_child(factories[i]);
		factories[i] = fork_child(factory, three[i]);
	}
	snprintf(gw_prefix, sizeof(gw_prefix), "j.");
	usleep(300000); /* the reapers have removed the dead factories' names */
	starts(three, 3, 0, names, DEPTH);
	for (size_t k = 0; k < names; k++) {
		gw_name(name, sizeof(name), k);
		before[k] = owner_index(A.r, three, 3, name);
	}
	if (misplaced(three, 3, before, names, served))
		die("join", "workers not on their owner before the join");

	progress("join: a 4th host");
	host_init(&D, "systems", "D");
	factories[3] = fork_child(factory, &D);
	usleep(100000);
	bridge_start(&D, &A, NULL, NULL);
	hosts_wait(four, 4, 4, 60);
	t_join = now_ns();
	for (size_t k = 0; k < names; k++) {
		gw_name(name, sizeof(name), k);
		after[k] = owner_index(A.r, four, 4, name);
		moved += after[k] != before[k];
	}
	for (;;) {
		uint64_t now = now_ns();

		left = misplaced(four, 4, after, names, served);
		if (left == 0 && !t_placed)
			t_placed = now;
		if (now - t_join >= 10000000000ull && !at10) {
			at10 = 1;
			row("distreg", "4th host joins", "join", "misplaced_10s", (double)left,
			    "workers");
		}
		if (now - t_join >= (uint64_t)(wait_s * 1e9))
			break;
		usleep(t_placed ? 500000 : 5000);
	}
	row("distreg", "4th host joins", "join", "moved_pct", 100.0 * (double)moved / (double)names,
	    "%");
	row("distreg", "4th host joins", "join", "optimum_pct", 25, "%");
	if (t_placed)
		row("distreg", "4th host joins", "join", "placed_ms",
		    (double)(t_placed - t_join) / 1e6, "ms");
	if (!short_run)
		row("distreg", "4th host joins", "join", "misplaced_60s", (double)left, "workers");
	snprintf(msg, sizeof(msg), "join: %zu of %zu workers changed owner", moved, names);
	progress(msg);

	failure_host(four, 4, 3, after);
	failure_freeze();
	free(served);
	free(after);
	free(before);
}

/* --only: the scenarios to run (all without it), for profiling one. */
#define SCENARIOS "register, lookup, call, failure, join"
static char only[128];

static bool wanted(const char *scenario)
{
	char list[sizeof(only) + 2], item[32];

	if (!only[0])
		return true;
	snprintf(list, sizeof(list), ",%s,", only);
	snprintf(item, sizeof(item), ",%s,", scenario);
	return strstr(list, item) != NULL;
}

/* Every item of arg a scenario's name. */
static bool only_parse(const char *arg)
{
	char buf[sizeof(only)], *save = NULL;

	if (strlen(arg) >= sizeof(only))
		return false;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char item[32];

		snprintf(item, sizeof(item), ",%s,", t);
		if (strlen(t) > 16 || !strstr(",register,lookup,call,failure,join,", item))
			return false;
	}
	snprintf(only, sizeof(only), "%s", arg);
	return only[0] != 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "short", no_argument, NULL, 'S' },
		{ "names", required_argument, NULL, 'n' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool names_given = false;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			short_run = true;
			seconds = 0.5;
			break;
		case 'n': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (end == optarg || *end || v < 10 || v > 1000000)
				goto usage;
			names = v;
			names_given = true;
			break;
		}
		case 'b':
			bridge_bin = optarg;
			break;
		case 'o':
			if (!only_parse(optarg))
				goto usage;
			break;
		case 'h':
			printf("usage: sys_distreg [--short] [--names N] [--bridge PATH] "
			       "[--only SCENARIO,...]\n");
			return 0;
		default:
		usage:
			fprintf(stderr, "usage: sys_distreg [--short] [--names N (10-1000000)] "
					"[--bridge PATH] [--only SCENARIO,... (of %s)]\n",
				SCENARIOS);
			return 2;
		}
	}
	if (short_run && !names_given)
		names = 1000;
	bridge_locate();
	lat = malloc(MAXLAT * sizeof(*lat));
	if (!lat)
		die("malloc", strerror(ENOMEM));

	printf("#version,distreg,%s\n", DISTREG_VERSION);
	printf("#setting,distreg,bridges with their defaults: heartbeat every 250 ms; a peer "
	       "silent for 3000 ms is down; loopback TCP; no key file\n");
	printf("#setting,distreg,%zu names; %.1f s per latency row; %d-byte messages\n", names,
	       seconds, MSG);
	fflush(stdout);
	host_init(&A, "systems", "A");
	host_init(&B, "systems", "B");
	host_init(&C, "systems", "C");
	bridge_start(&A, &B, NULL, NULL);
	bridge_start(&B, &A, NULL, NULL);
	bridge_start(&C, &A, NULL, NULL);
	hosts_wait(three, 3, 3, 30);
	for (int i = 0; i < 3; i++)
		factories[i] = fork_child(factory, three[i]);
	usleep(200000);

	if (wanted("register"))
		scenario_register();
	if (wanted("lookup"))
		scenario_lookup();
	if (wanted("call"))
		scenario_call();
	if (wanted("failure"))
		failure_worker();
	if (wanted("join"))
		scenario_join();

	for (int i = 0; i < 4; i++)
		if (factories[i] > 0)
			stop_child(factories[i]);
	for (int i = 3; i >= 0; i--)
		host_fini(four[i], false);
	free(lat);
	return 0;
}

/*
 * bench_registry - libdistreg's registry side by side with liburcu's
 * in-process lock-free hash table (cds_lfht, urcu-memb flavour).
 *
 * Both sides do the same work on the same names, in the same order (the
 * same random seed per cell), with the same hash (XXH3_64bits_withSeed over
 * the name bytes, inlined on both sides as libdistreg inlines it) and the
 * same number of buckets (the power of two at or above distreg's capacity,
 * fixed: cds_lfht does not resize during a run); workers.c has the details:
 *
 *   whereis-hit   look up a preloaded name, chosen at random
 *   whereis-miss  look up a name that is not there
 *   reg+unreg     register a name that is not there and unregister it; one
 *                 op is the pair (cds_lfht: malloc, cds_lfht_add_unique,
 *                 then lookup, cds_lfht_del and call_rcu(free))
 *   mix-90/10     90% whereis-hit, 10% reg+unreg pairs
 *
 * distreg runs in worker processes forked before any dr_open(), each with
 * its own handle. cds_lfht runs in threads of one process: its RCU and its
 * nodes are process-private, so that is the most it can share.
 *
 * Each cell runs for a fixed time. Workers wait for their command on a
 * futex in a MAP_SHARED page, count themselves ready, start together when
 * the parent opens the barrier, look at a shared stop flag every BATCH ops,
 * and report their op count and their own elapsed time in the same page.
 * A cell's throughput is the sum over workers of ops / elapsed; the median
 * over the repeats is reported. The cells of the two implementations are
 * interleaved (and their order alternates between repeats), so slow drift
 * of the machine does not favour either.
 *
 * It is a measurement: missed targets do not change the exit status, which
 * is non-zero only when something failed (64 for bad usage).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <distreg.h>

#include "bench.h"

/* ---------------------------------------------------------------------- */
/* The parent. */

static void child_setup(pid_t parent)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	/* Die with the parent, so no worker outlives a killed run. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
}

struct group {
	int impl;
	struct ctl *c;
	unsigned nworkers;
	pid_t pids[MAX_WORKERS];
	unsigned npids;
};

static struct group *groups[NIMPL];
/* The segment of the current block, removed on every way out. */
static char cur_segment[DR_SEGMENT_MAX + 1];
static char cur_segment_path[DR_SEGMENT_MAX + 64];

static void kill_groups(void)
{
	for (int i = 0; i < NIMPL; i++) {
		struct group *g = groups[i];

		if (!g)
			continue;
		for (unsigned k = 0; k < g->npids; k++) {
			if (g->pids[k] > 0) {
				kill(g->pids[k], SIGKILL);
				waitpid(g->pids[k], NULL, 0);
				g->pids[k] = 0;
			}
		}
	}
	if (cur_segment[0]) {
		dr_unlink(cur_segment);
		cur_segment[0] = 0;
	}
}

__attribute__((format(printf, 1, 2), noreturn)) static void fatal(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench_registry: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	kill_groups();
	exit(1);
}

static void on_signal(int sig)
{
	/* Async-signal-safe: unlink the file dr_unlink() would remove (the
	 * path distreg.h documents); the workers die with us (PDEATHSIG). */
	if (cur_segment_path[0])
		unlink(cur_segment_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Fail if a worker process of g has ended, with its message if it left one. */
static void group_check(struct group *g)
{
	for (unsigned k = 0; k < g->npids; k++) {
		int st;

		if (g->pids[k] <= 0 || waitpid(g->pids[k], &st, WNOHANG) != g->pids[k])
			continue;
		g->pids[k] = 0;
		fatal("%s worker process exited (%s %d): %s", impl_names[g->impl],
		      WIFEXITED(st) ? "status" : "signal",
		      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		      __atomic_load_n(&g->c->failed, __ATOMIC_ACQUIRE) ? g->c->msg
								      : "no message");
	}
}

static void group_wait(struct group *g, uint32_t *ctr, uint32_t want)
{
	for (;;) {
		uint32_t v = __atomic_load_n(ctr, __ATOMIC_ACQUIRE);

		if (v >= want)
			return;
		group_check(g);
		futex_wait(ctr, v, 20 * 1000 * 1000);
	}
}

static struct ctl *ctl_new(void)
{
	void *p = mmap(NULL, sizeof(struct ctl), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap of the control page: %s", strerror(errno));
	return p;
}

static void group_start_dr(struct group *g, unsigned nworkers, const char *segment,
			   uint32_t capacity, uint32_t nnames)
{
	pid_t parent = getpid();

	g->impl = IMPL_DR;
	g->c = ctl_new();
	g->nworkers = nworkers;
	groups[IMPL_DR] = g;
	fflush(NULL);
	/* Every worker is forked before anyone opens the segment. */
	for (unsigned i = 0; i < nworkers; i++) {
		pid_t pid = fork();

		if (pid < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0) {
			child_setup(parent);
			dr_worker_main(g->c, i, segment, capacity, nnames);
		}
		g->pids[g->npids++] = pid;
	}
}

static void group_start_lf(struct group *g, unsigned nworkers, uint32_t nnames,
			   unsigned long nbuckets)
{
	pid_t parent = getpid(), pid;

	g->impl = IMPL_LF;
	g->c = ctl_new();
	g->nworkers = nworkers;
	groups[IMPL_LF] = g;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(parent);
		lf_proc_main(g->c, nworkers, nnames, nbuckets);
	}
	g->pids[g->npids++] = pid;
}

static void send_cmd(struct group *g, unsigned k, uint32_t cmd, unsigned wl, uint64_t seed)
{
	struct wslot *s = &g->c->w[k];

	s->cmd = cmd;
	s->workload = wl;
	s->seed = seed;
	__atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELEASE);
	futex_wake(&s->gen);
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* One cell: nproc workers of g run workload wl for `seconds`. Returns the
 * total throughput in Mops/s. */
static double run_cell(struct group *g, unsigned wl, unsigned nproc, double seconds,
		       uint64_t seed)
{
	struct ctl *c = g->c;
	double mops = 0;

	c->ready = 0;
	c->done = 0;
	c->go = 0;
	__atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
	for (unsigned k = 0; k < nproc; k++)
		send_cmd(g, k, CMD_RUN, wl, splitmix(seed + k));
	group_wait(g, &c->ready, nproc);
	__atomic_store_n(&c->go, 1, __ATOMIC_RELEASE);
	futex_wake(&c->go);
	sleep_s(seconds);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	group_wait(g, &c->done, nproc);
	for (unsigned k = 0; k < nproc; k++) {
		const struct wslot *s = &c->w[k];

		if (s->ns > 0)
			mops += (double)s->ops * 1e3 / (double)s->ns;
	}
	return mops;
}

static void group_stop(struct group *g)
{
	for (unsigned k = 0; k < g->nworkers; k++)
		send_cmd(g, k, CMD_EXIT, 0, 0);
	for (unsigned k = 0; k < g->npids; k++) {
		int st;

		while (waitpid(g->pids[k], &st, 0) < 0)
			if (errno != EINTR)
				fatal("waitpid: %s", strerror(errno));
		g->pids[k] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fatal("%s worker process ended badly at exit (%s %d): %s",
			      impl_names[g->impl], WIFEXITED(st) ? "status" : "signal",
			      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
			      g->c->failed ? g->c->msg : "no message");
	}
	munmap(g->c, sizeof(*g->c));
	groups[g->impl] = NULL;
}

/* ---------------------------------------------------------------------- */
/* Options. */

static uint32_t capacity_for(uint32_t n)
{
	return n + n / 4 + 4096;
}

/*
 * What a segment of this capacity takes in /dev/shm, from README.md's
 * figures: 320 bytes per entry, 8 per state word, 4 per bucket, plus the
 * header and the default 1024 process and 4096 reader slots of 64 bytes.
 */
static uint64_t segment_estimate(uint32_t capacity)
{
	return 4096 + 64ull * (DR_DEFAULT_MAX_PROCS + DR_DEFAULT_MAX_THREADS) +
	       (uint64_t)capacity * (320 + 8) + 4 * pow2_at_least(capacity);
}

static int parse_list(const char *arg, uint32_t *out, unsigned *n, uint64_t max)
{
	const char *p = arg;

	*n = 0;
	while (*p) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno || end == p)
			return -1;
		if (*end == 'k' || *end == 'K') {
			v *= 1000;
			end++;
		} else if (*end == 'm' || *end == 'M') {
			v *= 1000000;
			end++;
		}
		if (v == 0 || v > max || *n == MAX_LIST)
			return -1;
		out[(*n)++] = (uint32_t)v;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return *n ? 0 : -1;
}

static const char usage[] =
	"usage: bench_registry [options]\n"
	"Measures libdistreg against liburcu's cds_lfht (urcu-memb) on the same\n"
	"names and hash: whereis hit, whereis miss, register+unregister pairs and\n"
	"a 90/10 mix, for each number of names and of processes (cds_lfht: threads).\n"
	"\n"
	"  --names LIST      preloaded names, comma-separated (k, M suffixes);\n"
	"                    default 10000,1000000\n"
	"  --procs LIST      worker processes (threads for cds_lfht); default 1,2\n"
	"  --seconds S       time per cell; default 1\n"
	"  --repeat N        runs per cell, the median is reported; default 3\n"
	"  --csv FILE        also write the table as CSV\n"
	"  --short           10000 names, 0.2 s per cell, 1 run (meson test --benchmark);\n"
	"                    options given explicitly still apply\n"
	"  --workloads LIST  only these of hit,miss,churn,mix (for profiling)\n"
	"  --only IMPL       only distreg or only cds_lfht (for profiling)\n"
	"  --help            this text\n"
	"\n"
	"Exit status: 0 when every cell ran (targets missed or not), 1 on an error,\n"
	"64 on bad usage.\n";

static __attribute__((noreturn)) void bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "bench_registry: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage);
	exit(64);
}

static void parse_args(int argc, char **argv)
{
	enum { O_NAMES = 256, O_PROCS, O_SECONDS, O_REPEAT, O_CSV, O_SHORT, O_WL, O_ONLY, O_HELP };
	static const struct option opts[] = {
		{ "names", required_argument, NULL, O_NAMES },
		{ "procs", required_argument, NULL, O_PROCS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ "csv", required_argument, NULL, O_CSV },
		{ "short", no_argument, NULL, O_SHORT },
		{ "workloads", required_argument, NULL, O_WL },
		{ "only", required_argument, NULL, O_ONLY },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool set_names = false, set_seconds = false, set_repeat = false, shrt = false;
	int o;

	cfg.names[0] = 10000;
	cfg.names[1] = 1000000;
	cfg.nnames = 2;
	cfg.procs[0] = 1;
	cfg.procs[1] = 2;
	cfg.nprocs = 2;
	cfg.seconds = 1.0;
	cfg.repeat = 3;
	for (int i = 0; i < NWL; i++)
		cfg.wl_on[i] = true;
	cfg.impl_on[IMPL_DR] = cfg.impl_on[IMPL_LF] = true;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;

		switch (o) {
		case O_NAMES:
			/* Capacity (names * 1.25 + 4096) must stay within 2^26. */
			if (parse_list(optarg, cfg.names, &cfg.nnames, 53000000))
				bad_usage("bad --names list '%s' (1 to 53M each)", optarg);
			set_names = true;
			break;
		case O_PROCS:
			if (parse_list(optarg, cfg.procs, &cfg.nprocs, MAX_WORKERS))
				bad_usage("bad --procs list '%s' (1 to 64 each)", optarg);
			break;
		case O_SECONDS:
			cfg.seconds = strtod(optarg, &end);
			if (*end || !(cfg.seconds > 0 && cfg.seconds <= 3600))
				bad_usage("bad --seconds '%s'", optarg);
			set_seconds = true;
			break;
		case O_REPEAT: {
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > 64)
				bad_usage("bad --repeat '%s' (1 to 64)", optarg);
			cfg.repeat = (unsigned)v;
			set_repeat = true;
			break;
		}
		case O_CSV:
			cfg.csv = optarg;
			break;
		case O_SHORT:
			shrt = true;
			break;
		case O_WL: {
			char buf[256], *tok, *save;
			for (int i = 0; i < NWL; i++)
				cfg.wl_on[i] = false;
			snprintf(buf, sizeof(buf), "%s", optarg);
			for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				int i;
				for (i = 0; i < NWL; i++)
					if (!strcmp(tok, wl_short[i]) || !strcmp(tok, wl_names[i]))
						break;
				if (i == NWL)
					bad_usage("unknown workload in '%s' (hit, miss, churn, mix)", optarg);
				cfg.wl_on[i] = true;
			}
			break;
		}
		case O_ONLY:
			if (!strcmp(optarg, "distreg"))
				cfg.impl_on[IMPL_LF] = false;
			else if (!strcmp(optarg, "cds_lfht") || !strcmp(optarg, "lfht"))
				cfg.impl_on[IMPL_DR] = false;
			else
				bad_usage("bad --only '%s' (distreg or cds_lfht)", optarg);
			break;
		case O_HELP:
			fputs(usage, stdout);
			exit(0);
		default:
			fprintf(stderr, "%s", usage);
			exit(64);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (shrt) {
		if (!set_names) {
			cfg.names[0] = 10000;
			cfg.nnames = 1;
		}
		if (!set_seconds)
			cfg.seconds = 0.2;
		if (!set_repeat)
			cfg.repeat = 1;
	}
}

int main(int argc, char **argv)
{
	unsigned maxp = 0;
	uint64_t base_seed, wall0;
	double busy0 = 0, steal0 = 0, busy1 = 0, steal1 = 0;
	bool machine_ok;
	bool *skipped;
	int status = 0;

	parse_args(argc, argv);
	for (unsigned i = 0; i < cfg.nprocs; i++)
		if (cfg.procs[i] > maxp)
			maxp = cfg.procs[i];
	results = malloc(sizeof(double) * cfg.nnames * NWL * cfg.nprocs * NIMPL * cfg.repeat);
	skipped = calloc(cfg.nnames, sizeof(*skipped));
	if (!results || !skipped)
		fatal("out of memory");
	for (size_t i = 0; i < (size_t)cfg.nnames * NWL * cfg.nprocs * NIMPL * cfg.repeat; i++)
		results[i] = NAN;
	if (getrandom(&base_seed, sizeof(base_seed), 0) != sizeof(base_seed))
		base_seed = now_ns() ^ ((uint64_t)getpid() << 32);
	lf_seed = splitmix(base_seed ^ 0x5eedull);
	memcpy(value_bytes, "ipc:///w/000042", VALUE_LEN); /* 15 chars and the NUL */

	machine_ok = machine_cpu(&busy0, &steal0) == 0;
	wall0 = now_ns();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	print_header();

	for (unsigned ni = 0; ni < cfg.nnames; ni++) {
		uint32_t n = cfg.names[ni], cap = capacity_for(n);
		unsigned long nbuckets = (unsigned long)pow2_at_least(cap);
		struct group gd = { 0 }, gl = { 0 };
		bool run_dr = cfg.impl_on[IMPL_DR], run_lf = cfg.impl_on[IMPL_LF];

		if (run_dr) {
			uint64_t need = segment_estimate(cap);
			struct statvfs vfs;

			if (statvfs("/dev/shm", &vfs) == 0 &&
			    (uint64_t)vfs.f_bavail * vfs.f_frsize < need + need / 16) {
				printf("names %" PRIu32 ": SKIPPED: the distreg segment needs about "
				       "%.0f MiB of /dev/shm, only %.0f MiB are free\n",
				       n, (double)need / 1048576,
				       (double)vfs.f_bavail * (double)vfs.f_frsize / 1048576);
				skipped[ni] = true;
				status = 1;
				continue;
			}
		}
		if (make_names(n, maxp))
			fatal("out of memory for %" PRIu32 " names", n);
		snprintf(cur_segment, sizeof(cur_segment), "bench.%d.%" PRIu32, (int)getpid(), n);
		snprintf(cur_segment_path, sizeof(cur_segment_path), "/dev/shm/distreg.%s",
			 cur_segment);
		fprintf(stderr, "names %" PRIu32 ": preloading...\n", n);
		if (run_dr) {
			dr_unlink(cur_segment); /* a stale one from a reused pid */
			group_start_dr(&gd, maxp, cur_segment, cap, n);
		}
		if (run_lf)
			group_start_lf(&gl, maxp, n, nbuckets);
		if (run_dr)
			group_wait(&gd, &gd.c->setup, maxp);
		if (run_lf)
			group_wait(&gl, &gl.c->setup, maxp);
		printf("names %" PRIu32 ": capacity %" PRIu32 ", %lu buckets", n, cap, nbuckets);
		if (run_dr)
			printf("; distreg segment %.1f MiB, preload %.2f s",
			       (double)gd.c->segment_bytes / 1048576, gd.c->preload_s);
		if (run_lf)
			printf("; cds_lfht preload %.2f s", gl.c->preload_s);
		printf("\n");
		fflush(stdout);

		for (unsigned rep = 0; rep < cfg.repeat; rep++) {
			fprintf(stderr, "names %" PRIu32 ": run %u of %u\n", n, rep + 1, cfg.repeat);
			for (unsigned wl = 0; wl < NWL; wl++) {
				if (!cfg.wl_on[wl])
					continue;
				for (unsigned pi = 0; pi < cfg.nprocs; pi++) {
					/* The same seed on both sides: the same names in
					 * the same order. */
					uint64_t seed = splitmix(base_seed + ((uint64_t)ni << 40) +
								 ((uint64_t)rep << 24) +
								 ((uint64_t)wl << 16) + pi * 256u);

					for (unsigned k = 0; k < NIMPL; k++) {
						/* Alternate which side goes first. */
						unsigned impl = (k + rep) % NIMPL;
						struct group *g = impl == IMPL_DR ? &gd : &gl;

						if (!cfg.impl_on[impl])
							continue;
						*res_at(ni, wl, pi, impl, rep) =
							run_cell(g, wl, cfg.procs[pi], cfg.seconds, seed);
					}
				}
			}
		}
		if (run_lf)
			group_stop(&gl);
		if (run_dr) {
			int rc;

			group_stop(&gd);
			rc = dr_unlink(cur_segment);
			if (rc)
				fatal("dr_unlink(%s): %s", cur_segment, dr_strerror(rc));
		}
		cur_segment[0] = 0;
		cur_segment_path[0] = 0;
		free_names();
	}

	printf("\n");
	if (machine_ok && machine_cpu(&busy1, &steal1) == 0) {
		/* The workers have all been waited for, so own_cpu() covers them. */
		double other = busy1 - busy0 - own_cpu(), wall = (double)(now_ns() - wall0) / 1e9;
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		if (other < 0)
			other = 0;
		printf("machine load during the run (%.0f s on %ld CPUs): other processes %.1f CPU-s "
		       "(%.0f%% of the machine), hypervisor steal %.1f CPU-s%s\n\n",
		       wall, ncpu, other, 100 * other / (wall * (double)ncpu), steal1 - steal0,
		       other > 0.05 * wall * (double)ncpu || steal1 - steal0 > 0.05 * wall * (double)ncpu
			       ? ": the numbers are disturbed"
			       : "");
	}
	if (report(skipped))
		status = 1;
	free(results);
	free(skipped);
	return status;
}

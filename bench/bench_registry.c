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
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <distreg.h>

#include "common.h"

/* ---------------------------------------------------------------------- */
/* The parent. */

/* The worker groups of the current block, killed on every way out. */
static struct group grp[NIMPL];

/* What the workers of a block are given; set before they are forked. */
struct block {
	uint32_t n, capacity;
	unsigned long nbuckets;
};

static void cleanup(void)
{
	for (int i = 0; i < NIMPL; i++)
		group_kill(&grp[i]);
	segment_drop();
}

static void on_signal(int sig)
{
	/* Async-signal-safe: unlink the file dr_unlink() would remove (the
	 * path distreg.h documents); the workers die with us (PDEATHSIG). */
	segment_unlink_async();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* A distreg worker process; every one is forked before any opens the
 * segment. */
static void dr_child(struct group *g, unsigned idx, void *arg)
{
	const struct block *b = arg;

	dr_worker_main(g->c, idx, segment, b->capacity, b->n);
}

/* The cds_lfht process, with a thread per worker. */
static void lf_child(struct group *g, unsigned idx, void *arg)
{
	const struct block *b = arg;

	(void)idx;
	lf_proc_main(g->c, g->nslots, b->n, b->nbuckets);
}

/* ---------------------------------------------------------------------- */
/* Options. */

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
		switch (o) {
		case O_NAMES:
			/* Capacity (names * 1.25 + 4096) must stay within 2^26. */
			if (!parse_numbers(optarg, cfg.names, &cfg.nnames, 53000000))
				bad_usage("bad --names list '%s' (1 to 53M each)", optarg);
			set_names = true;
			break;
		case O_PROCS:
			if (!parse_numbers(optarg, cfg.procs, &cfg.nprocs, MAX_WORKERS))
				bad_usage("bad --procs list '%s' (1 to 64 each)", optarg);
			break;
		case O_SECONDS:
			if (!parse_real(optarg, &cfg.seconds) ||
			    !(cfg.seconds > 0 && cfg.seconds <= 3600))
				bad_usage("bad --seconds '%s'", optarg);
			set_seconds = true;
			break;
		case O_REPEAT:
			if (!parse_count(optarg, 1, 64, &cfg.repeat))
				bad_usage("bad --repeat '%s' (1 to 64)", optarg);
			set_repeat = true;
			break;
		case O_CSV:
			cfg.csv = optarg;
			break;
		case O_SHORT:
			shrt = true;
			break;
		case O_WL:
			if (!parse_choice(optarg, wl_short, wl_names, NWL, cfg.wl_on))
				bad_usage("unknown workload in '%s' (hit, miss, churn, mix)", optarg);
			break;
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
	unsigned maxp;
	uint64_t base_seed;
	struct load_probe probe;
	struct load ld;
	bool *skipped;
	int status = 0;

	bench_prog = "bench_registry";
	bench_cleanup = cleanup;
	parse_args(argc, argv);
	maxp = list_max(cfg.procs, cfg.nprocs);
	results = results_new((size_t)cfg.nnames * NWL * cfg.nprocs * NIMPL * cfg.repeat);
	skipped = calloc(cfg.nnames, sizeof(*skipped));
	if (!results || !skipped)
		fatal("out of memory");
	base_seed = run_seed();

	load_begin(&probe);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	print_header();

	for (unsigned ni = 0; ni < cfg.nnames; ni++) {
		uint32_t n = cfg.names[ni], cap = capacity_for(n);
		struct block b = { n, cap, (unsigned long)pow2_at_least(cap) };
		struct group *gd = &grp[IMPL_DR], *gl = &grp[IMPL_LF];
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
		segment_set("bench.%d.%" PRIu32, (int)getpid(), n);
		fprintf(stderr, "names %" PRIu32 ": preloading...\n", n);
		if (run_dr) {
			dr_unlink(segment); /* a stale one from a reused pid */
			group_start(gd, impl_names[IMPL_DR], maxp, maxp, dr_child, &b);
		}
		if (run_lf)
			group_start(gl, impl_names[IMPL_LF], maxp, 1, lf_child, &b);
		if (run_dr)
			group_await(gd, &gd->c->setup, maxp, 0, "setting up");
		if (run_lf)
			group_await(gl, &gl->c->setup, maxp, 0, "setting up");
		printf("names %" PRIu32 ": capacity %" PRIu32 ", %lu buckets", n, cap, b.nbuckets);
		if (run_dr)
			printf("; distreg segment %.1f MiB, preload %.2f s",
			       (double)gd->c->segment_bytes / 1048576, gd->c->preload_s);
		if (run_lf)
			printf("; cds_lfht preload %.2f s", gl->c->preload_s);
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

						if (!cfg.impl_on[impl])
							continue;
						*res_at(ni, wl, pi, impl, rep) =
							group_cell(&grp[impl], wl, cfg.procs[pi],
								   cfg.seconds, seed, 0, 0) / 1e6;
					}
				}
			}
		}
		group_stop(gl);
		if (run_dr) {
			int rc;

			group_stop(gd);
			rc = segment_remove();
			if (rc)
				fatal("dr_unlink(%s): %s", segment, dr_strerror(rc));
		}
		segment_clear();
		free_names();
	}

	printf("\n");
	/* The workers have all been waited for, so their CPU time is ours. */
	if (load_end(&probe, &ld)) {
		double cpus = ld.wall * (double)ld.ncpu;

		printf("machine load during the run (%.0f s on %ld CPUs): other processes %.1f CPU-s "
		       "(%.0f%% of the machine), hypervisor steal %.1f CPU-s%s\n\n",
		       ld.wall, ld.ncpu, ld.other, 100 * ld.other / cpus, ld.steal,
		       ld.other > 0.05 * cpus || ld.steal > 0.05 * cpus
			       ? ": the numbers are disturbed"
			       : "");
	}
	if (report(skipped))
		status = 1;
	free(results);
	free(skipped);
	return status;
}

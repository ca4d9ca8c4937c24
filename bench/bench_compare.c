/*
 * bench_compare - libdistreg side by side with what users would pick
 * instead, in one run, on the same names, each system doing the same work:
 * a unique name maps to a 16-byte value; register if absent, look up,
 * unregister.
 *
 *   distreg        libdistreg, N processes on a private segment
 *   cds_lfht       liburcu's lock-free hash table, N threads of one process
 *   rwlock-shm     a hash table in shared memory behind a process-shared
 *                  pthread rwlock (the plain design)
 *   lmdb           LMDB in /dev/shm, MDB_NOSYNC | MDB_NOMETASYNC, one
 *                  transaction per operation
 *   lmdb-writemap  the same with MDB_WRITEMAP
 *   redis          Redis over a Unix socket, SET NX / GET / DEL, one command
 *                  per round trip
 *   redis-pipe32   the same, 32 operations per round trip
 *
 * Workloads (as bench_registry): whereis-hit, whereis-miss, reg+unreg (one
 * op is the pair) and mix-90/10; for each number of names and of workers.
 *
 * Each system is a group of worker processes (cds_lfht: one process with a
 * thread per worker) that share a control page with the parent (bench.h),
 * started, driven and stopped by the group code both benchmarks share
 * (common.c): the distreg and cds_lfht workers are those of workers.c, the
 * others are in cmp_*.c and serve the same loop. Worker 0 of a group creates the
 * store and preloads the names. A cell runs for a fixed time; the systems
 * take turns cell by cell, and their order rotates with the repeat, so slow
 * drift of a shared machine favours none. Medians of the repeats are
 * reported with their min-max.
 *
 * Everything the run creates (the segment, the memfd, the LMDB envs, the
 * Redis server, its socket) is private to it and removed on every way out:
 * normal end, error, SIGINT/SIGTERM/SIGHUP; workers and the server die with
 * the parent (PR_SET_PDEATHSIG).
 *
 * Exit status: 0 when every cell ran (targets met or not), 1 on an error,
 * 2 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* C, then POSIX and Linux. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ftw.h>
#include <getopt.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <distreg.h>

#include "compare.h"

const struct sysdesc sys[NSYS] = {
	[SYS_DR] = { "distreg", "libdistreg, one process per worker (workers.c)", G_DR, 0, false },
	[SYS_LF] = { "cds_lfht", "liburcu cds_lfht (urcu-memb), one thread per worker in one "
				 "process (workers.c)", G_LF, 0, false },
	[SYS_RW] = { "rwlock-shm", "chained hash table in a memfd, one PTHREAD_PROCESS_SHARED "
				   "rwlock (glibc default kind)", G_RW, 0, false },
	[SYS_LMDB] = { "lmdb", "LMDB env in /dev/shm, MDB_NOSYNC|MDB_NOMETASYNC, one txn per op",
		       G_LMDB, 0, true },
	[SYS_LMDB_WM] = { "lmdb-writemap", "the same with MDB_WRITEMAP", G_LMDB_WM, 0, true },
	[SYS_REDIS] = { "redis", "Redis over a Unix socket (hiredis): SET NX / GET / DEL, one "
				 "command per round trip", G_REDIS, 0, true },
	[SYS_REDIS_PIPE] = { "redis-pipe32", "the same, 32 operations per round trip (pipelined)",
			     G_REDIS, 1, true },
};

static const char *const group_names[NGROUP] = {
	"distreg", "cds_lfht", "rwlock-shm", "lmdb", "lmdb-writemap", "redis",
};

/* What one block (one number of names) gives its workers; set before fork. */
struct block {
	uint32_t n, capacity;
	unsigned long nbuckets;
	int rw_fd;
	char lmdb_dir[2][PATH_MAX];
};

/* ---------------------------------------------------------------------- */
/* What to remove on the way out. The signal handler uses only these fixed
 * arrays and async-signal-safe calls. */

static struct group grp[NGROUP];
static struct redis_server redis;
static char root_dir[PATH_MAX];          /* mkdtemp under /dev/shm */
/* Files and directories under root_dir, removed in reverse order. */
#define MAX_PATHS 16
static char made[MAX_PATHS][PATH_MAX];
static volatile sig_atomic_t nmade;

static void note_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_path(const char *fmt, ...)
{
	va_list ap;

	if (nmade == MAX_PATHS)
		return;
	va_start(ap, fmt);
	vsnprintf(made[nmade], sizeof(made[0]), fmt, ap);
	va_end(ap);
	nmade = nmade + 1;
}

static void kill_groups(void)
{
	for (unsigned g = 0; g < NGROUP; g++)
		group_kill(&grp[g]);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void remove_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
	kill_groups();
	redis_server_stop(&redis);
	segment_drop();
	remove_tree(root_dir);
	root_dir[0] = 0;
	nmade = 0;
}

static void on_signal(int sig)
{
	for (unsigned g = 0; g < NGROUP; g++)
		group_kill_async(&grp[g]);
	if (redis.pid > 0)
		kill(redis.pid, SIGKILL);
	segment_unlink_async();
	for (int i = nmade - 1; i >= 0; i--)
		if (unlink(made[i]) != 0)
			rmdir(made[i]);
	if (root_dir[0])
		rmdir(root_dir);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---------------------------------------------------------------------- */
/* Groups. */

/* A worker process of group gr; arg is the block. */
static void child(struct group *gr, unsigned idx, void *arg)
{
	const struct block *b = arg;
	unsigned g = (unsigned)(gr - grp);
	struct ctl *c = gr->c;

	switch (g) {
	case G_DR:
		dr_worker_main(c, idx, segment, b->capacity, b->n);
	case G_LF:
		lf_proc_main(c, gr->nslots, b->n, b->nbuckets);
	case G_RW:
		rw_worker_main(c, idx, b->rw_fd, b->capacity, b->n);
	case G_LMDB:
	case G_LMDB_WM:
		lmdb_worker_main(c, idx, b->lmdb_dir[g == G_LMDB_WM], g == G_LMDB_WM, b->n);
	default:
		redis_worker_main(c, idx, redis.sock, b->n);
	}
}

/* Fork group g's workers (cds_lfht: one process of nslots threads) and
 * wait until they have set up. Returns the preload time. */
static double start_group(unsigned g, unsigned nslots, const struct block *b)
{
	struct group *gr = &grp[g];

	group_start(gr, group_names[g], nslots, g == G_LF ? 1 : nslots, child, (void *)b);
	group_await(gr, &gr->c->setup, nslots, 600, "setting up");
	return gr->c->preload_s;
}

/* One cell: system s, `procs` workers, workload wl, for `secs`. ops/s. */
static double cell(unsigned s, unsigned wl, unsigned procs, double secs, uint64_t seed)
{
	return group_cell(&grp[sys[s].group], CMD_WL(wl, sys[s].mode), procs, secs, seed, 60,
			  120);
}

/* ---------------------------------------------------------------------- */
/* Options. */

static const char usage[] =
	"usage: bench_compare [options]\n"
	"Measures libdistreg against cds_lfht (threads), a shared-memory hash table\n"
	"behind a process-shared rwlock, LMDB (with and without MDB_WRITEMAP) and\n"
	"Redis (one-at-a-time and pipelined) on the same names: lookup hit, lookup\n"
	"miss, register+unregister, and a 90/10 mix, for 1 and 2 workers.\n"
	"\n"
	"  --short             10000 names, 0.2 s per cell (LMDB, Redis 0.1 s), 3\n"
	"                      repeats: for meson test --benchmark (under 2 minutes)\n"
	"  --names LIST        preloaded names (k, M suffixes); default 10000,1000000\n"
	"  --procs LIST        workers; default 1,2\n"
	"  --seconds S         time per cell; default 1\n"
	"  --slow-seconds S    time per cell for LMDB and Redis; default 0.5\n"
	"  --repeat N          repeats per cell, the median is reported; default 5\n"
	"  --workloads LIST    of hit,miss,churn,mix; default all\n"
	"  --systems LIST      of distreg,cds_lfht,rwlock-shm,lmdb,lmdb-writemap,redis,\n"
	"                      redis-pipe32; default all (distreg always runs: the\n"
	"                      ratios are to it)\n"
	"  --csv FILE          the results as CSV; default bench-compare.csv\n"
	"  --png FILE          the plot (needs gnuplot); default bench-compare.png\n"
	"  --help              this text\n"
	"\n"
	"Options given with --short override its values. Exit status: 0 when every\n"
	"cell ran (targets met or not), 1 on an error, 2 on bad usage.\n";

static __attribute__((noreturn, format(printf, 1, 2))) void bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("bench_compare: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n%s", usage);
	exit(2);
}

static double seconds_arg(const char *opt, const char *arg)
{
	double v;

	if (!parse_real(arg, &v) || !(v >= 0.01 && v <= 600))
		bad_usage("bad %s '%s' (0.01 to 600 seconds)", opt, arg);
	return v;
}

static void parse_args(int argc, char **argv)
{
	enum { O_SHORT = 256, O_NAMES, O_PROCS, O_SECONDS, O_SLOW, O_REPEAT, O_WL, O_SYS,
	       O_CSV, O_PNG, O_HELP };
	static const struct option opts[] = {
		{ "short", no_argument, NULL, O_SHORT },
		{ "names", required_argument, NULL, O_NAMES },
		{ "procs", required_argument, NULL, O_PROCS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "slow-seconds", required_argument, NULL, O_SLOW },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ "workloads", required_argument, NULL, O_WL },
		{ "systems", required_argument, NULL, O_SYS },
		{ "csv", required_argument, NULL, O_CSV },
		{ "png", required_argument, NULL, O_PNG },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *sysnames[NSYS];
	bool given[O_HELP + 1] = { false };
	int o;

	for (unsigned s = 0; s < NSYS; s++)
		sysnames[s] = sys[s].name;
	ccfg = (struct cmp_config){
		.names = { 10000, 1000000 }, .nnames = 2, .procs = { 1, 2 }, .nprocs = 2,
		.seconds = 1.0, .slow_seconds = 0.5, .repeat = 5,
		.csv = "bench-compare.csv", .png = "bench-compare.png",
	};
	for (unsigned i = 0; i < NWL; i++)
		ccfg.wl_on[i] = true;
	for (unsigned s = 0; s < NSYS; s++)
		ccfg.sys_on[s] = true;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (o == '?')
			bad_usage("unknown option '%s'", argv[optind - 1]);
		if (o == ':')
			bad_usage("option '%s' needs a value", argv[optind - 1]);
		given[o] = true;
		switch (o) {
		case O_SHORT:
			ccfg.shrt = true;
			break;
		case O_NAMES:
			/* distreg's capacity (names * 1.25 + 4096) stays within 2^26. */
			if (!parse_numbers(optarg, ccfg.names, &ccfg.nnames, 53000000))
				bad_usage("bad --names '%s' (1 to 53M each, comma-separated)",
					  optarg);
			break;
		case O_PROCS:
			if (!parse_numbers(optarg, ccfg.procs, &ccfg.nprocs, MAX_WORKERS))
				bad_usage("bad --procs '%s' (1 to %d each)", optarg, MAX_WORKERS);
			break;
		case O_SECONDS:
			ccfg.seconds = seconds_arg("--seconds", optarg);
			break;
		case O_SLOW:
			ccfg.slow_seconds = seconds_arg("--slow-seconds", optarg);
			break;
		case O_REPEAT:
			if (!parse_count(optarg, 1, 64, &ccfg.repeat))
				bad_usage("bad --repeat '%s' (1 to 64)", optarg);
			break;
		case O_WL:
			if (!parse_choice(optarg, wl_short, wl_names, NWL, ccfg.wl_on))
				bad_usage("bad --workloads '%s' (hit, miss, churn, mix)", optarg);
			break;
		case O_SYS:
			if (!parse_choice(optarg, sysnames, NULL, NSYS, ccfg.sys_on))
				bad_usage("bad --systems '%s'", optarg);
			ccfg.sys_on[SYS_DR] = true;
			break;
		case O_CSV:
		case O_PNG:
			if (!*optarg)
				bad_usage("empty file name for %s", o == O_CSV ? "--csv" : "--png");
			*(o == O_CSV ? &ccfg.csv : &ccfg.png) = optarg;
			break;
		case O_HELP:
			fputs(usage, stdout);
			exit(0);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (ccfg.shrt) {
		if (!given[O_NAMES])
			ccfg.names[0] = 10000, ccfg.nnames = 1;
		if (!given[O_SECONDS])
			ccfg.seconds = 0.2;
		if (!given[O_SLOW])
			ccfg.slow_seconds = 0.1;
		if (!given[O_REPEAT])
			ccfg.repeat = 3;
	}
}

/* ---------------------------------------------------------------------- */
/* One number of names: start the groups, run the cells, stop them. */

static void make_lmdb_dir(struct block *b, unsigned which)
{
	int n = snprintf(b->lmdb_dir[which], sizeof(b->lmdb_dir[which]), "%s/%s-%" PRIu32,
			 root_dir, which ? "lmdb-writemap" : "lmdb", b->n);

	if (n < 0 || (size_t)n >= sizeof(b->lmdb_dir[which]) - 16)
		fatal("path under %s too long", root_dir);
	if (mkdir(b->lmdb_dir[which], 0700) != 0)
		fatal("mkdir %s: %s", b->lmdb_dir[which], strerror(errno));
	note_path("%s", b->lmdb_dir[which]);
	note_path("%s/data.mdb", b->lmdb_dir[which]);
	note_path("%s/lock.mdb", b->lmdb_dir[which]);
}

static bool group_on(unsigned g)
{
	for (unsigned s = 0; s < NSYS; s++)
		if (ccfg.sys_on[s] && sys[s].group == g)
			return true;
	return false;
}

static void run_block(unsigned ni, unsigned maxp, uint64_t base_seed)
{
	struct block b = { .n = ccfg.names[ni], .rw_fd = -1 };
	unsigned before = nmade;

	b.capacity = capacity_for(b.n);
	b.nbuckets = (unsigned long)pow2_at_least(b.capacity);
	if (make_names(b.n, maxp))
		fatal("out of memory for %" PRIu32 " names", b.n);
	segment_set("bench-cmp-%d-%" PRIu32, (int)getpid(), b.n);
	dr_unlink(segment); /* a stale one of a reused pid */
	printf("names %" PRIu32 ": distreg capacity %" PRIu32 ", %lu buckets; preload (s):", b.n,
	       b.capacity, b.nbuckets);
	fflush(stdout);

	for (unsigned g = 0; g < NGROUP; g++) {
		double t;

		if (!group_on(g))
			continue;
		if (g == G_RW) {
			b.rw_fd = memfd_create("bench-cmp-rwlock", MFD_CLOEXEC);
			if (b.rw_fd < 0)
				fatal("memfd_create: %s", strerror(errno));
			if (ftruncate(b.rw_fd, (off_t)rw_table_bytes(b.capacity)) != 0)
				fatal("ftruncate of the rwlock table to %zu bytes: %s",
				      rw_table_bytes(b.capacity), strerror(errno));
		}
		if (g == G_LMDB || g == G_LMDB_WM)
			make_lmdb_dir(&b, g == G_LMDB_WM);
		fprintf(stderr, "names %" PRIu32 ": starting %s\n", b.n, group_names[g]);
		t = start_group(g, maxp, &b);
		if (g == G_RW) {
			close(b.rw_fd);
			b.rw_fd = -1;
		}
		printf(" %s %.2f", group_names[g], t);
		fflush(stdout);
	}
	printf("\n");

	for (unsigned rep = 0; rep < ccfg.repeat; rep++) {
		fprintf(stderr, "names %" PRIu32 ": repeat %u of %u\n", b.n, rep + 1, ccfg.repeat);
		for (unsigned wl = 0; wl < NWL; wl++) {
			if (!ccfg.wl_on[wl])
				continue;
			for (unsigned pi = 0; pi < ccfg.nprocs; pi++) {
				uint64_t seed = splitmix(base_seed ^ ((uint64_t)ni << 48 |
								      (uint64_t)rep << 32 |
								      (uint64_t)wl << 16 | pi));

				for (unsigned k = 0; k < NSYS; k++) {
					unsigned s = (k + rep) % NSYS;

					if (!ccfg.sys_on[s] || !grp[sys[s].group].c)
						continue;
					*cmp_at(ni, wl, pi, s, rep) = cell(
					    s, wl, ccfg.procs[pi],
					    sys[s].slow ? ccfg.slow_seconds : ccfg.seconds, seed);
				}
			}
		}
	}

	for (unsigned g = 0; g < NGROUP; g++)
		group_stop(&grp[g]);
	if (segment[0]) {
		int rc = segment_remove();

		/* No distreg group: no segment was made. */
		if (rc && !(rc == -ENOENT && !group_on(G_DR)))
			fatal("dr_unlink(%s): %s", segment, dr_strerror(rc));
		segment_clear();
	}
	for (unsigned w = 0; w < 2; w++)
		if (b.lmdb_dir[w][0])
			remove_tree(b.lmdb_dir[w]);
	nmade = before;
	free_names();
}

static void command_line(char *out, size_t len, int argc, char **argv)
{
	size_t at = 0;

	out[0] = 0;
	for (int i = 0; i < argc && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s%s", i ? " " : "", argv[i]);
}

int main(int argc, char **argv)
{
	char cmdline[1024], msg[512];
	unsigned maxp;
	uint64_t base_seed;
	struct load_probe probe;
	struct load ld;
	int rc, status = 0;

	bench_prog = "bench_compare";
	bench_cleanup = cleanup;
	parse_args(argc, argv);
	command_line(cmdline, sizeof(cmdline), argc, argv);
	maxp = list_max(ccfg.procs, ccfg.nprocs);
	if (cmp_results_alloc())
		fatal("out of memory");
	base_seed = run_seed();

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	snprintf(root_dir, sizeof(root_dir), "/dev/shm/bench-cmp-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(root_dir)) {
		int e = errno;

		root_dir[0] = 0;
		fatal("mkdtemp under /dev/shm: %s", strerror(e));
	}

	if (ccfg.sys_on[SYS_REDIS] || ccfg.sys_on[SYS_REDIS_PIPE]) {
		rc = redis_server_start(&redis, root_dir, msg, sizeof(msg));
		if (rc == -ENOENT) {
			printf("redis: SKIPPED: redis-server is not installed (Debian: "
			       "redis-server)\n");
			ccfg.sys_on[SYS_REDIS] = ccfg.sys_on[SYS_REDIS_PIPE] = false;
		} else if (rc) {
			fatal("starting redis-server: %s", msg);
		} else {
			note_path("%s", redis.dir);
			note_path("%s", redis.sock);
			note_path("%s", redis.log);
		}
	}
	cmp_print_header(stdout, cmdline, redis.version);

	load_begin(&probe);
	for (unsigned ni = 0; ni < ccfg.nnames; ni++)
		run_block(ni, maxp, base_seed);
	redis_server_stop(&redis);

	/* Workers and server have been waited for: their CPU time is ours. */
	if (load_end(&probe, &ld)) {
		double cpus = ld.wall * (double)ld.ncpu;
		double others = ld.other / cpus, steal = ld.steal / cpus;

		printf("\nother load during the %.0f s run: %.0f%% of the CPUs busy with other "
		       "processes, %.0f%% stolen by the hypervisor%s\n", ld.wall, 100 * others,
		       100 * steal, others > 0.05 || steal > 0.05 ? " (numbers disturbed)" : "");
	}
	cmp_print_report();
	if (cmp_write_csv(ccfg.csv))
		status = 1;
	rc = cmp_plot(ccfg.png, root_dir);
	if (rc < 0)
		status = 1;
	cleanup();
	return status;
}

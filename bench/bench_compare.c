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
 * thread per worker) that share a control page with the parent (bench.h):
 * the distreg and cds_lfht workers are those of workers.c, the others are
 * in cmp_*.c and follow the same protocol. Worker 0 of a group creates the
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

struct group {
	struct ctl *c;
	unsigned nslots;             /* workers that take commands */
	unsigned nproc;              /* processes forked */
	pid_t pid[MAX_WORKERS];
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
static char segment[DR_SEGMENT_MAX + 1]; /* the current distreg segment */
static char segment_path[PATH_MAX];
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
	for (unsigned g = 0; g < NGROUP; g++) {
		for (unsigned k = 0; k < grp[g].nproc; k++) {
			if (grp[g].pid[k] > 0) {
				kill(grp[g].pid[k], SIGKILL);
				waitpid(grp[g].pid[k], NULL, 0);
				grp[g].pid[k] = 0;
			}
		}
		grp[g].nproc = 0;
	}
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
	if (segment[0]) {
		dr_unlink(segment);
		segment[0] = 0;
		segment_path[0] = 0;
	}
	remove_tree(root_dir);
	root_dir[0] = 0;
	nmade = 0;
}

static void on_signal(int sig)
{
	for (unsigned g = 0; g < NGROUP; g++)
		for (unsigned k = 0; k < grp[g].nproc; k++)
			if (grp[g].pid[k] > 0)
				kill(grp[g].pid[k], SIGKILL);
	if (redis.pid > 0)
		kill(redis.pid, SIGKILL);
	if (segment_path[0])
		unlink(segment_path);
	for (int i = nmade - 1; i >= 0; i--)
		if (unlink(made[i]) != 0)
			rmdir(made[i]);
	if (root_dir[0])
		rmdir(root_dir);
	signal(sig, SIG_DFL);
	raise(sig);
}

__attribute__((format(printf, 1, 2), noreturn)) static void fatal(const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "bench_compare: error: %s\n", why);
	cleanup();
	exit(1);
}

/* ---------------------------------------------------------------------- */
/* Groups. */

static void group_check(unsigned g)
{
	struct group *gr = &grp[g];

	for (unsigned k = 0; k < gr->nproc; k++) {
		int st;

		if (gr->pid[k] <= 0 || waitpid(gr->pid[k], &st, WNOHANG) != gr->pid[k])
			continue;
		gr->pid[k] = 0;
		fatal("a %s worker process ended (%s %d): %s", group_names[g],
		      WIFEXITED(st) ? "status" : "signal",
		      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		      __atomic_load_n(&gr->c->failed, __ATOMIC_ACQUIRE) ? gr->c->msg
								       : "it left no message");
	}
}

/* Wait until *counter reaches want, failing if a worker dies or time runs out. */
static void group_await(unsigned g, uint32_t *counter, uint32_t want, double limit_s,
			const char *what)
{
	uint64_t deadline = now_ns() + (uint64_t)(limit_s * 1e9);
	uint32_t v;

	while ((v = __atomic_load_n(counter, __ATOMIC_ACQUIRE)) < want) {
		group_check(g);
		if (now_ns() > deadline)
			fatal("%s: %s: %" PRIu32 " of %" PRIu32 " workers after %.0f s",
			      group_names[g], what, v, want, limit_s);
		futex_wait(counter, v, 20 * 1000 * 1000);
	}
}

static __attribute__((noreturn)) void child(unsigned g, unsigned idx, unsigned nslots,
					    const struct block *b, pid_t parent)
{
	struct ctl *c = grp[g].c;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	switch (g) {
	case G_DR:
		dr_worker_main(c, idx, segment, b->capacity, b->n);
	case G_LF:
		lf_proc_main(c, nslots, b->n, b->nbuckets);
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
static double group_start(unsigned g, unsigned nslots, const struct block *b)
{
	struct group *gr = &grp[g];
	unsigned nproc = g == G_LF ? 1 : nslots;
	pid_t parent = getpid();
	void *p = mmap(NULL, sizeof(struct ctl), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap of a control page: %s", strerror(errno));
	gr->c = p;
	gr->nslots = nslots;
	fflush(NULL);
	for (unsigned i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0)
			child(g, i, nslots, b, parent);
		gr->pid[gr->nproc++] = pid;
	}
	group_await(g, &gr->c->setup, nslots, 600, "setting up");
	return gr->c->preload_s;
}

static void post(struct group *gr, unsigned k, uint32_t cmd, uint32_t wlword, uint64_t seed)
{
	struct wslot *s = &gr->c->w[k];

	s->cmd = cmd;
	s->workload = wlword;
	s->seed = seed;
	__atomic_fetch_add(&s->gen, 1, __ATOMIC_RELEASE);
	futex_wake(&s->gen);
}

static void group_stop(unsigned g)
{
	struct group *gr = &grp[g];

	if (!gr->c)
		return;
	for (unsigned k = 0; k < gr->nslots; k++)
		post(gr, k, CMD_EXIT, 0, 0);
	for (unsigned k = 0; k < gr->nproc; k++) {
		int st;

		while (waitpid(gr->pid[k], &st, 0) < 0)
			if (errno != EINTR)
				fatal("waitpid: %s", strerror(errno));
		gr->pid[k] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fatal("a %s worker process ended badly at exit (%s %d): %s", group_names[g],
			      WIFEXITED(st) ? "status" : "signal",
			      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
			      gr->c->failed ? gr->c->msg : "it left no message");
	}
	gr->nproc = 0;
	munmap(gr->c, sizeof(struct ctl));
	gr->c = NULL;
}

static void sleep_for(double s)
{
	struct timespec ts;

	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* One cell: system s, `procs` workers, workload wl, for `secs`. ops/s. */
static double cell(unsigned s, unsigned wl, unsigned procs, double secs, uint64_t seed)
{
	unsigned g = sys[s].group;
	struct group *gr = &grp[g];
	struct ctl *c = gr->c;
	double total = 0;

	c->ready = 0;
	c->done = 0;
	__atomic_store_n(&c->go, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
	for (unsigned k = 0; k < procs; k++)
		post(gr, k, CMD_RUN, CMD_WL(wl, sys[s].mode), splitmix(seed + k));
	group_await(g, &c->ready, procs, 60, "starting a cell");
	__atomic_store_n(&c->go, 1, __ATOMIC_RELEASE);
	futex_wake(&c->go);
	sleep_for(secs);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	group_await(g, &c->done, procs, 120, "ending a cell");
	for (unsigned k = 0; k < procs; k++)
		if (c->w[k].ns)
			total += (double)c->w[k].ops * 1e9 / (double)c->w[k].ns;
	return total;
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

/* "10k,1M" into out[]; false on anything else, or a value not in [1, max]. */
static bool numbers(const char *arg, uint32_t *out, unsigned *count, uint64_t max)
{
	char buf[256], *save = NULL;

	*count = 0;
	/* strtok_r() would skip empty items: refuse them here. */
	if (strlen(arg) >= sizeof(buf) || arg[0] == ',' || strstr(arg, ",,"))
		return false;
	strcpy(buf, arg);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t mult = 1;
		char *end;
		unsigned long long v;

		if (*count == MAX_LIST || *t < '0' || *t > '9')
			return false;
		errno = 0;
		v = strtoull(t, &end, 10);
		if (*end == 'k' || *end == 'K')
			mult = 1000, end++;
		else if (*end == 'm' || *end == 'M')
			mult = 1000000, end++;
		if (errno || *end || v == 0 || v > max / mult)
			return false;
		out[(*count)++] = (uint32_t)(v * mult);
	}
	return *count > 0 && arg[strlen(arg) - 1] != ',';
}

/* "a,b" of the names in `names` into on[]. */
static bool choose(const char *arg, const char *const *names, const char *const *alt,
		   unsigned n, bool *on)
{
	char buf[256], *save = NULL;
	bool any = false;

	if (strlen(arg) >= sizeof(buf) || arg[0] == ',' || strstr(arg, ",,") ||
	    arg[strlen(arg) - 1] == ',')
		return false;
	strcpy(buf, arg);
	for (unsigned i = 0; i < n; i++)
		on[i] = false;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned i = 0;

		while (i < n && strcmp(t, names[i]) != 0 && !(alt && strcmp(t, alt[i]) == 0))
			i++;
		if (i == n)
			return false;
		on[i] = any = true;
	}
	return any;
}

static double seconds_arg(const char *opt, const char *arg)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end || !(v >= 0.01 && v <= 600))
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
		char *end;

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
			if (!numbers(optarg, ccfg.names, &ccfg.nnames, 53000000))
				bad_usage("bad --names '%s' (1 to 53M each, comma-separated)",
					  optarg);
			break;
		case O_PROCS:
			if (!numbers(optarg, ccfg.procs, &ccfg.nprocs, MAX_WORKERS))
				bad_usage("bad --procs '%s' (1 to %d each)", optarg, MAX_WORKERS);
			break;
		case O_SECONDS:
			ccfg.seconds = seconds_arg("--seconds", optarg);
			break;
		case O_SLOW:
			ccfg.slow_seconds = seconds_arg("--slow-seconds", optarg);
			break;
		case O_REPEAT: {
			unsigned long v = strtoul(optarg, &end, 10);

			if (end == optarg || *end || v < 1 || v > 64)
				bad_usage("bad --repeat '%s' (1 to 64)", optarg);
			ccfg.repeat = (unsigned)v;
			break;
		}
		case O_WL:
			if (!choose(optarg, wl_short, wl_names, NWL, ccfg.wl_on))
				bad_usage("bad --workloads '%s' (hit, miss, churn, mix)", optarg);
			break;
		case O_SYS:
			if (!choose(optarg, sysnames, NULL, NSYS, ccfg.sys_on))
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

	b.capacity = b.n + b.n / 4 + 4096; /* as bench_registry sizes distreg */
	b.nbuckets = (unsigned long)pow2_at_least(b.capacity);
	if (make_names(b.n, maxp))
		fatal("out of memory for %" PRIu32 " names", b.n);
	snprintf(segment, sizeof(segment), "bench-cmp-%d-%" PRIu32, (int)getpid(), b.n);
	snprintf(segment_path, sizeof(segment_path), "/dev/shm/distreg.%s", segment);
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
		t = group_start(g, maxp, &b);
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
		group_stop(g);
	if (segment[0]) {
		int rc = dr_unlink(segment);

		/* No distreg group: no segment was made. */
		if (rc && !(rc == -ENOENT && !group_on(G_DR)))
			fatal("dr_unlink(%s): %s", segment, dr_strerror(rc));
		segment[0] = 0;
		segment_path[0] = 0;
	}
	for (unsigned w = 0; w < 2; w++)
		if (b.lmdb_dir[w][0])
			remove_tree(b.lmdb_dir[w]);
	nmade = before;
	free_names();
}

/* The run's randomness: the seed of the cells, the hash seed of cds_lfht and
 * of the rwlock table; and the value every registration stores. */
static uint64_t run_seed(void)
{
	static const char value[VALUE_LEN] = "ipc:///w/000042";
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = now_ns() * 0x9e3779b97f4a7c15ull + (uint64_t)getpid();
	lf_seed = splitmix(~seed);
	memcpy(value_bytes, value, sizeof(value));
	return seed;
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
	unsigned maxp = 1;
	uint64_t base_seed, wall0;
	double busy0 = 0, steal0 = 0, busy1, steal1;
	bool machine_ok;
	int rc, status = 0;

	parse_args(argc, argv);
	command_line(cmdline, sizeof(cmdline), argc, argv);
	for (unsigned i = 0; i < ccfg.nprocs; i++)
		maxp = ccfg.procs[i] > maxp ? ccfg.procs[i] : maxp;
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

	machine_ok = machine_cpu(&busy0, &steal0) == 0;
	wall0 = now_ns();
	for (unsigned ni = 0; ni < ccfg.nnames; ni++)
		run_block(ni, maxp, base_seed);
	redis_server_stop(&redis);

	if (machine_ok && machine_cpu(&busy1, &steal1) == 0) {
		/* Workers and server have been waited for: own_cpu() has them. */
		double secs = (double)(now_ns() - wall0) / 1e9;
		double cpus = secs * (double)sysconf(_SC_NPROCESSORS_ONLN);
		double others = fmax(0, busy1 - busy0 - own_cpu()) / cpus,
		       steal = (steal1 - steal0) / cpus;

		printf("\nother load during the %.0f s run: %.0f%% of the CPUs busy with other "
		       "processes, %.0f%% stolen by the hypervisor%s\n", secs, 100 * others,
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

/*
 * common.h - the parent side that bench_registry and bench_compare share:
 * fatal errors, the worker groups (fork, post commands on the control page,
 * run a timed cell, stop and reap), the statistics of a cell's repeats, the
 * machine description and its load during a run, the option lists, the
 * run's seed and the distreg segment of the current block. common.c.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <distreg.h>

#include "bench.h"

/* ---------------------------------------------------------------------- */
/* Errors. */

/* The program's name, for messages ("bench_registry"). */
extern const char *bench_prog;
/* Run by fatal() before it exits: kill the workers, remove what was made. */
extern void (*bench_cleanup)(void);

/* "<bench_prog>: error: ..." on stderr, bench_cleanup(), exit(1). */
__attribute__((format(printf, 1, 2), noreturn)) void fatal(const char *fmt, ...);

/* ---------------------------------------------------------------------- */
/* Worker groups: a set of processes that share one control page. */

struct group {
	const char *name;         /* "distreg", ... for messages */
	struct ctl *c;            /* NULL when the group is not running */
	unsigned nslots;          /* workers that take commands */
	unsigned nproc;           /* processes forked */
	pid_t pid[MAX_WORKERS];
};

/* What a forked worker process runs; it must not return. */
typedef void (*group_child_fn)(struct group *g, unsigned idx, void *arg);

/* Map g's control page and fork nproc processes that each run
 * child(g, idx, arg) (with default signals, dying with the parent).
 * nslots workers take commands. Does not wait for their set-up. */
void group_start(struct group *g, const char *name, unsigned nslots, unsigned nproc,
		 group_child_fn child, void *arg);
/* Wait until *counter reaches want; fatal() if a worker process of g ends,
 * or (limit_s > 0) after limit_s seconds, saying `what` was under way. */
void group_await(struct group *g, uint32_t *counter, uint32_t want, double limit_s,
		 const char *what);
/* One command into worker k's slot, and wake it. */
void group_post(struct group *g, unsigned k, uint32_t cmd, uint32_t workload, uint64_t seed);
/*
 * One cell: workers 0..nworkers-1 of g run `workload` for `seconds`, from
 * the same start, each with its own seed derived from seed. Returns the
 * sum over the workers of ops / their own elapsed time, in ops/s. The
 * workers must report ready within start_limit_s and done within
 * end_limit_s after the stop (0: no limit).
 */
double group_cell(struct group *g, uint32_t workload, unsigned nworkers, double seconds,
		  uint64_t seed, double start_limit_s, double end_limit_s);
/* CMD_EXIT to every worker, reap them (fatal() if one ended badly), unmap
 * the control page. Nothing if g is not running. */
void group_stop(struct group *g);
/* On a way out: SIGKILL g's processes and reap them. */
void group_kill(struct group *g);
/* In a signal handler: SIGKILL g's processes, nothing else. */
void group_kill_async(const struct group *g);

/* Sleep s seconds on CLOCK_MONOTONIC, through EINTR. */
void sleep_s(double s);

/* ---------------------------------------------------------------------- */
/* The repeats of a cell. */

struct stat3 {
	double med, lo, hi;
};

/* The n repeats at v (NAN where not run): median, min, max. false, with
 * all three NAN, if none ran. */
bool repeat_stats(const double *v, unsigned n, struct stat3 *out);
/* qsort() order of doubles. */
int cmp_double(const void *a, const void *b);
/* n results, all NAN; NULL when out of memory. */
double *results_new(size_t n);
/* Index of x in v[0..n), -1 if not there. */
int list_index(const uint32_t *v, unsigned n, uint32_t x);
/* The largest of v[0..n), 1 at the least. */
uint32_t list_max(const uint32_t *v, unsigned n);
/* "10000,1000000" */
void print_list(FILE *f, const uint32_t *v, unsigned n);

/* ---------------------------------------------------------------------- */
/* The machine. */

struct machine {
	long ncpu;                /* online */
	char cpu[256];            /* /proc/cpuinfo's model name */
	char kernel[128];         /* uname's release, "?" if unknown */
	char date[64];            /* now, local time */
	double mem;               /* physical memory, bytes */
};

/* What the top of the output says of the machine; cpu is unknown_cpu if
 * /proc/cpuinfo does not say. */
void machine_describe(struct machine *m, const char *unknown_cpu);

/* The load of other processes and of the hypervisor during a run. */
struct load_probe {
	bool ok;
	double busy, steal;       /* machine CPU-s at the start */
	uint64_t t0;
};

struct load {
	double wall;              /* seconds since load_begin() */
	long ncpu;
	double other;             /* CPU-s of other processes, >= 0 */
	double steal;             /* CPU-s stolen by the hypervisor */
};

void load_begin(struct load_probe *p);
/* Once every worker has been waited for (their CPU time is then ours).
 * false if /proc/stat could not be read at either end. */
bool load_end(const struct load_probe *p, struct load *out);

/* ---------------------------------------------------------------------- */
/* Options. */

/* "10k,1M" into out[] (at most MAX_LIST); false on anything else: an empty
 * item, a value not in [1, max]. */
bool parse_numbers(const char *arg, uint32_t *out, unsigned *count, uint64_t max);
/* "a,b" of names[] (or of alt[], if not NULL) into on[0..n); false on an
 * unknown or empty item. */
bool parse_choice(const char *arg, const char *const *names, const char *const *alt,
		  unsigned n, bool *on);
/* A whole number in [lo, hi]. */
bool parse_count(const char *arg, unsigned long lo, unsigned long hi, unsigned *out);
/* A number of seconds; the caller checks the range. */
bool parse_real(const char *arg, double *out);

/* ---------------------------------------------------------------------- */
/* The run. */

/* The run's random seed; also sets lf_seed and value_bytes. */
uint64_t run_seed(void);

/* distreg's capacity for n names, as both benchmarks size it. */
static inline uint32_t capacity_for(uint32_t n)
{
	return n + n / 4 + 4096;
}

/* The distreg segment of the current block and the file behind it: the
 * signal handlers unlink segment_path. */
extern char segment[DR_SEGMENT_MAX + 1];
extern char segment_path[PATH_MAX];
/* Name the segment (printf-style) and its file. */
void segment_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* dr_unlink() it: 0 (then it is forgotten), or dr_unlink()'s error (it is
 * kept, for the message and for the clean-up). 0 if there is none. */
int segment_remove(void);
/* Forget it without removing it. */
void segment_clear(void);
/* On a way out: remove it if there is one, whatever the outcome. */
void segment_drop(void);
/* In a signal handler: unlink its file (async-signal-safe). */
void segment_unlink_async(void);

#endif /* BENCH_COMMON_H */

/*
 * bench.h - what the files of the registry benchmark share: the names, the
 * control page that the parent and the workers (processes or threads) share
 * through MAP_SHARED, the configuration and the results.
 *
 *   bench_registry.c  options, the parent: starts the workers, runs the cells
 *   workers.c         the names, both implementations' operations and loops,
 *                     the worker processes and threads, the command loop
 *                     every worker serves (ctl_serve)
 *   report.c          the header, the table, the targets
 *   common.c          what bench_compare's parent uses too (common.h): the
 *                     worker groups, fatal(), statistics of the repeats, the
 *                     machine and its load, option lists
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* One name per half cache line: a length byte and up to 30 bytes. */
#define NAME_STRIDE 32
/* A small value, like the socket address a worker registers. */
#define VALUE_LEN 16
/* Churn names per worker; a power of two so picking one is a mask. */
#define CHURN_NAMES 4096u
/* Ops between two looks at the stop flag: one shared load per 32 ops. */
#define BATCH 32
#define MAX_WORKERS 64
#define MAX_LIST 16
/* 10% of 2^32: a draw below it makes a mix op a reg+unreg pair. */
#define MIX_CHURN_CUT 429496730u
enum { WL_HIT, WL_MISS, WL_CHURN, WL_MIX, NWL };
enum { IMPL_DR, IMPL_LF, NIMPL };
enum { CMD_RUN = 1, CMD_EXIT = 2 };

/* "whereis-hit", ... as printed; and "hit", ... as --workloads takes them. */
extern const char *const wl_names[NWL];
extern const char *const wl_short[NWL];
extern const char *const impl_names[NIMPL];

struct bname {
	uint8_t len;
	char s[NAME_STRIDE - 1];
} __attribute__((aligned(NAME_STRIDE)));

/* ---------------------------------------------------------------------- */
/* The control page, MAP_SHARED between the parent and every worker. */

/* One worker's mailbox and results, on its own cache line. */
struct wslot {
	uint32_t gen;             /* futex; the parent bumps it per command */
	uint32_t cmd;             /* CMD_*, written before gen */
	uint32_t workload;
	uint32_t pad;
	uint64_t seed;
	uint64_t ops;             /* written by the worker before it counts done */
	uint64_t ns;              /* the worker's own elapsed time */
	uint64_t sink;            /* value bytes seen: keeps lookups observable */
} __attribute__((aligned(64)));

struct ctl {
	uint32_t setup;           /* futex counters, bumped by workers */
	uint32_t ready;
	uint32_t done;
	uint32_t go;              /* futex; 1 opens the start barrier */
	uint32_t failed;          /* the first failing worker claims msg */
	double preload_s;         /* time to preload the names */
	uint64_t segment_bytes;   /* distreg: dr_stats().segment_bytes */
	char msg[512];
	uint32_t stop __attribute__((aligned(64))); /* polled in the hot loops */
	struct wslot w[MAX_WORKERS];
};

/* ---------------------------------------------------------------------- */
/* workers.c */

/* The names, made once by the parent before it forks; read-only after. */
extern struct bname *hit_names, *miss_names, *churn_names;
/* The value every registration stores. */
extern unsigned char value_bytes[VALUE_LEN];
/* cds_lfht's hash seed (distreg's is per segment). */
extern uint64_t lf_seed;

uint64_t now_ns(void);
uint64_t splitmix(uint64_t x);
void futex_wait(uint32_t *addr, uint32_t val, long timeout_ns);
void futex_wake(uint32_t *addr);

/* The worker side of the control page, for every system's workers. */
/* Add one to a counter of the page and wake its waiters. */
void ctl_count(uint32_t *ctr);
/* Sleep until *word is no longer `seen`; returns what it is now. */
uint32_t ctl_wait_change(uint32_t *word, uint32_t seen);
/* Leave a message for the parent (the first failing worker of a group gets
 * the slot) and end this worker's process. */
__attribute__((format(printf, 2, 3), noreturn)) void ctl_fail(struct ctl *c, const char *fmt, ...);
/* A cell of one worker: run `workload` (the command's word) from `seed`
 * until the stop flag; *ops and *sink what it did. It reports its own
 * failures (ctl_fail), so it returns only when it succeeded. */
typedef void (*ctl_run_fn)(void *w, uint32_t workload, uint64_t seed, uint64_t *ops,
			   uint64_t *sink);
/* After a cell, untimed: let deferred work of the cell finish. */
typedef void (*ctl_settle_fn)(void *w, uint32_t workload);
/* Serve the commands of slot idx of c until CMD_EXIT: count ready, wait for
 * the start barrier, time run(), settle (if not NULL), report, count done. */
void ctl_serve(struct ctl *c, unsigned idx, ctl_run_fn run, ctl_settle_fn settle, void *w);

/* n hit and n miss names, CHURN_NAMES per worker. 0 or -ENOMEM. */
int make_names(uint32_t n, unsigned nworkers);
void free_names(void);
/* A distreg worker process after fork(): opens the segment (worker 0 also
 * preloads nnames names), then serves c until CMD_EXIT. */
__attribute__((noreturn)) void dr_worker_main(struct ctl *c, unsigned idx, const char *segment,
					      uint32_t capacity, uint32_t nnames);
/* The cds_lfht process after fork(): builds and preloads the table, then
 * serves c with nworkers threads until CMD_EXIT. */
__attribute__((noreturn)) void lf_proc_main(struct ctl *c, unsigned nworkers, uint32_t nnames,
					    unsigned long nbuckets);

/* ---------------------------------------------------------------------- */
/* report.c */

struct config {
	uint32_t names[MAX_LIST];
	unsigned nnames;
	uint32_t procs[MAX_LIST];
	unsigned nprocs;
	double seconds;
	unsigned repeat;
	bool wl_on[NWL];
	bool impl_on[NIMPL];
	const char *csv;
};

extern struct config cfg;
/* Mops/s of every run: [names][workload][procs][impl][repeat], NAN if not run. */
extern double *results;

double *res_at(unsigned ni, unsigned wl, unsigned pi, unsigned impl, unsigned rep);
/* Machine, date, configuration and method, at the top of the output. */
void print_header(void);
/* The table, the scaling, the spread, the targets, and the CSV file if asked
 * for. skipped[ni]: names[ni] could not be run. 0, or -1 if the CSV failed. */
int report(const bool *skipped);

static inline uint64_t pow2_at_least(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

#endif /* BENCH_H */

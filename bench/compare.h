/*
 * compare.h - bench_compare: libdistreg side by side with what a user would
 * pick instead. It builds on bench.h (the names, the control page and its
 * command protocol) and common.h (the worker groups, statistics, machine
 * description and option lists that bench_registry uses too), and runs
 * libdistreg and cds_lfht with the workers of workers.c unchanged; the
 * other systems have their workers here:
 *
 *   bench_compare.c  options, the parent: forks the worker groups, runs the
 *                    cells, cleans up on every way out
 *   cmp_kv.c         the worker side shared by the new systems: their run in
 *                    ctl_serve(), failure messages, the PRNG; the timed loop
 *                    is below
 *   cmp_rwlock.c     a chained hash table in a memfd behind a process-shared
 *                    pthread rwlock
 *   cmp_lmdb.c       LMDB, one env per process, in /dev/shm
 *   cmp_redis.c      Redis over a Unix socket with hiredis (its own server)
 *   cmp_report.c     header, table, CSV, plot, targets
 */
#ifndef COMPARE_H
#define COMPARE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common.h"

/* The systems measured, in the order of the table. */
enum {
	SYS_DR,         /* libdistreg, one process per worker */
	SYS_LF,         /* cds_lfht, one thread per worker in one process */
	SYS_RW,         /* hash table in a memfd behind a shared rwlock */
	SYS_LMDB,       /* LMDB, MDB_NOSYNC | MDB_NOMETASYNC */
	SYS_LMDB_WM,    /* the same with MDB_WRITEMAP */
	SYS_REDIS,      /* Redis, one command per round trip */
	SYS_REDIS_PIPE, /* Redis, BATCH operations per round trip */
	NSYS
};

/* The worker groups: a group is a set of processes with one control page.
 * Both Redis systems are served by the same clients and server; the mode
 * travels in the command. */
enum { G_DR, G_LF, G_RW, G_LMDB, G_LMDB_WM, G_REDIS, NGROUP };

struct sysdesc {
	const char *name;  /* as printed and in the CSV */
	const char *what;  /* one line for the header */
	unsigned group;
	unsigned mode;     /* passed to the group's workers, see CMD_WL */
	bool slow;         /* cells last --slow-seconds */
};

extern const struct sysdesc sys[NSYS];

/* The workload word of a command to a kv worker: workload and mode. */
#define CMD_WL(wl, mode) ((uint32_t)(wl) | (uint32_t)(mode) << 8)
#define CMD_WL_WORKLOAD(x) ((x)&0xffu)
#define CMD_WL_MODE(x) ((x) >> 8)

/* Redis pipelined mode: BATCH operations per round trip (a register +
 * unregister pair is one operation, two commands). */
#define PIPE_DEPTH BATCH

/* ---------------------------------------------------------------------- */
/* The worker side of the new systems (cmp_kv.c). */

struct kv_worker {
	struct ctl *c;
	unsigned idx;
	uint32_t nnames;
	const struct bname *hit, *miss, *churn;
	uint64_t sink;        /* value bytes seen: keeps lookups observable */
	const char *sysname;  /* for messages */
	char err[384];        /* what failed, for the parent */
};

/*
 * One system's operations. Each returns 0, or -1 after kv_error() said what
 * went wrong. lookup() checks the outcome itself: present says whether the
 * name must be found. A pipelined system queues the operations and checks
 * their replies in flush(), called after every BATCH operations; flush is
 * NULL for a system whose calls complete at once.
 */
struct kv_ops {
	int (*lookup)(struct kv_worker *w, const struct bname *n, bool present);
	int (*insert)(struct kv_worker *w, const struct bname *n);
	int (*remove)(struct kv_worker *w, const struct bname *n);
	int (*flush)(struct kv_worker *w);
};

/* Runs workload `wl` until the stop flag; *ops: operations done. */
typedef int (*kv_run_fn)(struct kv_worker *w, unsigned wl, unsigned mode, uint64_t seed,
			 uint64_t *ops);

void kv_worker_init(struct kv_worker *w, struct ctl *c, unsigned idx, uint32_t nnames,
		    const char *sysname);
/* Record what failed in w->err; returns -1. */
int kv_error(struct kv_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Leave a message on the control page for the parent and _exit(1). */
__attribute__((noreturn, format(printf, 2, 3))) void kv_die(struct kv_worker *w,
							    const char *fmt, ...);
/* Workers other than 0 wait here until worker 0 has set up (created and
 * preloaded the store); worker 0 calls kv_setup_done() when it has. */
void kv_wait_first(struct kv_worker *w);
void kv_setup_done(struct kv_worker *w, double preload_s);
/* Serve the parent's commands until CMD_EXIT. */
void kv_serve(struct kv_worker *w, kv_run_fn run);

/* wyrand (Wang Yi): a 64-bit draw per call, one multiply. */
static inline uint64_t kv_draw(uint64_t *state)
{
	__extension__ typedef unsigned __int128 u128;
	u128 m;

	*state += 0xa0761d6478bd642full;
	m = (u128)*state * (*state ^ 0xe7037ed1a0b428dbull);
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

/* One operation of workload wl on the draw x: the same choices as the
 * distreg and cds_lfht loops of workers.c (names uniform at random, mix
 * churns when the low 32 bits fall under MIX_CHURN_CUT). */
static inline __attribute__((always_inline)) int
kv_op(const struct kv_ops *o, struct kv_worker *w, unsigned wl, uint64_t x)
{
	uint32_t pick = (uint32_t)(((x >> 32) * w->nnames) >> 32);

	if (wl == WL_CHURN || (wl == WL_MIX && (uint32_t)x < MIX_CHURN_CUT)) {
		const struct bname *n = &w->churn[(x >> 32) & (CHURN_NAMES - 1)];

		if (o->insert(w, n))
			return -1;
		return o->remove(w, n);
	}
	if (wl == WL_MISS)
		return o->lookup(w, &w->miss[pick], false);
	return o->lookup(w, &w->hit[pick], true);
}

/*
 * The timed loop of the new systems. Instantiated per system with a
 * constant `o`, so the compiler inlines the operations. It looks at the
 * stop flag once per BATCH operations, as the loops of workers.c do.
 */
static inline __attribute__((always_inline)) int
kv_loop(const struct kv_ops *o, struct kv_worker *w, unsigned wl, uint64_t seed, uint64_t *ops)
{
	const uint32_t *stop = &w->c->stop;
	uint64_t state = seed, n = 0;

	while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		for (unsigned k = 0; k < BATCH; k++)
			if (kv_op(o, w, wl, kv_draw(&state)))
				goto fail;
		if (o->flush && o->flush(w))
			goto fail;
		n += BATCH;
	}
	*ops = n;
	return 0;
fail:
	*ops = n;
	return -1;
}

/* ---------------------------------------------------------------------- */
/* The systems' worker processes: each serves c until CMD_EXIT, then exits.
 * Worker 0 creates the store and preloads nnames names. */

/* The rwlock table lives in memfd `fd`, of rw_table_bytes(capacity) bytes. */
size_t rw_table_bytes(uint32_t capacity);
__attribute__((noreturn)) void rw_worker_main(struct ctl *c, unsigned idx, int fd,
					      uint32_t capacity, uint32_t nnames);
/* LMDB env directory `dir`, which exists and is empty. */
__attribute__((noreturn)) void lmdb_worker_main(struct ctl *c, unsigned idx, const char *dir,
						bool writemap, uint32_t nnames);
/* "LMDB 0.9.24: ..." */
const char *lmdb_version(void);

/* Redis: the server (parent side) and the clients. */
struct redis_server {
	pid_t pid;
	char dir[256];
	char sock[300];
	char log[300];
	char version[32];
};
/* 0 started; -ENOENT redis-server is not installed (nothing started); -1
 * failed, with the reason in msg. */
int redis_server_start(struct redis_server *s, const char *dir, char *msg, size_t len);
/* SHUTDOWN NOSAVE, then SIGKILL if it lingers. Safe to call twice. */
void redis_server_stop(struct redis_server *s);
__attribute__((noreturn)) void redis_worker_main(struct ctl *c, unsigned idx, const char *sock,
						 uint32_t nnames);
/* "hiredis 0.14.1" */
const char *hiredis_version(void);

/* ---------------------------------------------------------------------- */
/* cmp_report.c */

struct cmp_config {
	uint32_t names[MAX_LIST];
	unsigned nnames;
	uint32_t procs[MAX_LIST];
	unsigned nprocs;
	double seconds, slow_seconds;
	unsigned repeat;
	bool wl_on[NWL];
	bool sys_on[NSYS];
	const char *csv, *png;
	bool shrt;
};

extern struct cmp_config ccfg;
/* ops/s of every cell and repeat, NAN when not run. */
double *cmp_at(unsigned ni, unsigned wl, unsigned pi, unsigned s, unsigned rep);
int cmp_results_alloc(void);
/* Machine, versions, method: the top of the output (and of RESULTS). */
void cmp_print_header(FILE *f, const char *cmdline, const char *redis_version);
/* The table, the scaling and the targets on stdout. */
void cmp_print_report(void);
/* 0, or -1 with a message on stderr. */
int cmp_write_csv(const char *path);
/* Is prog an executable in $PATH? */
bool prog_in_path(const char *prog);
/* 0 written; 1 gnuplot is not installed (said on stdout); -1 failed. */
int cmp_plot(const char *png, const char *tmpdir);

#endif /* COMPARE_H */

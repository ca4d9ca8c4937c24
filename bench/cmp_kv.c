/*
 * cmp_kv.c - the worker side that the systems new in bench_compare share:
 * their place in the command loop of workers.c (ctl_serve(), which the
 * distreg and cds_lfht workers use too), failure messages for the parent,
 * and the start-up order (worker 0 first).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compare.h"

void kv_worker_init(struct kv_worker *w, struct ctl *c, unsigned idx, uint32_t nnames,
		    const char *sysname)
{
	memset(w, 0, sizeof(*w));
	w->c = c;
	w->idx = idx;
	w->nnames = nnames;
	w->hit = hit_names;
	w->miss = miss_names;
	w->churn = churn_names + (size_t)idx * CHURN_NAMES;
	w->sysname = sysname;
}

int kv_error(struct kv_worker *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	return -1;
}

void kv_die(struct kv_worker *w, const char *fmt, ...)
{
	char why[sizeof(w->c->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ctl_fail(w->c, "%s worker %u: %s", w->sysname, w->idx, why);
}

void kv_wait_first(struct kv_worker *w)
{
	if (w->idx != 0)
		ctl_wait_change(&w->c->setup, 0);
}

void kv_setup_done(struct kv_worker *w, double preload_s)
{
	if (w->idx == 0)
		w->c->preload_s = preload_s;
	ctl_count(&w->c->setup);
}

/* The system's run function and its worker, for ctl_serve(). */
struct kv_cell {
	struct kv_worker *w;
	kv_run_fn run;
};

static void kv_run(void *arg, uint32_t word, uint64_t seed, uint64_t *ops, uint64_t *sink)
{
	const struct kv_cell *k = arg;
	struct kv_worker *w = k->w;
	unsigned wl = CMD_WL_WORKLOAD(word);

	w->sink = 0;
	if (k->run(w, wl, CMD_WL_MODE(word), seed, ops))
		kv_die(w, "%s: %s", wl_names[wl], w->err);
	*sink = w->sink;
}

void kv_serve(struct kv_worker *w, kv_run_fn run)
{
	struct kv_cell k = { w, run };

	ctl_serve(w->c, w->idx, kv_run, NULL, &k);
}

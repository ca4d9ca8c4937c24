/*
 * cmp_kv.c - the worker side that the systems new in bench_compare share:
 * the command loop on the control page of bench.h (the protocol the
 * distreg and cds_lfht workers of workers.c follow), failure messages for
 * the parent, and the start-up order (worker 0 first).
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
	struct ctl *c = w->c;
	va_list ap;

	/* The first failing worker of the group gets the message slot. */
	if (!__atomic_exchange_n(&c->failed, 1, __ATOMIC_ACQ_REL)) {
		int n = snprintf(c->msg, sizeof(c->msg), "%s worker %u: ", w->sysname, w->idx);

		if (n > 0 && (size_t)n < sizeof(c->msg)) {
			va_start(ap, fmt);
			vsnprintf(c->msg + n, sizeof(c->msg) - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	_exit(1);
}

static void bump(uint32_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELEASE);
	futex_wake(counter);
}

/* Sleep until *word is no longer `seen`. */
static uint32_t wait_change(uint32_t *word, uint32_t seen)
{
	uint32_t v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == seen)
		futex_wait(word, seen, 0);
	return v;
}

void kv_wait_first(struct kv_worker *w)
{
	if (w->idx != 0)
		wait_change(&w->c->setup, 0);
}

void kv_setup_done(struct kv_worker *w, double preload_s)
{
	if (w->idx == 0)
		w->c->preload_s = preload_s;
	bump(&w->c->setup);
}

void kv_serve(struct kv_worker *w, kv_run_fn run)
{
	struct ctl *c = w->c;
	struct wslot *me = &c->w[w->idx];
	uint32_t gen = 0;

	for (;;) {
		uint64_t t0, n = 0;
		unsigned wl, mode;

		gen = wait_change(&me->gen, gen);
		if (me->cmd == CMD_EXIT)
			return;
		wl = CMD_WL_WORKLOAD(me->workload);
		mode = CMD_WL_MODE(me->workload);
		w->sink = 0;
		bump(&c->ready);
		wait_change(&c->go, 0);
		t0 = now_ns();
		if (run(w, wl, mode, me->seed, &n))
			kv_die(w, "%s: %s", wl_names[wl], w->err);
		me->ns = now_ns() - t0;
		me->ops = n;
		me->sink = w->sink;
		bump(&c->done);
	}
}

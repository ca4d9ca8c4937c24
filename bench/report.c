/*
 * report.c - what the registry benchmark prints: the machine and the method
 * at the top; at the end the table of medians (one row per workload, number
 * of names and of workers), the scaling with the number of workers, the
 * spread of the repeats and the targets; and the same rows as CSV.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct config cfg;
double *results;

double *res_at(unsigned ni, unsigned wl, unsigned pi, unsigned impl, unsigned rep)
{
	size_t i = (((ni * NWL + wl) * (size_t)cfg.nprocs + pi) * NIMPL + impl) * cfg.repeat + rep;
	return &results[i];
}

/* Median over the repeats, NAN if the cell was not run. */
static double median(unsigned ni, unsigned wl, unsigned pi, unsigned impl)
{
	struct stat3 st;

	repeat_stats(res_at(ni, wl, pi, impl, 0), cfg.repeat, &st);
	return st.med;
}

static int proc_index(uint32_t p)
{
	return list_index(cfg.procs, cfg.nprocs, p);
}

void print_header(void)
{
	struct machine m;

	machine_describe(&m, "unknown");
	printf("bench_registry: libdistreg vs liburcu cds_lfht (urcu-memb)\n");
	printf("machine: %ld CPUs online, %s, Linux %s\n", m.ncpu, m.cpu, m.kernel);
	printf("date:    %s\n", m.date);
	printf("config:  names ");
	print_list(stdout, cfg.names, cfg.nnames);
	printf("; procs ");
	print_list(stdout, cfg.procs, cfg.nprocs);
	printf("; %.2f s per cell; median of %u\n", cfg.seconds, cfg.repeat);
	printf("method:  names of 18-19 bytes, %d-byte values, hash XXH3_64bits_withSeed on both\n"
	       "         sides, buckets = power of two >= distreg capacity (names*1.25+4096);\n"
	       "         distreg: one process per worker, forked before dr_open; cds_lfht: one\n"
	       "         thread per worker in one process. ns/op is per worker (elapsed / ops);\n"
	       "         reg+unreg counts one register+unregister pair as one op.\n",
	       VALUE_LEN);
	for (unsigned i = 0; i < cfg.nprocs; i++)
		if (cfg.procs[i] > (uint32_t)m.ncpu)
			printf("warning: %" PRIu32 " workers on %ld CPUs: oversubscribed\n",
			       cfg.procs[i], m.ncpu);
	printf("\n");
	fflush(stdout);
}

static void fmt_num(char *buf, size_t len, double v, int prec)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", prec, v);
}

/* Np/1p throughput of one implementation, NAN when not measured. */
static double scaling(unsigned ni, unsigned wl, unsigned pi, unsigned impl)
{
	int p1 = proc_index(1);

	if (p1 < 0 || cfg.procs[pi] == 1)
		return NAN;
	return median(ni, wl, pi, impl) / median(ni, wl, (unsigned)p1, impl);
}

/* (max - min) / median of a cell's repeats; 0 with one repeat, NAN if the
 * cell was not run. */
static double spread(unsigned ni, unsigned wl, unsigned pi, unsigned impl)
{
	struct stat3 st;

	return repeat_stats(res_at(ni, wl, pi, impl, 0), cfg.repeat, &st)
		       ? (st.hi - st.lo) / st.med
		       : NAN;
}

struct tally {
	unsigned met, tie, total;
};

enum verdict { MISSED, MET, TIE };

static void target(struct tally *t, enum verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void target(struct tally *t, enum verdict v, const char *fmt, ...)
{
	va_list ap;

	t->total++;
	t->met += v == MET;
	t->tie += v == TIE;
	printf("  %-7s ", v == MET ? "met" : v == TIE ? "tie" : "MISSED");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int report(const bool *skipped)
{
	FILE *csv = NULL;
	struct tally t = { 0, 0, 0 };
	bool any_scaling = false;

	if (cfg.csv) {
		csv = fopen(cfg.csv, "w");
		if (!csv) {
			fprintf(stderr, "bench_registry: error: cannot write %s: %s\n", cfg.csv,
				strerror(errno));
			return -1;
		}
		fprintf(csv, "workload,names,procs,distreg_ns_per_op,distreg_mops,"
			     "cds_lfht_ns_per_op,cds_lfht_mops,ratio,distreg_scaling,"
			     "cds_lfht_scaling\n");
	}

	printf("%-13s %8s %5s %14s %14s %15s %15s %8s\n", "workload", "names", "procs",
	       "distreg ns/op", "distreg Mops/s", "cds_lfht ns/op", "cds_lfht Mops/s",
	       "ratio");
	for (unsigned wl = 0; wl < NWL; wl++) {
		if (!cfg.wl_on[wl])
			continue;
		for (unsigned ni = 0; ni < cfg.nnames; ni++) {
			for (unsigned pi = 0; pi < cfg.nprocs; pi++) {
				double d = median(ni, wl, pi, IMPL_DR), l = median(ni, wl, pi, IMPL_LF);
				double p = cfg.procs[pi];
				char a[32], b[32], c[32], e[32], r[32];

				if (skipped[ni]) {
					printf("%-13s %8" PRIu32 " %5" PRIu32 "   skipped (see above)\n",
					       wl_names[wl], cfg.names[ni], cfg.procs[pi]);
					continue;
				}
				fmt_num(a, sizeof(a), p * 1e3 / d, 1);
				fmt_num(b, sizeof(b), d, 3);
				fmt_num(c, sizeof(c), p * 1e3 / l, 1);
				fmt_num(e, sizeof(e), l, 3);
				fmt_num(r, sizeof(r), d / l, 2);
				printf("%-13s %8" PRIu32 " %5" PRIu32 " %14s %14s %15s %15s %8s\n",
				       wl_names[wl], cfg.names[ni], cfg.procs[pi], a, b, c, e, r);
				if (csv) {
					char sd[32], sl[32];

					fmt_num(sd, sizeof(sd), scaling(ni, wl, pi, IMPL_DR), 3);
					fmt_num(sl, sizeof(sl), scaling(ni, wl, pi, IMPL_LF), 3);
					fprintf(csv, "%s,%" PRIu32 ",%" PRIu32 ",%s,%s,%s,%s,%s,%s,%s\n",
						wl_names[wl], cfg.names[ni], cfg.procs[pi],
						isnan(d) ? "" : a, isnan(d) ? "" : b,
						isnan(l) ? "" : c, isnan(l) ? "" : e,
						isnan(d / l) ? "" : r,
						isnan(scaling(ni, wl, pi, IMPL_DR)) ? "" : sd,
						isnan(scaling(ni, wl, pi, IMPL_LF)) ? "" : sl);
				}
			}
		}
	}

	for (unsigned pi = 0; pi < cfg.nprocs; pi++)
		if (cfg.procs[pi] != 1 && proc_index(1) >= 0)
			any_scaling = true;
	if (any_scaling) {
		printf("\nscaling (throughput with N workers / with 1):\n");
		printf("%-13s %8s %5s %14s %15s\n", "workload", "names", "procs", "distreg",
		       "cds_lfht");
		for (unsigned wl = 0; wl < NWL; wl++) {
			if (!cfg.wl_on[wl])
				continue;
			for (unsigned ni = 0; ni < cfg.nnames; ni++) {
				for (unsigned pi = 0; pi < cfg.nprocs; pi++) {
					char a[32], b[32];

					if (cfg.procs[pi] == 1 || skipped[ni])
						continue;
					fmt_num(a, sizeof(a), scaling(ni, wl, pi, IMPL_DR), 2);
					fmt_num(b, sizeof(b), scaling(ni, wl, pi, IMPL_LF), 2);
					printf("%-13s %8" PRIu32 " %4" PRIu32 "p %14s %15s\n",
					       wl_names[wl], cfg.names[ni], cfg.procs[pi], a, b);
				}
			}
		}
	}

	if (cfg.repeat > 1) {
		/* How far apart the repeats of a cell were: the noise floor
		 * against which the ratios and targets should be read. */
		double worst = -1, spreads[NWL * MAX_LIST * MAX_LIST * NIMPL];
		unsigned nsp = 0, wwl = 0, wni = 0, wpi = 0, wim = 0;

		for (unsigned wl = 0; wl < NWL; wl++)
			for (unsigned ni = 0; ni < cfg.nnames; ni++)
				for (unsigned pi = 0; pi < cfg.nprocs; pi++)
					for (unsigned im = 0; im < NIMPL; im++) {
						double sp;

						if (isnan(median(ni, wl, pi, im)))
							continue;
						sp = spread(ni, wl, pi, im);
						spreads[nsp++] = sp;
						if (sp > worst) {
							worst = sp;
							wwl = wl, wni = ni, wpi = pi, wim = im;
						}
					}
		if (nsp > 0) {
			qsort(spreads, nsp, sizeof(spreads[0]), cmp_double);
			printf("\nspread of the %u repeats, (max - min) / median: median cell %.0f%%, "
			       "worst %.0f%% (%s, %" PRIu32 " names, %" PRIu32 "p, %s)\n",
			       cfg.repeat, 100 * spreads[nsp / 2], 100 * worst, wl_names[wwl],
			       cfg.names[wni], cfg.procs[wpi], impl_names[wim]);
		}
	}

	printf("\ntargets:\n");
	for (unsigned wl = 0; wl < NWL; wl++) {
		double need = wl == WL_HIT || wl == WL_MISS ? 0.7 : wl == WL_CHURN ? 0.5 : NAN;

		if (isnan(need) || !cfg.wl_on[wl])
			continue;
		for (unsigned ni = 0; ni < cfg.nnames; ni++) {
			for (unsigned pi = 0; pi < cfg.nprocs; pi++) {
				double ratio = median(ni, wl, pi, IMPL_DR) / median(ni, wl, pi, IMPL_LF);

				if (isnan(ratio))
					continue;
				target(&t, ratio >= need ? MET : MISSED,
				       "%-12s %8" PRIu32 " names %2" PRIu32 "p: distreg/cds_lfht %.2f >= %.2f",
				       wl_names[wl], cfg.names[ni], cfg.procs[pi], ratio, need);
			}
		}
	}
	for (unsigned wl = WL_HIT; wl <= WL_MISS; wl++) {
		if (!cfg.wl_on[wl])
			continue;
		for (unsigned ni = 0; ni < cfg.nnames; ni++) {
			for (unsigned pi = 0; pi < cfg.nprocs; pi++) {
				double sd = scaling(ni, wl, pi, IMPL_DR), sl = scaling(ni, wl, pi, IMPL_LF);
				int p1 = proc_index(1);
				double noise = 0;
				enum verdict v;

				if (isnan(sd) || isnan(sl))
					continue;
				/* Below cds_lfht by less than the spread of the
				 * repeats of the cells compared: not a measurable
				 * difference either way. */
				for (unsigned im = 0; im < NIMPL; im++) {
					double a = spread(ni, wl, pi, im), b = spread(ni, wl, (unsigned)p1, im);
					noise = a > noise ? a : noise;
					noise = b > noise ? b : noise;
				}
				v = sd >= sl ? MET : (sl - sd) / sl <= noise ? TIE : MISSED;
				target(&t, v,
				       "%-12s %8" PRIu32 " names scaling %" PRIu32
				       "p/1p: distreg %.2f, cds_lfht %.2f",
				       wl_names[wl], cfg.names[ni], cfg.procs[pi], sd, sl);
			}
		}
	}
	if (t.total == 0)
		printf("  (none measurable with these options)\n");
	else
		printf("targets met: %u of %u; tied (below by less than the spread of the "
		       "repeats): %u\n", t.met, t.total, t.tie);

	if (csv && fclose(csv) != 0) {
		fprintf(stderr, "bench_registry: error: writing %s: %s\n", cfg.csv, strerror(errno));
		return -1;
	}
	return 0;
}

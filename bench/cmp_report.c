/*
 * cmp_report.c - what bench_compare prints and writes: the machine and the
 * method at the top; at the end the table (median ops/s, ns/op, min-max of
 * the repeats, how many times faster distreg is), the scaling from 1 to N
 * workers, the targets with PASS/MISS; the CSV file and the gnuplot PNG.
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
#include <sys/wait.h>
#include <unistd.h>

#include "compare.h"

#ifndef CMP_DISTREG_VERSION
#define CMP_DISTREG_VERSION "?"
#endif
#ifndef CMP_URCU_VERSION
#define CMP_URCU_VERSION "?"
#endif

struct cmp_config ccfg;
static double *res;

int cmp_results_alloc(void)
{
	res = results_new((size_t)ccfg.nnames * NWL * ccfg.nprocs * NSYS * ccfg.repeat);
	return res ? 0 : -1;
}

double *cmp_at(unsigned ni, unsigned wl, unsigned pi, unsigned s, unsigned rep)
{
	return &res[(((ni * NWL + wl) * (size_t)ccfg.nprocs + pi) * NSYS + s) * ccfg.repeat + rep];
}

/* The repeats of a cell: median, min, max; false if it did not run. */
static bool stats(unsigned ni, unsigned wl, unsigned pi, unsigned s, struct stat3 *out)
{
	return repeat_stats(cmp_at(ni, wl, pi, s, 0), ccfg.repeat, out);
}

static double med(unsigned ni, unsigned wl, unsigned pi, unsigned s)
{
	struct stat3 st;

	stats(ni, wl, pi, s, &st);
	return st.med;
}

/* (max - min) / median of a cell's repeats: its noise; 0 if not run. */
static double spread(unsigned ni, unsigned wl, unsigned pi, unsigned s)
{
	struct stat3 st;

	return stats(ni, wl, pi, s, &st) ? (st.hi - st.lo) / st.med : 0;
}

bool prog_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");

		if (n > 0 && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog) <
				     sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		p += n;
		p += *p == ':';
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* The header. */

void cmp_print_header(FILE *f, const char *cmdline, const char *redis_version)
{
	struct machine m;

	machine_describe(&m, "unknown CPU");
	fprintf(f, "bench_compare: libdistreg side by side with what users would pick instead\n");
	fprintf(f, "command:  %s\n", cmdline);
	fprintf(f, "machine:  %ld CPUs online, %s, %.0f GiB RAM, Linux %s\n", m.ncpu, m.cpu,
		m.mem / (1u << 30), m.kernel);
	fprintf(f, "date:     %s\n", m.date);
	fprintf(f, "versions: libdistreg %s, liburcu %s, %s, %s, redis-server %s\n",
		CMP_DISTREG_VERSION, CMP_URCU_VERSION, lmdb_version(), hiredis_version(),
		redis_version && *redis_version ? redis_version : "(not run)");
	fprintf(f, "config:   names ");
	print_list(f, ccfg.names, ccfg.nnames);
	fprintf(f, "; workers ");
	print_list(f, ccfg.procs, ccfg.nprocs);
	fprintf(f, "; %.2f s per cell (LMDB, Redis %.2f s); median of %u, min-max shown\n",
		ccfg.seconds, ccfg.slow_seconds, ccfg.repeat);
	fprintf(f, "systems:\n");
	for (unsigned s = 0; s < NSYS; s++)
		if (ccfg.sys_on[s])
			fprintf(f, "  %-14s %s\n", sys[s].name, sys[s].what);
	fprintf(f,
		"method:   the same names (18-19 bytes) and %d-byte values for all; one op is\n"
		"          a lookup, or a register+unregister pair (reg+unreg; 10%% of mix);\n"
		"          in-memory tables hash with XXH3_64bits_withSeed into the same number\n"
		"          of buckets; LMDB lookups renew+reset one read txn per lookup, writes\n"
		"          are one txn per register or unregister. ops/s is the sum over the\n"
		"          workers; ns/op is per worker (workers / ops/s).\n\n",
		VALUE_LEN);
	fflush(f);
}

/* ---------------------------------------------------------------------- */
/* Numbers as printed. */

static void fmt_rate(char *buf, size_t len, double v)
{
	static const char suffix[] = " kMG";
	int i = 0;

	if (isnan(v)) {
		snprintf(buf, len, "-");
		return;
	}
	while (v >= 999.5 && i < 3)
		v /= 1000, i++;
	snprintf(buf, len, v >= 99.95 ? "%.0f%c" : v >= 9.995 ? "%.1f%c" : "%.2f%c", v,
		 suffix[i]);
	if (suffix[i] == ' ')
		buf[strlen(buf) - 1] = 0;
}

static void fmt_ratio(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, v >= 99.5 ? "%.0f" : v >= 9.95 ? "%.1f" : "%.2f", v);
}

static int proc_index(uint32_t p)
{
	return list_index(ccfg.procs, ccfg.nprocs, p);
}

/* Throughput with procs[pi] workers over that with 1; NAN if unmeasured. */
static double scaling(unsigned ni, unsigned wl, unsigned pi, unsigned s)
{
	int one = proc_index(1);

	return one < 0 ? NAN : med(ni, wl, pi, s) / med(ni, wl, (unsigned)one, s);
}

/* ---------------------------------------------------------------------- */
/* Targets. */

struct verdicts {
	unsigned pass, miss, noise, skip;
};

/* Count and print a verdict; returns what to put at the end of the line.
 * A miss by less than `noise` (the largest spread of the repeats of the
 * cells compared) is within the noise of the measurement, and says so. */
static const char *verdict(struct verdicts *v, bool pass, double short_by, double noise)
{
	static char note[96];
	bool in_noise = !pass && short_by <= noise;

	v->pass += pass;
	v->miss += !pass;
	v->noise += in_noise;
	printf("  %s  ", pass ? "PASS" : "MISS");
	note[0] = 0;
	if (in_noise)
		snprintf(note, sizeof(note), " [short by %.0f%%: within the %.0f%% spread of the "
					     "repeats]", 100 * short_by, 100 * noise);
	return note;
}

/*
 * distreg against system `s` on workload wl: the ratio distreg/s in every
 * measured cell must be >= need. Prints the worst cell (and the best).
 * s == SYS_LMDB means the faster LMDB configuration, cell by cell.
 */
static void target_ratio(struct verdicts *v, const char *label, unsigned wl, unsigned s,
			 double need, bool only_10k_2p)
{
	double worst = INFINITY, best = -INFINITY, noise = 0;
	unsigned wn = 0, wp = 0;
	const char *note;
	char a[32], b[32];

	for (unsigned ni = 0; ni < ccfg.nnames; ni++) {
		for (unsigned pi = 0; pi < ccfg.nprocs; pi++) {
			unsigned other = s;
			double r;

			if (only_10k_2p && (ccfg.names[ni] != 10000 || ccfg.procs[pi] != 2))
				continue;
			if (s == SYS_LMDB && !(med(ni, wl, pi, SYS_LMDB_WM) <= med(ni, wl, pi, s)))
				other = SYS_LMDB_WM;
			r = med(ni, wl, pi, SYS_DR) / med(ni, wl, pi, other);
			if (isnan(r))
				continue;
			if (r < worst) {
				worst = r, wn = ccfg.names[ni], wp = ccfg.procs[pi];
				noise = fmax(spread(ni, wl, pi, SYS_DR), spread(ni, wl, pi, other));
			}
			best = r > best ? r : best;
		}
	}
	if (isinf(worst)) {
		v->skip++;
		printf("  SKIP  %-50s (not measured in this run)\n", label);
		return;
	}
	fmt_ratio(a, sizeof(a), worst);
	fmt_ratio(b, sizeof(b), best);
	note = verdict(v, worst >= need, (need - worst) / need, noise);
	printf("%-50s x%s >= x%g", label, a, need);
	if (!only_10k_2p)
		printf("   (worst: %" PRIu32 " names %uw; best x%s)", wn, wp, b);
	printf("%s\n", note);
}

static void print_targets(void)
{
	struct verdicts v = { 0, 0, 0, 0 };
	int one = proc_index(1), two = proc_index(2);
	const char *note;
	char label[96];

	printf("\ntargets (a ratio is distreg ops/s / the other's ops/s; a target passes when\n"
	       "every measured cell meets it, so the worst cell is shown):\n");
	target_ratio(&v, "reg+unreg vs LMDB (faster config)", WL_CHURN, SYS_LMDB, 5, false);
	target_ratio(&v, "whereis-hit vs LMDB (faster config)", WL_HIT, SYS_LMDB, 2, false);
	target_ratio(&v, "whereis-miss vs LMDB (faster config)", WL_MISS, SYS_LMDB, 2, false);
	for (unsigned wl = 0; wl < NWL; wl++) {
		snprintf(label, sizeof(label), "%s vs Redis one-at-a-time", wl_names[wl]);
		target_ratio(&v, label, wl, SYS_REDIS, 100, false);
	}
	for (unsigned wl = 0; wl < NWL; wl++) {
		snprintf(label, sizeof(label), "%s vs Redis pipelined (%d deep)", wl_names[wl],
			 PIPE_DEPTH);
		target_ratio(&v, label, wl, SYS_REDIS_PIPE, 10, false);
	}
	target_ratio(&v, "mix-90/10, 10000 names, 2 workers vs rwlock-shm", WL_MIX, SYS_RW, 3,
		     true);
	for (unsigned wl = 0; wl < NWL; wl++) {
		for (unsigned ni = 0; ni < ccfg.nnames; ni++) {
			double d = two < 0 ? NAN : scaling(ni, wl, (unsigned)two, SYS_DR);
			double l = two < 0 ? NAN : scaling(ni, wl, (unsigned)two, SYS_LF);
			double noise = 0;

			snprintf(label, sizeof(label), "scaling 2/1 workers, %s, %" PRIu32 " names",
				 wl_names[wl], ccfg.names[ni]);
			if (isnan(d) || isnan(l)) {
				v.skip++;
				printf("  SKIP  %-50s (not measured in this run)\n", label);
				continue;
			}
			for (unsigned s = SYS_DR; s <= SYS_LF; s++)
				noise = fmax(noise, fmax(spread(ni, wl, (unsigned)one, s),
							 spread(ni, wl, (unsigned)two, s)));
			note = verdict(&v, d >= l, (l - d) / l, noise);
			printf("%-50s distreg %.2f >= cds_lfht %.2f%s\n", label, d, l, note);
		}
	}
	printf("targets: %u PASS, %u MISS (%u of them within the noise), %u SKIP\n", v.pass,
	       v.miss, v.noise, v.skip);
}

/* ---------------------------------------------------------------------- */

/* A row of the table: workload, number of names, number of workers. Rows
 * are numbered in table order; cell_of() decodes a number, false past the
 * end. */
struct row {
	unsigned wl, ni, pi;
};

static bool cell_of(unsigned i, struct row *r)
{
	r->pi = i % ccfg.nprocs;
	r->ni = i / ccfg.nprocs % ccfg.nnames;
	r->wl = i / ccfg.nprocs / ccfg.nnames;
	return r->wl < NWL;
}

static void print_row(FILE *f, const struct row *r, const char *sep)
{
	fprintf(f, sep[0] == ',' ? "%s,%" PRIu32 ",%" PRIu32 : "%-13s %8" PRIu32 " %7" PRIu32,
		wl_names[r->wl], ccfg.names[r->ni], ccfg.procs[r->pi]);
}

void cmp_print_report(void)
{
	double worst = 0;
	const char *wsys = "";
	struct row r;

	printf("\n%-13s %8s %7s  %-14s %9s %10s  %-17s %9s\n", "workload", "names", "workers",
	       "system", "ops/s", "ns/op", "min-max ops/s", "distreg/x");
	for (unsigned i = 0; cell_of(i, &r); i++) {
		double d = med(r.ni, r.wl, r.pi, SYS_DR);

		if (!ccfg.wl_on[r.wl])
			continue;
		printf("\n");
		for (unsigned s = 0; s < NSYS; s++) {
			struct stat3 st;
			char m[32], lo[32], hi[32], range[64], ns[32], x[32];

			if (!ccfg.sys_on[s])
				continue;
			print_row(stdout, &r, " ");
			if (!stats(r.ni, r.wl, r.pi, s, &st)) {
				printf("  %-14s %9s\n", sys[s].name, "not run");
				continue;
			}
			fmt_rate(m, sizeof(m), st.med);
			fmt_rate(lo, sizeof(lo), st.lo);
			fmt_rate(hi, sizeof(hi), st.hi);
			snprintf(range, sizeof(range), "%s-%s", lo, hi);
			snprintf(ns, sizeof(ns), "%.1f", ccfg.procs[r.pi] * 1e9 / st.med);
			fmt_ratio(x, sizeof(x), d / st.med);
			printf("  %-14s %9s %10s  %-17s %9s\n", sys[s].name, m, ns, range, x);
			if ((st.hi - st.lo) / st.med > worst)
				worst = (st.hi - st.lo) / st.med, wsys = sys[s].name;
		}
	}
	if (ccfg.repeat > 1)
		printf("\nlargest spread of the repeats, (max - min) / median: %.0f%% (%s)\n",
		       100 * worst, wsys);

	if (ccfg.nprocs > 1 && proc_index(1) >= 0) {
		printf("\nscaling (ops/s with N workers / with 1):\n%-13s %8s %7s", "workload",
		       "names", "N");
		for (unsigned s = 0; s < NSYS; s++)
			if (ccfg.sys_on[s])
				printf(" %13s", sys[s].name);
		printf("\n");
		for (unsigned i = 0; cell_of(i, &r); i++) {
			if (!ccfg.wl_on[r.wl] || ccfg.procs[r.pi] == 1)
				continue;
			print_row(stdout, &r, " ");
			for (unsigned s = 0; s < NSYS; s++)
				if (ccfg.sys_on[s])
					printf(" %13.2f", scaling(r.ni, r.wl, r.pi, s));
			printf("\n");
		}
	}
	print_targets();
	fflush(stdout);
}

int cmp_write_csv(const char *path)
{
	FILE *f = fopen(path, "w");
	struct row r;

	if (!f) {
		fprintf(stderr, "bench_compare: error: cannot write %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	fprintf(f, "workload,names,workers,system,ops_per_s,ops_per_s_min,ops_per_s_max,"
		   "ns_per_op,distreg_over_system,repeats,cell_seconds\n");
	for (unsigned i = 0; cell_of(i, &r); i++) {
		for (unsigned s = 0; s < NSYS; s++) {
			struct stat3 st;

			if (!stats(r.ni, r.wl, r.pi, s, &st))
				continue;
			print_row(f, &r, ",");
			fprintf(f, ",%s,%.0f,%.0f,%.0f,%.2f,%.3f,%u,%.2f\n", sys[s].name, st.med,
				st.lo, st.hi, ccfg.procs[r.pi] * 1e9 / st.med,
				med(r.ni, r.wl, r.pi, SYS_DR) / st.med, ccfg.repeat,
				sys[s].slow ? ccfg.slow_seconds : ccfg.seconds);
		}
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "bench_compare: error: writing %s: %s\n", path, strerror(errno));
		return -1;
	}
	printf("\nCSV: %s\n", path);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The plot: one panel per workload, a cluster per (names, workers), a bar
 * per system, log scale, whiskers at min and max. */

static const char *const sys_colour[NSYS] = {
	"#d62728", "#ff7f0e", "#2ca02c", "#6a3d9a", "#b49ad8", "#1f77b4", "#9ecae1",
};

/* A string for a gnuplot single-quoted literal ('' is a quote). */
static void gp_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

static void names_label(char *buf, size_t len, uint32_t n)
{
	if (n % 1000000 == 0)
		snprintf(buf, len, "%" PRIu32 "M", n / 1000000);
	else if (n % 1000 == 0)
		snprintf(buf, len, "%" PRIu32 "k", n / 1000);
	else
		snprintf(buf, len, "%" PRIu32, n);
}

static int write_plot_data(const char *path, double *lo_all, double *hi_all)
{
	FILE *f = fopen(path, "w");
	struct row r;

	if (!f)
		return -1;
	*lo_all = INFINITY;
	*hi_all = 0;
	for (unsigned i = 0; cell_of(i, &r); i++) {
		char nl[32];

		if (r.ni == 0 && r.pi == 0)
			fprintf(f, "%s# %s\n", i ? "\n\n" : "", wl_names[r.wl]);
		names_label(nl, sizeof(nl), ccfg.names[r.ni]);
		fprintf(f, "\"%s names, %" PRIu32 "w\"", nl, ccfg.procs[r.pi]);
		for (unsigned s = 0; s < NSYS; s++) {
			struct stat3 st;

			if (!stats(r.ni, r.wl, r.pi, s, &st)) {
				fprintf(f, " NaN NaN NaN");
				continue;
			}
			fprintf(f, " %g %g %g", st.med, st.lo, st.hi);
			*lo_all = fmin(*lo_all, st.lo);
			*hi_all = fmax(*hi_all, st.hi);
		}
		fprintf(f, "\n");
	}
	return fclose(f);
}

static int write_plot_script(const char *path, const char *data, const char *png, double lo,
			     double hi)
{
	FILE *f = fopen(path, "w");
	unsigned panel = 0;

	if (!f)
		return -1;
	fprintf(f, "set terminal pngcairo size 1600,1100 font 'sans,12' noenhanced\nset output ");
	gp_quote(f, png);
	fprintf(f, "\nset style data histogram\n"
		   "set style histogram errorbars gap 1 lw 1\n"
		   "set style fill solid 0.9 border rgb '#404040'\n"
		   "set bars front\nset boxwidth 0.9\n"
		   "set logscale y 10\nset yrange [%g:%g]\nset format y '%%.0s%%c'\n"
		   "set ylabel 'ops/s (log scale)'\n"
		   "set grid ytics mytics lc rgb '#d0d0d0'\nset xtics nomirror scale 0\n"
		   "set xrange [-0.6:%g]\nset key off\n",
		   pow(10, floor(log10(lo))), pow(10, ceil(log10(hi))),
		   ccfg.nnames * ccfg.nprocs - 0.4);
	fprintf(f, "set multiplot title 'distreg vs alternatives: throughput, median of %u "
		   "(whiskers min-max), higher is better' font 'sans,15'\n",
		ccfg.repeat);
	for (unsigned wl = 0; wl < NWL; wl++) {
		/* 2 x 2 panels, by screen margins, above a strip for the key. */
		double left = panel % 2 ? 0.555 : 0.06, top = panel / 2 ? 0.49 : 0.925;

		if (!ccfg.wl_on[wl])
			continue;
		panel++;
		fprintf(f, "set lmargin at screen %.3f\nset rmargin at screen %.3f\n"
			   "set tmargin at screen %.3f\nset bmargin at screen %.3f\n",
			left, left + 0.43, top, top - 0.36);
		fprintf(f, "set title '%s'\nplot \\\n", wl_names[wl]);
		for (unsigned s = 0, first = 1; s < NSYS; s++) {
			if (!ccfg.sys_on[s])
				continue;
			fprintf(f, "%s  ", first ? "" : ", \\\n");
			first = 0;
			gp_quote(f, data);
			fprintf(f, " index %u using %u:%u:%u:xtic(1) notitle lc rgb '%s'", wl,
				2 + 3 * s, 3 + 3 * s, 4 + 3 * s, sys_colour[s]);
		}
		fprintf(f, "\n");
	}
	/* The key: one row across the bottom, drawn by a plot of nothing. */
	fprintf(f, "set lmargin at screen 0.02\nset rmargin at screen 0.98\n"
		   "set tmargin at screen 0.06\nset bmargin at screen 0.01\n"
		   "unset title\nunset border\nunset tics\nunset ylabel\nunset grid\n"
		   "unset logscale\nset xrange [0:1]\nset yrange [0:1]\n"
		   "set key center center horizontal maxrows 1 samplen 2 width 2 font 'sans,13'\n"
		   "plot ");
	for (unsigned s = 0, first = 1; s < NSYS; s++) {
		if (!ccfg.sys_on[s])
			continue;
		fprintf(f, "%sNaN with boxes title '%s' lc rgb '%s'", first ? "" : ", ",
			sys[s].name, sys_colour[s]);
		first = 0;
	}
	fprintf(f, "\n");
	fprintf(f, "unset multiplot\n");
	return fclose(f);
}

int cmp_plot(const char *png, const char *tmpdir)
{
	char data[4200], script[4200];
	double lo, hi;
	pid_t pid;
	int st;

	if (!prog_in_path("gnuplot")) {
		printf("plot: SKIPPED: gnuplot is not installed (Debian: gnuplot-nox); %s not "
		       "written\n", png);
		return 1;
	}
	snprintf(data, sizeof(data), "%s/plot.dat", tmpdir);
	snprintf(script, sizeof(script), "%s/plot.gp", tmpdir);
	if (write_plot_data(data, &lo, &hi) || isinf(lo) || !(hi > 0) ||
	    write_plot_script(script, data, png, lo, hi)) {
		fprintf(stderr, "bench_compare: error: writing the plot's files in %s: %s\n",
			tmpdir, isinf(lo) ? "nothing measured" : strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bench_compare: error: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		fprintf(stderr, "bench_compare: error: exec gnuplot: %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	unlink(data);
	unlink(script);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench_compare: error: gnuplot failed (%s %d); %s not written\n",
			WIFEXITED(st) ? "status" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), png);
		return -1;
	}
	printf("plot: %s\n", png);
	return 0;
}

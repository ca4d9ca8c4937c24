/*
 * common.c - the parent side that bench_registry and bench_compare share;
 * common.h says what each piece is for.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* ---------------------------------------------------------------------- */
/* Errors. */

const char *bench_prog = "bench";
void (*bench_cleanup)(void);

void fatal(const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "%s: error: %s\n", bench_prog, why);
	if (bench_cleanup)
		bench_cleanup();
	exit(1);
}

/* ---------------------------------------------------------------------- */
/* Worker groups. */

/* In a forked worker: the parent's handlers do not apply, and it dies with
 * the parent, so no worker outlives a killed run. */
static void child_setup(pid_t parent)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
}

void group_start(struct group *g, const char *name, unsigned nslots, unsigned nproc,
		 group_child_fn child, void *arg)
{
	pid_t parent = getpid();
	void *p = mmap(NULL, sizeof(struct ctl), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fatal("mmap of a control page: %s", strerror(errno));
	g->name = name;
	g->c = p;
	g->nslots = nslots;
	g->nproc = 0;
	fflush(NULL);
	for (unsigned i = 0; i < nproc; i++) {
		pid_t pid = fork();

		if (pid < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0) {
			child_setup(parent);
			child(g, i, arg);
			_exit(1);
		}
		g->pid[g->nproc++] = pid;
	}
}

static const char *exit_kind(int st)
{
	return WIFEXITED(st) ? "status" : "signal";
}

static int exit_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st);
}

static const char *group_msg(const struct group *g)
{
	return __atomic_load_n(&g->c->failed, __ATOMIC_ACQUIRE) ? g->c->msg : "it left no message";
}

/* Fail if a worker process of g has ended, with its message if it left one. */
static void group_check(struct group *g)
{
	for (unsigned k = 0; k < g->nproc; k++) {
		int st;

		if (g->pid[k] <= 0 || waitpid(g->pid[k], &st, WNOHANG) != g->pid[k])
			continue;
		g->pid[k] = 0;
		fatal("a %s worker process ended (%s %d): %s", g->name, exit_kind(st),
		      exit_code(st), group_msg(g));
	}
}

void group_await(struct group *g, uint32_t *counter, uint32_t want, double limit_s,
		 const char *what)
{
	uint64_t deadline = now_ns() + (uint64_t)(limit_s * 1e9);
	uint32_t v;

	while ((v = __atomic_load_n(counter, __ATOMIC_ACQUIRE)) < want) {
		group_check(g);
		if (limit_s > 0 && now_ns() > deadline)
			fatal("%s: %s: %" PRIu32 " of %" PRIu32 " workers after %.0f s", g->name,
			      what, v, want, limit_s);
		futex_wait(counter, v, 20 * 1000 * 1000);
	}
}

void group_post(struct group *g, unsigned k, uint32_t cmd, uint32_t workload, uint64_t seed)
{
	struct wslot *s = &g->c->w[k];

	s->cmd = cmd;
	s->workload = workload;
	s->seed = seed;
	__atomic_fetch_add(&s->gen, 1, __ATOMIC_RELEASE);
	futex_wake(&s->gen);
}

void sleep_s(double s)
{
	struct timespec ts;

	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

double group_cell(struct group *g, uint32_t workload, unsigned nworkers, double seconds,
		  uint64_t seed, double start_limit_s, double end_limit_s)
{
	struct ctl *c = g->c;
	double total = 0;

	c->ready = 0;
	c->done = 0;
	__atomic_store_n(&c->go, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&c->stop, 0, __ATOMIC_RELEASE);
	for (unsigned k = 0; k < nworkers; k++)
		group_post(g, k, CMD_RUN, workload, splitmix(seed + k));
	group_await(g, &c->ready, nworkers, start_limit_s, "starting a cell");
	__atomic_store_n(&c->go, 1, __ATOMIC_RELEASE);
	futex_wake(&c->go);
	sleep_s(seconds);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	group_await(g, &c->done, nworkers, end_limit_s, "ending a cell");
	for (unsigned k = 0; k < nworkers; k++)
		if (c->w[k].ns > 0)
			total += (double)c->w[k].ops * 1e9 / (double)c->w[k].ns;
	return total;
}

void group_stop(struct group *g)
{
	if (!g->c)
		return;
	for (unsigned k = 0; k < g->nslots; k++)
		group_post(g, k, CMD_EXIT, 0, 0);
	for (unsigned k = 0; k < g->nproc; k++) {
		int st;

		while (waitpid(g->pid[k], &st, 0) < 0)
			if (errno != EINTR)
				fatal("waitpid: %s", strerror(errno));
		g->pid[k] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fatal("a %s worker process ended badly at exit (%s %d): %s", g->name,
			      exit_kind(st), exit_code(st), group_msg(g));
	}
	g->nproc = 0;
	munmap(g->c, sizeof(struct ctl));
	g->c = NULL;
}

void group_kill(struct group *g)
{
	for (unsigned k = 0; k < g->nproc; k++) {
		if (g->pid[k] > 0) {
			kill(g->pid[k], SIGKILL);
			waitpid(g->pid[k], NULL, 0);
			g->pid[k] = 0;
		}
	}
	g->nproc = 0;
}

void group_kill_async(const struct group *g)
{
	for (unsigned k = 0; k < g->nproc; k++)
		if (g->pid[k] > 0)
			kill(g->pid[k], SIGKILL);
}

/* ---------------------------------------------------------------------- */
/* The repeats of a cell. */

int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

bool repeat_stats(const double *v, unsigned n, struct stat3 *out)
{
	double s[64];
	unsigned m = 0;

	for (unsigned r = 0; r < n && m < 64; r++)
		if (!isnan(v[r]))
			s[m++] = v[r];
	*out = (struct stat3){ NAN, NAN, NAN };
	if (m == 0)
		return false;
	qsort(s, m, sizeof(s[0]), cmp_double);
	out->med = m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
	out->lo = s[0];
	out->hi = s[m - 1];
	return true;
}

double *results_new(size_t n)
{
	double *r = malloc((n ? n : 1) * sizeof(*r));

	if (r)
		for (size_t i = 0; i < n; i++)
			r[i] = NAN;
	return r;
}

int list_index(const uint32_t *v, unsigned n, uint32_t x)
{
	for (unsigned i = 0; i < n; i++)
		if (v[i] == x)
			return (int)i;
	return -1;
}

uint32_t list_max(const uint32_t *v, unsigned n)
{
	uint32_t m = 1;

	for (unsigned i = 0; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

void print_list(FILE *f, const uint32_t *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s%" PRIu32, i ? "," : "", v[i]);
}

/* ---------------------------------------------------------------------- */
/* The machine. */

static void cpu_model(char *out, size_t len, const char *unknown)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char *line = NULL;
	size_t cap = 0;

	snprintf(out, len, "%s", unknown);
	while (f && getline(&line, &cap, f) > 0) {
		char *v = strchr(line, ':');

		if (v && strncmp(line, "model name", 10) == 0) {
			v += 1 + strspn(v + 1, " \t");
			snprintf(out, len, "%.*s", (int)strcspn(v, "\n"), v);
			break;
		}
	}
	free(line);
	if (f)
		fclose(f);
}

void machine_describe(struct machine *m, const char *unknown_cpu)
{
	struct utsname u;
	time_t now = time(NULL);

	m->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	m->mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
	cpu_model(m->cpu, sizeof(m->cpu), unknown_cpu);
	snprintf(m->kernel, sizeof(m->kernel), "%s", uname(&u) == 0 ? u.release : "?");
	strftime(m->date, sizeof(m->date), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
}

/* CPU time of the whole machine from /proc/stat, in seconds: busy (user,
 * nice, system, irq, softirq) and steal (taken by the hypervisor). */
static int machine_cpu(double *busy, double *steal)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	double hz = (double)sysconf(_SC_CLK_TCK);
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 8 || hz <= 0)
		return -1;
	*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
	*steal = (double)v[7] / hz;
	return 0;
}

/* CPU time of this process and its waited-for children, in seconds. */
static double own_cpu(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
			b.ru_stime.tv_sec) +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
			b.ru_stime.tv_usec) / 1e6;
}

void load_begin(struct load_probe *p)
{
	p->ok = machine_cpu(&p->busy, &p->steal) == 0;
	p->t0 = now_ns();
}

bool load_end(const struct load_probe *p, struct load *out)
{
	double busy, steal;

	if (!p->ok || machine_cpu(&busy, &steal) != 0)
		return false;
	out->wall = (double)(now_ns() - p->t0) / 1e9;
	out->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	out->other = fmax(0, busy - p->busy - own_cpu());
	out->steal = steal - p->steal;
	return true;
}

/* ---------------------------------------------------------------------- */
/* Options. */

/* arg into buf, refusing what strtok_r() would quietly pass over: an empty
 * item (leading, trailing or doubled comma). */
static bool list_copy(char *buf, size_t len, const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n >= len || arg[0] == ',' || arg[n - 1] == ',' || strstr(arg, ",,"))
		return false;
	memcpy(buf, arg, n + 1);
	return true;
}

bool parse_numbers(const char *arg, uint32_t *out, unsigned *count, uint64_t max)
{
	char buf[256], *save = NULL;

	*count = 0;
	if (!list_copy(buf, sizeof(buf), arg))
		return false;
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
	return *count > 0;
}

bool parse_choice(const char *arg, const char *const *names, const char *const *alt,
		  unsigned n, bool *on)
{
	char buf[256], *save = NULL;
	bool any = false;

	if (!list_copy(buf, sizeof(buf), arg))
		return false;
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

bool parse_count(const char *arg, unsigned long lo, unsigned long hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (end == arg || *end || errno || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

bool parse_real(const char *arg, double *out)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end)
		return false;
	*out = v;
	return true;
}

/* ---------------------------------------------------------------------- */
/* The run. */

uint64_t run_seed(void)
{
	static const char value[VALUE_LEN] = "ipc:///w/000042"; /* 15 chars and the NUL */
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = now_ns() * 0x9e3779b97f4a7c15ull + (uint64_t)getpid();
	lf_seed = splitmix(~seed);
	memcpy(value_bytes, value, sizeof(value));
	return seed;
}

char segment[DR_SEGMENT_MAX + 1];
char segment_path[PATH_MAX];

void segment_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(segment, sizeof(segment), fmt, ap);
	va_end(ap);
	/* The file dr_unlink() removes, as distreg.h documents it. */
	snprintf(segment_path, sizeof(segment_path), "/dev/shm/distreg.%s", segment);
}

void segment_clear(void)
{
	segment[0] = 0;
	segment_path[0] = 0;
}

int segment_remove(void)
{
	int rc;

	if (!segment[0])
		return 0;
	rc = dr_unlink(segment);
	if (rc == 0)
		segment_clear();
	return rc;
}

void segment_drop(void)
{
	if (segment[0]) {
		dr_unlink(segment);
		segment_clear();
	}
}

void segment_unlink_async(void)
{
	if (segment_path[0])
		unlink(segment_path);
}

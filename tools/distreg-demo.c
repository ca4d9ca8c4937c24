/*
 * distreg-demo - libdistreg at work, step by step.
 *
 * Four worker processes register 1000 names each; this process looks them
 * up, kills one worker with SIGKILL, shows that the dead worker's names are
 * still visible until they are reaped, reaps them, measures lookups and
 * registrations per second, stops the other workers and ends with
 * `shmdump --stats`. It exits 0 only if every step behaved as expected.
 * Then it removes the segment, unless --keep, or unless the segment existed
 * before the demo (someone else's registry), and says which it did.
 *
 *   distreg-demo [--segment NAME] [--keep]
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <distreg.h>

#define NWORKERS 4
#define NNAMES 1000
#define VICTIM 2 /* the worker that gets SIGKILLed */

extern char **environ;

static pid_t workers[NWORKERS];
static char names[NWORKERS][NNAMES][16]; /* "worker<k>.<i>", made once */
static int ctl_w[NWORKERS];   /* parent -> worker: closed to say "stop" */
static int ready_r[NWORKERS]; /* worker -> parent: one int, 0 or an error */

/* Report what went wrong and exit 1. The workers die with this process
 * (PR_SET_PDEATHSIG), so nothing is left holding names. */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("distreg-demo: FAILED: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A worker: open its own handle (a handle never crosses fork()), register
 * its names, say so, then wait until the parent closes the control pipe.
 */
static int worker_main(const char *segment, int k, int ctl, int ready)
{
	struct dr_options o = { .segment = segment };
	dr_registry *r;
	char value[DR_VALUE_MAX], c;
	int err = dr_open(&o, &r);

	for (int i = 0; !err && i < NNAMES; i++) {
		snprintf(value, sizeof(value), "ipc:///tmp/worker%d-%d.sock", k, i);
		err = dr_register(r, names[k][i], value, strlen(value));
	}
	if (write(ready, &err, sizeof(err)) != sizeof(err) || err)
		return 1;
	/* The parent writes nothing: end of file means "stop". */
	for (;;) {
		ssize_t n = read(ctl, &c, 1);
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	dr_close(r); /* unregisters this worker's names */
	return 0;
}

static void start_workers(const char *segment)
{
	pid_t parent = getpid();

	for (int k = 0; k < NWORKERS; k++) {
		int ctl[2], ready[2];

		if (pipe(ctl) || pipe(ready))
			fail("pipe: %s", strerror(errno));
		workers[k] = fork();
		if (workers[k] < 0)
			fail("fork: %s", strerror(errno));
		if (workers[k] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			/* Drop the parent's ends, ours and the earlier workers':
			 * a stray write end would keep a worker from seeing EOF. */
			for (int j = 0; j < k; j++) {
				close(ctl_w[j]);
				close(ready_r[j]);
			}
			close(ctl[1]);
			close(ready[0]);
			_exit(worker_main(segment, k, ctl[0], ready[1]));
		}
		close(ctl[0]);
		close(ready[1]);
		ctl_w[k] = ctl[1];
		ready_r[k] = ready[0];
	}
}

static int wait_exit(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* dr_foreach callback: count worker<VICTIM>'s names, and those dead. */
struct victim_count {
	unsigned seen, dead;
};

static int count_victim(const struct dr_name_info *info, void *arg)
{
	struct victim_count *c = arg;
	char prefix[16];
	size_t n = (size_t)snprintf(prefix, sizeof(prefix), "worker%d.", VICTIM);

	if (info->name_len > n && memcmp(info->name, prefix, n) == 0) {
		c->seen++;
		c->dead += !info->alive;
	}
	return 0;
}

/* Run shmdump --stats: next to this binary if it is there, else on PATH. */
static void run_shmdump(const char *segment)
{
	char path[PATH_MAX], seg[DR_SEGMENT_MAX + 1];
	char *argv[] = { path, "--stats", "--segment", seg, NULL };
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - sizeof("shmdump"));
	char *slash;
	pid_t pid;
	int err, st;

	snprintf(seg, sizeof(seg), "%s", segment);
	if (n > 0 && (path[n] = 0, slash = strrchr(path, '/')) != NULL)
		strcpy(slash + 1, "shmdump");
	if (n <= 0 || access(path, X_OK) != 0)
		strcpy(path, "shmdump");
	printf("\n== shmdump --stats (%s)\n", path);
	fflush(stdout); /* before the child writes to the same stdout */
	err = posix_spawnp(&pid, path, NULL, NULL, argv, environ);
	if (err)
		fail("cannot run %s: %s", path, strerror(err));
	st = wait_exit(pid);
	if (st != 0)
		fail("%s --stats exited with status %d", path, st);
}

static const char usage[] =
	"usage: distreg-demo [--segment NAME] [--keep]\n"
	"Runs four worker processes on the segment (default: $DISTREG_SEGMENT,\n"
	"else \"default\"), kills one, reaps its names, measures throughput and\n"
	"ends with shmdump --stats. Exits 0 if every step behaved as expected.\n"
	"At the end the segment is removed, unless --keep or unless it existed\n"
	"before the demo started; the last line says which.\n";

int main(int argc, char **argv)
{
	struct dr_options o = { 0 };
	struct dr_entry e;
	struct victim_count vc = { 0 };
	dr_registry *r;
	char name[64], segment[DR_SEGMENT_MAX + 1];
	unsigned found = 0, reaped = 0;
	unsigned long ops;
	double t0, dt;
	int err, keep = 0, existed;
	const char *seg;
	char path[sizeof("/dev/shm/distreg.") + DR_SEGMENT_MAX];
	struct stat st;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--segment") == 0 && i + 1 < argc) {
			o.segment = argv[++i];
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = 1;
		} else {
			int help = strcmp(argv[i], "--help") == 0;

			fputs(usage, help ? stdout : stderr);
			return help ? 0 : 64; /* 64: EX_USAGE */
		}
	}

	for (int k = 0; k < NWORKERS; k++)
		for (int i = 0; i < NNAMES; i++)
			snprintf(names[k][i], sizeof(names[k][i]), "worker%d.%d", k, i);

	/* A segment that exists already is someone's: it is not removed at the
	 * end. (The library's rule for the name: dr_options.segment.) */
	seg = o.segment;
	if (!seg && (!(seg = getenv("DISTREG_SEGMENT")) || !*seg))
		seg = "default";
	snprintf(path, sizeof(path), "/dev/shm/distreg.%s", seg);
	existed = lstat(path, &st) == 0;

	/* 1. Fork first: a handle opened before fork() is useless in the child. */
	start_workers(o.segment);
	if ((err = dr_open(&o, &r)) != 0)
		fail("dr_open: %s", dr_strerror(err));
	snprintf(segment, sizeof(segment), "%s", dr_segment_name(r));
	printf("== segment '%s': %d workers register %d names each\n", segment, NWORKERS, NNAMES);
	for (int k = 0; k < NWORKERS; k++) {
		int rc = -EPIPE;

		if (read(ready_r[k], &rc, sizeof(rc)) != sizeof(rc) || rc)
			fail("worker %d (pid %d) could not register: %s", k, (int)workers[k],
			     dr_strerror(rc));
		printf("worker %d: pid %d, ready\n", k, (int)workers[k]);
	}

	/* 2. Look every name up from this process: no lock, no system call. */
	printf("\n== lookups from pid %d\n", (int)getpid());
	for (int k = 0; k < NWORKERS; k++) {
		for (int i = 0; i < NNAMES; i++) {
			if (dr_whereis(r, names[k][i], &e) != 0 || e.pid != workers[k])
				continue;
			found++;
			if (i == 0 || i == NNAMES - 1)
				printf("%-12s -> pid %d, regid %llu, value \"%.*s\"\n", names[k][i],
				       (int)e.pid, (unsigned long long)e.regid, (int)e.value_len,
				       (const char *)e.value);
		}
	}
	printf("found %u of %d names\n", found, NWORKERS * NNAMES);
	if (found != NWORKERS * NNAMES)
		fail("%u names missing", NWORKERS * NNAMES - found);

	/* 3. Kill a worker. Lookups make no system call, so they cannot tell
	 * that the owner is dead: its names stay visible until reaped. */
	printf("\n== SIGKILL worker %d (pid %d)\n", VICTIM, (int)workers[VICTIM]);
	if (kill(workers[VICTIM], SIGKILL) || wait_exit(workers[VICTIM]) != 128 + SIGKILL)
		fail("could not kill worker %d", VICTIM);
	if ((err = dr_foreach(r, count_victim, &vc)) != 0)
		fail("dr_foreach: %s", dr_strerror(err));
	err = dr_whereis(r, names[VICTIM][7], &e);
	printf("dr_foreach: %u names of worker %d, %u with a dead owner\n", vc.seen, VICTIM,
	       vc.dead);
	printf("dr_whereis(%s): %s, pid %d\n", names[VICTIM][7], dr_strerror(err),
	       err ? 0 : (int)e.pid);
	if (vc.dead != NNAMES || err || e.pid != workers[VICTIM])
		fail("expected %d names with a dead owner", NNAMES);

	/* 4. Reap: remove the names of dead processes now. */
	printf("\n== dr_reap\n");
	if ((err = dr_reap(r, &reaped)) != 0)
		fail("dr_reap: %s", dr_strerror(err));
	vc.seen = vc.dead = 0;
	if ((err = dr_foreach(r, count_victim, &vc)) != 0)
		fail("dr_foreach: %s", dr_strerror(err));
	err = dr_whereis(r, names[VICTIM][7], NULL);
	printf("reaped %u names; worker %d now has %u; dr_whereis(%s): %s\n", reaped, VICTIM,
	       vc.seen, names[VICTIM][7], dr_strerror(err));
	/* At least ours: another process on a shared segment may have died too. */
	if (reaped < NNAMES || vc.seen != 0 || err != -ENOENT)
		fail("the dead worker's names were not reclaimed");

	/* 5. Throughput of this one thread, about a second each. The clock is
	 * read every 1024 operations so that it costs nothing measurable. */
	printf("\n== throughput (one thread, ~1 s each)\n");
	ops = 0;
	t0 = now();
	do {
		for (int i = 0; i < 1024; i++, ops++) {
			unsigned k = (unsigned)(ops % NWORKERS);
			const char *n = names[k == VICTIM ? 0 : k][ops / NWORKERS % NNAMES];

			if (dr_whereis(r, n, &e) != 0)
				fail("dr_whereis(%s) missed during the benchmark", n);
		}
	} while ((dt = now() - t0) < 1.0);
	printf("dr_whereis hits:             %12.0f per second\n", ops / dt);

	snprintf(name, sizeof(name), "demo.%d.bench", (int)getpid());
	ops = 0;
	t0 = now();
	do {
		for (int i = 0; i < 1024; i++, ops++) {
			err = dr_register(r, name, "x", 1);
			if (!err)
				err = dr_unregister(r, name);
			if (err)
				fail("register/unregister %s: %s", name, dr_strerror(err));
		}
	} while ((dt = now() - t0) < 1.0);
	printf("dr_register+dr_unregister:   %12.0f pairs per second\n", ops / dt);

	/* 6. Stop the others cleanly: dr_close() unregisters their names. */
	printf("\n== stop the workers\n");
	for (int k = 0; k < NWORKERS; k++) {
		close(ctl_w[k]);
		close(ready_r[k]);
		if (k == VICTIM)
			continue;
		if (wait_exit(workers[k]) != 0)
			fail("worker %d did not exit cleanly", k);
		printf("worker %d: closed its handle and exited\n", k);
	}
	err = dr_whereis(r, names[0][0], NULL);
	printf("dr_whereis(%s): %s\n", names[0][0], dr_strerror(err));
	if (err != -ENOENT)
		fail("worker 0's names outlived its dr_close()");
	dr_close(r);

	/* 7. The segment as shmdump sees it. */
	run_shmdump(segment);

	/* 8. Remove the segment (the workers and this process have closed it). */
	if (keep) {
		printf("\n== segment '%s' kept (--keep); `distreg unlink %s` removes it\n",
		       segment, segment);
	} else if (existed) {
		printf("\n== segment '%s' kept: it existed before the demo; "
		       "`distreg unlink %s` removes it\n", segment, segment);
	} else {
		if ((err = dr_unlink(segment)) != 0)
			fail("dr_unlink(%s): %s", segment, dr_strerror(err));
		printf("\n== segment '%s' removed (--keep keeps it)\n", segment);
	}
	return 0;
}

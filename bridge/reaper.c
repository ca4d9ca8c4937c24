/*
 * reaper.c - reclaim what dead processes of this host held, at once.
 *
 * Without a bridge, a dead process's names are reclaimed lazily: by the next
 * process that collides with them, opens the segment or calls dr_reap().
 * The bridge watches every attached process with a pidfd, which polls
 * readable when the process exits; it then calls dr_reap(), so that
 * dr_whereis() stops returning a dead pid within milliseconds. New
 * processes are found by listing the attached ones every REAP_SCAN_NS; one
 * that died before it was seen is found dead by that listing, unless
 * another process found it dead first (then it is listed no more): the
 * segment counts those deaths (dr_admin_deaths), and a count that moved
 * since the last listing makes us reap too.
 *
 * A listed pid may have been reused by an unrelated process after the
 * attached one died: the start time in its slot is compared with the one
 * /proc gives for the pid, and a mismatch means dead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"

struct watched {
	uint32_t slot;
	pid_t pid;
	uint64_t start_time;
	int fd;                 /* pidfd */
	bool seen;              /* listed by the last scan */
};

/* Field 22 of /proc/<pid>/stat (clock ticks since boot), or 0. */
static uint64_t start_time_of(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the command name may hold anything */
	if (!p)
		return 0;
	/* The k-th space after ')' starts field k + 2: field 22 is the 20th. */
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &t) != 1)
		return 0;
	return t;
}

static void reap(struct bridge *b, const char *why)
{
	unsigned n = 0;
	int rc = dr_reap(b->r, &n);

	if (rc < 0)
		log_warn("reaping: %s", dr_strerror(rc));
	else if (n) {
		b->n.reaped += n;
		log_debug("reaped %u entries (%s)", n, why);
	}
}

static void unwatch(struct bridge *b, size_t i)
{
	close(b->watched[i].fd);
	b->watched[i] = b->watched[--b->nwatched];
}

void reaper_scan(struct bridge *b)
{
	static struct dr_proc_info procs[4096]; /* one thread */
	size_t n = 0, i, j;
	bool dead = false;
	/* Read before the listing: a process found dead by someone else
	 * between two scans leaves the list, and we may never have watched
	 * it (it lived less than a scan). */
	uint32_t deaths = dr_admin_deaths(b->r);
	int rc = dr_admin_procs(b->r, procs, sizeof(procs) / sizeof(procs[0]), &n);

	if (rc < 0 && rc != -ERANGE) {
		log_once(&b->once, "procs", 1, LOG_LEVEL_WARN, "cannot list the attached processes: %s", dr_strerror(rc));
		return;
	}
	if (n > sizeof(procs) / sizeof(procs[0]))
		n = sizeof(procs) / sizeof(procs[0]);
	for (i = 0; i < b->nwatched; i++)
		b->watched[i].seen = false;
	for (j = 0; j < n; j++) {
		const struct dr_proc_info *pi = &procs[j];
		int fd;

		if (pi->pid == getpid())
			continue;
		for (i = 0; i < b->nwatched; i++) {
			struct watched *w = &b->watched[i];

			if (w->slot == pi->slot && w->pid == pi->pid &&
			    w->start_time == pi->start_time) {
				w->seen = true;
				break;
			}
		}
		if (i < b->nwatched)
			continue;
		fd = pidfd_open(pi->pid);
		if (fd < 0 || (pi->start_time && start_time_of(pi->pid) != pi->start_time)) {
			/* Gone already, or its pid is someone else's now. */
			if (fd >= 0)
				close(fd);
			dead = true;
			continue;
		}
		if (b->nwatched == b->watched_cap) {
			size_t cap = b->watched_cap ? 2 * b->watched_cap : 64;
			struct watched *nw = realloc(b->watched, cap * sizeof(*nw));

			if (!nw) {
				close(fd);
				continue;
			}
			b->watched = nw;
			b->watched_cap = cap;
		}
		b->watched[b->nwatched++] = (struct watched){ .slot = pi->slot, .pid = pi->pid,
							      .start_time = pi->start_time,
							      .fd = fd, .seen = true };
	}
	/* A process no longer listed was reaped, or closed its handle. */
	for (i = 0; i < b->nwatched;) {
		if (!b->watched[i].seen)
			unwatch(b, i);
		else
			i++;
	}
	if (deaths != b->deaths_seen) {
		b->deaths_seen = deaths;
		if (!dead)
			reap(b, "a death found by another process");
	}
	if (dead)
		reap(b, "found dead by a scan");
}

int reaper_pollfds(struct bridge *b, struct pollfd *fds, size_t max)
{
	size_t i;

	for (i = 0; i < b->nwatched && i < max; i++)
		fds[i] = (struct pollfd){ .fd = b->watched[i].fd, .events = POLLIN };
	return (int)i;
}

void reaper_event(struct bridge *b, int fd)
{
	for (size_t i = 0; i < b->nwatched; i++) {
		if (b->watched[i].fd == fd) {
			log_debug("process %d exited", (int)b->watched[i].pid);
			unwatch(b, i);
			reap(b, "a watched process exited");
			return;
		}
	}
}

void reaper_stop(struct bridge *b)
{
	while (b->nwatched)
		unwatch(b, 0);
	free(b->watched);
	b->watched = NULL;
	b->watched_cap = 0;
}

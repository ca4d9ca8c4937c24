/*
 * errors.c - dr_strerror() and the crash points of the test build.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dri.h"

/* The limits as numbers in the messages, never as macro names. */
#define DRI_STR_(x) #x
#define DRI_STR(x) DRI_STR_(x)

DR_EXPORT const char *dr_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EEXIST:
		return "name is registered by another live process";
	case -ENOENT:
		return "no such name (or no such segment)";
	case -EPERM:
		return "name is owned by another live process";
	case -ENOSPC:
		return "the table is full: all of its entries (the segment's capacity, shmdump --stats shows it) hold live names";
	case -EDQUOT:
		return "no space left in /dev/shm (the tmpfs is full or over quota): the segment could not be allocated";
	case -ELOOP:
		return "the segment path is a symbolic link: segments must be regular files in /dev/shm";
	case -EBUSY:
		return "no free entry: reuse is held back by a reader stalled in a read-side section (see shmdump --stats)";
	case -ENAMETOOLONG:
		return "name longer than " DRI_STR(DR_NAME_MAX) " bytes";
	case -EMSGSIZE:
		return "value longer than " DRI_STR(DR_VALUE_MAX) " bytes";
	case -EINVAL:
		return "invalid argument";
	case -EPROTO:
		return "segment has another format (another layout version or build of libdistreg)";
	case -EBADMSG:
		return "corrupt or truncated: the segment, or a message to or from the bridge";
	case -EUSERS:
		return "all process or reader slots of the segment are in use by live processes";
	case -ECHILD:
		return "handle was opened by the parent process; open a new one after fork";
	case -ENOSYS:
		return "membarrier is unavailable in this process but the segment requires it";
	case -EACCES:
		return "permission denied on the segment";
	case -EOVERFLOW:
		return "read-side sections nested too deeply";
	case -EDESTADDRREQ:
		return "name is registered without a mailbox (dr_register, not dr_serve): it takes no messages";
	case -EOWNERDEAD:
		return "the worker died, or closed its mailbox, before it answered";
	case -EAGAIN:
		return "the worker's mailbox lane is full (or nothing waits in the mailbox): try again";
	case -ETIMEDOUT:
		return "timed out";
	case -ENOTCONN:
		return "no bridge runs on this host (one ran before)";
	case -EHOSTUNREACH:
		return "the owner host of the global name cannot be reached (down, or no answer)";
	case -EREMOTE:
		return "the global name is owned by another host (dr_owner() names it)";
	case -ERANGE:
		return "the result does not fit in the buffer or array given";
	case -EROFS:
		return "the handle was opened read-only: it can only inspect (list, count, check)";
	case -ESRCH:
		return "no factory of that kind runs on the owner host of the name (dr_start)";
	case -ECANCELED:
		return "the factory refused to start the worker (its reason is in the result)";
	case -ENOLCK:
		return "this process's liveness lock on the segment was lost (a descriptor closed behind the library's back); other processes may have taken its names: reopen";
	}
	if (err < 0 && err != INT_MIN) {
		const char *s = strerrordesc_np(-err);
		if (s)
			return s;
	}
	return "unknown error";
}

#ifdef DR_CRASHPOINTS
#include <stdio.h>
#include <time.h>

/*
 * The point fires once, at its (DISTREG_CRASH_SKIP + 1)th pass in the
 * calling thread; what it does there is DISTREG_CRASH_MODE's choice:
 *   kill (or unset)  SIGKILL the process: a crash at this very step;
 *   stop             raise SIGSTOP: the whole process stays paused here
 *                    until someone sends SIGCONT (the test's "release");
 *   sleep:<ms>       sleep that long in this thread, then carry on.
 * A pause is what preemption or a debugger does to a live process: every
 * other process must carry on meanwhile, and this one must carry on
 * correctly afterwards. After a stop or a sleep, DISTREG_CRASH_THEN
 * ("point,mode") arms a second point, for a process that must pause at one
 * step and then die at a later one.
 */
void dri_crashpoint(const char *name)
{
	const char *at = getenv("DISTREG_CRASH_AT");
	static __thread long passed;
	const char *skip, *mode;

	if (!at || strcmp(at, name) != 0)
		return;
	skip = getenv("DISTREG_CRASH_SKIP");
	if (passed++ != (skip ? atol(skip) : 0))
		return;
	mode = getenv("DISTREG_CRASH_MODE");
	if (!mode || strcmp(mode, "kill") == 0) {
		kill(getpid(), SIGKILL);
		pause();
	} else if (strcmp(mode, "stop") == 0) {
		raise(SIGSTOP);
	} else if (strncmp(mode, "sleep:", 6) == 0) {
		long ms = atol(mode + 6);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0)
			;
	} else {
		fprintf(stderr, "DISTREG_CRASH_MODE=%s: want kill, stop or sleep:<ms>\n", mode);
		abort();
	}
	const char *then = getenv("DISTREG_CRASH_THEN");
	if (then && strchr(then, ',')) {
		char point[64];
		const char *comma = strchr(then, ',');

		snprintf(point, sizeof(point), "%.*s", (int)(comma - then), then);
		setenv("DISTREG_CRASH_MODE", comma + 1, 1);
		setenv("DISTREG_CRASH_SKIP", "0", 1);
		setenv("DISTREG_CRASH_AT", point, 1);
		unsetenv("DISTREG_CRASH_THEN");
		passed = 0;
	}
}
#endif

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
		return "registry is full: capacity live names exist (or no space left in /dev/shm)";
	case -EBUSY:
		return "no free entry: reuse is held back by a reader stalled in a read-side section (see shmdump --stats)";
	case -ENAMETOOLONG:
		return "name longer than DR_NAME_MAX bytes";
	case -EMSGSIZE:
		return "value longer than DR_VALUE_MAX bytes";
	case -EINVAL:
		return "invalid argument";
	case -EPROTO:
		return "segment has another format (another layout version or build of libdistreg)";
	case -EBADMSG:
		return "segment is corrupt or truncated";
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
	}
	if (err < 0 && err != INT_MIN) {
		const char *s = strerrordesc_np(-err);
		if (s)
			return s;
	}
	return "unknown error";
}

#ifdef DR_CRASHPOINTS
void dri_crashpoint(const char *name)
{
	const char *at = getenv("DISTREG_CRASH_AT");
	static __thread long passed;
	const char *skip;

	if (!at || strcmp(at, name) != 0)
		return;
	skip = getenv("DISTREG_CRASH_SKIP");
	if (skip && passed++ < atol(skip))
		return;
	kill(getpid(), SIGKILL);
	pause();
}
#endif

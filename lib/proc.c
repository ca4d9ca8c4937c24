/*
 * proc.c - process slots, liveness, fork handling and membarrier setup.
 *
 * A process attaches by taking an OFD write lock on one byte of the segment
 * file (byte i for slot i) through its own open file description. The kernel
 * drops that lock when the last descriptor of the description closes: at
 * exit (before the process becomes a zombie) and at exec (the descriptor is
 * close-on-exec). A forked child inherits the descriptor, so the child
 * closes its copy at once (pthread_atfork) and the lock stays the parent's.
 * OFD locks rather than classic fcntl locks: closing some other descriptor
 * of the same file (a second dr_open() in the process) must not drop them.
 *
 * Liveness of an owner id (slot, generation) is then: the slot still holds
 * that generation, is marked live, and its byte is locked by someone else.
 * The generation moves on whenever a new process takes the slot, so neither
 * pid reuse nor a new attachment can make a dead owner look alive.
 *
 * The lock lives exactly as long as the process holds its descriptor. A
 * process that closes it behind the library's back (a daemon that closes
 * every descriptor after fork, say) looks dead to everyone else, who may
 * take its names. Whoever acts on a verdict of death first clears the live
 * bit of the slot (dri_owner_gone), so the verdict is final and shared, and
 * the process itself checks that bit at the start of each call and before
 * the steps that write what it may no longer own (dri_self_buried): it
 * fails with -ENOLCK instead of writing as an owner that others have
 * already buried.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <distreg_admin.h>

#include "dri.h"

pid_t dri_self_pid;

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dr_registry *open_list;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* 0 unknown, 1 registered for membarrier, -1 unavailable. A forked child
 * asks again: registration belongs to the address space. */
static int membarrier_state;

/*
 * fork(): the list of handles, every handle's mutex and every handle's
 * lock descriptor are quiescent while the child is made. A descriptor being
 * opened for a handle (own_lock_fd) is opened and stored under open_lock,
 * so the child always knows every one it must close; a thread holding a
 * handle's mutex in the parent would leave it locked for ever in the child.
 */
static void atfork_prepare(void)
{
	struct dr_registry *r;

	pthread_mutex_lock(&open_lock);
	for (r = open_list; r; r = r->next_open)
		pthread_mutex_lock(&r->lock);
}

static void atfork_parent(void)
{
	struct dr_registry *r;

	for (r = open_list; r; r = r->next_open)
		pthread_mutex_unlock(&r->lock);
	pthread_mutex_unlock(&open_lock);
}

/* In the child: no handle of the parent is usable, and the child must not
 * keep the parent's liveness locks alive after the parent dies. */
static void atfork_child(void)
{
	struct dr_registry *r;

	dri_self_pid = getpid();
	membarrier_state = 0;
	for (r = open_list; r; r = r->next_open) {
		if (r->fd >= 0) {
			close(r->fd);
			r->fd = -1;
		}
		pthread_mutex_init(&r->lock, NULL);
	}
	pthread_mutex_init(&open_lock, NULL);
}

/* Around opening a descriptor that will hold liveness locks and storing it
 * in a handle: no fork() in between (see atfork_prepare). */
void dri_fork_hold(void)
{
	pthread_mutex_lock(&open_lock);
}

void dri_fork_release(void)
{
	pthread_mutex_unlock(&open_lock);
}

static void atfork_setup(void)
{
	dri_self_pid = getpid();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void dri_registry_track(struct dr_registry *r)
{
	pthread_once(&atfork_once, atfork_setup);
	pthread_mutex_lock(&open_lock);
	r->pid = dri_self_pid;
	r->next_open = open_list;
	open_list = r;
	pthread_mutex_unlock(&open_lock);
}

void dri_registry_untrack(struct dr_registry *r)
{
	struct dr_registry **pp;

	pthread_mutex_lock(&open_lock);
	for (pp = &open_list; *pp; pp = &(*pp)->next_open) {
		if (*pp == r) {
			*pp = r->next_open;
			break;
		}
	}
	pthread_mutex_unlock(&open_lock);
}

static int sys_membarrier(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

/*
 * Register this process for MEMBARRIER_CMD_GLOBAL_EXPEDITED (once per
 * process). With r NULL, only say whether it works (the creator uses that to
 * choose the segment's mode). Returns 0 or -ENOSYS.
 */
int dri_membarrier_setup(struct dr_registry *r)
{
	int s = __atomic_load_n(&membarrier_state, __ATOMIC_ACQUIRE);

	if (s == 0) {
		int q = sys_membarrier(MEMBARRIER_CMD_QUERY);
		s = -1;
		if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
		    (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) &&
		    sys_membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0)
			s = 1;
		__atomic_store_n(&membarrier_state, s, __ATOMIC_RELEASE);
	}
	if (r && r->fence)
		return 0; /* the segment does not use it */
	return s > 0 ? 0 : -ENOSYS;
}

/*
 * A full barrier on every running thread of every registered process, so
 * that fence-free readers' epoch stores are visible to the caller, or their
 * later loads see the caller's earlier stores.
 */
void dri_membarrier(struct dr_registry *r)
{
	cmm_smp_mb();
	if (!r->fence && sys_membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0) {
		/* Registered at attach, so this cannot fail short of a kernel
		 * change under us; if it does, no reader is ordered, so never
		 * report success: abort is the only safe answer. */
		abort();
	}
	cmm_smp_mb();
}

/* 1 locked by another description, 0 free, <0 error. */
static int slot_locked(int fd, uint32_t slot)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = slot,
		.l_len = 1,
	};
	if (fd < 0)
		return -EBADF;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

/* The inode of this process's pid namespace, 0 if /proc cannot say: a
 * slot's pid is asked about only by processes of its own (r->pidns, set by
 * dr_open for every handle, read-only ones too). */
uint64_t dri_self_pidns(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* Owner's slot holds word w and owner is found dead: record it in the word
 * (unless the mapping is read-only), so that no one, the owner too if it
 * merely lost its lock, finds it alive again. Says false (dead), or true
 * if the finding cannot be trusted. */
static bool found_dead(struct dr_registry *r, uint32_t slot, uint64_t w)
{
	struct stat st;

	/* Unless our descriptor is no longer the segment's (closed by the
	 * program, its number given to another file): then its locks said
	 * nothing about anyone, and this process, whose own lock went with
	 * it, is the one that is dead to the others. One fstat per death
	 * found. */
	if (fstat(r->fd, &st) != 0 || (uint64_t)st.st_dev != r->fd_dev ||
	    (uint64_t)st.st_ino != r->fd_ino)
		return true;
	if (!r->rdonly && uatomic_cmpxchg(&r->procs[slot].word, w, w & ~DRI_PROC_LIVE) == w)
		uatomic_inc(&r->hdr->deaths);
	return false;
}

/*
 * Whether owner id owner's process lives. A death found is final: the
 * slot's live bit is cleared before this says so, and a cleared bit (or a
 * new generation) is dead to everyone at once. Without that, a process
 * taking the dead one's slot over would bring it back for a moment (the
 * lock held again, by the newcomer; the dead pid a zombie still), and a
 * watch would see one death twice (tests/model/p1_slot.pml). A read-only
 * handle (shmdump) cannot record it and may see such a moment.
 */
bool dri_owner_alive(struct dr_registry *r, uint64_t owner)
{
	uint32_t slot = DRI_OWNER_SLOT(owner);
	uint64_t w, pidns;
	pid_t pid;
	int locked;

	if (owner == r->owner)
		return true;
	if (slot >= r->max_procs)
		return false;
	w = ld_acq64(&r->procs[slot].word);
	if (!(w & DRI_PROC_LIVE) || DRI_PROC_GEN(w) != DRI_OWNER_GEN(owner))
		return false;
	/* An error here (it should not happen) counts as alive: wrongly
	 * keeping a name is recoverable, wrongly taking one is not. */
	locked = slot_locked(r->fd, slot);
	if (locked == 0)
		return found_dead(r, slot, w);
	/* The lock is held; by the slot's process, unless that one died and
	 * a child it forked still shares the lock's description (between
	 * fork() and atfork_child(), which closes it: a child stopped there
	 * keeps it for ever), or a new process has just taken the slot over
	 * (dri_proc_attach). The pid settles it: a process that no longer
	 * exists is dead whoever holds its lock. (A zombie still exists:
	 * until its parent reaps it, such a child keeps it alive.) The word
	 * is read again after the pid: a new holder clears the live bit
	 * before it writes its own pid, so a pid that is not the owner's
	 * comes with a changed word, and any change ends the owner. */
	pid = CMM_LOAD_SHARED(r->procs[slot].pid);
	pidns = CMM_LOAD_SHARED(r->procs[slot].pidns);
	cmm_smp_rmb();
	if (ld_acq64(&r->procs[slot].word) != w)
		return false;
	/* A pid of another pid namespace (a container sharing /dev/shm with
	 * its own pids) names some other process here, or none: only the
	 * lock speaks for it. */
	if (pid > 0 && pidns && pidns == r->pidns && kill(pid, 0) < 0 && errno == ESRCH)
		return found_dead(r, slot, w);
	return true;
}

/*
 * Owner is dead, and every process may act on it: dri_owner_alive() has
 * recorded the death in its slot's word, so that everyone, the owner too
 * if it merely lost its lock, sees the same verdict from now on (unless
 * this handle is read-only: it acts on nothing).
 */
bool dri_owner_gone(struct dr_registry *r, uint64_t owner)
{
	return !dri_owner_alive(r, owner);
}

/*
 * The fields of /proc/<path> (a stat file) after the command name, which
 * may hold spaces and parentheses (hence the last ')'), read into buf:
 * a pointer to the ')' or NULL if it cannot be read.
 */
char *dri_proc_stat(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	return strrchr(buf, ')');
}

/* This process's start time in clock ticks since boot: field 22 of
 * /proc/self/stat. 0 if it cannot be read. */
static uint64_t self_start_time(void)
{
	char buf[1024], *p = dri_proc_stat("/proc/self/stat", buf, sizeof(buf));

	/* Fields 3 to 21 are 19 more, each after a space. */
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

/*
 * Claim a process slot: the first whose byte we can lock. Then move its
 * generation on, which kills every owner id of a previous holder at once.
 */
int dri_proc_attach(struct dr_registry *r)
{
	uint32_t i, n = r->max_procs;

	for (i = 0; i < n; i++) {
		struct flock fl = {
			.l_type = F_WRLCK,
			.l_whence = SEEK_SET,
			.l_start = i,
			.l_len = 1,
		};
		struct dri_proc *p = &r->procs[i];
		uint64_t w, nw;
		uint32_t gen;

		if (fcntl(r->fd, F_OFD_SETLK, &fl) < 0) {
			if (errno == EAGAIN || errno == EACCES)
				continue;
			return -errno;
		}
		DRI_CRASHPOINT(attach_locked);
		/* The lock is ours, so the slot's last holder is dead: say so
		 * before our pid replaces its own, or a process asking about
		 * it meanwhile would find the slot locked, live in its
		 * generation, and held by a pid that exists (ours), and take
		 * an owner it had already found dead for alive again. (Until
		 * this store it finds the dead holder's pid, which no longer
		 * exists, unless the kernel has given that number to another
		 * process since.) */
		w = ld_acq64(&p->word);
		if (w & DRI_PROC_LIVE)
			uatomic_cmpxchg(&p->word, w, w & ~DRI_PROC_LIVE);
		p->pid = getpid();
		p->pidns = r->pidns;
		p->attached_ns = dri_now_ns();
		p->start_time = self_start_time();
		DRI_CRASHPOINT(attach_stamped);
		do {
			uint64_t count;

			w = ld_acq64(&p->word);
			count = (w >> 1) + 1;
			if ((count & DRI_PROC_GEN_MASK) == 0)
				count++; /* generation 0 is no one's */
			gen = (uint32_t)count & DRI_PROC_GEN_MASK;
			nw = (count << 1) | DRI_PROC_LIVE;
		} while (uatomic_cmpxchg(&p->word, w, nw) != w);
		r->slot = i;
		r->owner = DRI_OWNER(i, gen);
		r->slot_word = nw;
		/* After 2^24 - 1 attachments of this slot owner ids come
		 * back: from then on every holder's may have been a dead
		 * earlier holder's, and what that one left must not look like
		 * ours (dr_open reaps it, a scan of the table at each such
		 * open). */
		r->gen_wrapped = (w >> 1) >= DRI_PROC_GEN_MASK;
		DRI_CRASHPOINT(attach_claimed);
		return 0;
	}
	return -EUSERS;
}

/* Give the slot back: clear the live bit, then drop the lock. */
void dri_proc_detach(struct dr_registry *r)
{
	struct dri_proc *p = &r->procs[r->slot];
	uint64_t w = ld_acq64(&p->word);

	if (DRI_PROC_GEN(w) == DRI_OWNER_GEN(r->owner) && (w & DRI_PROC_LIVE))
		uatomic_cmpxchg(&p->word, w, w & ~DRI_PROC_LIVE);
	/* The descriptor is closed by dri_segment_close(), which frees the
	 * lock. */
}

/*
 * The attached processes, for a reaper: every slot with its live bit set
 * (a process that died stays listed until someone finds it dead, which
 * dr_admin_deaths counts). The pid
 * and start time are written before the word is, by the slot's holder; a
 * slot taken over while we read it is read again.
 */
DR_EXPORT int dr_admin_procs(dr_registry *r, struct dr_proc_info *out, size_t max, size_t *n)
{
	size_t k = 0;

	if (!r || !n || (!out && max))
		return -EINVAL;
	if (r->pid != dri_self_pid)
		return -ECHILD;
	if (dri_self_buried(r))
		return -ENOLCK;
	for (uint32_t i = 0; i < r->max_procs; i++) {
		struct dri_proc *p = &r->procs[i];
		uint64_t w = ld_acq64(&p->word), w2;
		struct dr_proc_info info = { 0 };

		for (int tries = 0; tries < 4; tries++) {
			if (!(w & DRI_PROC_LIVE))
				break;
			info.slot = i;
			info.pid = CMM_LOAD_SHARED(p->pid);
			info.start_time = CMM_LOAD_SHARED(p->start_time);
			cmm_smp_rmb();
			w2 = ld_acq64(&p->word);
			if (w2 == w)
				break;
			w = w2;
		}
		if (!(w & DRI_PROC_LIVE))
			continue;
		if (k < max)
			out[k] = info;
		k++;
	}
	*n = k;
	return k > max ? -ERANGE : 0;
}

/* Deaths found so far (found_dead), for a reaper: see dr_admin_procs. */
DR_EXPORT uint32_t dr_admin_deaths(const dr_registry *r)
{
	return r ? uatomic_read(&r->hdr->deaths) : 0;
}

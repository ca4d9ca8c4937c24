/*
 * segment.c - naming, creating, validating and mapping the shared segment.
 *
 * A new segment is built in an unnamed file (O_TMPFILE in /dev/shm),
 * allocated in full with posix_fallocate() (a full /dev/shm then fails
 * here, not with SIGBUS later), initialised, and only then linked to its
 * real name. Linking fails if the name exists, so of many concurrent
 * creators exactly one wins and the others open the winner's segment;
 * nobody ever maps a half-built segment, and a creator killed half-way
 * leaves nothing: the kernel frees an unnamed file with its last reference.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; glibc 2.36 headers lack it */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#include "dri.h"

#define SHM_DIR "/dev/shm"
#define SEG_PREFIX "distreg."

uint64_t dri_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The format word: a hash of everything two builds must agree on to share a
 * segment. Any change of layout, limits, hash function or byte order changes
 * it, so a foreign segment is refused instead of misread.
 */
uint64_t dri_format_word(void)
{
	const uint64_t desc[] = {
		DRI_LAYOUT_VERSION,
		0x0102030405060708ull, /* byte order */
		sizeof(struct dri_header),
		offsetof(struct dri_header, epoch),
		offsetof(struct dri_header, next_regid),
		offsetof(struct dri_header, readers_hwm),
		sizeof(struct dri_proc),
		sizeof(struct dri_reader),
		sizeof(struct dri_entry),
		offsetof(struct dri_entry, name),
		offsetof(struct dri_entry, val),
		sizeof(struct dri_ext),
		offsetof(struct dri_ext, val),
		DRI_NAME_INLINE,
		DRI_VALUE_INLINE,
		DRI_LINK_FP_SHIFT,
		offsetof(struct dri_entry, mbox),
		sizeof(struct dri_mbox),
		DRI_MBOX_LANES,
		sizeof(struct dri_lane),
		offsetof(struct dri_lane, tail),
		offsetof(struct dri_lane, head),
		sizeof(struct dri_rec),
		offsetof(struct dri_header, off_lanes),
		DR_NAME_MAX,
		DR_VALUE_MAX,
		DRI_MARK,
		0x78786833ull, /* "xxh3": the name hash is XXH3_64bits_withSeed */
		offsetof(struct dri_header, off_cluster),
		offsetof(struct dri_proc, start_time),
		sizeof(struct dri_cluster),
		offsetof(struct dri_cluster, live_lock),
		offsetof(struct dri_cluster, live),
		sizeof(pthread_mutex_t),
		offsetof(struct dri_cluster, view_index),
		offsetof(struct dri_cluster, view),
		sizeof(struct dri_view),
		offsetof(struct dri_view, hot),
		offsetof(struct dri_view, host),
		sizeof(struct dri_vhost_hot),
		sizeof(struct dri_vhost),
		DR_HOSTS_MAX,
		DR_HOST_MAX,
		DR_ADDR_MAX,
		DRI_NAME_GLOBAL,
		DRI_GLOBAL_SALT,
		DRI_OWNER_SEED,
		DRI_REC_GLOBAL,
		DRI_REC_ENDED,
		DRI_LANE_EVICTED,
	};
	return XXH64(desc, sizeof(desc), 0) | 1; /* never 0 */
}

#ifndef DISTREG_VERSION
#define DISTREG_VERSION "unknown"
#endif

DR_EXPORT const char *dr_version(uint32_t *layout)
{
	if (layout)
		*layout = DRI_LAYOUT_VERSION;
	return DISTREG_VERSION;
}

#define SEG_STR_(x) #x
#define SEG_STR(x) SEG_STR_(x)

/* NULL if s is a valid segment name, else the rule it breaks. */
static const char *segment_name_rule(const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return "empty segment name: segment names are 1 to " SEG_STR(DR_SEGMENT_MAX) " bytes";
	if (n > DR_SEGMENT_MAX)
		return "segment name too long: segment names are 1 to " SEG_STR(DR_SEGMENT_MAX) " bytes";
	if (strchr(s, '/'))
		return "no '/' in a segment name (it names the file /dev/shm/distreg.<name>)";
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return "'.' and '..' are not segment names";
	return NULL;
}

static bool segment_name_ok(const char *s)
{
	return segment_name_rule(s) == NULL;
}

DR_EXPORT const char *dr_segment_name_error(const char *segment)
{
	if (!segment) {
		segment = getenv("DISTREG_SEGMENT");
		if (!segment || !*segment)
			segment = "default";
	}
	return segment_name_rule(segment);
}

int dri_segment_path(const char *segment, char *path, size_t len,
		     const char **resolved)
{
	if (!segment) {
		segment = getenv("DISTREG_SEGMENT");
		if (!segment || !*segment)
			segment = "default";
	}
	if (!segment_name_ok(segment))
		return -EINVAL;
	if ((size_t)snprintf(path, len, SHM_DIR "/" SEG_PREFIX "%s", segment) >= len)
		return -EINVAL;
	if (resolved)
		*resolved = segment;
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 16;
	while (p < v)
		p <<= 1;
	return p;
}

static bool lane_bytes_ok(uint32_t n)
{
	return n >= DRI_MIN_LANE_BYTES && n <= DRI_MAX_LANE_BYTES && (n & (n - 1)) == 0;
}

/* Segments at least this big are sized in whole huge pages and asked to
 * use them (want_huge_pages); smaller ones in 4 KiB pages. */
#define DRI_HUGE_MIN (8ull << 20)

/* Lay the arrays out after the header; returns the total size. The
 * cluster area comes first: its size does not depend on the geometry. */
static uint64_t layout(struct dri_header *h)
{
	uint64_t off = DRI_HEADER_SIZE;
	h->off_cluster = off;
	off = align_up(off + sizeof(struct dri_cluster), DRI_CACHELINE);
	h->off_procs = off;
	off = align_up(off + (uint64_t)h->max_procs * sizeof(struct dri_proc), DRI_CACHELINE);
	h->off_readers = off;
	off = align_up(off + (uint64_t)h->max_threads * sizeof(struct dri_reader), DRI_CACHELINE);
	h->off_states = off;
	off = align_up(off + (uint64_t)h->capacity * sizeof(uint64_t), DRI_CACHELINE);
	h->off_buckets = off;
	off = align_up(off + (uint64_t)h->nbuckets * sizeof(uint32_t), DRI_CACHELINE);
	h->off_entries = off;
	off += (uint64_t)h->capacity * sizeof(struct dri_entry);
	h->off_ext = off;
	off += (uint64_t)h->capacity * sizeof(struct dri_ext);
	h->off_mboxes = off;
	off += (uint64_t)h->max_mailboxes * sizeof(struct dri_mbox);
	h->off_lanes = off;
	off += (uint64_t)h->max_lanes * (sizeof(struct dri_lane) + h->lane_bytes);
	return align_up(off, off >= DRI_HUGE_MIN ? DRI_HUGE_PAGE : 4096);
}

/*
 * Check a header read from a file of file_size bytes: everything a
 * corrupted or foreign file could get wrong before we trust an offset.
 */
static int header_check(const struct dri_header *h, uint64_t file_size)
{
	struct dri_header want;

	if (h->magic != DRI_MAGIC)
		return -EBADMSG;
	if (h->format != dri_format_word())
		return -EPROTO;
	if (h->capacity == 0 || h->capacity > DRI_MAX_CAPACITY ||
	    h->max_procs == 0 || h->max_procs > DRI_MAX_PROCS ||
	    h->max_threads == 0 || h->max_threads > DRI_MAX_THREADS ||
	    h->nbuckets != pow2_at_least(h->capacity) ||
	    (h->rcu_mode != DRI_RCU_MEMBARRIER && h->rcu_mode != DRI_RCU_FENCE) ||
	    h->max_mailboxes == 0 || h->max_mailboxes > DRI_MAX_MAILBOXES ||
	    h->max_lanes == 0 || h->max_lanes > DRI_MAX_LANES || !lane_bytes_ok(h->lane_bytes))
		return -EBADMSG;
	want = *h;
	if (layout(&want) != h->size || want.off_procs != h->off_procs ||
	    want.off_readers != h->off_readers || want.off_states != h->off_states ||
	    want.off_buckets != h->off_buckets || want.off_entries != h->off_entries ||
	    want.off_ext != h->off_ext || want.off_mboxes != h->off_mboxes ||
	    want.off_lanes != h->off_lanes || want.off_cluster != h->off_cluster)
		return -EBADMSG;
	if (file_size < h->size)
		return -EBADMSG; /* truncated */
	return 0;
}

/* Take fd and its mapping at base into r. h is a private copy of the
 * header, checked: the geometry is taken from it, never from the shared
 * header, which another process may change under us. */
static void map_arrays(struct dr_registry *r, int fd, void *base,
		       const struct dri_header *h)
{
	struct stat st;

	r->fd = fd;
	/* What r->fd is: a process that closes it by mistake and opens
	 * something else under its number must not take the new file's
	 * locks (none) for the segment's (dri_owner_alive). */
	if (fstat(fd, &st) == 0) {
		r->fd_dev = (uint64_t)st.st_dev;
		r->fd_ino = (uint64_t)st.st_ino;
	}
	r->base = base;
	r->size = h->size;
	r->hdr = base;
	r->procs = (struct dri_proc *)(r->base + h->off_procs);
	r->readers = (struct dri_reader *)(r->base + h->off_readers);
	r->states = (uint64_t *)(r->base + h->off_states);
	r->buckets = (uint32_t *)(r->base + h->off_buckets);
	r->entries = (struct dri_entry *)(r->base + h->off_entries);
	r->ext = (struct dri_ext *)(r->base + h->off_ext);
	r->mboxes = (struct dri_mbox *)(r->base + h->off_mboxes);
	r->lanes = r->base + h->off_lanes;
	r->cluster = (struct dri_cluster *)(r->base + h->off_cluster);
	r->max_mailboxes = h->max_mailboxes;
	r->max_lanes = h->max_lanes;
	r->lane_bytes = h->lane_bytes;
	r->lane_stride = sizeof(struct dri_lane) + h->lane_bytes;
	r->capacity = h->capacity;
	r->max_procs = h->max_procs;
	r->max_threads = h->max_threads;
	/* A sixteenth of the table at most, at least 16. */
	r->retire_batch = h->capacity / 16 < 16 ? 16 :
			  h->capacity / 16 > DRI_RETIRE_BATCH ? DRI_RETIRE_BATCH : h->capacity / 16;
	r->mask = h->nbuckets - 1;
	r->seed = h->seed;
	r->gseed = h->seed ^ DRI_GLOBAL_SALT;
	r->fence = h->rcu_mode == DRI_RCU_FENCE;
}

static int options_check(const struct dr_options *o)
{
	if (o->capacity > DRI_MAX_CAPACITY || o->max_procs > DRI_MAX_PROCS ||
	    o->max_threads > DRI_MAX_THREADS || (o->mode & ~0777u) ||
	    (o->flags & ~(uint32_t)(DR_OPEN_NOCREATE | DR_OPEN_NOREAP | DR_OPEN_NOHUGEPAGES |
				   DR_OPEN_RDONLY)) ||
	    o->max_mailboxes > DRI_MAX_MAILBOXES || o->max_lanes > DRI_MAX_LANES ||
	    (o->lane_bytes && !lane_bytes_ok(o->lane_bytes)))
		return -EINVAL;
	return 0;
}

/*
 * Give the unnamed file fd the name path. linkat() with AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH; through /proc/self/fd it needs nothing.
 */
static int link_unnamed(int fd, const char *path)
{
	char proc[64];

	if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return -errno;
}

/*
 * Ask for the segment in huge pages. A lookup in a table of a million names
 * otherwise pays two TLB misses (bucket, entry), each a two-dimensional page
 * walk on a nested VM. MADV_COLLAPSE (Linux 6.1) makes the file's pages huge
 * now, whatever the tmpfs mount's huge= option and the shmem_enabled
 * setting (only "deny" refuses it), and every process that maps the file
 * afterwards maps them huge too. MADV_HUGEPAGE first covers kernels where
 * the mount's huge=advise decides. Failure (an older kernel, no free huge
 * page) costs only speed, so it is not reported.
 */
static void want_huge_pages(void *base, uint64_t size)
{
	if (size < DRI_HUGE_MIN)
		return;
	(void)madvise(base, size, MADV_HUGEPAGE);
	(void)madvise(base, size, MADV_COLLAPSE);
}

/*
 * Map size bytes of fd, shared and populated. A segment sized in huge pages
 * is mapped at a multiple of 2 MiB: only there can the page tables map its
 * huge pages whole (a PMD each). The kernel does not pick such an address
 * for a tmpfs file mounted without huge=, so reserve a larger hole and map
 * inside it.
 */
static void *map_segment(int fd, uint64_t size, int populate, bool rdonly)
{
	const int prot = rdonly ? PROT_READ : PROT_READ | PROT_WRITE;
	uint8_t *hole, *at;
	void *p;

	if (size < DRI_HUGE_MIN)
		return mmap(NULL, size, prot, MAP_SHARED | populate, fd, 0);
	hole = mmap(NULL, size + DRI_HUGE_PAGE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hole == MAP_FAILED)
		return MAP_FAILED;
	at = (uint8_t *)align_up((uint64_t)(uintptr_t)hole, DRI_HUGE_PAGE);
	p = mmap(at, size, prot, MAP_SHARED | MAP_FIXED | populate, fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;
		munmap(hole, size + DRI_HUGE_PAGE);
		errno = err;
		return MAP_FAILED;
	}
	if (at > hole)
		munmap(hole, (size_t)(at - hole));
	if (at + size < hole + size + DRI_HUGE_PAGE)
		munmap(at + size, (size_t)(hole + size + DRI_HUGE_PAGE - (at + size)));
	return p;
}

/* The bridge role's liveness lock (dri.h, struct dri_cluster): robust, so
 * that the kernel marks it when its holder dies, and shared between the
 * processes. create() makes it before the segment has a name, so no one
 * sees it half made; bridge.c makes one to compare a segment's with. */
int dri_live_lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int err = pthread_mutexattr_init(&a);

	if (err)
		return -err;
	err = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!err)
		err = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!err)
		err = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -err;
}

/*
 * Build a segment in an unnamed file and link it to path. Returns 0 with r
 * mapped and r->fd open, -EEXIST when another creator won, or another
 * negative errno.
 */
static int create(struct dr_registry *r, const char *path, const struct dr_options *o)
{
	struct dri_header h = { 0 };
	mode_t mode = o->mode ? o->mode : 0600;
	int fd, err;
	void *base;

	fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) { /* the umask must not narrow an asked-for mode */
		err = -errno;
		goto fail;
	}
	DRI_CRASHPOINT(create_tmp);

	h.magic = DRI_MAGIC;
	h.format = dri_format_word();
	h.capacity = o->capacity ? o->capacity : DR_DEFAULT_CAPACITY;
	h.max_procs = o->max_procs ? o->max_procs : DR_DEFAULT_MAX_PROCS;
	h.max_threads = o->max_threads ? o->max_threads : DR_DEFAULT_MAX_THREADS;
	h.max_mailboxes = o->max_mailboxes ? o->max_mailboxes : DR_DEFAULT_MAX_MAILBOXES;
	h.max_lanes = o->max_lanes ? o->max_lanes : DR_DEFAULT_MAX_LANES;
	h.lane_bytes = o->lane_bytes ? o->lane_bytes : DR_DEFAULT_LANE_BYTES;
	h.nbuckets = pow2_at_least(h.capacity);
	h.size = layout(&h);
	h.created_ns = dri_now_ns();
	if (getrandom(&h.seed, sizeof(h.seed), 0) != sizeof(h.seed))
		h.seed = (h.created_ns ^ ((uint64_t)getpid() << 32)) * 0x9e3779b97f4a7c15ull;
	h.creator_pid = getpid();
	h.rcu_mode = dri_membarrier_setup(NULL) == 0 ? DRI_RCU_MEMBARRIER : DRI_RCU_FENCE;
	h.epoch = 1;
	h.next_regid = h.created_ns;
	h.readers_hwm = 0;

	/* Allocated in full first, so a full /dev/shm fails here and not with
	 * SIGBUS later. Then huge pages (a copy of the small ones fallocate
	 * made: 0.3 s for a 400 MiB segment, measured; MADV_COLLAPSE refuses
	 * a file that is still a hole). Then the page tables are filled:
	 * without that every first touch of a page is a minor fault
	 * (registering 10 k fresh names measured 968 ns each without, 300 ns
	 * with). */
	err = -posix_fallocate(fd, 0, (off_t)h.size);
	if (err)
		goto fail;
	base = map_segment(fd, h.size, 0, false);
	if (base == MAP_FAILED) {
		err = -errno;
		goto fail;
	}
	if (!(o->flags & DR_OPEN_NOHUGEPAGES))
		want_huge_pages(base, h.size);
	(void)madvise(base, h.size, MADV_POPULATE_WRITE);
	/* Every page reads as zero: all entries FREE, all slots free. */
	memcpy(base, &h, sizeof(h));
	err = dri_live_lock_init(&((struct dri_cluster *)((uint8_t *)base + h.off_cluster))->live_lock);
	if (err) {
		munmap(base, h.size);
		goto fail;
	}
	DRI_CRASHPOINT(create_init);

	err = link_unnamed(fd, path);
	if (err) {
		munmap(base, h.size);
		goto fail;
	}
	map_arrays(r, fd, base, &h);
	return 0;

fail:
	close(fd);
	/* Only the file system can run out here (fallocate, or no inode for
	 * the unnamed file): a code of its own, never the table's -ENOSPC. */
	return err == -ENOSPC ? -EDQUOT : err;
}

/* Open and validate an existing segment file. */
static int attach_existing(struct dr_registry *r, int fd, bool rdonly)
{
	struct dri_header h, m;
	struct stat st;
	void *base;
	int err;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < DRI_HEADER_SIZE)
		return -EBADMSG;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EBADMSG;
	err = header_check(&h, (uint64_t)st.st_size);
	if (err)
		return err;
	base = map_segment(fd, h.size, MAP_POPULATE, rdonly);
	if (base == MAP_FAILED)
		return -errno;
	/* Check the mapped header too, as a private copy that cannot change
	 * between the check and its use: the file may have changed since
	 * pread, and may change again. */
	memcpy(&m, base, sizeof(m));
	err = header_check(&m, (uint64_t)st.st_size);
	if (!err && m.size != h.size)
		err = -EBADMSG; /* not the size we mapped */
	if (err) {
		munmap(base, h.size);
		return err;
	}
	map_arrays(r, fd, base, &m);
	return 0;
}

/*
 * Give r a descriptor for its liveness locks that is not the one its
 * mapping was made through. A mapping holds a reference to its open file
 * description, and a forked child inherits the mapping: were the locks on
 * that description, a child would keep a dead parent's locks, so its names,
 * alive. The new description is opened by path and must be the same file;
 * -ESTALE if the name was replaced meanwhile (the caller goes round again).
 */
static int own_lock_fd(struct dr_registry *r, const char *path)
{
	struct stat a, b;
	int fd, err = 0;

	/* No fork() until the descriptor is r->fd: a child that inherited it
	 * unknown to atfork_child() would keep our locks after we die. */
	dri_fork_hold();
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = errno == ENOENT ? -ESTALE : -errno;
		goto out;
	}
	DRI_CRASHPOINT(lockfd_opened);
	if (fstat(fd, &a) < 0 || fstat(r->fd, &b) < 0) {
		err = -errno;
		close(fd);
		goto out;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(fd);
		err = -ESTALE;
		goto out;
	}
	close(r->fd); /* the mapping keeps its own reference */
	r->fd = fd;
out:
	dri_fork_release();
	return err;
}

int dri_segment_open(struct dr_registry *r, const char *segment,
		     const struct dr_options *o)
{
	char path[DR_SEGMENT_MAX + 64];
	int err, tries;

	err = options_check(o);
	if (err)
		return err;
	err = dri_segment_path(segment, path, sizeof(path), &segment);
	if (err)
		return err;
	snprintf(r->segment, sizeof(r->segment), "%s", segment);

	/* Read-only: the file opened O_RDONLY and mapped PROT_READ, never
	 * created, and no descriptor of its own for liveness locks (it takes
	 * none; it only tests other processes' locks, which works on any). */
	if (o->flags & DR_OPEN_RDONLY) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0)
			return -errno;
		err = attach_existing(r, fd, true);
		if (err) {
			close(fd);
			return err;
		}
		r->rdonly = true;
		return 0;
	}

	/* Bounded: each round either opens, or creates, or loses a creation
	 * race to a segment that then exists (unless removed again at once). */
	for (tries = 0; tries < 64; tries++) {
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			err = attach_existing(r, fd, false);
			if (err) {
				close(fd);
				return err;
			}
		} else {
			if (errno != ENOENT)
				return -errno;
			if (o->flags & DR_OPEN_NOCREATE)
				return -ENOENT;
			err = create(r, path, o);
			if (err == -EEXIST)
				continue;
			if (err)
				return err;
		}
		err = own_lock_fd(r, path);
		if (err != -ESTALE)
			return err; /* 0, or an error the caller cleans up after */
		dri_segment_close(r);
	}
	return -EAGAIN;
}

void dri_segment_close(struct dr_registry *r)
{
	dri_live_close(r);
	if (r->base)
		munmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->base = NULL;
	r->fd = -1;
}

DR_EXPORT int dr_unlink(const char *segment)
{
	char path[DR_SEGMENT_MAX + 64];
	int err = dri_segment_path(segment, path, sizeof(path), NULL);
	if (err)
		return err;
	if (unlink(path) < 0)
		return -errno;
	return 0;
}

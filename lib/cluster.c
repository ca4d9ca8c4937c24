/*
 * cluster.c - the view as readers see it: the bridge role's state, the
 * hosts, and the owner host of a global name (rendezvous hashing).
 *
 * A reader never waits and never trusts the segment: it takes a copy of the
 * view under that copy's sequence (dri.h, struct dri_cluster), checks every
 * bound of what it read before using it, and uses a copy only if its
 * sequence was even and unchanged. A copy that another process scribbled
 * on is not used; dr_check() says what is wrong with it.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "dri.h"

/* Attempts at reading the view before a reader gives up: a copy changes
 * under a reader only if the writer published twice while it read. */
#define VIEW_TRIES 64

/* MurmurHash3's 64-bit finalizer: the score of a (name, host) pair. */
static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

uint64_t dri_host_seed(const char *id, size_t len)
{
	return XXH3_64bits(id, len);
}

/* This host's name when no view names it: the kernel's node name, cut to
 * DR_HOST_MAX bytes, taken once per handle, at dr_open(). */
void dri_nodename_init(struct dr_registry *r)
{
	struct utsname u;

	if (uname(&u) == 0)
		snprintf(r->nodename, sizeof(r->nodename), "%.*s", DR_HOST_MAX, u.nodename);
	if (!r->nodename[0])
		snprintf(r->nodename, sizeof(r->nodename), "localhost");
}

static const char *nodename(struct dr_registry *r)
{
	return r->nodename;
}

/* ---------------------------------------------------------------------- */
/* Reading a copy */

/*
 * Check a copy's header and every host's hot fields: 1 a view of *n hosts
 * with epoch *epoch, 0 none published into it, -EBADMSG unusable. Every
 * field is loaded once: the copy may change under us (the caller then
 * throws the result away), and must not make us read out of bounds.
 */
static int copy_check(const struct dri_view *v, uint32_t *n, uint64_t *epoch)
{
	uint64_t e = CMM_LOAD_SHARED(v->epoch);
	uint32_t nh = CMM_LOAD_SHARED(v->nhosts), selves = 0;

	if (nh == 0 && e == 0)
		return 0;
	if (nh == 0 || e == 0 || nh > DR_HOSTS_MAX)
		return -EBADMSG;
	for (uint32_t i = 0; i < nh; i++) {
		const struct dri_vhost_hot *h = &v->hot[i];
		uint8_t st = CMM_LOAD_SHARED(h->state), self = CMM_LOAD_SHARED(h->self);
		uint8_t idl = CMM_LOAD_SHARED(h->id_len), rl = CMM_LOAD_SHARED(h->rpc_len);

		if (st < DR_HOST_UP || st > DR_HOST_IGNORED || self > 1 || idl < 1 ||
		    idl > DR_HOST_MAX || rl > DR_ADDR_MAX)
			return -EBADMSG;
		selves += self;
	}
	if (selves != 1)
		return -EBADMSG;
	*n = nh;
	*epoch = e;
	return 1;
}

/* Copy a host's id (len checked by copy_check, loaded again here: it is
 * shared) into buf, NUL-terminated; returns its length. */
static size_t id_copy(const struct dri_view *v, uint32_t i, char *buf)
{
	size_t len = CMM_LOAD_SHARED(v->hot[i].id_len);

	if (len > DR_HOST_MAX)
		len = DR_HOST_MAX;
	memcpy(buf, v->host[i].id, len);
	buf[len] = 0;
	return len;
}

/* What a reader does with a copy, in place: 1 or a negative errno of its
 * own (both final once the copy is seen unchanged), 0 the copy holds no
 * view, -EBADMSG the copy is unusable. */
typedef int (*copy_fn)(const struct dri_view *v, void *arg);

/*
 * Read the view: the copy the index names, or else the other one. fn's
 * result counts only if the copy's sequence was even before and the same
 * after. The other copy serves when the named one is being written (we
 * read a stale index: the writer has flipped it since and writes the copy
 * it named) or unusable; then only a view counts, not an empty copy.
 */
static int view_read(struct dr_registry *r, copy_fn fn, void *arg)
{
	struct dri_cluster *c = r->cluster;

	for (int tries = 0; tries < VIEW_TRIES; tries++) {
		uint32_t index = ld_acq32(&c->view_index), first = index & 1;
		bool raced = false;

		for (uint32_t k = 0; k < 2 && !raced; k++) {
			const struct dri_view *v = &c->view[first ^ k];
			uint64_t s1 = ld_acq64(&v->seq);
			int rc;

			if (s1 & 1)
				continue; /* being written, or its writer stopped there */
			rc = fn(v, arg);
			cmm_smp_rmb();
			if (CMM_LOAD_SHARED(v->seq) != s1)
				raced = true;
			else if (rc != -EBADMSG && (k == 0 || rc != 0))
				return rc;
		}
		/* No usable copy: unless a publication ended meanwhile (the
		 * count moved), that is a corrupt view, not a race. */
		if (!raced && ld_acq32(&c->view_index) == index)
			return -EBADMSG;
	}
	return -EBADMSG;
}

/* ---------------------------------------------------------------------- */
/* The bridge role, as readers see it */

/*
 * Whether holder o of the bridge role is alive, from its liveness word
 * alone (dri.h, struct dri_cluster: live_lock, live), with no system call:
 * true only while a thread of o's process (bridge.c, struct dri_live)
 * holds live_lock and `live` names that thread and o exactly. The kernel
 * marks the lock (FUTEX_OWNER_DIED, its tid cleared) as that thread exits,
 * however it exits (also when another thread of its process execs),
 * before its process can be reaped. So a bridge that is found dead,
 * exited or killed is seen at once, as by the kernel's answer (and one
 * stopped is alive). The holder thread takes no lock if the kernel keeps
 * no robust list for it (bridge.c, robust_registered).
 * The lock word is read before `live`: a claimer clears `live` before it
 * takes the lock, so a holder seen in the lock word comes with its own
 * `live` or 0, never with its predecessor's (whose tid, reused by then,
 * could match: tests/model/l1_live.pml). False sends the caller to the
 * kernel (dri_owner_alive): no holder vouches (the lock could not be
 * taken, or a segment written by something else) or the holder is dead.
 */
static bool holder_vouched(struct dr_registry *r, uint64_t o)
{
#ifdef DRI_LIVE_WORD
	struct dri_cluster *c = r->cluster;
	uint32_t slot = DRI_OWNER_SLOT(o), lw;
	uint64_t w, x;

	if (slot >= r->max_procs)
		return false;
	/* A holder found dead, or buried, is dead whatever its lock says. */
	w = ld_acq64(&r->procs[slot].word);
	if (!(w & DRI_PROC_LIVE) || DRI_PROC_GEN(w) != DRI_OWNER_GEN(o))
		return false;
	lw = ld_acq32(DRI_LIVE_WORD(c));
	x = ld_acq64(&c->live);
	return (lw & FUTEX_TID_MASK) != 0 && !(lw & FUTEX_OWNER_DIED) &&
	       x == ((uint64_t)(lw & FUTEX_TID_MASK) << DRI_LIVE_TID_SHIFT | o);
#else
	(void)r;
	(void)o;
	return false;
#endif
}

/*
 * The owner id of the live bridge, or 0; *ran: a bridge has run on the
 * segment. `ever` is loaded first: a claim sets the owner word before it,
 * so a bridge that starts meanwhile is seen alive rather than missing.
 * Liveness costs no system call while the holder's liveness word vouches
 * for it (holder_vouched), two otherwise.
 */
static uint64_t bridge_live(struct dr_registry *r, bool *ran)
{
	struct dri_cluster *c = r->cluster;
	uint32_t ever = ld_acq32(&c->ever);
	uint64_t o = ld_acq64(&c->owner);

	*ran = ever != 0;
	if (!o)
		return 0;
	if (o == r->owner || holder_vouched(r, o) || dri_owner_alive(r, o))
		return o;
	return 0;
}

/* Whether mailbox ref is the live bridge's, holding the role. */
bool dri_bridge_serves(struct dr_registry *r, uint32_t ref)
{
	bool ran;

	return bridge_live(r, &ran) != 0 && ld_acq32(&r->cluster->mbox) == ref;
}

pid_t dri_bridge_pid(struct dr_registry *r, bool *ran)
{
	uint64_t o = bridge_live(r, ran);
	uint32_t slot = DRI_OWNER_SLOT(o);

	if (!o || slot >= r->max_procs)
		return 0;
	return r->procs[slot].pid;
}

/* ---------------------------------------------------------------------- */
/* Owners */

/* The pick of an owner in one copy. */
struct pick {
	uint64_t h;               /* the name's ownership hash */
	uint64_t epoch;
	bool self;
	char id[DR_HOST_MAX + 1];
};

/* Whether host i's id sorts before host j's (bytes, then length). */
static bool id_before(const struct dri_view *v, uint32_t i, uint32_t j)
{
	char a[DR_HOST_MAX + 1], b[DR_HOST_MAX + 1];
	size_t la = id_copy(v, i, a), lb = id_copy(v, j, b);
	int c = memcmp(a, b, la < lb ? la : lb);

	return c < 0 || (c == 0 && la < lb);
}

/*
 * Rendezvous hashing: of the hosts up or suspect, the one whose
 * fmix64(h ^ seed) is highest; a tie (two seeds giving one score) goes to
 * the smaller id. One mix per host, on the hot array only.
 */
static int pick_fn(const struct dri_view *v, void *arg)
{
	struct pick *p = arg;
	uint32_t n, best = UINT32_MAX;
	uint64_t best_score = 0;
	int rc = copy_check(v, &n, &p->epoch);

	if (rc <= 0)
		return rc;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t st = CMM_LOAD_SHARED(v->hot[i].state);
		uint64_t score;

		if (st != DR_HOST_UP && st != DR_HOST_SUSPECT)
			continue;
		score = fmix64(p->h ^ CMM_LOAD_SHARED(v->hot[i].seed));
		if (best == UINT32_MAX || score > best_score ||
		    (score == best_score && id_before(v, i, best))) {
			best = i;
			best_score = score;
		}
	}
	if (best == UINT32_MAX)
		return -EHOSTUNREACH; /* nobody is up, not even this host */
	id_copy(v, best, p->id);
	p->self = CMM_LOAD_SHARED(v->hot[best].self) == 1;
	return 1;
}

/* The owner of name among hosts (as dr_hosts() gives them), by the same
 * rendezvous as pick_fn; its index, or -1 if none is up or suspect. */
int dri_owner_among(const struct dr_host *hosts, size_t n, const void *name, size_t len)
{
	uint64_t h = XXH3_64bits_withSeed(name, len, DRI_OWNER_SEED), best_score = 0;
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		uint64_t score;

		if (hosts[i].state != DR_HOST_UP && hosts[i].state != DR_HOST_SUSPECT)
			continue;
		score = fmix64(h ^ dri_host_seed(hosts[i].id, strnlen(hosts[i].id, DR_HOST_MAX)));
		if (best < 0 || score > best_score ||
		    (score == best_score && strcmp(hosts[i].id, hosts[best].id) < 0)) {
			best = (int)i;
			best_score = score;
		}
	}
	return best;
}

/*
 * Where a global name lives: on this host while no bridge ever ran, or
 * while the live bridge has published no view; else its owner in the
 * view. -ENOTCONN a bridge ran and none is alive; -EHOSTUNREACH no host of
 * the view is up; -EBADMSG the view is corrupt.
 */
int dri_owner_of(struct dr_registry *r, const void *name, size_t len, struct dri_where *w)
{
	bool ran;

	if (r->pid != dri_self_pid)
		return -ECHILD;
	if (dri_self_buried(r))
		return -ENOLCK;
	memset(w, 0, sizeof(*w));
	w->bridge = bridge_live(r, &ran);
	if (!w->bridge && ran)
		return -ENOTCONN;
	if (w->bridge) {
		struct pick p = { .h = XXH3_64bits_withSeed(name, len, DRI_OWNER_SEED) };
		int rc = view_read(r, pick_fn, &p);

		if (rc < 0)
			return rc;
		if (rc == 1) {
			w->self = p.self;
			w->epoch = p.epoch;
			memcpy(w->host, p.id, sizeof(w->host));
			return 0;
		}
	}
	w->self = true;
	snprintf(w->host, sizeof(w->host), "%s", nodename(r));
	return 0;
}

static int name_check(const void *name, size_t len)
{
	if (!name || len == 0)
		return -EINVAL;
	return len > DR_NAME_MAX ? -ENAMETOOLONG : 0;
}

DR_EXPORT int dr_owner_bin(dr_registry *r, const void *name, size_t name_len, char *host,
			   size_t host_len)
{
	struct dri_where w;
	int err;

	if (!r || !host)
		return -EINVAL;
	err = name_check(name, name_len);
	if (!err)
		err = dri_owner_of(r, name, name_len, &w);
	if (err)
		return err;
	if (strlen(w.host) >= host_len)
		return -ERANGE;
	memcpy(host, w.host, strlen(w.host) + 1);
	return 0;
}

DR_EXPORT int dr_owner(dr_registry *r, const char *name, char *host, size_t host_len)
{
	return dr_owner_bin(r, name, dri_cname_len(name), host, host_len);
}

/* ---------------------------------------------------------------------- */
/* The hosts */

static int snap_fn(const struct dri_view *v, void *arg)
{
	struct dri_view_snap *s = arg;
	int rc = copy_check(v, &s->n, &s->epoch);

	if (rc <= 0)
		return rc;
	for (uint32_t i = 0; i < s->n; i++) {
		struct dr_host *h = &s->hosts[i];
		size_t rl = CMM_LOAD_SHARED(v->hot[i].rpc_len);

		if (rl > DR_ADDR_MAX)
			rl = DR_ADDR_MAX;
		id_copy(v, i, h->id);
		memcpy(h->rpc, v->host[i].rpc, rl);
		h->rpc[rl] = 0;
		h->incarnation = CMM_LOAD_SHARED(v->host[i].incarnation);
		h->state = CMM_LOAD_SHARED(v->hot[i].state);
		h->self = CMM_LOAD_SHARED(v->hot[i].self);
	}
	return 1;
}

/* The whole view: 1 taken, 0 none was ever published, -EBADMSG. */
int dri_view_snapshot(struct dr_registry *r, struct dri_view_snap *out)
{
	int rc = view_read(r, snap_fn, out);

	if (rc == 0) {
		out->epoch = 0;
		out->n = 0;
	}
	return rc;
}

DR_EXPORT int dr_hosts(dr_registry *r, struct dr_host *hosts, size_t max, size_t *n,
		       uint64_t *epoch)
{
	struct dri_view_snap *s;
	bool ran;
	uint64_t bridge;
	int rc = 0;

	if (!r || !n || (!hosts && max))
		return -EINVAL;
	if (r->pid != dri_self_pid)
		return -ECHILD;
	if (!r->rdonly && dri_self_buried(r))
		return -ENOLCK;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	bridge = bridge_live(r, &ran);
	s->n = 0;
	s->epoch = 0;
	/* A view counts while a bridge lives; once one has run, the last
	 * view is what there is to show. */
	if (bridge || ran)
		rc = dri_view_snapshot(r, s);
	if (rc < 0) {
		free(s);
		return rc;
	}
	if (s->n == 0 || (bridge == 0 && !ran)) {
		memset(&s->hosts[0], 0, sizeof(s->hosts[0]));
		snprintf(s->hosts[0].id, sizeof(s->hosts[0].id), "%s", nodename(r));
		s->hosts[0].state = DR_HOST_UP;
		s->hosts[0].self = 1;
		s->n = 1;
		s->epoch = 0;
	}
	if (max)
		memcpy(hosts, s->hosts, (max < s->n ? max : s->n) * sizeof(*hosts));
	*n = s->n;
	if (epoch)
		*epoch = s->epoch;
	rc = !bridge && ran ? -ENOTCONN : s->n > max ? -ERANGE : 0;
	free(s);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* dr_check */

__attribute__((format(printf, 3, 4)))
static int fail(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (msg && len) {
		va_start(ap, fmt);
		vsnprintf(msg, len, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* Everything of one whole copy, seeds and duplicates included. */
static int copy_verify(struct dr_registry *r, uint32_t k, char *msg, size_t len)
{
	const struct dri_view *v = &r->cluster->view[k];
	uint32_t n = v->nhosts, selves = 0;

	if ((n == 0) != (v->epoch == 0))
		return fail(msg, len, "view copy %u: %u hosts with epoch %llu", k, n,
			    (unsigned long long)v->epoch);
	if (n > DR_HOSTS_MAX)
		return fail(msg, len, "view copy %u: %u hosts, more than %d", k, n, DR_HOSTS_MAX);
	for (uint32_t i = 0; i < n; i++) {
		const struct dri_vhost_hot *h = &v->hot[i];
		const struct dri_vhost *x = &v->host[i];

		if (h->state < DR_HOST_UP || h->state > DR_HOST_IGNORED)
			return fail(msg, len, "view copy %u: host %u: state %u out of range", k, i,
				    h->state);
		if (h->self > 1)
			return fail(msg, len, "view copy %u: host %u: self flag %u", k, i, h->self);
		if (h->id_len < 1 || h->id_len > DR_HOST_MAX || memchr(x->id, 0, h->id_len))
			return fail(msg, len, "view copy %u: host %u: id length %u out of range or id "
				    "holding a NUL", k, i, h->id_len);
		if (h->rpc_len > DR_ADDR_MAX || memchr(x->rpc, 0, h->rpc_len))
			return fail(msg, len, "view copy %u: host %u: rpc length %u out of range or "
				    "address holding a NUL", k, i, h->rpc_len);
		if (h->seed != dri_host_seed(x->id, h->id_len))
			return fail(msg, len, "view copy %u: host %u: seed is not xxh3 of its id", k, i);
		for (uint32_t j = 0; j < i; j++)
			if (v->hot[j].id_len == h->id_len && memcmp(v->host[j].id, x->id, h->id_len) == 0)
				return fail(msg, len, "view copy %u: hosts %u and %u have one id", k, j, i);
		selves += h->self;
	}
	if (n && selves != 1)
		return fail(msg, len, "view copy %u: %u hosts marked as this host, want 1", k, selves);
	return 0;
}

/*
 * The cluster area of a quiet segment: the role word and both copies (the
 * one the index does not name may be odd: a publisher paused or killed
 * there). Any index is valid: it counts publications.
 */
int dri_view_check(struct dr_registry *r, char *msg, size_t len)
{
	struct dri_cluster *c = r->cluster;
	uint64_t o = ld_acq64(&c->owner), seq[2];
	uint32_t idx = ld_acq32(&c->view_index) & 1, ever = ld_acq32(&c->ever);
	uint32_t mbox = ld_acq32(&c->mbox);
	int rc;

	if (o && (DRI_OWNER_SLOT(o) >= r->max_procs || DRI_OWNER_GEN(o) == 0 ||
		  (o >> 40) != 0))
		return fail(msg, len, "bridge role: bad owner %#llx", (unsigned long long)o);
	if (ever > 1)
		return fail(msg, len, "bridge role: 'ran' flag %u is neither 0 nor 1", ever);
	if (mbox && DRI_MBOX_IDX(mbox) >= r->max_mailboxes)
		return fail(msg, len, "bridge role: mailbox %#x out of range", mbox);
	for (uint32_t k = 0; k < 2; k++) {
		seq[k] = ld_acq64(&c->view[k].seq);
		if (seq[k] & 1) {
			if (k == idx)
				return fail(msg, len, "view copy %u: the copy readers read is being "
					    "written (odd sequence %llu)", k,
					    (unsigned long long)seq[k]);
			continue;
		}
		rc = copy_verify(r, k, msg, len);
		if (rc)
			return rc;
	}
	/* The other copy's epoch may be above the current one's: a
	 * publisher killed after writing it whole, before the flip. */
	return 0;
}

/*
 * registry.c - the public entry points: open and close a handle, register,
 * unregister, look up, read-side sections and reaping. Argument checking
 * lives here; the protocols live in table.c and rcu.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dri.h"

static uint64_t handle_ids;

/* A name of 1 to DR_NAME_MAX bytes; or, with DRI_REG_RESERVED, also the
 * bridge's address (global, length 0), which no public call can name. */
static int name_check(const void *name, size_t len, unsigned flags)
{
	if (!name)
		return -EINVAL;
	if (len == 0 && (flags & (DRI_REG_GLOBAL | DRI_REG_RESERVED)) !=
				(DRI_REG_GLOBAL | DRI_REG_RESERVED))
		return -EINVAL;
	if (len > DR_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Length of a C-string name, or DR_NAME_MAX + 1 if longer. */
size_t dri_cname_len(const char *name)
{
	return name ? strnlen(name, DR_NAME_MAX + 1) : 0;
}

/* What every call on a name begins with: check the handle and the name, and
 * find this thread's state (which fails with -ECHILD in a forked child, and
 * with -ENOLCK once other processes have buried this handle: proc.c). */
static int name_op_begin(dr_registry *r, const void *name, size_t name_len, unsigned flags,
			 struct dri_thread **t)
{
	int err = r ? name_check(name, name_len, flags) : -EINVAL;

	return err ? err : dri_thread_get(r, t);
}

/* The same for calls without a name. */
static int op_begin(dr_registry *r, struct dri_thread **t)
{
	return r ? dri_thread_get(r, t) : -EINVAL;
}

/* After a write: free this thread's retired batch once it is full. */
static void maybe_reclaim(struct dr_registry *r, struct dri_thread *t)
{
	if (t->nest == 0 && t->nretired >= r->retire_batch)
		dri_reclaim_own(r, t);
}

DR_EXPORT int dr_open(const struct dr_options *opts, dr_registry **out)
{
	struct dr_options o = { 0 };
	struct dri_thread *t;
	struct dr_registry *r;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -1;
	r->wake_sock = r->wake_spare = -1;
	r->wait_spin_us = DR_WAIT_SPIN_DEFAULT_US;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->send_lock, NULL);
	pthread_mutex_init(&r->view_lock, NULL);
	dri_registry_track(r);

	dri_nodename_init(r);
	r->pidns = dri_self_pidns();
	err = dri_segment_open(r, o.segment, &o);
	if (err)
		goto fail;
	if (r->rdonly) {
		/* No slot, no reader, no reaping: nothing is written. */
		r->id = uatomic_add_return(&handle_ids, 1);
		*out = r;
		return 0;
	}
	err = dri_membarrier_setup(r);
	if (err)
		goto fail;
	err = dri_proc_attach(r);
	if (err)
		goto fail;
	if (r->gen_wrapped)
		dri_reap_readers_of(r, r->owner);
	err = dri_thread_key_create(r);
	if (err)
		goto fail_detach;
	r->id = uatomic_add_return(&handle_ids, 1);

	/* Reap what dead processes left, so a restarted service finds its
	 * names free. */
	err = dri_thread_get(r, &t);
	if (err) {
		dri_thread_release_all(r);
		goto fail_detach;
	}
	/* An earlier holder of our owner id is dead: what it left is not
	 * ours, whatever the flags. */
	if (r->gen_wrapped)
		dri_reap_entries(r, t, r->owner);
	if (!(o.flags & DR_OPEN_NOREAP)) {
		dri_reap_readers(r);
		dri_reap_entries(r, t, 0);
		dri_reap_mailboxes(r);
	}
	*out = r;
	return 0;

fail_detach:
	dri_proc_detach(r);
fail:
	dri_registry_untrack(r);
	dri_segment_close(r);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->send_lock);
	pthread_mutex_destroy(&r->view_lock);
	free(r);
	return err;
}

DR_EXPORT void dr_close(dr_registry *r)
{
	struct dri_thread *t;
	bool ours, shared;

	if (!r)
		return;
	if (r->rdonly)
		goto unmap;
	/* A handle inherited by fork, or buried by other processes (its
	 * lock was lost, proc.c), writes nothing: its memory is freed. A
	 * child made without the fork handlers (clone(), _Fork(), vfork())
	 * still has our cached pid: getpid() tells it apart, or its
	 * dr_close() (from an atexit handler, say) would remove its
	 * parent's names and give up its parent's slot. */
	ours = r->pid == dri_self_pid && r->pid == getpid();
	shared = ours && !dri_self_buried(r);
	while (r->mailboxes)
		dri_mailbox_free(r->mailboxes, shared);
	if (ours && dri_thread_get(r, &t) == 0) {
		t->nest = 0;
		st_rel64(&t->slot->epoch, 0);
		dri_reap_entries(r, t, r->owner);
	}
	dri_thread_release_all(r);
	dri_lanes_release_all(r, shared);
	if (shared)
		dri_proc_detach(r);
unmap:
	dri_registry_untrack(r);
	dri_segment_close(r);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->send_lock);
	pthread_mutex_destroy(&r->view_lock);
	free(r);
}

/* dr_register(), with messages for the name going to mailbox ref mbox (0:
 * none), in the namespace flags say (DRI_REG_*). */
int dri_register(dr_registry *r, const void *name, size_t name_len, const void *value,
		 size_t value_len, uint32_t mbox, unsigned flags)
{
	struct dri_thread *t;
	struct dri_key k;
	uint32_t idx;
	int err;

	err = name_op_begin(r, name, name_len, flags, &t);
	if (err)
		return err;
	/* Local names that begin with DRI_RESERVED_PREFIX are the library's
	 * (factories: start.c); no C string names one. */
	if (!(flags & (DRI_REG_GLOBAL | DRI_REG_RESERVED)) && name_len >= DRI_RESERVED_PREFIX_LEN &&
	    memcmp(name, DRI_RESERVED_PREFIX, DRI_RESERVED_PREFIX_LEN) == 0)
		return -EINVAL;
	if (value_len > DR_VALUE_MAX)
		return -EMSGSIZE;
	if (!value && value_len)
		return -EINVAL;
	dri_key_init(&k, r, name, name_len, flags & DRI_REG_GLOBAL);
	err = dri_alloc_entry(r, t, &idx);
	dri_read_enter(r, t);
	if (err) {
		/* No entry to be had: an update of our own name or a name
		 * held by someone else needs none, and says so. */
		int rc = dri_update_existing(r, t, &k, value, value_len, mbox);

		dri_read_exit(r, t);
		return rc == -ENOENT ? err : rc;
	}
	err = dri_insert(r, t, idx, &k, value, value_len, mbox);
	dri_read_exit(r, t);
	maybe_reclaim(r, t);
	return err;
}

DR_EXPORT int dr_register_bin(dr_registry *r, const void *name, size_t name_len,
			      const void *value, size_t value_len)
{
	return dri_register(r, name, name_len, value, value_len, 0, 0);
}

DR_EXPORT int dr_register(dr_registry *r, const char *name, const void *value,
			  size_t value_len)
{
	return dr_register_bin(r, name, dri_cname_len(name), value, value_len);
}

/* Unregister name (only its registration regid, if not 0). */
int dri_unregister(dr_registry *r, const void *name, size_t name_len, unsigned flags,
		   uint64_t regid, bool force)
{
	struct dri_thread *t;
	struct dri_key k;
	int err = name_op_begin(r, name, name_len, flags, &t);

	if (err)
		return err;
	dri_key_init(&k, r, name, name_len, flags & DRI_REG_GLOBAL);
	dri_read_enter(r, t);
	err = dri_delete(r, t, &k, regid, force);
	dri_read_exit(r, t);
	maybe_reclaim(r, t);
	return err;
}

DR_EXPORT int dr_unregister_bin(dr_registry *r, const void *name, size_t name_len)
{
	return dri_unregister(r, name, name_len, 0, 0, false);
}

DR_EXPORT int dr_unregister(dr_registry *r, const char *name)
{
	return dri_unregister(r, name, dri_cname_len(name), 0, 0, false);
}

DR_EXPORT int dr_unregister_force_bin(dr_registry *r, const void *name,
				      size_t name_len)
{
	return dri_unregister(r, name, name_len, 0, 0, true);
}

DR_EXPORT int dr_unregister_force(dr_registry *r, const char *name)
{
	return dri_unregister(r, name, dri_cname_len(name), 0, 0, true);
}

int dri_whereis_owner(dr_registry *r, const void *name, size_t name_len, unsigned flags,
		      struct dr_entry *out, uint64_t *owner)
{
	struct dri_thread *t;
	struct dri_key k;
	int err = name_op_begin(r, name, name_len, flags, &t);

	if (err)
		return err;
	dri_key_init(&k, r, name, name_len, flags & DRI_REG_GLOBAL);
	dri_read_enter(r, t);
	err = dri_lookup(r, &k, out, NULL, NULL, owner);
	dri_read_exit(r, t);
	return err;
}

int dri_whereis(dr_registry *r, const void *name, size_t name_len, unsigned flags,
		struct dr_entry *out)
{
	return dri_whereis_owner(r, name, name_len, flags, out, NULL);
}

DR_EXPORT int dr_whereis_bin(dr_registry *r, const void *name, size_t name_len,
			     struct dr_entry *out)
{
	return dri_whereis(r, name, name_len, 0, out);
}

DR_EXPORT int dr_whereis(dr_registry *r, const char *name, struct dr_entry *out)
{
	return dr_whereis_bin(r, name, dri_cname_len(name), out);
}

DR_EXPORT int dr_read_lock(dr_registry *r)
{
	struct dri_thread *t;
	int err = op_begin(r, &t);

	if (err)
		return err;
	if (t->nest == UINT32_MAX)
		return -EOVERFLOW;
	dri_read_enter(r, t);
	return 0;
}

DR_EXPORT int dr_read_unlock(dr_registry *r)
{
	struct dri_thread *t;
	int err = op_begin(r, &t);

	if (err)
		return err;
	if (t->nest == 0)
		return -EINVAL;
	dri_read_exit(r, t);
	maybe_reclaim(r, t);
	return 0;
}

DR_EXPORT int dr_reap(dr_registry *r, unsigned *nreaped)
{
	struct dri_thread *t;
	unsigned n;
	int err = op_begin(r, &t);

	if (err)
		return err;
	dri_reap_readers(r);
	n = dri_reap_entries(r, t, 0);
	dri_reap_mailboxes(r);
	/* Every dead process found is recorded as such in its slot's word
	 * (dri_owner_alive). */
	for (uint32_t i = 0; i < r->max_procs; i++) {
		uint64_t w = ld_acq64(&r->procs[i].word);
		if (w & DRI_PROC_LIVE)
			(void)dri_owner_alive(r, DRI_OWNER(i, DRI_PROC_GEN(w)));
	}
	if (t->nest == 0)
		dri_reclaim_all(r, t, NULL);
	if (nreaped)
		*nreaped = n;
	return 0;
}

DR_EXPORT const char *dr_segment_name(const dr_registry *r)
{
	return r ? r->segment : "";
}

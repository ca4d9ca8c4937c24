/*
 * watch.c - monitors: a mailbox watches names, local or global, and gets a
 * DR_MSG_SYSTEM event when a registration it saw ends (unregistered, or its
 * process died) or a global name's owner host changes.
 *
 * Nothing is shared: the watching mailbox looks at its names itself, from
 * dr_recv(), at most every WATCH_NS (a local name: a lookup in the segment;
 * a global name owned elsewhere: a lookup through the bridges, at most every
 * WATCH_REMOTE_NS). Events found together wait in a queue, one per
 * dr_recv(). So an event comes within about WATCH_NS of the change for a
 * local name (WATCH_REMOTE_NS for a remote one) while dr_recv() runs, and a
 * registration that ends and comes back within that time is seen as ended
 * once (the regid changed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dri.h"

#define WATCH_NS (20ull * 1000 * 1000)
#define WATCH_REMOTE_NS (1000ull * 1000 * 1000)
#define REMOTE_TIMEOUT_MS 1000

struct dri_watch {
	struct dri_watch *next;
	bool global;
	uint64_t regid;                /* the registration seen last, 0 none */
	uint64_t owner_id;             /* its owner id here (0 for one on another host) */
	char owner[DR_HOST_MAX + 1];   /* global: the owner host seen last */
	uint64_t next_remote;          /* global, owned elsewhere: when to ask next */
	size_t len;
	unsigned char name[];
};


/* What a watch sees now: the registration (regid 0: none) and its owner id, and
 * for a global name its owner. A remote lookup only when due. */
static int look(dr_mailbox *mb, struct dri_watch *w, uint64_t now, uint64_t *regid, uint64_t *oid,
		struct dri_where *where, bool *looked)
{
	struct dr_entry e;
	int err;

	*looked = true;
	if (w->global) {
		err = dri_owner_of(mb->r, w->name, w->len, where);
		if (err)
			return err;
		if (!where->self) {
			if (now < w->next_remote) {
				*looked = false;
				return 0;
			}
			w->next_remote = now + WATCH_REMOTE_NS;
			err = dr_whereis_global_bin(mb->r, w->name, w->len, &e, NULL, 0,
						    REMOTE_TIMEOUT_MS);
			if (err == -ENOENT) {
				*regid = 0;
				*oid = 0;
				return 0;
			}
			if (err)
				return err;
			*regid = e.regid;
			*oid = 0; /* a process of another host */
			return 0;
		}
	}
	err = dri_whereis_owner(mb->r, w->name, w->len, w->global ? DRI_REG_GLOBAL : 0, &e, oid);
	/* A dead process's name stays until it is reaped: it ended all the
	 * same (its liveness as the segment witnesses it: proc.c). */
	if (err == -ENOENT || (!err && (!*oid || !dri_owner_alive(mb->r, *oid)))) {
		*regid = 0;
		*oid = 0;
		return 0;
	}
	if (err)
		return err;
	*regid = e.regid;
	return 0;
}

static int queue(dr_mailbox *mb, const struct dri_watch *w, int event, uint64_t regid,
		 const char *host)
{
	struct dri_event *ev;

	if (mb->nevents == mb->capevents) {
		size_t cap = mb->capevents ? 2 * mb->capevents : 8;
		void *v = realloc(mb->events, cap * sizeof(*ev));

		if (!v)
			return -ENOMEM;
		mb->events = v;
		mb->capevents = cap;
	}
	ev = &mb->events[mb->nevents++];
	ev->event = event;
	ev->global = w->global;
	ev->regid = regid;
	ev->len = w->len;
	memcpy(ev->name, w->name, w->len);
	ev->data[0] = (uint8_t)event;
	ev->data_len = 1;
	if (host) {
		size_t hl = strnlen(host, DR_HOST_MAX);

		memcpy(ev->data + 1, host, hl);
		ev->data_len += hl;
	}
	return 0;
}

/* Look at every watch; queue what changed. */
static void poll_watches(dr_mailbox *mb, uint64_t now)
{
	for (struct dri_watch *w = mb->watches; w; w = w->next) {
		struct dri_where where = { 0 };
		uint64_t regid = 0;
		uint64_t oid = 0;
		bool looked;

		if (look(mb, w, now, &regid, &oid, &where, &looked) != 0)
			continue; /* no view, no bridge: nothing to say now */
		if (w->global && strcmp(where.host, w->owner) != 0) {
			if (w->owner[0])
				queue(mb, w, DR_EVENT_MOVED, w->regid, where.host);
			memcpy(w->owner, where.host, sizeof(w->owner));
			w->next_remote = 0; /* look at once where it is now */
		}
		if (!looked || regid == w->regid)
			continue;
		if (w->regid) {
			bool died = w->owner_id && !dri_owner_alive(mb->r, w->owner_id);

			queue(mb, w, died ? DR_EVENT_OWNER_DIED : DR_EVENT_UNREGISTERED, w->regid,
			      NULL);
		}
		w->regid = regid;
		w->owner_id = oid;
	}
}

int dri_watch_take(dr_mailbox *mb, struct dr_msg *msg)
{
	uint64_t now;

	if (!mb->watches && !mb->nevents)
		return 0;
	if (!mb->nevents) {
		now = dri_coarse_ns();
		if (now < mb->watch_next)
			return 0;
		mb->watch_next = now + WATCH_NS;
		poll_watches(mb, now);
		if (!mb->nevents)
			return 0;
	}
	/* The oldest first; the message points at mb->event_out, valid until
	 * the next dr_recv(). */
	mb->event_out = mb->events[0];
	memmove(mb->events, mb->events + 1, --mb->nevents * sizeof(mb->events[0]));
	memset(msg, 0, sizeof(*msg));
	msg->kind = DR_MSG_SYSTEM;
	msg->name = mb->event_out.name;
	msg->name_len = mb->event_out.len;
	msg->regid = mb->event_out.regid;
	msg->global = mb->event_out.global;
	msg->data = mb->event_out.data;
	msg->len = mb->event_out.data_len;
	msg->sender = mb->r->pid;
	return 1;
}

static struct dri_watch **find(dr_mailbox *mb, const void *name, size_t len, bool global)
{
	struct dri_watch **pp;

	for (pp = &mb->watches; *pp; pp = &(*pp)->next)
		if ((*pp)->global == global && (*pp)->len == len &&
		    memcmp((*pp)->name, name, len) == 0)
			break;
	return pp;
}

static int watch(dr_mailbox *mb, const void *name, size_t len, bool global)
{
	struct dri_where where = { 0 };
	struct dri_watch *w;
	bool looked;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!name || len == 0)
		return -EINVAL;
	if (len > DR_NAME_MAX)
		return -ENAMETOOLONG;
	if (*find(mb, name, len, global))
		return -EEXIST;
	w = calloc(1, sizeof(*w) + len);
	if (!w)
		return -ENOMEM;
	w->global = global;
	w->len = len;
	memcpy(w->name, name, len);
	/* What it is now: changes from here on are events. */
	err = look(mb, w, dri_coarse_ns(), &w->regid, &w->owner_id, &where, &looked);
	if (err && err != -ENOTCONN && err != -EHOSTUNREACH) {
		free(w);
		return err;
	}
	memcpy(w->owner, where.host, sizeof(w->owner));
	w->next_remote = dri_coarse_ns() + WATCH_REMOTE_NS;
	w->next = mb->watches;
	mb->watches = w;
	/* A receiver asleep with nothing else to wait for looks now. */
	dri_mailbox_poke(mb);
	return 0;
}

static int unwatch(dr_mailbox *mb, const void *name, size_t len, bool global)
{
	struct dri_watch **pp, *w;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!name || len == 0)
		return -EINVAL;
	pp = find(mb, name, len, global);
	if (!*pp)
		return -ENOENT;
	w = *pp;
	*pp = w->next;
	free(w);
	return 0;
}

void dri_watches_free(dr_mailbox *mb)
{
	while (mb->watches) {
		struct dri_watch *w = mb->watches;

		mb->watches = w->next;
		free(w);
	}
	free(mb->events);
	mb->events = NULL;
	mb->nevents = mb->capevents = 0;
}

DR_EXPORT int dr_watch_bin(dr_mailbox *mb, const void *name, size_t len)
{
	return watch(mb, name, len, false);
}

DR_EXPORT int dr_watch(dr_mailbox *mb, const char *name)
{
	return dr_watch_bin(mb, name, dri_cname_len(name));
}

DR_EXPORT int dr_watch_global_bin(dr_mailbox *mb, const void *name, size_t len)
{
	return watch(mb, name, len, true);
}

DR_EXPORT int dr_watch_global(dr_mailbox *mb, const char *name)
{
	return dr_watch_global_bin(mb, name, dri_cname_len(name));
}

DR_EXPORT int dr_unwatch_bin(dr_mailbox *mb, const void *name, size_t len)
{
	return unwatch(mb, name, len, false);
}

DR_EXPORT int dr_unwatch(dr_mailbox *mb, const char *name)
{
	return dr_unwatch_bin(mb, name, dri_cname_len(name));
}

DR_EXPORT int dr_unwatch_global_bin(dr_mailbox *mb, const void *name, size_t len)
{
	return unwatch(mb, name, len, true);
}

DR_EXPORT int dr_unwatch_global(dr_mailbox *mb, const char *name)
{
	return dr_unwatch_global_bin(mb, name, dri_cname_len(name));
}

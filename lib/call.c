/*
 * call.c - the sending side of messages: call (waiting, or asynchronous with
 * its completion delivered to a mailbox), cast, inform, and replies.
 *
 * A message names its target twice: by name, which the sender resolves to
 * the registration's mailbox, and by that registration's id, which the
 * receiver checks again when it takes the message (mailbox.c, dri_take), so
 * a registration that ended in between never gets it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dri.h"
#include "distreg_admin.h"

/* The registration of a target: its regid and the mailbox it is served
 * by. */
static int resolve(struct dr_registry *r, const struct dri_target *to, uint64_t *regid,
		   uint32_t *mbox)
{
	struct dri_thread *t;
	struct dri_key k;
	int err;

	/* Only the bridge's address has length 0, and only the library
	 * names it (to->bridge). */
	if (!to->name || (to->len == 0 && !to->bridge))
		return -EINVAL;
	if (to->len > DR_NAME_MAX)
		return -ENAMETOOLONG;
	err = dri_thread_get(r, &t);
	if (err)
		return err;
	dri_key_init(&k, r, to->name, to->len, to->global);
	*mbox = 0;
	dri_read_enter(r, t);
	err = dri_lookup(r, &k, NULL, mbox, regid, NULL);
	dri_read_exit(r, t);
	if (err)
		return err;
	return *mbox == 0 ? -EDESTADDRREQ : 0;
}

/* -ENOENT from a send: delivered nowhere (DR_NOTSERVED if to asks so). */
static int not_sent(const struct dri_target *to, int err)
{
	return err == -ENOENT && to->notserved ? DR_NOTSERVED : err;
}

/*
 * Send a CALL, CAST or INFO to a target; *target gets its mailbox ref. To
 * the bridge's address, the mailbox must be the one of the role holder the
 * caller saw alive (to->bridge): one that a dead holder left registered
 * takes nothing more (-ENOTCONN).
 */
int dri_send(struct dr_registry *r, int kind, const struct dri_target *to, const void *data,
	     size_t data_len, uint64_t call_id, uint32_t reply_to, uint64_t deadline,
	     uint32_t *target)
{
	struct dri_rec rec = { 0 };
	uint32_t mbox;
	uint64_t regid;
	int err;

	if (!r)
		return -EINVAL;
	if (!data && data_len)
		return -EINVAL;
	if (data_len > dr_message_max(r) || to->pre_len > dr_message_max(r) - data_len)
		return -EMSGSIZE;
	err = resolve(r, to, &regid, &mbox);
	if (to->bridge) {
		/* Found no address (the holder is still claiming, or was
		 * releasing), or not the holder's: no bridge to send to. */
		if (err == -ENOENT || err == -EDESTADDRREQ ||
		    (!err && !dri_mbox_held_by(r, mbox, to->bridge)))
			return -ENOTCONN;
		DRI_CRASHPOINT(fwd_resolved);
	}
	if (err)
		return not_sent(to, err);
	if (to->regid && regid != to->regid)
		return not_sent(to, -ENOENT);
	rec.kind = (uint8_t)kind;
	rec.name_len = (uint8_t)to->len;
	rec.flags = (to->global ? DRI_REC_GLOBAL : 0) | (to->ended ? DRI_REC_ENDED : 0);
	rec.regid = regid;
	rec.call_id = call_id;
	rec.reply_to = reply_to;
	rec.sender_pid = r->pid;
	rec.data_len = (uint32_t)(to->pre_len + data_len);
	err = dri_lane_send(r, mbox, &rec, to->name, to->pre, to->pre_len, data, deadline);
	if (target)
		*target = mbox;
	/* The bridge's mailbox closed, or its owner died, after we found
	 * it: no bridge runs (the name's owner is not at fault). */
	if (to->bridge && (err == -ENOENT || err == -EOWNERDEAD))
		return -ENOTCONN;
	/* Otherwise the registration's mailbox was closed or reopened: the
	 * name is on its way out. */
	return not_sent(to, err);
}

/* A local name. */
static struct dri_target local(const void *name, size_t len)
{
	return (struct dri_target){ .name = name, .len = len };
}

static uint64_t room_deadline(int timeout_ms)
{
	return timeout_ms == 0 ? 0 : dri_deadline(timeout_ms);
}

DR_EXPORT int dr_cast_bin(dr_registry *r, const void *name, size_t name_len, const void *msg,
			  size_t len, int timeout_ms)
{
	struct dri_target to = local(name, name_len);

	if (timeout_ms < -1)
		return -EINVAL;
	return dri_send(r, DR_MSG_CAST, &to, msg, len, 0, 0, room_deadline(timeout_ms), NULL);
}

DR_EXPORT int dr_cast(dr_registry *r, const char *name, const void *msg, size_t len,
		      int timeout_ms)
{
	return dr_cast_bin(r, name, dri_cname_len(name), msg, len, timeout_ms);
}

DR_EXPORT int dr_send_bin(dr_registry *r, const void *name, size_t name_len, const void *msg,
			  size_t len, int timeout_ms)
{
	struct dri_target to = local(name, name_len);

	if (timeout_ms < -1)
		return -EINVAL;
	return dri_send(r, DR_MSG_INFO, &to, msg, len, 0, 0, room_deadline(timeout_ms), NULL);
}

DR_EXPORT int dr_send(dr_registry *r, const char *name, const void *msg, size_t len,
		      int timeout_ms)
{
	return dr_send_bin(r, name, dri_cname_len(name), msg, len, timeout_ms);
}

/* ---------------------------------------------------------------------- */
/* Replies */

static int reply(dr_mailbox *mb, const struct dr_msg *msg, int status, const void *data,
		 size_t len)
{
	struct dri_rec rec = { 0 };
	int err;

	if (!mb || !msg || msg->kind != DR_MSG_CALL || msg->reply_to == 0 || (!data && len))
		return -EINVAL;
	if (mb->r->pid != dri_self_pid)
		return -ECHILD;
	if (dri_self_buried(mb->r))
		return -ENOLCK;
	if (len > dr_message_max(mb->r))
		return -EMSGSIZE;
	rec.kind = DR_MSG_REPLY;
	rec.call_id = msg->call_id;
	rec.sender_pid = mb->r->pid;
	rec.status = status == DR_NOTSERVED ? -ENOENT : status;
	rec.flags = status == DR_NOTSERVED ? DRI_REC_NOTSERVED : 0;
	rec.data_len = (uint32_t)len;
	err = dri_lane_send(mb->r, msg->reply_to, &rec, NULL, NULL, 0, data, 0);
	return err == -EOWNERDEAD ? -ENOENT : err;
}

DR_EXPORT int dr_reply(dr_mailbox *mb, const struct dr_msg *msg, const void *data, size_t len)
{
	return reply(mb, msg, 0, data, len);
}

DR_EXPORT int dr_reply_error(dr_mailbox *mb, const struct dr_msg *msg, int status)
{
	if (status >= 0 || status < -4095)
		return -EINVAL;
	return reply(mb, msg, status, NULL, 0);
}

DR_EXPORT int dr_admin_reply_status(dr_mailbox *mb, const struct dr_msg *msg, int status)
{
	if (status >= 0 || (status < -4095 && status != DR_NOTSERVED))
		return -EINVAL;
	return reply(mb, msg, status, NULL, 0);
}

/* ---------------------------------------------------------------------- */
/* Asynchronous calls: the caller's mailbox keeps what is in flight, under
 * its call_lock (threads that call, and the thread that receives). */

/* A new call id of mb: unique for the segment's life, as ids come in
 * blocks of the segment's id counter (which registrations use too), so a
 * late answer to a call of an earlier opening of the slot never matches a
 * call of this one. Never 0. Under call_lock, or on a thread's own mailbox. */
static uint64_t next_call_id(dr_mailbox *mb)
{
	uint64_t id;

	do { /* never 0: it marks a free slot of the calls in flight */
		if (mb->next_call == mb->call_end) {
			mb->next_call = uatomic_add_return(&mb->r->hdr->next_regid,
							   DRI_REGID_BLOCK) - DRI_REGID_BLOCK;
			mb->call_end = mb->next_call + DRI_REGID_BLOCK;
		}
		id = mb->next_call++;
	} while (id == 0);
	return id;
}

/* Whether a call to mailbox target may still be answered: its mailbox
 * lives, and for the bridge (gone -ENOTCONN) it still holds the role (a
 * bridge that released it answers nothing more). */
static bool target_alive(struct dr_registry *r, uint32_t target, int gone)
{
	if (gone == -ENOTCONN)
		return dri_bridge_serves(r, target);
	return dri_mbox_alive(r, target);
}

/* The same, for many calls at once: each target is asked about once in a
 * row of calls to it (its liveness costs system calls). cache: -1 not
 * asked yet, else the answer for mailbox *cached with *cached_gone. */
static bool target_alive_cached(struct dr_registry *r, uint32_t target, int gone, int *cache,
				uint32_t *cached, int *cached_gone)
{
	if (*cache < 0 || *cached != target || *cached_gone != gone) {
		*cache = target_alive(r, target, gone);
		*cached = target;
		*cached_gone = gone;
	}
	return *cache;
}

/* A reply to call_id came: true if the call is ours and was in flight
 * (it is not any more), with what it was in *out (its again is the
 * caller's to free); false if it is late or foreign. */
bool dri_pending_take(dr_mailbox *mb, uint64_t call_id, struct dri_pending *out)
{
	struct dri_pending *p;

	pthread_mutex_lock(&mb->call_lock);
	p = dri_pend_find(&mb->pend, call_id);
	if (p) {
		*out = *p;
		dri_pend_remove(&mb->pend, p);
	}
	pthread_mutex_unlock(&mb->call_lock);
	return p != NULL;
}

/*
 * Hook of dr_recv's wait, every 20 ms: a call whose worker is gone, or past
 * its deadline, completes with -EOWNERDEAD (whatever its deadline) or
 * -ETIMEDOUT. One whose send is still under way (no target yet) is left
 * alone. A worker that died may have answered first: its answer can still
 * wait in its lane (dead, it writes nothing more), so messages come first,
 * and the call ends at a look that finds none.
 */
int dri_pending_look(dr_mailbox *mb, struct dr_msg *msg, void *arg)
{
	uint64_t now = dri_mono_ns(), end = 0, seq = 0;
	uint32_t alive_mb = 0, target = 0;
	int alive = -1, alive_gone = 0, status = 0, rc;
	struct dri_pending *p;

	(void)arg;
	pthread_mutex_lock(&mb->call_lock);
	for (size_t i = 0; i < mb->pend.cap && mb->pend.n; i++) {
		p = &mb->pend.slot[i];
		if (!p->call_id || p->target == 0)
			continue;
		status = !target_alive_cached(mb->r, p->target, p->gone, &alive, &alive_mb,
					      &alive_gone) ? p->gone :
			 now >= p->deadline ? -ETIMEDOUT : 0;
		if (status) {
			end = p->call_id;
			seq = p->seq;
			target = p->target;
			break;
		}
	}
	pthread_mutex_unlock(&mb->call_lock);
	/* A receiver waits: the names it watches too. */
	if (!end)
		return dri_watch_take(mb, msg);
	if (status != -ETIMEDOUT) {
		rc = dri_take(mb, msg, 0);
		if (rc)
			return rc;
	}
	/* Still the sending we judged: dri_take() may have made the call
	 * again under its id, to another worker (an answer that it reached
	 * no worker, dri_again_send), and that one is not ended here. */
	pthread_mutex_lock(&mb->call_lock);
	p = dri_pend_find(&mb->pend, end);
	if (p && (p->seq != seq || p->target != target))
		p = NULL;
	if (p) {
		memset(msg, 0, sizeof(*msg));
		msg->kind = DR_MSG_REPLY;
		msg->status = status;
		msg->call_id = end;
		free(p->again);
		dri_pend_remove(&mb->pend, p);
	}
	pthread_mutex_unlock(&mb->call_lock);
	return p != NULL;
}

/*
 * Send the call *id (0: a new id, stored there) from mb to a target, in
 * flight until deadline (waiting up to send_deadline for room; 0: not at
 * all). gone: the call's status if the target's mailbox goes before it
 * answers (-EOWNERDEAD for a worker, -ENOTCONN for the bridge). The answer
 * may be taken by another thread, and the call made again under the same
 * id (dri_again_send), before this returns: seq tells our entry apart.
 */
int dri_call_as(dr_mailbox *mb, const struct dri_target *to, const void *req, size_t req_len,
		uint64_t *id, uint64_t deadline, uint64_t send_deadline, int gone)
{
	struct dri_pending *p, np = { .gone = (int16_t)gone, .notserved = to->notserved,
				      .deadline = deadline, .again = to->again };
	uint32_t target;
	bool first;
	int err;

	/* In flight before it is sent: the answer may come before this
	 * thread runs again, to the thread that receives. */
	pthread_mutex_lock(&mb->call_lock);
	if (!*id)
		*id = next_call_id(mb);
	np.call_id = *id;
	np.seq = ++mb->pend.seq;
	err = dri_pend_add(&mb->pend, &np);
	first = mb->pend.n == 1;
	pthread_mutex_unlock(&mb->call_lock);
	if (err)
		return err;
	if (first)
		dri_mailbox_poke(mb); /* a receiver asleep with none in flight */
	err = dri_send(mb->r, DR_MSG_CALL, to, req, req_len, np.call_id, mb->ref, send_deadline,
		       &target);
	DRI_CRASHPOINT(async_sent);
	pthread_mutex_lock(&mb->call_lock);
	p = dri_pend_find(&mb->pend, np.call_id);
	if (p && p->seq != np.seq)
		p = NULL; /* answered, and made again under this id meanwhile */
	if (p && err)
		dri_pend_remove(&mb->pend, p); /* its again stays the caller's */
	else if (p)
		p->target = target;
	pthread_mutex_unlock(&mb->call_lock);
	return err;
}

/* An asynchronous call from mb to a target: dri_call_as() with a new id,
 * waiting for room in the target's lane until the call's deadline, or not
 * at all (wait false, or timeout 0: -EAGAIN). */
static int call_async(dr_mailbox *mb, const struct dri_target *to, const void *req,
		      size_t req_len, int timeout_ms, int gone, uint64_t *call_id, bool wait)
{
	uint64_t id = 0, deadline;
	int err;

	if (!mb || timeout_ms < -1)
		return -EINVAL;
	if (mb->r->pid != dri_self_pid)
		return -ECHILD;
	if (mb->for_replies)
		return -EINVAL;
	deadline = dri_deadline(timeout_ms);
	err = dri_call_as(mb, to, req, req_len, &id, deadline,
			  wait && timeout_ms != 0 ? deadline : 0, gone);
	if (!err && call_id)
		*call_id = id;
	return err;
}

int dri_call_async(dr_mailbox *mb, const struct dri_target *to, const void *req,
		   size_t req_len, int timeout_ms, int gone, uint64_t *call_id)
{
	return call_async(mb, to, req, req_len, timeout_ms, gone, call_id, true);
}

int dri_call_nowait(dr_mailbox *mb, const struct dri_target *to, const void *req,
		    size_t req_len, int timeout_ms, int gone, uint64_t *call_id)
{
	return call_async(mb, to, req, req_len, timeout_ms, gone, call_id, false);
}

DR_EXPORT int dr_call_async_bin(dr_mailbox *mb, const void *name, size_t name_len,
				const void *req, size_t req_len, int timeout_ms,
				uint64_t *call_id)
{
	struct dri_target to = local(name, name_len);

	return dri_call_async(mb, &to, req, req_len, timeout_ms, -EOWNERDEAD, call_id);
}

DR_EXPORT int dr_call_async(dr_mailbox *mb, const char *name, const void *req, size_t req_len,
			    int timeout_ms, uint64_t *call_id)
{
	return dr_call_async_bin(mb, name, dri_cname_len(name), req, req_len, timeout_ms,
				 call_id);
}

/* ---------------------------------------------------------------------- */
/* Calls that wait */

/* What dr_call's wait looks at every 20 ms: the mailbox it sent to must
 * still live, or the call ends with gone. */
struct target_look {
	uint32_t target;
	int gone;
};

static int target_look(dr_mailbox *mb, struct dr_msg *msg, void *arg)
{
	const struct target_look *l = arg;

	(void)msg;
	return target_alive(mb->r, l->target, l->gone) ? 0 : l->gone;
}

/*
 * Call a target and wait for the answer (see dr_call): through this
 * thread's mailbox for answers. gone as for dri_call_async().
 */
int dri_call_wait(dr_registry *r, const struct dri_target *to, const void *req, size_t req_len,
		  void *reply_buf, size_t *reply_len, int timeout_ms, int gone)
{
	struct dri_thread *t;
	struct target_look look = { .gone = gone };
	struct dr_msg msg;
	dr_mailbox *mb;
	uint64_t id, deadline, next_look;
	int err;

	if (!r || timeout_ms < -1 || (reply_len && *reply_len && !reply_buf))
		return -EINVAL;
	err = dri_thread_get(r, &t);
	if (err)
		return err;
	if (!t->reply_mb) {
		err = dri_mailbox_open(r, true, &t->reply_mb);
		if (err)
			return err;
	}
	mb = t->reply_mb;
	id = next_call_id(mb);
	deadline = dri_deadline(timeout_ms);
	err = dri_send(r, DR_MSG_CALL, to, req, req_len, id, mb->ref,
		       timeout_ms == 0 ? 0 : deadline, &look.target);
	if (err)
		return err;
	/* The first look at once: a send reaches a dead process's mailbox
	 * as long as nobody has reaped it, and then the call ends now, with
	 * -EOWNERDEAD whatever its timeout. */
	next_look = 0;
	err = dri_wait_take(mb, &msg, id, deadline, &next_look, target_look, &look);
	if (err)
		return err;
	if (msg.status) {
		err = msg.status == DR_NOTSERVED && !to->notserved ? -ENOENT : msg.status;
	} else if (!reply_len) {
		/* the caller wants no data */
	} else if (msg.len > *reply_len) {
		*reply_len = msg.len;
		err = -EMSGSIZE;
	} else {
		if (msg.len)
			memcpy(reply_buf, msg.data, msg.len);
		*reply_len = msg.len;
	}
	dri_finish(mb);
	return err;
}

DR_EXPORT int dr_call_bin(dr_registry *r, const void *name, size_t name_len, const void *req,
			  size_t req_len, void *reply_buf, size_t *reply_len, int timeout_ms)
{
	struct dri_target to = local(name, name_len);

	return dri_call_wait(r, &to, req, req_len, reply_buf, reply_len, timeout_ms,
			     -EOWNERDEAD);
}

DR_EXPORT int dr_call(dr_registry *r, const char *name, const void *req, size_t req_len,
		      void *reply_buf, size_t *reply_len, int timeout_ms)
{
	return dr_call_bin(r, name, dri_cname_len(name), req, req_len, reply_buf, reply_len,
			   timeout_ms);
}

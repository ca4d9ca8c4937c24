/*
 * start.c - global workers: dr_start() (get-or-create on the owner) and
 * the factories that create them.
 *
 * A factory of kind K serves the local name "\0distreg.factory." K (local
 * names that begin with "\0distreg." are the library's: registry.c refuses
 * them to everyone else). A start on the owner host looks the global name up; if nobody
 * serves it, it calls the factory with a start request, and once the
 * factory answers it looks the name up again. Exactly one instance per
 * name on the owner comes from the table itself: the factory's
 * dr_serve_global() registers the name once, and a second factory answer
 * for the same name says -EEXIST.
 *
 * From another host the start goes through the bridges as a forwarding
 * message of op DR_FWD_START, and the owner's bridge runs the same steps
 * without blocking (dr_admin_start_begin, dr_admin_start_end).
 *
 * Formats, integers little-endian:
 *
 * The start request, a CALL to the factory's name:
 *     0   u8    version (START_VERSION)
 *     1   u8    name_len, 1 to DR_NAME_MAX
 *     2   u16   0
 *     4   u32   arg_len
 *     8   name_len bytes of name, then arg_len bytes of arg
 *
 * The factory's answer (dr_start_answer), a REPLY:
 *     0   u8    version
 *     1   u8    0
 *     2   u16   reason_len, 0 to DR_REASON_MAX
 *     4   i32   status: 0 served, -EEXIST served already, else refused
 *     8   u64   status 0: the regid of the registration it made (as the
 *               factory's host saw it when answering), else 0
 *    16   reason_len bytes of reason
 *
 * A start forwarded to the owner's bridge: the forwarding header (global.c)
 * names the worker; its payload is
 *     0   u8    version
 *     1   u8    kind_len, 1 to DR_KIND_MAX
 *     2   u16   0
 *     4   u32   arg_len
 *     8   kind_len bytes of kind, then arg_len bytes of arg
 *
 * The owner's answer to it (DR_START_WIRE_MAX bytes at most):
 *     0   u8    STARTED_VERSION (2: never a factory's answer's version)
 *     1   u8    created, 0 or 1
 *     2   u16   reason_len (0 unless status is -ECANCELED)
 *     4   i32   status: dr_start()'s result on the owner
 *     8   status 0: the entry, as dr_admin_entry_encode() writes it;
 *         else reason_len bytes of reason
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <distreg_admin.h>

#include "dri.h"

#define START_VERSION 1
#define STARTED_VERSION 2 /* the owner's answer: told apart from a factory's */
#define START_FIXED 8
#define ANSWER_FIXED 16
#define FACTORY_PREFIX DRI_RESERVED_PREFIX "factory."
#define FACTORY_PREFIX_LEN (DRI_RESERVED_PREFIX_LEN + 8)
#define FACTORY_NAME_MAX (FACTORY_PREFIX_LEN + DR_KIND_MAX)

_Static_assert(DR_START_WIRE_MAX == START_FIXED + DR_ENTRY_WIRE_MAX + DR_REASON_MAX,
	       "start answer format");

static int kind_check(const char *kind, size_t len)
{
	if (!kind || len == 0 || len > DR_KIND_MAX || memchr(kind, 0, len))
		return -EINVAL;
	return 0;
}

/* The factory name of kind into buf (FACTORY_NAME_MAX bytes); its length. */
static size_t factory_name(uint8_t *buf, const char *kind, size_t kind_len)
{
	memcpy(buf, FACTORY_PREFIX, FACTORY_PREFIX_LEN);
	memcpy(buf + FACTORY_PREFIX_LEN, kind, kind_len);
	return FACTORY_PREFIX_LEN + kind_len;
}

static void fixed(uint8_t *p, uint8_t b1, size_t n16, int32_t status_or_len)
{
	p[0] = START_VERSION;
	p[1] = b1;
	p[2] = (uint8_t)n16;
	p[3] = (uint8_t)(n16 >> 8);
	dri_put32(p + 4, (uint32_t)status_or_len);
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[2] | (unsigned)p[3] << 8;
}

/* ---------------------------------------------------------------------- */
/* The factory's side */

DR_EXPORT int dr_factory_serve(dr_mailbox *mb, const char *kind)
{
	uint8_t name[FACTORY_NAME_MAX];
	size_t kl = kind ? strnlen(kind, DR_KIND_MAX + 1) : 0;
	int err = kind_check(kind, kl);

	if (err)
		return err;
	return dri_serve(mb, name, factory_name(name, kind, kl), DRI_REG_RESERVED, NULL, 0);
}

/* A start request's fields, without looking at the table. */
static int request_decode(const struct dr_msg *msg, struct dr_start_req *out)
{
	const uint8_t *p;
	size_t nl, al;

	if (!msg || !out)
		return -EINVAL;
	if (msg->kind != DR_MSG_CALL || msg->global || msg->name_len <= FACTORY_PREFIX_LEN ||
	    msg->name_len > FACTORY_NAME_MAX ||
	    memcmp(msg->name, FACTORY_PREFIX, FACTORY_PREFIX_LEN) != 0)
		return -EINVAL;
	p = msg->data;
	if (msg->len < START_FIXED || !p || p[0] != START_VERSION || get16(p) != 0)
		return -EBADMSG;
	nl = p[1];
	al = dri_get32(p + 4);
	if (nl == 0 || nl > DR_NAME_MAX || al != msg->len - START_FIXED - nl ||
	    msg->len < START_FIXED + nl)
		return -EBADMSG;
	*out = (struct dr_start_req){
		.name = p + START_FIXED, .name_len = nl,
		.kind = (const char *)msg->name + FACTORY_PREFIX_LEN,
		.kind_len = msg->name_len - FACTORY_PREFIX_LEN,
		.arg = al ? p + START_FIXED + nl : NULL, .arg_len = al,
	};
	return 0;
}

DR_EXPORT int dr_start_request(dr_mailbox *mb, const struct dr_msg *msg,
			       struct dr_start_req *out)
{
	int err = dri_mb_begin(mb);

	if (!err)
		err = request_decode(msg, out);
	if (err)
		return err;
	/* Served meanwhile (an earlier request for it, or a start that timed
	 * out and was made again): serving it again from the same mailbox
	 * would be a value update, and two answers would say "created". */
	if (dri_whereis(mb->r, out->name, out->name_len, DRI_REG_GLOBAL, NULL) == 0)
		return -EEXIST;
	return 0;
}

DR_EXPORT int dr_start_answer(dr_mailbox *mb, const struct dr_msg *msg, int status,
			      const char *reason)
{
	uint8_t buf[ANSWER_FIXED + DR_REASON_MAX];
	struct dr_start_req req;
	struct dr_entry e;
	uint64_t regid = 0;
	size_t rl = 0;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (status > 0 || request_decode(msg, &req) != 0)
		return -EINVAL;
	if (status != 0 && status != -EEXIST && reason)
		rl = strnlen(reason, DR_REASON_MAX);
	/* Which registration it made: the starter says "created" only if it
	 * finds that one (not another made after it ended). */
	if (status == 0 && dri_whereis(mb->r, req.name, req.name_len, DRI_REG_GLOBAL, &e) == 0)
		regid = e.regid;
	fixed(buf, 0, rl, status);
	dri_put64(buf + START_FIXED, regid);
	if (rl)
		memcpy(buf + ANSWER_FIXED, reason, rl);
	return dr_reply(mb, msg, buf, ANSWER_FIXED + rl);
}

/* ---------------------------------------------------------------------- */
/* On the owner */

/* The start request for name with arg into buf; its length, or -EMSGSIZE
 * if it cannot go in one message from r. */
static int request_encode(dr_registry *r, uint8_t *buf, size_t cap, const void *name,
			  size_t name_len, const void *arg, size_t arg_len)
{
	size_t n = START_FIXED + name_len + arg_len;

	if (n > cap || n > dr_message_max(r))
		return -EMSGSIZE;
	fixed(buf, (uint8_t)name_len, 0, (int32_t)arg_len);
	memcpy(buf + START_FIXED, name, name_len);
	if (arg_len)
		memcpy(buf + START_FIXED + name_len, arg, arg_len);
	return (int)n;
}

/* Where name is served in this segment, as a start's result: 0 and *st
 * filled, or the lookup's error. */
static int served_here(dr_registry *r, const void *name, size_t name_len, int created,
		       struct dr_started *st)
{
	int err = dri_whereis(r, name, name_len, DRI_REG_GLOBAL, &st->entry);

	if (!err)
		st->created = created;
	return err;
}

/* The result of a start once the factory answered (status of its call,
 * and its answer). */
static int start_finish(dr_registry *r, const void *name, size_t name_len, int status,
			const uint8_t *ans, size_t len, struct dr_started *st)
{
	uint64_t made;
	int32_t said;
	size_t rl;

	if (status == -ENOENT)
		return -ESRCH; /* the factory's name went before it answered */
	if (status)
		return status;
	if (len < ANSWER_FIXED || ans[0] != START_VERSION || ans[1] != 0)
		return -EBADMSG;
	rl = get16(ans);
	said = (int32_t)dri_get32(ans + 4);
	made = dri_get64(ans + START_FIXED);
	if (rl > DR_REASON_MAX || len != ANSWER_FIXED + rl || said > 0 || (said && made))
		return -EBADMSG;
	if (said == 0 || said == -EEXIST) {
		int err = served_here(r, name, name_len, 0, st);

		/* Created by this start only if what we find is the
		 * registration the factory made for it. */
		if (!err)
			st->created = said == 0 && made != 0 && st->entry.regid == made;
		return err;
	}
	memcpy(st->reason, ans + ANSWER_FIXED, rl);
	st->reason[rl] = 0;
	return -ECANCELED;
}

/* The owner's answer to a forwarded start into buf; its length. The
 * holder's liveness is asked every time, even of a factory that has just
 * answered: the answer may have waited in our mailbox while it died. */
static size_t started_encode(dr_registry *r, const void *name, size_t name_len, int rc,
			     const struct dr_started *st, uint8_t *buf)
{
	size_t n = START_FIXED, rl = 0;

	if (rc == 0) {
		size_t el = DR_ENTRY_WIRE_MAX;

		/* The entry we just read, in the lookup's format. */
		if (dr_admin_entry_encode(r, name, name_len, buf + START_FIXED, &el) == 0) {
			n += el;
		} else {
			rc = -ENOENT; /* gone between the two looks */
		}
	} else if (rc == -ECANCELED) {
		rl = strlen(st->reason);
		memcpy(buf + START_FIXED, st->reason, rl);
		n += rl;
	}
	fixed(buf, (uint8_t)(rc == 0 && st->created), rl, rc);
	buf[0] = STARTED_VERSION;
	return n;
}

/* The owner's answer, on the host that asked. */
static int started_decode(const uint8_t *p, size_t len, struct dr_started *st)
{
	int32_t rc;
	size_t rl;

	if (len < START_FIXED || p[0] != STARTED_VERSION || p[1] > 1)
		return -EBADMSG;
	rl = get16(p);
	rc = (int32_t)dri_get32(p + 4);
	if (rc > 0 || rl > DR_REASON_MAX || (rl && rc != -ECANCELED) || (p[1] && rc != 0))
		return -EBADMSG;
	if (rc == 0) {
		st->created = p[1];
		return dri_entry_decode(p + START_FIXED, len - START_FIXED, &st->entry);
	}
	if (len != START_FIXED + rl)
		return -EBADMSG;
	memcpy(st->reason, p + START_FIXED, rl);
	st->reason[rl] = 0;
	return rc;
}

/* A forwarded start's payload: the kind and the arg. */
static int fwd_start_decode(const uint8_t *p, size_t len, const char **kind, size_t *kind_len,
			    const void **arg, size_t *arg_len)
{
	size_t kl, al;

	if (len < START_FIXED || p[0] != START_VERSION || get16(p) != 0)
		return -EBADMSG;
	kl = p[1];
	al = dri_get32(p + 4);
	if (len < START_FIXED + kl || al != len - START_FIXED - kl ||
	    kind_check((const char *)p + START_FIXED, kl) != 0)
		return -EBADMSG;
	*kind = (const char *)p + START_FIXED;
	*kind_len = kl;
	*arg = al ? p + START_FIXED + kl : NULL;
	*arg_len = al;
	return 0;
}

DR_EXPORT int dr_admin_start_begin(dr_mailbox *mb, const void *name, size_t name_len,
				   const void *data, size_t len, int timeout_ms,
				   uint64_t *call_id, void *buf, size_t *len_out)
{
	struct dr_started st = { 0 };
	uint8_t fname[FACTORY_NAME_MAX], *req;
	struct dri_target to = { .name = fname };
	const char *kind;
	const void *arg;
	size_t kl, al, cap;
	int rc, n;

	rc = dri_mb_begin(mb);
	if (rc)
		return rc;
	if (!name || name_len == 0 || name_len > DR_NAME_MAX || !call_id || !buf || !len_out ||
	    (len && !data))
		return -EINVAL;
	rc = fwd_start_decode(data, len, &kind, &kl, &arg, &al);
	if (rc == 0) {
		rc = served_here(mb->r, name, name_len, 0, &st);
		if (rc == -ENOENT) {
			to.len = factory_name(fname, kind, kl);
			cap = START_FIXED + name_len + al;
			req = malloc(cap);
			if (!req)
				return -ENOMEM;
			n = request_encode(mb->r, req, cap, name, name_len, arg, al);
			rc = n < 0 ? n : dri_call_nowait(mb, &to, req, (size_t)n, timeout_ms,
							 -EOWNERDEAD, call_id);
			free(req);
			if (rc == 0)
				return 0; /* the factory answers */
			if (rc == -EAGAIN || rc == -EUSERS)
				return rc; /* no room in the factory's mailbox: nothing sent */
			if (rc == -ENOENT)
				rc = -ESRCH;
		}
	}
	*len_out = started_encode(mb->r, name, name_len, rc, &st, buf);
	return 1;
}

DR_EXPORT int dr_admin_start_end(dr_registry *r, const void *name, size_t name_len,
				 const struct dr_msg *reply, void *buf, size_t *len_out)
{
	struct dr_started st = { 0 };
	int rc;

	if (!r || !name || name_len == 0 || name_len > DR_NAME_MAX || !reply || !buf || !len_out)
		return -EINVAL;
	rc = start_finish(r, name, name_len, reply->status, reply->data, reply->len, &st);
	*len_out = started_encode(r, name, name_len, rc, &st, buf);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* dr_start */

/* What a start sends: to the factory of kind here (the owner is this
 * host), or to the bridge for the owner's; the payload is malloc'd. */
struct start_msg {
	struct dri_target to;
	uint8_t hdr[DRI_FWD_MAX];
	uint8_t fname[FACTORY_NAME_MAX];
	uint8_t *payload;
	size_t len;
	int gone;                      /* the call's status if its target goes */
};

static int start_prepare(dr_registry *r, const void *name, size_t name_len, const char *kind,
			 size_t kl, const void *arg, size_t arg_len, int timeout_ms,
			 const struct dri_where *w, struct start_msg *sm)
{
	size_t cap;
	int n;

	if (w->self) {
		sm->to = (struct dri_target){ .name = sm->fname,
					      .len = factory_name(sm->fname, kind, kl) };
		sm->gone = -EOWNERDEAD;
		cap = START_FIXED + name_len + arg_len;
		sm->payload = malloc(cap);
		if (!sm->payload)
			return -ENOMEM;
		n = request_encode(r, sm->payload, cap, name, name_len, arg, arg_len);
		if (n < 0) {
			free(sm->payload);
			return n;
		}
		sm->len = (size_t)n;
		return 0;
	}
	sm->to = dri_to_bridge(sm->hdr, DR_FWD_START, w, name, name_len, timeout_ms);
	sm->gone = -ENOTCONN;
	sm->len = START_FIXED + kl + arg_len;
	if (sm->len + sm->to.pre_len > dr_message_max(r))
		return -EMSGSIZE;
	sm->payload = malloc(sm->len);
	if (!sm->payload)
		return -ENOMEM;
	fixed(sm->payload, (uint8_t)kl, 0, (int32_t)arg_len);
	memcpy(sm->payload + START_FIXED, kind, kl);
	if (arg_len)
		memcpy(sm->payload + START_FIXED + kl, arg, arg_len);
	return 0;
}

/* A start's answer (status of its call, and the reply's bytes), from the
 * factory here or the owner's bridge: they are told apart by version. */
static int start_answer(dr_registry *r, const void *name, size_t name_len, bool remote,
			int status, const uint8_t *ans, size_t len, struct dr_started *st)
{
	if (status == -EMSGSIZE)
		status = -EBADMSG; /* longer than any answer */
	/* By where it was sent, never by what the answer says it is: a
	 * factory here could answer in the owner's format. */
	if (remote)
		return status ? status : started_decode(ans, len, st);
	return start_finish(r, name, name_len, status, ans, len, st);
}

/* The checks and the owner every start begins with. */
static int start_begin(dr_registry *r, const void *name, size_t name_len, const char *kind,
		       size_t *kl, const void *arg, size_t arg_len, int timeout_ms,
		       struct dri_where *w)
{
	if (!r || timeout_ms < -1 || (arg_len && !arg) || !name || name_len == 0)
		return -EINVAL;
	if (name_len > DR_NAME_MAX)
		return -ENAMETOOLONG;
	*kl = kind ? strnlen(kind, DR_KIND_MAX + 1) : 0;
	if (kind_check(kind, *kl))
		return -EINVAL;
	return dri_owner_of(r, name, name_len, w);
}

DR_EXPORT int dr_start_bin(dr_registry *r, const void *name, size_t name_len, const char *kind,
			   const void *arg, size_t arg_len, struct dr_started *out,
			   int timeout_ms)
{
	uint8_t ans[DR_START_WIRE_MAX];
	size_t kl, ans_len = sizeof(ans);
	struct dr_started st = { 0 };
	struct start_msg sm;
	struct dri_where w;
	int err;

	err = start_begin(r, name, name_len, kind, &kl, arg, arg_len, timeout_ms, &w);
	if (err)
		return err;
	memcpy(st.host, w.host, sizeof(st.host));
	/* Served on this host already: no factory to ask. */
	err = w.self ? served_here(r, name, name_len, 0, &st) : -ENOENT;
	if (err == -ENOENT) {
		err = start_prepare(r, name, name_len, kind, kl, arg, arg_len, timeout_ms, &w, &sm);
		if (err)
			return err;
		err = dri_call_wait(r, &sm.to, sm.payload, sm.len, ans, &ans_len, timeout_ms,
				    sm.gone);
		free(sm.payload);
		/* Not in DRI_CRASHPOINTS (the stress mix starts no worker). */
		if (err == 0 && w.self)
			DRI_CRASHPOINT(start_answered); /* the factory answered, not looked up */
		err = start_answer(r, name, name_len, !w.self, err, ans, ans_len, &st);
	}
	if (out && (err == 0 || err == -ECANCELED))
		*out = st;
	return err;
}

/* A start in flight from a mailbox (dr_start_async): its call id, the
 * name, where it went, and whether it moves a worker served here
 * (dr_restart_moved_async). Listed under mb->start_lock before the start
 * is sent, so a receiving thread that gets the answer at once finds it. */
struct dri_move {
	struct dri_move *next;
	uint64_t call_id;              /* 0 until sent */
	bool remote, moving;
	size_t len;
	unsigned char name[];
};

void dri_moves_free(dr_mailbox *mb)
{
	while (mb->moves) {
		struct dri_move *m = mb->moves;

		mb->moves = m->next;
		free(m);
	}
}

static int start_async(dr_mailbox *mb, const void *name, size_t name_len, const char *kind,
		       const void *arg, size_t arg_len, int timeout_ms, bool moving,
		       struct dr_started *now, uint64_t *call_id)
{
	struct dr_started st = { 0 };
	struct dri_move *m;
	struct start_msg sm;
	struct dri_where w;
	uint64_t id = 0;
	size_t kl;
	int err = dri_mb_begin(mb);

	if (!err)
		err = start_begin(mb->r, name, name_len, kind, &kl, arg, arg_len, timeout_ms, &w);
	if (err)
		return err;
	if (w.self) {
		err = served_here(mb->r, name, name_len, 0, &st);
		if (err == 0) {
			memcpy(st.host, w.host, sizeof(st.host));
			if (now)
				*now = st;
			return 1;
		}
		if (err != -ENOENT)
			return err;
	}
	err = start_prepare(mb->r, name, name_len, kind, kl, arg, arg_len, timeout_ms, &w, &sm);
	if (err)
		return err;
	m = calloc(1, sizeof(*m) + name_len);
	if (!m) {
		free(sm.payload);
		return -ENOMEM;
	}
	m->remote = !w.self;
	m->moving = moving;
	m->len = name_len;
	memcpy(m->name, name, name_len);
	pthread_mutex_lock(&mb->start_lock);
	err = dri_call_async(mb, &sm.to, sm.payload, sm.len, timeout_ms, sm.gone, &id);
	if (!err) {
		m->call_id = id;
		m->next = mb->moves;
		mb->moves = m;
	}
	pthread_mutex_unlock(&mb->start_lock);
	free(sm.payload);
	if (err) {
		free(m);
		return err == -ENOENT && w.self ? -ESRCH : err; /* no factory's name here */
	}
	if (call_id)
		*call_id = id;
	return 0;
}

DR_EXPORT int dr_start_async_bin(dr_mailbox *mb, const void *name, size_t name_len,
				 const char *kind, const void *arg, size_t arg_len,
				 int timeout_ms, struct dr_started *now, uint64_t *call_id)
{
	if (!call_id)
		return -EINVAL;
	return start_async(mb, name, name_len, kind, arg, arg_len, timeout_ms, false, now,
			   call_id);
}

DR_EXPORT int dr_start_async(dr_mailbox *mb, const char *name, const char *kind, const void *arg,
			     size_t arg_len, int timeout_ms, struct dr_started *now,
			     uint64_t *call_id)
{
	return dr_start_async_bin(mb, name, dri_cname_len(name), kind, arg, arg_len, timeout_ms,
				  now, call_id);
}

/* The start in flight whose answer reply is, taken off mb's list; NULL if
 * none (not a start's answer). */
static struct dri_move *take_start(dr_mailbox *mb, const struct dr_msg *reply)
{
	struct dri_move *m, **pp;

	if (!reply || reply->kind != DR_MSG_REPLY)
		return NULL;
	pthread_mutex_lock(&mb->start_lock);
	for (pp = &mb->moves; (m = *pp) && m->call_id != reply->call_id; pp = &m->next)
		;
	if (m)
		*pp = m->next;
	pthread_mutex_unlock(&mb->start_lock);
	return m;
}

static int finish(dr_mailbox *mb, const struct dri_move *m, const struct dr_msg *reply,
		  struct dr_started *out)
{
	struct dr_started st = { 0 };
	struct dri_where w;
	int err = start_answer(mb->r, m->name, m->len, m->remote, reply->status, reply->data,
			       reply->len, &st);

	/* Where: the owner as the view says now (a lookup only: the start
	 * is over, its result is err). */
	if ((err == 0 || err == -ECANCELED) && dri_owner_of(mb->r, m->name, m->len, &w) == 0)
		memcpy(st.host, w.host, sizeof(st.host));
	if (out && (err == 0 || err == -ECANCELED))
		*out = st;
	return err;
}

static int moved_done(dr_mailbox *mb, const void *name, size_t len);

DR_EXPORT int dr_start_finish(dr_mailbox *mb, const struct dr_msg *reply, struct dr_started *out)
{
	struct dri_move *m;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	m = take_start(mb, reply);
	if (!m)
		return -EINVAL; /* not a start's answer */
	err = finish(mb, m, reply, out);
	/* A restart (dr_restart_moved_async): it runs on the owner now, so
	 * ours ends. */
	if (!err && m->moving)
		err = moved_done(mb, m->name, m->len);
	free(m);
	return err;
}

DR_EXPORT int dr_start(dr_registry *r, const char *name, const char *kind, const void *arg,
		       size_t arg_len, struct dr_started *out, int timeout_ms)
{
	return dr_start_bin(r, name, dri_cname_len(name), kind, arg, arg_len, out, timeout_ms);
}

/* ---------------------------------------------------------------------- */
/* Moves: shouldrestart */

struct names {
	size_t n, cap;
	struct { uint8_t len; unsigned char name[DR_NAME_MAX]; } *v;
	int err;
};

static int collect_global(const struct dr_name_info *in, void *arg)
{
	struct names *ns = arg;

	if (!in->global || in->name_len == 0 || in->name_len > DR_NAME_MAX)
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 256;
		void *v = realloc(ns->v, cap * sizeof(*ns->v));

		if (!v) {
			ns->err = -ENOMEM;
			return 1;
		}
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n].len = (uint8_t)in->name_len;
	memcpy(ns->v[ns->n].name, in->name, in->name_len);
	ns->n++;
	return 0;
}

/* Event ev (owner: its host, idl bytes) to the global name here; ended:
 * about a registration that ends now (regid), delivered all the same. */
static int tell(dr_mailbox *mb, const void *name, size_t len, int ev, const char *owner,
		size_t idl, uint64_t regid)
{
	uint8_t data[1 + DR_HOST_MAX];
	struct dri_target to = { .name = name, .len = len, .global = true, .ended = regid != 0,
				 .regid = regid };

	data[0] = (uint8_t)ev;
	memcpy(data + 1, owner, idl);
	return dri_send(mb->r, DR_MSG_SYSTEM, &to, data, 1 + idl, 0, 0, 0, NULL);
}

DR_EXPORT int dr_admin_tell(dr_mailbox *mb, const void *name, size_t name_len, int event,
			    const char *owner, struct dr_admin_loser *loser)
{
	struct dri_thread *t;
	struct dri_key k;
	uint64_t regid;
	uint32_t mbox = 0;
	struct dr_entry e;
	size_t idl = owner ? strnlen(owner, DR_HOST_MAX + 1) : 0;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!name || name_len == 0 || name_len > DR_NAME_MAX || idl == 0 || idl > DR_HOST_MAX ||
	    (event != DR_EVENT_SHOULDRESTART && event != DR_EVENT_DIENOW))
		return -EINVAL;
	if (event == DR_EVENT_SHOULDRESTART)
		return tell(mb, name, name_len, event, owner, idl, 0);
	/* dienow: this registration, its mailbox and process; the event
	 * first (it says why), then the registration ends. */
	err = dri_thread_get(mb->r, &t);
	if (err)
		return err;
	dri_key_init(&k, mb->r, name, name_len, true);
	dri_read_enter(mb->r, t);
	err = dri_lookup(mb->r, &k, &e, &mbox, &regid, NULL);
	dri_read_exit(mb->r, t);
	if (err)
		return err;
	err = tell(mb, name, name_len, event, owner, idl, regid);
	if (err && err != -EDESTADDRREQ)
		return err; /* -EAGAIN: no room now; -ENOENT: ended meanwhile */
	err = dri_unregister(mb->r, name, name_len, DRI_REG_GLOBAL, regid, true);
	if (err)
		return err;
	if (loser)
		*loser = (struct dr_admin_loser){ .pid = e.pid, .mailbox = mbox };
	return 0;
}

DR_EXPORT int dr_admin_mailbox_open(dr_registry *r, uint32_t mailbox)
{
	return r && mailbox && dri_mbox_alive(r, mailbox);
}

DR_EXPORT int dr_admin_tell_moved(dr_mailbox *mb, const struct dr_host *before, size_t nbefore,
				  dr_admin_ask_fn ask, void *arg, size_t *told, size_t *unsent)
{
	struct dr_host *now;
	struct names ns = { 0 };
	size_t n = 0, count = 0, full = 0;
	int err = dri_mb_begin(mb);

	if (!err && before == NULL && nbefore)
		err = -EINVAL;
	if (err)
		return err;
	now = malloc(DR_HOSTS_MAX * sizeof(*now));
	if (!now)
		return -ENOMEM;
	err = dr_hosts(mb->r, now, DR_HOSTS_MAX, &n, NULL);
	if (!err)
		err = dr_foreach(mb->r, collect_global, &ns);
	if (!err)
		err = ns.err;
	for (size_t k = 0; !err && k < ns.n; k++) {
		const unsigned char *name = ns.v[k].name;
		size_t len = ns.v[k].len;
		int o = dri_owner_among(now, n, name, len), b, rc;

		if (o < 0 || now[o].self)
			continue; /* placed, or nobody owns anything */
		if (before) {
			b = dri_owner_among(before, nbefore, name, len);
			if (b >= 0 && strcmp(before[b].id, now[o].id) == 0)
				continue; /* told at the change that moved it */
		}
		if (ask) {
			rc = ask(arg, name, len, now[o].id) ? -EAGAIN : 0;
		} else {
			rc = tell(mb, name, len, DR_EVENT_SHOULDRESTART, now[o].id,
				  strnlen(now[o].id, DR_HOST_MAX), 0);
		}
		if (rc == 0)
			count++;
		else if (rc == -EAGAIN || rc == -EUSERS)
			full++; /* not now: the caller tries again */
	}
	free(ns.v);
	free(now);
	if (told)
		*told = count;
	if (unsent)
		*unsent = full;
	return err;
}

/* Whether ev is a shouldrestart event about a name this host no longer
 * owns: 0, -EALREADY (it owns it again), -EINVAL, or dr_owner's error. */
static int moved_check(dr_mailbox *mb, const struct dr_msg *ev)
{
	struct dri_where w;
	int err;

	if (!ev || ev->kind != DR_MSG_SYSTEM || !ev->global || ev->len < 1 || !ev->data ||
	    ((const uint8_t *)ev->data)[0] != DR_EVENT_SHOULDRESTART || ev->name_len == 0)
		return -EINVAL;
	/* An event older than the view: if this host owns the name again,
	 * a start would find this very registration, and end it. */
	err = dri_owner_of(mb->r, ev->name, ev->name_len, &w);
	if (err)
		return err;
	return w.self ? -EALREADY : 0;
}

/* Once it runs on the owner (created, or found there): stop serving it
 * here. The one on the owner wins, also one started there by someone else. */
static int moved_done(dr_mailbox *mb, const void *name, size_t len)
{
	int err = dri_unserve(mb, name, len, true);

	return err == -ENOENT ? 0 : err; /* no longer ours anyway */
}

DR_EXPORT int dr_restart_moved(dr_mailbox *mb, const struct dr_msg *ev, const char *kind,
			       const void *arg, size_t arg_len, struct dr_started *out,
			       int timeout_ms)
{
	int err = dri_mb_begin(mb);

	if (!err)
		err = moved_check(mb, ev);
	if (!err)
		err = dr_start_bin(mb->r, ev->name, ev->name_len, kind, arg, arg_len, out,
				   timeout_ms);
	return err ? err : moved_done(mb, ev->name, ev->name_len);
}

DR_EXPORT int dr_restart_moved_async(dr_mailbox *mb, const struct dr_msg *ev, const char *kind,
				     const void *arg, size_t arg_len, int timeout_ms)
{
	int err = dri_mb_begin(mb);

	if (!err)
		err = moved_check(mb, ev);
	if (!err)
		err = start_async(mb, ev->name, ev->name_len, kind, arg, arg_len, timeout_ms, true,
				  NULL, NULL);
	/* 1: the view gave it back to this host meanwhile: it stays. */
	return err == 1 ? -EALREADY : err;
}

DR_EXPORT int dr_restart_moved_finish(dr_mailbox *mb, const struct dr_msg *reply,
				      struct dr_started *out)
{
	return dr_start_finish(mb, reply, out);
}

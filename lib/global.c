/*
 * global.c - global names: serving them, looking them up, and calls, casts
 * and sends to them from any host; the forwarding header that carries a
 * message to the bridge, and what the bridge does with one on either side.
 *
 * Every operation first asks where the name lives (cluster.c). On this
 * host it is the local operation on the global name in this segment. On
 * another, the message goes to the bridge's address (the global name of
 * length 0) in one record: a forwarding header, then the payload. A call
 * or a lookup is a CALL to the bridge, which answers it with dr_reply() or
 * dr_reply_error(), so the caller waits for it exactly as for a worker; if
 * the bridge's mailbox goes meanwhile, the call ends with -ENOTCONN.
 *
 * The forwarding header, integers little-endian:
 *
 *     0   u8    version (FWD_VERSION)
 *     1   u8    op (DR_FWD_*)
 *     2   u8    host_len, 1 to DR_HOST_MAX: the owner the sender computed
 *     3   u8    name_len, 1 to DR_NAME_MAX
 *     4   i32   timeout_ms: the sender's time left when it sent, -1 none
 *     8   u64   epoch: of the view the sender used (0: none)
 *    16   host_len bytes of host, then one NUL
 *         name_len bytes of name
 *         the payload (DR_FWD_WHEREIS: none)
 *
 * A lookup's answer (dr_admin_entry_encode), little-endian:
 *
 *     0   u8    version (ENTRY_VERSION)
 *     1   u8    0
 *     2   u16   0
 *     4   i32   pid
 *     8   u64   regid
 *    16   u32   value_len, 0 to DR_VALUE_MAX
 *    20   u32   0
 *    24   value_len bytes of value
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <distreg_admin.h>

#include "dri.h"

#define FWD_VERSION 1
#define FWD_FIXED 16
#define FWD_MAX DRI_FWD_MAX
_Static_assert(DRI_FWD_MAX == FWD_FIXED + DR_HOST_MAX + 1 + DR_NAME_MAX, "forwarding header");
#define ENTRY_VERSION 1
#define ENTRY_FIXED 24

_Static_assert(ENTRY_FIXED + DR_VALUE_MAX == DR_ENTRY_WIRE_MAX, "entry wire format");

#define put32 dri_put32
#define put64 dri_put64
#define get32 dri_get32
#define get64 dri_get64

static int name_check(const void *name, size_t len)
{
	if (!name || len == 0)
		return -EINVAL;
	return len > DR_NAME_MAX ? -ENAMETOOLONG : 0;
}

/* A global name of this segment. */
static struct dri_target global(const void *name, size_t len)
{
	return (struct dri_target){ .name = name, .len = len, .global = true };
}

/* ---------------------------------------------------------------------- */
/* Forwarding */

/* The header for op on name, owned by w->host, into buf (FWD_MAX bytes);
 * returns its length. */
static size_t fwd_encode(uint8_t *buf, int op, const struct dri_where *w, const void *name,
			 size_t len, int timeout_ms)
{
	size_t hl = strlen(w->host);

	buf[0] = FWD_VERSION;
	buf[1] = (uint8_t)op;
	buf[2] = (uint8_t)hl;
	buf[3] = (uint8_t)len;
	put32(buf + 4, (uint32_t)timeout_ms);
	put64(buf + 8, w->epoch);
	memcpy(buf + FWD_FIXED, w->host, hl);
	buf[FWD_FIXED + hl] = 0;
	memcpy(buf + FWD_FIXED + hl + 1, name, len);
	return FWD_FIXED + hl + 1 + len;
}

/* The bridge's address as a target, with the header in buf. */
struct dri_target dri_to_bridge(uint8_t *buf, int op, const struct dri_where *w,
				const void *name, size_t len, int timeout_ms)
{
	struct dri_target to = { .name = "", .len = 0, .global = true, .bridge = w->bridge,
				 .pre = buf };

	to.pre_len = fwd_encode(buf, op, w, name, len, timeout_ms);
	return to;
}

DR_EXPORT int dr_admin_fwd_decode(const struct dr_msg *msg, struct dr_fwd *out)
{
	const uint8_t *p;
	size_t hl, nl, at;
	int32_t timeout;
	int op;

	if (!msg || !out)
		return -EINVAL;
	/* Only what was sent to the bridge's address. */
	if (msg->name_len != 0 || !msg->global || msg->len < FWD_FIXED || !msg->data)
		return -EBADMSG;
	p = msg->data;
	op = p[1];
	hl = p[2];
	nl = p[3];
	timeout = (int32_t)get32(p + 4);
	if (p[0] != FWD_VERSION || hl < 1 || hl > DR_HOST_MAX || nl < 1 || nl > DR_NAME_MAX ||
	    timeout < -1)
		return -EBADMSG;
	if (msg->kind == DR_MSG_CALL ? op != DR_FWD_CALL && op != DR_FWD_WHEREIS &&
					       op != DR_FWD_START :
	    msg->kind == DR_MSG_CAST ? op != DR_FWD_CAST && op != DR_FWD_INFO : true)
		return -EBADMSG;
	at = FWD_FIXED + hl + 1 + nl;
	if (at > msg->len || memchr(p + FWD_FIXED, 0, hl) || p[FWD_FIXED + hl] != 0 ||
	    (op == DR_FWD_WHEREIS && at != msg->len))
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	out->op = op;
	out->host = (const char *)p + FWD_FIXED;
	out->name = p + FWD_FIXED + hl + 1;
	out->name_len = nl;
	out->data = p + at;
	out->len = msg->len - at;
	out->timeout_ms = timeout;
	out->epoch = get64(p + 8);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Lookups */

DR_EXPORT int dr_admin_entry_encode(dr_registry *r, const void *name, size_t name_len, void *buf,
				    size_t *len)
{
	struct dr_entry e;
	uint8_t *p = buf;
	uint64_t owner;
	int err;

	if (!r || !buf || !len)
		return -EINVAL;
	err = dri_whereis_owner(r, name, name_len, DRI_REG_GLOBAL, &e, &owner);
	if (err)
		return err;
	/* A dead process's name, not reaped yet, runs nowhere: a bridge that
	 * asks whether the owner runs it must not dienow the live one. */
	if (!owner || !dri_owner_alive(r, owner))
		return -ENOENT;
	memset(p, 0, ENTRY_FIXED);
	p[0] = ENTRY_VERSION;
	put32(p + 4, (uint32_t)e.pid);
	put64(p + 8, e.regid);
	put32(p + 16, (uint32_t)e.value_len);
	memcpy(p + ENTRY_FIXED, e.value, e.value_len);
	*len = ENTRY_FIXED + e.value_len;
	return 0;
}

/* The answer of an owner's bridge to a lookup: -EBADMSG unless exactly
 * what dr_admin_entry_encode() writes. */
int dri_entry_decode(const uint8_t *p, size_t len, struct dr_entry *out)
{
	uint32_t vl;

	if (len < ENTRY_FIXED || p[0] != ENTRY_VERSION || p[1] || p[2] || p[3] || get32(p + 20))
		return -EBADMSG;
	vl = get32(p + 16);
	if (vl > DR_VALUE_MAX || len != ENTRY_FIXED + vl)
		return -EBADMSG;
	if (out) {
		memset(out, 0, sizeof(*out));
		out->pid = (pid_t)(int32_t)get32(p + 4);
		out->regid = get64(p + 8);
		out->value_len = vl;
		memcpy(out->value, p + ENTRY_FIXED, vl);
	}
	return 0;
}

DR_EXPORT int dr_whereis_global_bin(dr_registry *r, const void *name, size_t name_len,
				    struct dr_entry *out, char *host, size_t host_len,
				    int timeout_ms)
{
	uint8_t hdr[FWD_MAX], ans[DR_ENTRY_WIRE_MAX];
	size_t ans_len = sizeof(ans);
	struct dr_entry e;
	struct dri_where w;
	struct dri_target to;
	int err;

	if (!r || timeout_ms < -1)
		return -EINVAL;
	err = name_check(name, name_len);
	if (!err)
		err = dri_owner_of(r, name, name_len, &w);
	if (err)
		return err;
	if (host && strlen(w.host) >= host_len)
		return -ERANGE;
	if (w.self) {
		err = dri_whereis(r, name, name_len, DRI_REG_GLOBAL, &e);
	} else {
		to = dri_to_bridge(hdr, DR_FWD_WHEREIS, &w, name, name_len, timeout_ms);
		err = dri_call_wait(r, &to, NULL, 0, ans, &ans_len, timeout_ms, -ENOTCONN);
		if (err == -EMSGSIZE)
			err = -EBADMSG; /* longer than any entry */
		if (!err)
			err = dri_entry_decode(ans, ans_len, &e);
	}
	if (err)
		return err;
	if (out)
		*out = e;
	if (host)
		memcpy(host, w.host, strlen(w.host) + 1);
	return 0;
}

DR_EXPORT int dr_whereis_global(dr_registry *r, const char *name, struct dr_entry *out,
				char *host, size_t host_len, int timeout_ms)
{
	return dr_whereis_global_bin(r, name, dri_cname_len(name), out, host, host_len,
				     timeout_ms);
}

/* ---------------------------------------------------------------------- */
/* Serving */

DR_EXPORT int dr_serve_global_bin(dr_mailbox *mb, const void *name, size_t name_len,
				  const void *value, size_t value_len)
{
	struct dri_where w;
	bool was;
	int err = dri_mb_begin(mb);

	if (!err)
		err = name_check(name, name_len);
	if (!err)
		err = dri_owner_of(mb->r, name, name_len, &w);
	if (err)
		return err;
	if (!w.self)
		return -EREMOTE;
	/* Not in DRI_CRASHPOINTS (the stress mix serves no global name). */
	DRI_CRASHPOINT(serve_owner_checked); /* found self the owner, not registered */
	was = dri_serves(mb, name, name_len, true);
	err = dri_serve(mb, name, name_len, DRI_REG_GLOBAL, value, value_len);
	if (err || was)
		return err;
	/* A view published between our look and the registration gave it to
	 * another host: the bridge told the names it found then, not this one
	 * (test_breakstart). Published after this look, it finds the name. */
	if (dri_owner_of(mb->r, name, name_len, &w) == 0 && !w.self) {
		dri_unserve(mb, name, name_len, true);
		return -EREMOTE;
	}
	return 0;
}

DR_EXPORT int dr_serve_global(dr_mailbox *mb, const char *name, const void *value,
			      size_t value_len)
{
	return dr_serve_global_bin(mb, name, dri_cname_len(name), value, value_len);
}

DR_EXPORT int dr_unserve_global_bin(dr_mailbox *mb, const void *name, size_t name_len)
{
	return dri_unserve(mb, name, name_len, true);
}

DR_EXPORT int dr_unserve_global(dr_mailbox *mb, const char *name)
{
	return dr_unserve_global_bin(mb, name, dri_cname_len(name));
}

/* ---------------------------------------------------------------------- */
/* Calls, casts and sends */

/*
 * Where a message to a global name goes: to (using hdr, FWD_MAX bytes, for
 * the forwarding header) is the name itself on its owner, this host, or
 * the bridge's address with op; *gone is a call's status should that
 * mailbox go before it answers.
 */
static void target_of(const struct dri_where *w, const void *name, size_t name_len, int op,
		      int timeout_ms, uint8_t *hdr, struct dri_target *to, int *gone)
{
	if (w->self) {
		*to = global(name, name_len);
		*gone = -EOWNERDEAD;
	} else {
		*to = dri_to_bridge(hdr, op, w, name, name_len, timeout_ms);
		*gone = -ENOTCONN;
	}
}

static int global_target(dr_registry *r, const void *name, size_t name_len, int op,
			 int timeout_ms, uint8_t *hdr, struct dri_target *to, int *gone)
{
	struct dri_where w;
	int err = name_check(name, name_len);

	if (!err)
		err = dri_owner_of(r, name, name_len, &w);
	if (err)
		return err;
	target_of(&w, name, name_len, op, timeout_ms, hdr, to, gone);
	return 0;
}

/* Milliseconds left until deadline (-1: none), 0 once past. */
static int left_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = dri_mono_ns();
	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

/*
 * A call to a global name this host owns reached no worker here: the worker
 * may be moving here, or away under a view that other hosts do not have
 * yet. This host's bridge makes it again where the name runs (bridge/rpc.c,
 * relocate), as it does for a call that reached no worker on another host.
 */
static struct dri_target via_bridge(const struct dri_where *w, const void *name,
				    size_t name_len, int timeout_ms, uint8_t *hdr, int *gone)
{
	*gone = -ENOTCONN;
	return dri_to_bridge(hdr, DR_FWD_CALL, w, name, name_len, timeout_ms);
}

struct dri_again {
	uint8_t name_len;
	size_t len;
	unsigned char name[DR_NAME_MAX];
	unsigned char data[];
};

struct dri_again *dri_again_new(const void *name, size_t name_len, const void *data,
				size_t len)
{
	struct dri_again *a = malloc(sizeof(*a) + len);

	if (!a)
		return NULL;
	a->name_len = (uint8_t)name_len;
	a->len = len;
	memcpy(a->name, name, name_len);
	if (len)
		memcpy(a->data, data, len);
	return a;
}

/* The call p, which reached no worker here, again through the bridge to
 * the owner of the view as it is now (via_bridge), under its id and
 * deadline; not waiting for room (the receiving thread does this). */
int dri_again_send(dr_mailbox *mb, const struct dri_pending *p)
{
	const struct dri_again *a = p->again;
	uint8_t hdr[FWD_MAX];
	struct dri_where w;
	struct dri_target to;
	uint64_t id = p->call_id;
	int gone, ms = left_ms(p->deadline);

	if (ms == 0 || dri_owner_of(mb->r, a->name, a->name_len, &w) != 0 || !w.bridge)
		return -ENOENT;
	to = via_bridge(&w, a->name, a->name_len, ms, hdr, &gone);
	return dri_call_as(mb, &to, a->data, a->len, &id, p->deadline, 0, gone);
}

DR_EXPORT int dr_call_global_bin(dr_registry *r, const void *name, size_t name_len,
				 const void *req, size_t req_len, void *reply, size_t *reply_len,
				 int timeout_ms)
{
	uint64_t deadline = dri_deadline(timeout_ms);
	size_t cap = reply_len ? *reply_len : 0;
	struct dri_where w;
	uint8_t hdr[FWD_MAX];
	struct dri_target to;
	int err, gone;

	if (!r || timeout_ms < -1)
		return -EINVAL;
	err = name_check(name, name_len);
	if (!err)
		err = dri_owner_of(r, name, name_len, &w);
	if (err)
		return err;
	target_of(&w, name, name_len, DR_FWD_CALL, timeout_ms, hdr, &to, &gone);
	to.notserved = true;
	err = dri_call_wait(r, &to, req, req_len, reply, reply_len, timeout_ms, gone);
	if (err == DR_NOTSERVED && w.self && w.bridge && left_ms(deadline) != 0) {
		int ms = left_ms(deadline);

		if (reply_len)
			*reply_len = cap;
		to = via_bridge(&w, name, name_len, ms, hdr, &gone);
		err = dri_call_wait(r, &to, req, req_len, reply, reply_len, ms, gone);
	}
	return err == DR_NOTSERVED ? -ENOENT : err;
}

DR_EXPORT int dr_call_global(dr_registry *r, const char *name, const void *req, size_t req_len,
			     void *reply, size_t *reply_len, int timeout_ms)
{
	return dr_call_global_bin(r, name, dri_cname_len(name), req, req_len, reply, reply_len,
				  timeout_ms);
}

DR_EXPORT int dr_call_async_global_bin(dr_mailbox *mb, const void *name, size_t name_len,
				       const void *req, size_t req_len, int timeout_ms,
				       uint64_t *call_id)
{
	uint8_t hdr[FWD_MAX];
	struct dri_target to;
	struct dri_where w;
	int err, gone;

	if (!mb || timeout_ms < -1)
		return -EINVAL;
	if (mb->r->pid != dri_self_pid)
		return -ECHILD;
	err = name_check(name, name_len);
	if (!err)
		err = dri_owner_of(mb->r, name, name_len, &w);
	if (err)
		return err;
	target_of(&w, name, name_len, DR_FWD_CALL, timeout_ms, hdr, &to, &gone);
	/* To a worker here, with a copy: if it reaches no worker (the
	 * registration ends before the worker takes it: it may be moving
	 * away), the receiving thread makes it again (dri_again_send). */
	if (w.self && w.bridge) {
		if (!req && req_len)
			return -EINVAL;
		if (req_len > dr_message_max(mb->r))
			return -EMSGSIZE;
		to.again = dri_again_new(name, name_len, req, req_len);
		if (!to.again)
			return -ENOMEM;
	}
	err = dri_call_async(mb, &to, req, req_len, timeout_ms, gone, call_id);
	if (err)
		free(to.again);
	/* Sent nowhere (-ENOENT before it left): see via_bridge(). */
	if (err == -ENOENT && w.self && w.bridge) {
		to = via_bridge(&w, name, name_len, timeout_ms, hdr, &gone);
		err = dri_call_async(mb, &to, req, req_len, timeout_ms, gone, call_id);
	}
	return err;
}

DR_EXPORT int dr_call_async_global(dr_mailbox *mb, const char *name, const void *req,
				   size_t req_len, int timeout_ms, uint64_t *call_id)
{
	return dr_call_async_global_bin(mb, name, dri_cname_len(name), req, req_len, timeout_ms,
					call_id);
}

/* A cast (kind DR_MSG_CAST, op DR_FWD_CAST) or a send (DR_MSG_INFO,
 * DR_FWD_INFO) to a global name. Through the bridge both are CASTs: its
 * mailbox answers no message of either. */
static int send_global(dr_registry *r, int kind, int op, const void *name, size_t name_len,
		       const void *msg, size_t len, int timeout_ms)
{
	uint8_t hdr[FWD_MAX];
	uint64_t deadline = timeout_ms == 0 ? 0 : dri_deadline(timeout_ms);
	struct dri_target to;
	int err, gone;

	if (!r || timeout_ms < -1)
		return -EINVAL;
	err = global_target(r, name, name_len, op, timeout_ms, hdr, &to, &gone);
	if (err)
		return err;
	/* Through the bridge (gone -ENOTCONN), a cast either way. */
	return dri_send(r, gone == -ENOTCONN ? DR_MSG_CAST : kind, &to, msg, len, 0, 0, deadline,
			NULL);
}

DR_EXPORT int dr_cast_global_bin(dr_registry *r, const void *name, size_t name_len,
				 const void *msg, size_t len, int timeout_ms)
{
	return send_global(r, DR_MSG_CAST, DR_FWD_CAST, name, name_len, msg, len, timeout_ms);
}

DR_EXPORT int dr_cast_global(dr_registry *r, const char *name, const void *msg, size_t len,
			     int timeout_ms)
{
	return dr_cast_global_bin(r, name, dri_cname_len(name), msg, len, timeout_ms);
}

DR_EXPORT int dr_send_global_bin(dr_registry *r, const void *name, size_t name_len,
				 const void *msg, size_t len, int timeout_ms)
{
	return send_global(r, DR_MSG_INFO, DR_FWD_INFO, name, name_len, msg, len, timeout_ms);
}

DR_EXPORT int dr_send_global(dr_registry *r, const char *name, const void *msg, size_t len,
			     int timeout_ms)
{
	return dr_send_global_bin(r, name, dri_cname_len(name), msg, len, timeout_ms);
}

/* ---------------------------------------------------------------------- */
/* On the owner: messages from other hosts */

DR_EXPORT int dr_admin_deliver(dr_mailbox *mb, int op, const void *name, size_t name_len,
			       const void *data, size_t len, int timeout_ms, uint64_t *call_id)
{
	struct dri_target to = global(name, name_len);
	int err = dri_mb_begin(mb);

	if (!err)
		err = name_check(name, name_len);
	if (err)
		return err;
	switch (op) {
	case DR_FWD_CALL:
		to.notserved = true;
		return dri_call_nowait(mb, &to, data, len, timeout_ms, -EOWNERDEAD, call_id);
	case DR_FWD_CAST:
		return dri_send(mb->r, DR_MSG_CAST, &to, data, len, 0, 0, 0, NULL);
	case DR_FWD_INFO:
		return dri_send(mb->r, DR_MSG_INFO, &to, data, len, 0, 0, 0, NULL);
	default:
		return -EINVAL;
	}
}

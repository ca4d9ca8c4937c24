/*
 * wire.c - the bridges' frames: build, seal, open, parse; the replay window;
 * the key file.
 *
 * Everything a peer sends is hostile until wire_open() has authenticated it,
 * and a body stays hostile after that (a peer can be buggy). So every read
 * goes through one of two cursors: the header is checked field by field
 * against the frame's length before the field is read, and a body is read
 * through struct wire_rd, whose gets check what is left first and turn
 * into no-ops returning zeros once one fails. Nothing here allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <distreg_admin.h> /* DR_FWD_* */

#include "wire.h"

/* Offsets in the header; the host id is at WIRE_OFF_HOST and hostlen long. */
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_TYPE 5
#define OFF_FLAGS 6
#define OFF_HOSTLEN 7
#define OFF_HOST 8
/* After the host id: incarnation, seq, bodylen. */
#define TAIL_BYTES (8 + 8 + 4)
#define SEAL_BYTES (WIRE_NONCE_BYTES + WIRE_TAG_BYTES)

/* The smallest encoding of an item: BATCH op, id, timeout, a 1-byte name
 * and an empty data (19 bytes); REPLY id, status, empty data (16 bytes). A
 * head whose count cannot fit in what is left is refused at once, so a
 * 12-byte body claiming 4096 items costs nothing. */
#define BATCH_ITEM_MIN (1 + 8 + 4 + 1 + 1 + 4)
#define REPLY_ITEM_MIN (8 + 4 + 4)

_Static_assert(WIRE_HDR_FIXED == OFF_HOST + TAIL_BYTES, "header layout");
_Static_assert(DR_HOST_MAX < 256 && DR_ADDR_MAX < 256 && DR_NAME_MAX < 256,
	       "host ids, addresses and names fit a u8 length");
_Static_assert(WIRE_WINDOW % 64 == 0, "the window is whole words");

/* ---------------------------------------------------------------------- */
/* libsodium */

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_rc;

static void sodium_start(void)
{
	sodium_rc = sodium_init() < 0 ? -1 : 0;
}

/* sodium_init() once per process, whichever thread seals or opens first.
 * It only fails when the system has no source of randomness. */
static int sodium_ready(void)
{
	pthread_once(&sodium_once, sodium_start);
	return sodium_rc;
}

/* ---------------------------------------------------------------------- */
/* Little-endian integers at unaligned addresses. */

static void le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Host ids and addresses: printable ASCII without space, so that one can be
 * written in a log line or a config file as it is. */
static bool graphic(const void *s, size_t len)
{
	const unsigned char *p = s;

	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return false;
	return true;
}

bool wire_host_ok(const char *host, size_t len)
{
	return host && len >= 1 && len <= DR_HOST_MAX && graphic(host, len);
}

/* ---------------------------------------------------------------------- */
/* Building */

/* Room for n more bytes; else the buffer is failed. */
static unsigned char *reserve(struct wire_buf *b, size_t n)
{
	unsigned char *at;

	if (b->err)
		return NULL;
	if (n > b->cap - b->len) {
		b->err = -EMSGSIZE;
		return NULL;
	}
	at = b->p + b->len;
	b->len += n;
	return at;
}

void wire_begin(struct wire_buf *b, void *buf, size_t cap, enum wire_type type, const char *host,
		uint64_t incarnation, uint64_t seq)
{
	size_t hl = host ? strnlen(host, DR_HOST_MAX + 1) : 0;
	unsigned char *h;

	b->p = buf;
	b->cap = buf ? cap : 0;
	b->len = 0;
	b->body_at = 0;
	b->err = 0;
	/* What wire_open() would refuse is never built. */
	if (type < WIRE_HEARTBEAT || type > WIRE_REPLY || !wire_host_ok(host, hl)) {
		b->err = -EINVAL;
		return;
	}
	h = reserve(b, WIRE_HDR_FIXED + hl);
	if (!h)
		return;
	le32(h + OFF_MAGIC, WIRE_MAGIC);
	h[OFF_VERSION] = WIRE_VERSION;
	h[OFF_TYPE] = (unsigned char)type;
	h[OFF_FLAGS] = 0; /* wire_finish() sets WIRE_SEALED */
	h[OFF_HOSTLEN] = (unsigned char)hl;
	memcpy(h + OFF_HOST, host, hl);
	le64(h + OFF_HOST + hl, incarnation);
	le64(h + OFF_HOST + hl + 8, seq);
	le32(h + OFF_HOST + hl + 16, 0); /* bodylen, filled in by wire_finish() */
	b->body_at = b->len;
}

void wire_put_u8(struct wire_buf *b, uint8_t v)
{
	unsigned char *p = reserve(b, 1);

	if (p)
		*p = v;
}

void wire_put_u16(struct wire_buf *b, uint16_t v)
{
	unsigned char *p = reserve(b, 2);

	if (p)
		le16(p, v);
}

void wire_put_u32(struct wire_buf *b, uint32_t v)
{
	unsigned char *p = reserve(b, 4);

	if (p)
		le32(p, v);
}

void wire_put_u64(struct wire_buf *b, uint64_t v)
{
	unsigned char *p = reserve(b, 8);

	if (p)
		le64(p, v);
}

void wire_put_str8(struct wire_buf *b, const void *s, size_t len)
{
	unsigned char *p;

	if (len > UINT8_MAX) {
		if (!b->err)
			b->err = -EMSGSIZE;
		return;
	}
	p = reserve(b, 1 + len);
	if (!p)
		return;
	p[0] = (unsigned char)len;
	if (len)
		memcpy(p + 1, s, len);
}

void wire_put_bytes32(struct wire_buf *b, const void *s, size_t len)
{
	unsigned char *p;

	if (len > WIRE_FRAME_MAX) {
		if (!b->err)
			b->err = -EMSGSIZE;
		return;
	}
	p = reserve(b, 4 + len);
	if (!p)
		return;
	le32(p, (uint32_t)len);
	if (len)
		memcpy(p + 4, s, len);
}

size_t wire_room(const struct wire_buf *b, const struct wire_key *key)
{
	size_t cap = b->cap < WIRE_FRAME_MAX ? b->cap : WIRE_FRAME_MAX;
	size_t used = b->len + (key && key->set ? SEAL_BYTES : 0);

	if (b->err || used >= cap)
		return 0;
	return cap - used;
}

long wire_finish(struct wire_buf *b, const struct wire_key *key)
{
	bool seal = key && key->set;
	size_t plain, hl;
	unsigned char *body;

	if (b->err)
		return b->err;
	if (b->body_at == 0)
		return -EINVAL; /* no wire_begin() */
	plain = b->len - b->body_at;
	if (seal && SEAL_BYTES > b->cap - b->len)
		return b->err = -EMSGSIZE;
	if (b->len + (seal ? SEAL_BYTES : 0) > WIRE_FRAME_MAX)
		return b->err = -EMSGSIZE;

	hl = b->p[OFF_HOSTLEN];
	b->p[OFF_FLAGS] = seal ? WIRE_SEALED : 0;
	le32(b->p + OFF_HOST + hl + 16, (uint32_t)(plain + (seal ? SEAL_BYTES : 0)));
	if (!seal)
		return (long)b->len;

	if (sodium_ready() < 0)
		return b->err = -EIO;
	/* In place: the plaintext moves up past the nonce's room, and is
	 * encrypted where it lies (libsodium allows c == m); the header,
	 * flags and bodylen included, is the associated data, so neither can
	 * be altered without the tag failing. */
	body = b->p + b->body_at;
	memmove(body + WIRE_NONCE_BYTES, body, plain);
	randombytes_buf(body, WIRE_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
	    body + WIRE_NONCE_BYTES, body + WIRE_NONCE_BYTES + plain, NULL, body + WIRE_NONCE_BYTES,
	    plain, b->p, b->body_at, NULL, body, key->k);
	b->len += SEAL_BYTES;
	return (long)b->len;
}

/* ---------------------------------------------------------------------- */
/* Opening */

int wire_open(void *frame, size_t len, const struct wire_key *key, struct wire_hdr *h,
	      unsigned char **body, size_t *body_len)
{
	unsigned char *p = frame;
	bool keyed = key && key->set;
	size_t hl, hdr;
	uint32_t bodylen;

	/* Magic and version first: a frame of another version may have
	 * another layout, so nothing after them is judged by this one. */
	if (!p || len < OFF_VERSION + 1 || rd32(p + OFF_MAGIC) != WIRE_MAGIC)
		return -EPROTO;
	if (p[OFF_VERSION] != WIRE_VERSION)
		return -EPROTONOSUPPORT;
	if (len < OFF_HOST || len > WIRE_FRAME_MAX)
		return -EPROTO;
	if (p[OFF_TYPE] < WIRE_HEARTBEAT || p[OFF_TYPE] > WIRE_REPLY)
		return -EPROTO;
	if (p[OFF_FLAGS] & ~WIRE_SEALED)
		return -EPROTO;
	hl = p[OFF_HOSTLEN];
	if (hl < 1 || hl > DR_HOST_MAX || len - OFF_HOST < hl + TAIL_BYTES)
		return -EPROTO;
	if (!graphic(p + OFF_HOST, hl))
		return -EPROTO;
	hdr = OFF_HOST + hl + TAIL_BYTES;
	bodylen = rd32(p + hdr - 4);
	if (bodylen != len - hdr) /* truncated, or bytes after the body */
		return -EPROTO;
	if ((p[OFF_FLAGS] & WIRE_SEALED) && bodylen < SEAL_BYTES)
		return -EPROTO;

	/* The header as it claims to be (not yet authentic when sealed). */
	h->type = p[OFF_TYPE];
	h->flags = p[OFF_FLAGS];
	h->host_len = (uint8_t)hl;
	memcpy(h->host, p + OFF_HOST, hl);
	h->host[hl] = '\0';
	h->incarnation = rd64(p + OFF_HOST + hl);
	h->seq = rd64(p + OFF_HOST + hl + 8);

	if (!(p[OFF_FLAGS] & WIRE_SEALED)) {
		if (keyed)
			return -EACCES; /* we seal; a peer that does not is not ours */
		*body = p + hdr;
		*body_len = bodylen;
		return 0;
	}
	if (!keyed || sodium_ready() < 0)
		return -EACCES;
	/* libsodium checks the tag before it decrypts, and on failure zeroes
	 * the plaintext: the frame is useless afterwards either way. */
	{
		unsigned char *nonce = p + hdr;
		unsigned char *c = nonce + WIRE_NONCE_BYTES;
		size_t clen = bodylen - SEAL_BYTES;

		if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(c, NULL, c, clen, c + clen,
									p, hdr, nonce, key->k) != 0)
			return -EACCES;
		*body = c;
		*body_len = clen;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Reading bodies */

static void rd_init(struct wire_rd *rd, const unsigned char *body, size_t len)
{
	rd->p = body;
	rd->left = body ? len : 0;
	rd->err = 0;
}

/* n bytes from the body, or NULL (and rd failed) if fewer are left. */
static const unsigned char *take(struct wire_rd *rd, size_t n)
{
	const unsigned char *at;

	if (rd->err)
		return NULL;
	if (n > rd->left) {
		rd->err = -EBADMSG;
		return NULL;
	}
	at = rd->p;
	rd->p += n;
	rd->left -= n;
	return at;
}

static uint8_t get_u8(struct wire_rd *rd)
{
	const unsigned char *p = take(rd, 1);

	return p ? p[0] : 0;
}

static uint16_t get_u16(struct wire_rd *rd)
{
	const unsigned char *p = take(rd, 2);

	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t get_u32(struct wire_rd *rd)
{
	const unsigned char *p = take(rd, 4);

	return p ? rd32(p) : 0;
}

static uint64_t get_u64(struct wire_rd *rd)
{
	const unsigned char *p = take(rd, 8);

	return p ? rd64(p) : 0;
}

/* A str8 of min..max bytes; *len 0 and NULL on failure. */
static const unsigned char *get_str8(struct wire_rd *rd, size_t min, size_t max, uint8_t *len)
{
	uint8_t n = get_u8(rd);
	const unsigned char *s;

	*len = 0;
	if (rd->err)
		return NULL;
	if (n < min || n > max) {
		rd->err = -EBADMSG;
		return NULL;
	}
	s = take(rd, n);
	if (s)
		*len = n;
	return s;
}

static void fail(struct wire_rd *rd)
{
	rd->err = -EBADMSG;
}

/* An address: 1..DR_ADDR_MAX printable bytes (a bridge dials it, logs it). */
static const char *get_addr(struct wire_rd *rd, uint8_t *len)
{
	const unsigned char *s = get_str8(rd, 1, DR_ADDR_MAX, len);

	if (s && !graphic(s, *len)) {
		fail(rd);
		*len = 0;
		return NULL;
	}
	return (const char *)s;
}

int wire_heartbeat_parse(const unsigned char *body, size_t len, struct wire_heartbeat *out)
{
	struct wire_rd rd;

	rd_init(&rd, body, len);
	out->proto = get_u32(&rd);
	out->epoch = get_u64(&rd);
	out->bus = get_addr(&rd, &out->bus_len);
	out->rpc = get_addr(&rd, &out->rpc_len);
	out->npeers = get_u16(&rd);
	if (out->npeers > WIRE_PEERS_MAX)
		fail(&rd);
	for (unsigned i = 0; i < out->npeers && !rd.err; i++)
		out->peers[i].p = get_addr(&rd, &out->peers[i].len);
	if (rd.left)
		fail(&rd);
	if (rd.err)
		out->npeers = 0; /* nobody walks a half-read list */
	return rd.err;
}

int wire_batch_head(struct wire_rd *rd, const unsigned char *body, size_t len, const char **to,
		    uint8_t *to_len, uint64_t *batch, uint32_t *count)
{
	rd_init(rd, body, len);
	*to = (const char *)get_str8(rd, 1, DR_HOST_MAX, to_len);
	if (!rd->err && !wire_host_ok(*to, *to_len))
		fail(rd);
	*batch = get_u64(rd);
	*count = get_u32(rd);
	if (!rd->err && (*count > WIRE_ITEMS_MAX || *count > rd->left / REPLY_ITEM_MIN))
		fail(rd);
	if (rd->err)
		*count = 0;
	return rd->err;
}

void wire_put_batch_head(struct wire_buf *b, const char *to, uint64_t batch, uint32_t count)
{
	wire_put_str8(b, to, strlen(to));
	wire_put_u64(b, batch);
	wire_put_u32(b, count);
}

int wire_batch_item(struct wire_rd *rd, struct wire_item *it)
{
	it->op = get_u8(rd);
	it->id = get_u64(rd);
	it->timeout_ms = (int32_t)get_u32(rd);
	it->name = get_str8(rd, 1, DR_NAME_MAX, &it->name_len);
	it->len = get_u32(rd);
	it->data = take(rd, it->len);
	if (!rd->err && (it->op < DR_FWD_CALL || it->op > DR_FWD_START || it->timeout_ms < -1))
		fail(rd);
	if (rd->err) {
		it->name_len = 0;
		it->len = 0;
	}
	return rd->err;
}

int wire_reply_item(struct wire_rd *rd, struct wire_reply_item *it)
{
	it->id = get_u64(rd);
	it->status = (int32_t)get_u32(rd);
	it->len = get_u32(rd);
	it->data = take(rd, it->len);
	/* 0, a negative errno (Linux's are below 4096), or DR_NOTSERVED. */
	if (!rd->err && (it->status > 0 || (it->status < -4095 && it->status != DR_NOTSERVED)))
		fail(rd);
	if (rd->err)
		it->len = 0;
	return rd->err;
}

int wire_batch_check(const unsigned char *body, size_t len)
{
	struct wire_rd rd;
	struct wire_item it;
	const char *to;
	uint8_t to_len;
	uint64_t batch;
	uint32_t count;

	if (wire_batch_head(&rd, body, len, &to, &to_len, &batch, &count))
		return -EBADMSG;
	if (count > rd.left / BATCH_ITEM_MIN)
		return -EBADMSG;
	for (uint32_t i = 0; i < count; i++)
		if (wire_batch_item(&rd, &it))
			return -EBADMSG;
	return rd.left ? -EBADMSG : 0;
}

int wire_reply_check(const unsigned char *body, size_t len)
{
	struct wire_rd rd;
	struct wire_reply_item it;
	const char *to;
	uint8_t to_len;
	uint64_t batch;
	uint32_t count;

	if (wire_batch_head(&rd, body, len, &to, &to_len, &batch, &count))
		return -EBADMSG;
	for (uint32_t i = 0; i < count; i++)
		if (wire_reply_item(&rd, &it))
			return -EBADMSG;
	return rd.left ? -EBADMSG : 0;
}

/* ---------------------------------------------------------------------- */
/* Replay window: bit i of bits is sequence top - i, so bit 0 (top itself)
 * is set once anything was recorded, and a zeroed struct is empty. */

static bool seen(const struct wire_replay *w, uint64_t back)
{
	return w->bits[back / 64] >> (back % 64) & 1;
}

static void mark(struct wire_replay *w, uint64_t back)
{
	w->bits[back / 64] |= (uint64_t)1 << (back % 64);
}

/* Move top up by d: every recorded sequence is d further back. */
static void slide(struct wire_replay *w, uint64_t d)
{
	const size_t nw = WIRE_WINDOW / 64;
	size_t words, shift;

	if (d >= WIRE_WINDOW) {
		memset(w->bits, 0, sizeof(w->bits));
		return;
	}
	words = (size_t)d / 64;
	shift = (size_t)d % 64;
	for (size_t i = nw; i-- > 0;) {
		uint64_t v = 0;

		if (i >= words) {
			v = w->bits[i - words] << shift;
			if (shift && i > words)
				v |= w->bits[i - words - 1] >> (64 - shift);
		}
		w->bits[i] = v;
	}
}

int wire_replay_check(struct wire_replay *w, uint64_t incarnation, uint64_t seq)
{
	bool empty = !seen(w, 0);
	uint64_t back;

	if (!empty && incarnation < w->incarnation)
		return -ESTALE;
	if (empty || incarnation > w->incarnation) {
		/* The first frame, or the peer restarted: a fresh window. */
		memset(w->bits, 0, sizeof(w->bits));
		w->incarnation = incarnation;
		w->top = seq;
		mark(w, 0);
		return 0;
	}
	if (seq > w->top) {
		slide(w, seq - w->top);
		w->top = seq;
		mark(w, 0);
		return 0;
	}
	back = w->top - seq;
	if (back >= WIRE_WINDOW)
		return -ESTALE;
	if (seen(w, back))
		return -EALREADY;
	mark(w, back);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The key file */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* 32 bytes as they are, or 64 hex digits with whitespace around them. */
static int key_parse(const unsigned char *s, size_t n, unsigned char *k)
{
	size_t a = 0, z = n;

	if (n == WIRE_KEY_BYTES) {
		memcpy(k, s, WIRE_KEY_BYTES);
		return 0;
	}
	while (a < z && space(s[a]))
		a++;
	while (z > a && space(s[z - 1]))
		z--;
	if (z - a != 2 * WIRE_KEY_BYTES)
		return -EINVAL;
	for (size_t i = 0; i < WIRE_KEY_BYTES; i++) {
		int hi = hexval(s[a + 2 * i]), lo = hexval(s[a + 2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		k[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int wire_key_load(const char *path, struct wire_key *key)
{
	/* Room for a hex key with generous whitespace; anything longer is
	 * not a key file, and reading stops there. */
	unsigned char buf[256];
	size_t n = 0;
	struct stat st;
	int fd, rc = 0;

	key->set = false;
	sodium_memzero(key->k, sizeof(key->k));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = -EPERM;
		goto out;
	}
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n == sizeof(buf)) {
		rc = -EINVAL;
		goto out;
	}
	rc = key_parse(buf, n, key->k);
	/* 32 zero bytes are head -c 32 /dev/zero, not a secret. */
	if (rc == 0 && sodium_is_zero(key->k, WIRE_KEY_BYTES))
		rc = -EINVAL;
	if (rc == 0)
		key->set = true;
	else
		sodium_memzero(key->k, sizeof(key->k));
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

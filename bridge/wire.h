/*
 * wire.h - the bridges' frames: build, seal, open and parse them, and the
 * replay window. Pure functions of their arguments (no sockets, no global
 * state) so that the fuzz target drives them exactly as the bridge does.
 *
 * A frame (integers little-endian):
 *
 *     magic    u32   WIRE_MAGIC
 *     version  u8    WIRE_VERSION
 *     type     u8    WIRE_HEARTBEAT, WIRE_LEAVE, WIRE_BATCH, WIRE_REPLY
 *     flags    u8    WIRE_SEALED when the body is sealed with a key
 *     hostlen  u8    1..DR_HOST_MAX
 *     host     hostlen bytes
 *     incarn   u64   the sender's incarnation
 *     seq      u64   the sender's frame sequence (every frame, every socket)
 *     bodylen  u32
 *     body     bodylen bytes; sealed: a 24-byte nonce, then the body
 *              encrypted with XChaCha20-Poly1305 (IETF), its 16-byte tag last;
 *              the header (magic to bodylen) is the associated data.
 *
 * Bodies:
 *   HEARTBEAT  proto u32, epoch u64 (the sender's view epoch),
 *              bus str8, rpc str8, npeers u16, npeers x bus str8
 *   LEAVE      empty
 *   BATCH      to str8 (the receiver's host id), batch u64, count u32,
 *              count x item:
 *              op u8 (DR_FWD_*), id u64, timeout_ms i32 (-1 none),
 *              name str8 (1..DR_NAME_MAX), data u32-length bytes
 *   REPLY      to str8, batch u64, count u32, count x item:
 *              id u64, status i32 (0 or a negative errno), data u32-length bytes
 * The receiver of a BATCH or REPLY checks that "to" is its own host id: a
 * sender's sequence numbers count its frames to every peer, so without it
 * a sealed frame recorded on its way to one host could be replayed, once,
 * to another that has not seen that sequence. (Heartbeats and LEAVE go to
 * every peer alike: a replay elsewhere tells nothing that was not true.)
 * where str8 is a u8 length and that many bytes (addresses: 1..DR_ADDR_MAX).
 * A body must be consumed exactly: trailing bytes make the frame malformed.
 */
#ifndef DISTREG_WIRE_H
#define DISTREG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <distreg.h>

#define WIRE_MAGIC 0x01425244u /* "DRB" 0x01, little-endian */
#define WIRE_VERSION 1
/* The heartbeat's protocol version. 2: a call's answer may have status
 * DR_NOTSERVED (and the owner's id as data), which a bridge of version 1
 * refuses, dropping the whole reply frame: the two ignore each other. */
#define WIRE_PROTO 2

enum wire_type {
	WIRE_HEARTBEAT = 1,
	WIRE_LEAVE = 2,
	WIRE_BATCH = 3,
	WIRE_REPLY = 4,
};

#define WIRE_SEALED 1u

#define WIRE_KEY_BYTES 32
#define WIRE_NONCE_BYTES 24
#define WIRE_TAG_BYTES 16
/* The largest frame a bridge sends or accepts (NN_RCVMAXSIZE). */
#define WIRE_FRAME_MAX (1u << 20)
/* The fixed part of the header, without the host id. */
#define WIRE_HDR_FIXED (4 + 1 + 1 + 1 + 1 + 8 + 8 + 4)
/* Most items in a BATCH or REPLY. */
#define WIRE_ITEMS_MAX 4096
/* Most peers listed in a heartbeat. */
#define WIRE_PEERS_MAX DR_HOSTS_MAX

struct wire_key {
	bool set;
	unsigned char k[WIRE_KEY_BYTES];
};

/* A frame's header as parsed. */
struct wire_hdr {
	uint8_t type;
	uint8_t flags;
	uint8_t host_len;
	char host[DR_HOST_MAX + 1];   /* NUL-terminated copy */
	uint64_t incarnation;
	uint64_t seq;
};

/* A buffer a frame is built in. Every put checks room: once one fails,
 * err is set and the rest do nothing, so a builder checks once at the end. */
struct wire_buf {
	unsigned char *p;
	size_t cap;
	size_t len;
	size_t body_at;               /* where the body starts */
	int err;                      /* 0, -EMSGSIZE, or -EINVAL (wire_begin) */
};

/* A host id wire_open() accepts: 1..DR_HOST_MAX bytes, each printable
 * ASCII other than space (0x21..0x7e); so no NUL. config.c checks --host
 * with it. */
bool wire_host_ok(const char *host, size_t len);

/* Start a frame in buf (cap bytes): the header, then the body follows.
 * A type out of range or a host id wire_host_ok() refuses sets err to
 * -EINVAL (nothing is built that a peer would refuse). */
void wire_begin(struct wire_buf *b, void *buf, size_t cap, enum wire_type type,
		const char *host, uint64_t incarnation, uint64_t seq);
void wire_put_u8(struct wire_buf *b, uint8_t v);
void wire_put_u16(struct wire_buf *b, uint16_t v);
void wire_put_u32(struct wire_buf *b, uint32_t v);
void wire_put_u64(struct wire_buf *b, uint64_t v);
void wire_put_str8(struct wire_buf *b, const void *s, size_t len);
void wire_put_bytes32(struct wire_buf *b, const void *s, size_t len); /* u32 length + bytes */
/* Room left for body bytes once sealing's overhead is counted. */
size_t wire_room(const struct wire_buf *b, const struct wire_key *key);
/*
 * Finish the frame: fill in bodylen and, with a key, seal the body in place
 * (the buffer must have WIRE_NONCE_BYTES + WIRE_TAG_BYTES of room beyond
 * it; the nonce comes from randombytes_buf()). Returns the frame's length,
 * or a negative errno: -EMSGSIZE no room, or longer than WIRE_FRAME_MAX;
 * the -EINVAL of wire_begin(); -EIO libsodium could not start (no source of
 * randomness). Call it once per frame.
 */
long wire_finish(struct wire_buf *b, const struct wire_key *key);

/*
 * Check and open a received frame of len bytes, in place: the header into
 * *h, and the body (decrypted in place when sealed) at *body, *body_len.
 * key NULL or unset: sealed frames are refused; set: unsealed frames are
 * refused. Returns 0, or: -EPROTO not a frame (magic, length, host id);
 * -EPROTONOSUPPORT another version; -EACCES sealing missing, unexpected or
 * failed (a wrong key, or a forged or altered frame).
 * Also -EPROTO: an unknown type, unknown flag bits, a frame longer than
 * WIRE_FRAME_MAX, or a sealed body shorter than nonce and tag. On -EACCES
 * *h holds the header as the frame claims it (not authentic: for a log
 * line only); on other errors *h is unspecified. A failed sealed frame's
 * body bytes are overwritten.
 */
int wire_open(void *frame, size_t len, const struct wire_key *key, struct wire_hdr *h,
	      unsigned char **body, size_t *body_len);

/* A body being read. Every get checks what is left; once one fails, err is
 * set and the rest return zeros. */
struct wire_rd {
	const unsigned char *p;
	size_t left;
	int err;                      /* 0, or -EBADMSG */
};

struct wire_heartbeat {
	uint32_t proto;
	uint64_t epoch;
	const char *bus; uint8_t bus_len;    /* not NUL-terminated */
	const char *rpc; uint8_t rpc_len;
	uint16_t npeers;
	struct { const char *p; uint8_t len; } peers[WIRE_PEERS_MAX];
};

/* Parse a HEARTBEAT body (LEAVE has none: its body_len must be 0).
 * Addresses are 1..DR_ADDR_MAX printable bytes (as host ids); npeers at
 * most WIRE_PEERS_MAX. The protocol number is returned, not judged.
 * 0 or -EBADMSG (then npeers is 0). */
int wire_heartbeat_parse(const unsigned char *body, size_t len, struct wire_heartbeat *out);

struct wire_item {
	uint8_t op;
	uint64_t id;
	int32_t timeout_ms;
	const unsigned char *name; uint8_t name_len;
	const unsigned char *data; uint32_t len;
};

struct wire_reply_item {
	uint64_t id;
	int32_t status;
	const unsigned char *data; uint32_t len;
};

/*
 * BATCH and REPLY bodies: parse the head (batch number, count), then each
 * item in turn. The items are checked as they are read; a bridge checks the
 * whole body first (wire_batch_check) so that it never acts on half of a
 * malformed batch. A head whose count exceeds WIRE_ITEMS_MAX, or cannot
 * fit in what is left, is refused. An item is refused for: op not one of
 * DR_FWD_CALL..DR_FWD_WHEREIS, timeout_ms below -1, a name of 0 or more
 * than DR_NAME_MAX bytes, status above 0 or below -4095 (but DR_NOTSERVED:
 * a call that reached no worker), a length past the
 * end. The caller that iterates itself checks rd->left == 0 at the end.
 */
int wire_batch_head(struct wire_rd *rd, const unsigned char *body, size_t len,
		    const char **to, uint8_t *to_len, uint64_t *batch, uint32_t *count);
/* The head of a BATCH or REPLY body being built. */
void wire_put_batch_head(struct wire_buf *b, const char *to, uint64_t batch, uint32_t count);
int wire_batch_item(struct wire_rd *rd, struct wire_item *it);
int wire_reply_item(struct wire_rd *rd, struct wire_reply_item *it);
/* The whole body is well formed (every item, nothing left over): 0 or -EBADMSG. */
int wire_batch_check(const unsigned char *body, size_t len);
int wire_reply_check(const unsigned char *body, size_t len);

/*
 * Replay protection, per peer host: the newest incarnation seen, the
 * highest sequence of it and a window of WIRE_WINDOW sequences below.
 * Check after wire_open() has authenticated the frame (never before: an
 * unauthenticated frame could push the window forward, or claim a newer
 * incarnation, and so make every genuine frame that follows a "replay"):
 *   0        new: accept (and now recorded);
 *   -EALREADY seen before (a duplicate, or a replay);
 *   -ESTALE  an older incarnation, or below the window.
 * A newer incarnation resets the window (the peer restarted). A zeroed
 * struct wire_replay is empty: its first frame is accepted, whatever its
 * incarnation and sequence. One per peer; no locking (the bridge has one
 * thread).
 */
#define WIRE_WINDOW 1024
struct wire_replay {
	uint64_t incarnation;
	uint64_t top;
	uint64_t bits[WIRE_WINDOW / 64];
};
int wire_replay_check(struct wire_replay *w, uint64_t incarnation, uint64_t seq);

/* The key file: 32 bytes, raw or as 64 hex digits (whitespace around them
 * ignored); the file must not be readable or writable by group or others.
 * 0, or -EPERM its mode (any group or other bit), -EINVAL its content (or
 * not a regular file, or an all-zero key), or the errno of open/read.
 * On error key->set is false and key->k zeroed. */
int wire_key_load(const char *path, struct wire_key *key);

#endif /* DISTREG_WIRE_H */

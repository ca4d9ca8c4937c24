/*
 * wire_samples.h - for the wire tests, the fuzz target and the corpus
 * generator: encoders of the four bodies from their parsed form (so that a
 * parsed frame can be encoded again and compared), and valid sample frames
 * of every type, varied by an index.
 *
 * Header-only, static inline functions: each user is one translation unit.
 */
#ifndef DISTREG_WIRE_SAMPLES_H
#define DISTREG_WIRE_SAMPLES_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <distreg_admin.h>

#include "wire.h"

/* The fixed key the fuzz target opens sealed frames with, and the corpus's
 * sealed frames are sealed with: "fuzz-key" and 24 bytes counting up. */
static const struct wire_key sample_key __attribute__((unused)) = {
    .set = true,
    .k = {'f', 'u', 'z', 'z', '-', 'k', 'e', 'y', 8,  9,  10, 11, 12, 13, 14, 15,
	  16,  17,  18,	 19,  20,  21,	22,  23,  24, 25, 26, 27, 28, 29, 30, 31},
};

static inline void sample_heartbeat_put(struct wire_buf *b, const struct wire_heartbeat *hb)
{
	wire_put_u32(b, hb->proto);
	wire_put_u64(b, hb->epoch);
	wire_put_str8(b, hb->bus, hb->bus_len);
	wire_put_str8(b, hb->rpc, hb->rpc_len);
	wire_put_u16(b, hb->npeers);
	for (unsigned i = 0; i < hb->npeers; i++)
		wire_put_str8(b, hb->peers[i].p, hb->peers[i].len);
}

static inline void sample_item_put(struct wire_buf *b, const struct wire_item *it)
{
	wire_put_u8(b, it->op);
	wire_put_u64(b, it->id);
	wire_put_u32(b, (uint32_t)it->timeout_ms);
	wire_put_str8(b, it->name, it->name_len);
	wire_put_bytes32(b, it->data, it->len);
}

static inline void sample_reply_item_put(struct wire_buf *b, const struct wire_reply_item *it)
{
	wire_put_u64(b, it->id);
	wire_put_u32(b, (uint32_t)it->status);
	wire_put_bytes32(b, it->data, it->len);
}

/*
 * Encode again a frame from its parsed header and (opened) body: the body
 * is parsed by its type and each field put back. Returns the new frame's
 * length, -EBADMSG if the body does not parse, or wire_finish()'s error.
 * For a valid unsealed frame the result is the same bytes.
 */
static inline long sample_reencode(void *buf, size_t cap, const struct wire_hdr *h,
				   const unsigned char *body, size_t body_len,
				   const struct wire_key *key)
{
	static struct wire_heartbeat hb; /* 4 KiB of peers: not on the stack */
	struct wire_buf b;
	struct wire_rd rd;
	const char *to;
	uint8_t to_len;
	uint64_t batch;
	uint32_t count;

	wire_begin(&b, buf, cap, (enum wire_type)h->type, h->host, h->incarnation, h->seq);
	switch (h->type) {
	case WIRE_HEARTBEAT:
		if (wire_heartbeat_parse(body, body_len, &hb))
			return -EBADMSG;
		sample_heartbeat_put(&b, &hb);
		break;
	case WIRE_LEAVE:
		if (body_len != 0)
			return -EBADMSG;
		break;
	case WIRE_BATCH:
	case WIRE_REPLY:
		if (wire_batch_head(&rd, body, body_len, &to, &to_len, &batch, &count))
			return -EBADMSG;
		wire_put_str8(&b, to, to_len);
		wire_put_u64(&b, batch);
		wire_put_u32(&b, count);
		for (uint32_t i = 0; i < count; i++) {
			if (h->type == WIRE_BATCH) {
				struct wire_item it;

				if (wire_batch_item(&rd, &it))
					return -EBADMSG;
				sample_item_put(&b, &it);
			} else {
				struct wire_reply_item it;

				if (wire_reply_item(&rd, &it))
					return -EBADMSG;
				sample_reply_item_put(&b, &it);
			}
		}
		if (rd.left)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	return wire_finish(&b, key);
}

/* ---------------------------------------------------------------------- */
/* Sample frames */

static inline uint64_t sample_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Printable bytes (0x21..0x7e) for host ids and addresses. */
static inline void sample_text(uint64_t *s, char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(0x21 + sample_mix(s) % 94);
}

/* Bytes of any value for names and data. */
static inline void sample_bytes(uint64_t *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)sample_mix(s);
}

/*
 * A valid frame of type, number i of its kind (0, 1, 2, ... vary the
 * lengths from their least to their most), sealed with key if it is set.
 * Returns the length, or a negative errno if cap is too small.
 * i 0 is the smallest of its type, and the hosts, addresses and names of
 * i % 8 == 7 are the longest allowed.
 */
static inline long sample_frame(void *buf, size_t cap, enum wire_type type, unsigned i,
				const struct wire_key *key)
{
	static char addrs[WIRE_PEERS_MAX + 2][DR_ADDR_MAX];
	static unsigned char names[64][DR_NAME_MAX], data[64][512];
	static struct wire_heartbeat hb;
	uint64_t s = (uint64_t)type << 32 | i;
	bool longest = i % 8 == 7;
	char host[DR_HOST_MAX + 1];
	size_t hl = longest ? DR_HOST_MAX : 1 + sample_mix(&s) % DR_HOST_MAX;
	struct wire_buf b;
	unsigned n;

	sample_text(&s, host, hl);
	host[hl] = '\0';
	wire_begin(&b, buf, cap, type, host, i == 0 ? 0 : sample_mix(&s),
		   i == 0 ? 0 : sample_mix(&s));
	switch (type) {
	case WIRE_HEARTBEAT:
		/* Peers: 0, 1, 2, ... and once the most a heartbeat lists. */
		n = i == 9 ? WIRE_PEERS_MAX : i % 16;
		for (unsigned j = 0; j < n + 2; j++) {
			/* Short ones in the longest list, to keep inputs small. */
			size_t al =
			    longest ? DR_ADDR_MAX : 1 + sample_mix(&s) % (n > 16 ? 8 : DR_ADDR_MAX);

			sample_text(&s, addrs[j], al);
			if (j == 0) {
				hb.bus = addrs[j];
				hb.bus_len = (uint8_t)al;
			} else if (j == 1) {
				hb.rpc = addrs[j];
				hb.rpc_len = (uint8_t)al;
			} else {
				hb.peers[j - 2].p = addrs[j];
				hb.peers[j - 2].len = (uint8_t)al;
			}
		}
		hb.npeers = (uint16_t)n;
		hb.proto = i % 5 == 4 ? (uint32_t)sample_mix(&s) : WIRE_PROTO;
		hb.epoch = i == 0 ? 0 : sample_mix(&s);
		sample_heartbeat_put(&b, &hb);
		break;
	case WIRE_LEAVE:
		break;
	case WIRE_BATCH:
	case WIRE_REPLY:
		n = i % 8 == 3 ? 64 : i % 8;
		{
			char to[DR_HOST_MAX];
			size_t tl = longest ? DR_HOST_MAX : 1 + sample_mix(&s) % DR_HOST_MAX;

			sample_text(&s, to, tl);
			wire_put_str8(&b, to, tl);
		}
		wire_put_u64(&b, i == 0 ? 0 : sample_mix(&s));
		wire_put_u32(&b, n);
		for (unsigned j = 0; j < n; j++) {
			size_t dl = sample_mix(&s) % 4 == 0
					? 0
					: sample_mix(&s) % (n > 8 ? 16 : sizeof(data[0]));

			sample_bytes(&s, data[j], dl);
			if (type == WIRE_BATCH) {
				size_t nl =
				    longest ? DR_NAME_MAX : 1 + sample_mix(&s) % DR_NAME_MAX;
				struct wire_item it = {
				    .op = (uint8_t)(DR_FWD_CALL + j % 4),
				    .id = sample_mix(&s),
				    .timeout_ms =
					j % 3 == 0 ? -1 : (int32_t)(sample_mix(&s) % 86400000),
				    .name = names[j],
				    .name_len = (uint8_t)nl,
				    .data = data[j],
				    .len = (uint32_t)dl,
				};

				sample_bytes(&s, names[j], nl);
				sample_item_put(&b, &it);
			} else {
				static const int32_t statuses[] = {
				    0, -ENOENT, -ETIMEDOUT, -EHOSTUNREACH, -EBADMSG, -4095};
				struct wire_reply_item it = {
				    .id = sample_mix(&s),
				    .status = statuses[j % 6],
				    .data = data[j],
				    .len = (uint32_t)dl,
				};

				sample_reply_item_put(&b, &it);
			}
		}
		break;
	}
	return wire_finish(&b, key);
}

#endif /* DISTREG_WIRE_SAMPLES_H */

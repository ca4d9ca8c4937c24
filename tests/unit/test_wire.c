/*
 * test_wire.c - bridge/wire.c: frames built, sealed, opened and parsed; the
 * replay window; the key file.
 *
 * Sample frames of every type come from tests/fuzz/wire_samples.h (the
 * same the fuzz corpus is made of); the layout test pins the bytes of one
 * frame by hand, so that the format cannot drift with the samples.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <distreg_admin.h>

#include "wire.h"
#include "wire_samples.h"

#define TIMEOUT 30.0
#define NSAMPLES 16

TestSuite(wire, .timeout = TIMEOUT);

static const struct wire_key other_key = {
    .set = true,
    .k = {'o', 't', 'h', 'e', 'r', 8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18,
	  19,  20,  21,	 22,  23,  24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34},
};

static const enum wire_type types[] = {WIRE_HEARTBEAT, WIRE_LEAVE, WIRE_BATCH, WIRE_REPLY};
#define NTYPES 4

/* A sample frame in a heap buffer of exactly its length (so that ASan, in
 * CI's sanitizer build, sees a read past its end). */
static unsigned char *sample(enum wire_type t, unsigned i, const struct wire_key *key, size_t *len)
{
	static unsigned char buf[1 << 17];
	long n = sample_frame(buf, sizeof(buf), t, i, key);
	unsigned char *p;

	cr_assert_gt(n, 0, "sample_frame(%d, %u): %ld", t, i, n);
	p = malloc((size_t)n);
	cr_assert_not_null(p);
	memcpy(p, buf, (size_t)n);
	*len = (size_t)n;
	return p;
}

static unsigned char *dup_bytes(const void *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);

	cr_assert_not_null(d);
	memcpy(d, p, n);
	return d;
}

/* wire_open on a copy: the frame itself stays as it was. */
static int open_copy(const unsigned char *f, size_t len, const struct wire_key *key)
{
	unsigned char *c = dup_bytes(f, len), *body;
	struct wire_hdr h;
	size_t bl;
	int rc = wire_open(c, len, key, &h, &body, &bl);

	free(c);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* The layout, byte by byte. */

Test(wire, layout_of_a_leave_frame)
{
	static const unsigned char want[] = {
	    'D',	'R', 'B', 1,		    /* magic */
	    1,					    /* version */
	    WIRE_LEAVE, 0,			    /* type, flags */
	    2,		'h', '1',		    /* hostlen, host */
	    8,		7,   6,	  5, 4, 3, 2, 1,    /* incarnation 0x0102030405060708 */
	    0x2a,	0,   0,	  0, 0, 0, 0, 0x80, /* seq 0x800000000000002a */
	    0,		0,   0,	  0,		    /* bodylen */
	};
	unsigned char buf[64];
	struct wire_buf b;

	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, "h1", 0x0102030405060708ull,
		   0x800000000000002aull);
	cr_assert_eq(b.body_at, sizeof(want));
	cr_assert_eq(wire_finish(&b, NULL), (long)sizeof(want));
	cr_assert_arr_eq(buf, want, sizeof(want));
	cr_assert_eq(WIRE_HDR_FIXED + 2, sizeof(want));
}

Test(wire, layout_of_a_heartbeat_body)
{
	static const unsigned char want[] = {
	    1, 0,   0,	 0,		  /* proto */
	    9, 0,   0,	 0,   0, 0, 0, 0, /* epoch */
	    3, 'b', 'u', 's',		  /* bus */
	    2, 'r', 'p',		  /* rpc */
	    1, 0,			  /* npeers */
	    1, 'p',			  /* peer */
	};
	struct wire_heartbeat hb;

	cr_assert_eq(wire_heartbeat_parse(want, sizeof(want), &hb), 0);
	cr_assert_eq(hb.proto, 1);
	cr_assert_eq(hb.epoch, 9);
	cr_assert_eq(hb.bus_len, 3);
	cr_assert_eq(memcmp(hb.bus, "bus", 3), 0);
	cr_assert_eq(hb.rpc_len, 2);
	cr_assert_eq(memcmp(hb.rpc, "rp", 2), 0);
	cr_assert_eq(hb.npeers, 1);
	cr_assert_eq(hb.peers[0].len, 1);
	cr_assert_eq(hb.peers[0].p[0], 'p');
	cr_assert_eq((const unsigned char *)hb.peers[0].p, want + sizeof(want) - 1,
		     "parsed in place");
}

/* ---------------------------------------------------------------------- */
/* Round trips */

/* A frame of each type with known fields, sealed or not: every field comes
 * back as it was put. */
static void known_frames(const struct wire_key *key)
{
	static const char *const peers[] = {"tcp://10.0.0.2:7420", "ipc:///run/x"};
	unsigned char buf[4096], *body;
	struct wire_buf b;
	struct wire_hdr h;
	size_t bl;
	long n;

	/* HEARTBEAT */
	wire_begin(&b, buf, sizeof(buf), WIRE_HEARTBEAT, "alpha", 11, 12);
	wire_put_u32(&b, WIRE_PROTO);
	wire_put_u64(&b, 77);
	wire_put_str8(&b, "tcp://a:1", 9);
	wire_put_str8(&b, "tcp://a:2", 9);
	wire_put_u16(&b, 2);
	for (int i = 0; i < 2; i++)
		wire_put_str8(&b, peers[i], strlen(peers[i]));
	n = wire_finish(&b, key);
	cr_assert_gt(n, 0);
	cr_assert_eq(wire_open(buf, (size_t)n, key, &h, &body, &bl), 0);
	cr_assert_eq(h.type, WIRE_HEARTBEAT);
	cr_assert_eq(h.flags, key ? WIRE_SEALED : 0);
	cr_assert_str_eq(h.host, "alpha");
	cr_assert_eq(h.host_len, 5);
	cr_assert_eq(h.incarnation, 11);
	cr_assert_eq(h.seq, 12);
	{
		struct wire_heartbeat hb;

		cr_assert_eq(wire_heartbeat_parse(body, bl, &hb), 0);
		cr_assert_eq(hb.proto, WIRE_PROTO);
		cr_assert_eq(hb.epoch, 77);
		cr_assert_eq(hb.bus_len, 9);
		cr_assert_eq(memcmp(hb.bus, "tcp://a:1", 9), 0);
		cr_assert_eq(memcmp(hb.rpc, "tcp://a:2", 9), 0);
		cr_assert_eq(hb.npeers, 2);
		for (int i = 0; i < 2; i++) {
			cr_assert_eq(hb.peers[i].len, strlen(peers[i]));
			cr_assert_eq(memcmp(hb.peers[i].p, peers[i], hb.peers[i].len), 0);
		}
	}

	/* LEAVE */
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, "beta", 1, 2);
	n = wire_finish(&b, key);
	cr_assert_eq(n, WIRE_HDR_FIXED + 4 + (key ? WIRE_NONCE_BYTES + WIRE_TAG_BYTES : 0));
	cr_assert_eq(wire_open(buf, (size_t)n, key, &h, &body, &bl), 0);
	cr_assert_eq(h.type, WIRE_LEAVE);
	cr_assert_eq(bl, 0);

	/* BATCH */
	wire_begin(&b, buf, sizeof(buf), WIRE_BATCH, "gamma", 5, 6);
	wire_put_str8(&b, "to", 2);
	wire_put_u64(&b, 1234);
	wire_put_u32(&b, 3);
	for (int i = 0; i < 3; i++) {
		wire_put_u8(&b, (uint8_t)(DR_FWD_CALL + i));
		wire_put_u64(&b, 100u + (unsigned)i);
		wire_put_u32(&b, (uint32_t)(i == 0 ? -1 : 1000 * i));
		wire_put_str8(&b, "svc", 3);
		wire_put_bytes32(&b, "payload", (size_t)(i * 3));
	}
	n = wire_finish(&b, key);
	cr_assert_gt(n, 0);
	cr_assert_eq(wire_open(buf, (size_t)n, key, &h, &body, &bl), 0);
	cr_assert_eq(wire_batch_check(body, bl), 0);
	{
		struct wire_rd rd;
		struct wire_item it;
		const char *to;
		uint8_t to_len;
		uint64_t batch;
		uint32_t count;

		cr_assert_eq(wire_batch_head(&rd, body, bl, &to, &to_len, &batch, &count), 0);
		cr_assert_eq(batch, 1234);
		cr_assert_eq(count, 3);
		for (int i = 0; i < 3; i++) {
			cr_assert_eq(wire_batch_item(&rd, &it), 0);
			cr_assert_eq(it.op, DR_FWD_CALL + i);
			cr_assert_eq(it.id, 100u + (unsigned)i);
			cr_assert_eq(it.timeout_ms, i == 0 ? -1 : 1000 * i);
			cr_assert_eq(it.name_len, 3);
			cr_assert_eq(memcmp(it.name, "svc", 3), 0);
			cr_assert_eq(it.len, (uint32_t)(i * 3));
			cr_assert_eq(memcmp(it.data, "payload", it.len), 0);
		}
		cr_assert_eq(rd.left, 0);
	}

	/* REPLY */
	wire_begin(&b, buf, sizeof(buf), WIRE_REPLY, "delta", 7, 8);
	wire_put_str8(&b, "to", 2);
	wire_put_u64(&b, 1234);
	wire_put_u32(&b, 2);
	wire_put_u64(&b, 100);
	wire_put_u32(&b, 0);
	wire_put_bytes32(&b, "answer", 6);
	wire_put_u64(&b, 101);
	wire_put_u32(&b, (uint32_t)-ETIMEDOUT);
	wire_put_bytes32(&b, NULL, 0);
	n = wire_finish(&b, key);
	cr_assert_gt(n, 0);
	cr_assert_eq(wire_open(buf, (size_t)n, key, &h, &body, &bl), 0);
	cr_assert_eq(wire_reply_check(body, bl), 0);
	{
		struct wire_rd rd;
		struct wire_reply_item it;
		const char *to;
		uint8_t to_len;
		uint64_t batch;
		uint32_t count;

		cr_assert_eq(wire_batch_head(&rd, body, bl, &to, &to_len, &batch, &count), 0);
		cr_assert_eq(count, 2);
		cr_assert_eq(wire_reply_item(&rd, &it), 0);
		cr_assert_eq(it.id, 100);
		cr_assert_eq(it.status, 0);
		cr_assert_eq(it.len, 6);
		cr_assert_eq(memcmp(it.data, "answer", 6), 0);
		cr_assert_eq(wire_reply_item(&rd, &it), 0);
		cr_assert_eq(it.id, 101);
		cr_assert_eq(it.status, -ETIMEDOUT);
		cr_assert_eq(it.len, 0);
		cr_assert_eq(rd.left, 0);
	}
}

Test(wire, known_fields_round_trip_unsealed)
{
	known_frames(NULL);
}

Test(wire, known_fields_round_trip_sealed)
{
	known_frames(&sample_key);
}

/* Every sample of every type: an unsealed frame opens and encodes back to
 * the same bytes; a sealed one opens, and encodes and seals again to a
 * frame that opens to the same header and body. */
Test(wire, samples_round_trip_sealed_and_unsealed)
{
	static unsigned char again[1 << 17];

	for (int t = 0; t < NTYPES; t++)
		for (unsigned i = 0; i < NSAMPLES; i++)
			for (int sealed = 0; sealed < 2; sealed++) {
				const struct wire_key *key = sealed ? &sample_key : NULL;
				size_t len, bl, bl2;
				unsigned char *f = sample(types[t], i, key, &len);
				unsigned char *orig = dup_bytes(f, len), *body, *body2;
				struct wire_hdr h, h2;
				long n;

				cr_assert_eq(wire_open(f, len, key, &h, &body, &bl), 0,
					     "type %d #%u sealed %d", types[t], i, sealed);
				cr_assert_eq(h.type, types[t]);
				n = sample_reencode(again, sizeof(again), &h, body, bl, key);
				cr_assert_eq(n, (long)len, "type %d #%u", types[t], i);
				if (!sealed) {
					cr_assert_arr_eq(again, orig, len, "type %d #%u", types[t],
							 i);
				} else {
					cr_assert_arr_neq(again, orig, len, "a fresh nonce");
					cr_assert_eq(
					    wire_open(again, (size_t)n, key, &h2, &body2, &bl2), 0);
					cr_assert_eq(bl2, bl);
					cr_assert_arr_eq(body2, body, bl);
					cr_assert_eq(h2.incarnation, h.incarnation);
					cr_assert_eq(h2.seq, h.seq);
					cr_assert_str_eq(h2.host, h.host);
				}
				free(orig);
				free(f);
			}
}

Test(wire, longest_fields_are_accepted)
{
	char host[DR_HOST_MAX + 1], addr[DR_ADDR_MAX];
	unsigned char name[DR_NAME_MAX], *body;
	static unsigned char buf[WIRE_FRAME_MAX];
	struct wire_buf b;
	struct wire_hdr h;
	static struct wire_heartbeat hb;
	size_t bl;
	long n;

	memset(host, 'h', DR_HOST_MAX);
	host[DR_HOST_MAX] = '\0';
	memset(addr, 'a', sizeof(addr));
	memset(name, 0xff, sizeof(name));

	wire_begin(&b, buf, sizeof(buf), WIRE_HEARTBEAT, host, 1, 1);
	wire_put_u32(&b, WIRE_PROTO);
	wire_put_u64(&b, 1);
	wire_put_str8(&b, addr, sizeof(addr));
	wire_put_str8(&b, addr, sizeof(addr));
	wire_put_u16(&b, WIRE_PEERS_MAX);
	for (int i = 0; i < WIRE_PEERS_MAX; i++)
		wire_put_str8(&b, addr, sizeof(addr));
	n = wire_finish(&b, &sample_key);
	cr_assert_gt(n, 0);
	cr_assert_eq(wire_open(buf, (size_t)n, &sample_key, &h, &body, &bl), 0);
	cr_assert_eq(h.host_len, DR_HOST_MAX);
	cr_assert_eq(wire_heartbeat_parse(body, bl, &hb), 0);
	cr_assert_eq(hb.npeers, WIRE_PEERS_MAX);

	wire_begin(&b, buf, sizeof(buf), WIRE_BATCH, host, 1, 1);
	wire_put_str8(&b, "to", 2);
	wire_put_u64(&b, 1);
	wire_put_u32(&b, WIRE_ITEMS_MAX);
	for (int i = 0; i < WIRE_ITEMS_MAX; i++) {
		wire_put_u8(&b, DR_FWD_CAST);
		wire_put_u64(&b, (uint64_t)i);
		wire_put_u32(&b, (uint32_t)-1);
		wire_put_str8(&b, name, sizeof(name));
		wire_put_bytes32(&b, NULL, 0);
	}
	n = wire_finish(&b, NULL);
	cr_assert_gt(n, 0);
	cr_assert_eq(wire_open(buf, (size_t)n, NULL, &h, &body, &bl), 0);
	cr_assert_eq(wire_batch_check(body, bl), 0);
}

/* ---------------------------------------------------------------------- */
/* Sealing */

Test(wire, wrong_key_is_refused)
{
	for (int t = 0; t < NTYPES; t++) {
		size_t len;
		unsigned char *f = sample(types[t], 2, &sample_key, &len);

		cr_assert_eq(open_copy(f, len, &other_key), -EACCES);
		cr_assert_eq(open_copy(f, len, &sample_key), 0);
		free(f);
	}
}

Test(wire, sealed_without_key_and_unsealed_with_key_are_refused)
{
	struct wire_key unset = {.set = false};

	for (int t = 0; t < NTYPES; t++) {
		size_t sl, pl;
		unsigned char *s = sample(types[t], 3, &sample_key, &sl);
		unsigned char *p = sample(types[t], 3, NULL, &pl);

		cr_assert_eq(open_copy(s, sl, NULL), -EACCES);
		cr_assert_eq(open_copy(s, sl, &unset), -EACCES, "an unset key is no key");
		cr_assert_eq(open_copy(p, pl, &sample_key), -EACCES);
		cr_assert_eq(open_copy(p, pl, NULL), 0);
		cr_assert_eq(open_copy(p, pl, &unset), 0);
		free(s);
		free(p);
	}
}

/* Any one bit flipped, in the header or the body of a sealed frame, and the
 * frame is refused; in the body or the authenticated header fields it is
 * refused as a failed seal. */
Test(wire, any_flipped_bit_of_a_sealed_frame_is_refused)
{
	for (int t = 0; t < NTYPES; t++) {
		size_t len;
		unsigned char *f = sample(types[t], 1, &sample_key, &len);
		size_t hl = f[7], hdr = WIRE_HDR_FIXED + hl;

		for (size_t at = 0; at < len; at++)
			for (int bit = 0; bit < 8; bit++) {
				int rc;

				f[at] ^= (unsigned char)(1 << bit);
				rc = open_copy(f, len, &sample_key);
				f[at] ^= (unsigned char)(1 << bit);
				cr_assert_neq(rc, 0, "type %d byte %zu bit %d accepted", types[t],
					      at, bit);
				/* incarnation, seq and the body are only
				 * caught by the tag */
				if (at >= 8 + hl && at < hdr - 4)
					cr_assert_eq(rc, -EACCES, "byte %zu", at);
				if (at >= hdr)
					cr_assert_eq(rc, -EACCES, "byte %zu", at);
			}
		free(f);
	}
}

Test(wire, a_sealed_frame_gets_a_fresh_nonce)
{
	unsigned char a[128], b2[128];
	struct wire_buf b;
	long na, nb;

	wire_begin(&b, a, sizeof(a), WIRE_LEAVE, "h", 1, 1);
	na = wire_finish(&b, &sample_key);
	wire_begin(&b, b2, sizeof(b2), WIRE_LEAVE, "h", 1, 1);
	nb = wire_finish(&b, &sample_key);
	cr_assert_eq(na, nb);
	cr_assert_eq(memcmp(a, b2, WIRE_HDR_FIXED + 1), 0, "same header");
	cr_assert_neq(memcmp(a + WIRE_HDR_FIXED + 1, b2 + WIRE_HDR_FIXED + 1, WIRE_NONCE_BYTES), 0);
}

Test(wire, a_seal_needs_room_for_nonce_and_tag)
{
	unsigned char buf[WIRE_HDR_FIXED + 1 + 8 + WIRE_NONCE_BYTES + WIRE_TAG_BYTES];
	struct wire_buf b;

	/* 8 body bytes and the overhead fit exactly. */
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, "h", 1, 1);
	cr_assert_eq(wire_room(&b, &sample_key), 8);
	cr_assert_eq(wire_room(&b, NULL), 8 + WIRE_NONCE_BYTES + WIRE_TAG_BYTES);
	wire_put_u64(&b, 1);
	cr_assert_eq(wire_room(&b, &sample_key), 0);
	cr_assert_eq(wire_finish(&b, &sample_key), (long)sizeof(buf));

	/* One byte short of the overhead. */
	wire_begin(&b, buf, sizeof(buf) - 1, WIRE_LEAVE, "h", 1, 1);
	wire_put_u64(&b, 1);
	cr_assert_eq(b.err, 0, "the body itself fits");
	cr_assert_eq(wire_finish(&b, &sample_key), -EMSGSIZE);
}

/* ---------------------------------------------------------------------- */
/* Malformed frames */

Test(wire, every_truncation_is_refused)
{
	for (int t = 0; t < NTYPES; t++)
		for (unsigned i = 0; i < 4; i++)
			for (int sealed = 0; sealed < 2; sealed++) {
				const struct wire_key *key = sealed ? &sample_key : NULL;
				size_t len;
				unsigned char *f = sample(types[t], i, key, &len);

				for (size_t cut = 0; cut < len; cut++) {
					/* A heap block of exactly cut bytes. */
					cr_assert_eq(open_copy(f, cut, key), -EPROTO,
						     "type %d #%u cut at %zu of %zu", types[t], i,
						     cut, len);
					cr_assert_eq(open_copy(f, cut, sealed ? NULL : &sample_key),
						     -EPROTO);
				}
				free(f);
			}
}

Test(wire, trailing_bytes_are_refused)
{
	for (int t = 0; t < NTYPES; t++)
		for (int sealed = 0; sealed < 2; sealed++) {
			const struct wire_key *key = sealed ? &sample_key : NULL;
			size_t len;
			unsigned char *f = sample(types[t], 5, key, &len);
			unsigned char *g = malloc(len + 1);

			memcpy(g, f, len);
			g[len] = 0;
			cr_assert_eq(open_copy(g, len + 1, key), -EPROTO);
			free(g);
			free(f);
		}
}

/* A LEAVE from host "h": what the tests below alter. */
static size_t leave(unsigned char *buf, size_t cap)
{
	struct wire_buf b;
	long n;

	wire_begin(&b, buf, cap, WIRE_LEAVE, "h", 1, 2);
	n = wire_finish(&b, NULL);
	cr_assert_gt(n, 0);
	return (size_t)n;
}

Test(wire, header_faults_have_their_errors)
{
	unsigned char f[64];
	size_t n = leave(f, sizeof(f));

	cr_assert_eq(open_copy(f, n, NULL), 0);
#define ALTERED(at, v, want)                                                                       \
	do {                                                                                       \
		unsigned char g[64];                                                               \
		memcpy(g, f, n);                                                                   \
		g[at] = (v);                                                                       \
		cr_assert_eq(open_copy(g, n, NULL), (want), "byte %d = %d", (int)(at), (int)(v));  \
	} while (0)
	ALTERED(0, 'X', -EPROTO);	 /* magic */
	ALTERED(3, 2, -EPROTO);		 /* magic's last byte */
	ALTERED(4, 0, -EPROTONOSUPPORT); /* version */
	ALTERED(4, 2, -EPROTONOSUPPORT);
	ALTERED(5, 0, -EPROTO); /* type */
	ALTERED(5, 5, -EPROTO);
	ALTERED(6, 2, -EPROTO); /* unknown flag */
	ALTERED(6, 0x80, -EPROTO);
	ALTERED(7, 0, -EPROTO); /* hostlen 0 */
	ALTERED(7, 2, -EPROTO); /* hostlen past the frame's layout */
	ALTERED(7, 64, -EPROTO);
	ALTERED(7, 255, -EPROTO);
	ALTERED(8, 0, -EPROTO);	  /* host: NUL */
	ALTERED(8, ' ', -EPROTO); /* space */
	ALTERED(8, '\n', -EPROTO);
	ALTERED(8, 0x7f, -EPROTO);
	ALTERED(8, 0x80, -EPROTO);
	ALTERED(8, '~', 0); /* printable */
	ALTERED(8, '!', 0);
	ALTERED(n - 4, 1, -EPROTO);    /* bodylen larger than the frame */
	ALTERED(n - 1, 0xff, -EPROTO); /* bodylen near 4 GiB */
#undef ALTERED
	/* A version other than ours is reported even in a frame too short for
	 * our header (its layout may differ). */
	{
		unsigned char g[5] = {'D', 'R', 'B', 1, 7};

		cr_assert_eq(open_copy(g, 5, NULL), -EPROTONOSUPPORT);
		cr_assert_eq(open_copy(g, 4, NULL), -EPROTO);
	}
}

Test(wire, a_sealed_body_shorter_than_nonce_and_tag_is_refused)
{
	unsigned char f[WIRE_HDR_FIXED + 1 + WIRE_NONCE_BYTES + WIRE_TAG_BYTES];
	size_t n = leave(f, sizeof(f));

	/* Claim a sealed body of 39 bytes. */
	f[6] = WIRE_SEALED;
	f[n - 4] = WIRE_NONCE_BYTES + WIRE_TAG_BYTES - 1;
	memset(f + n, 0, WIRE_NONCE_BYTES + WIRE_TAG_BYTES - 1);
	cr_assert_eq(open_copy(f, n + WIRE_NONCE_BYTES + WIRE_TAG_BYTES - 1, &sample_key), -EPROTO);
	/* 40 bytes of zeros: the right length, a forged tag. */
	f[n - 4] = WIRE_NONCE_BYTES + WIRE_TAG_BYTES;
	memset(f + n, 0, WIRE_NONCE_BYTES + WIRE_TAG_BYTES);
	cr_assert_eq(open_copy(f, sizeof(f), &sample_key), -EACCES);
}

Test(wire, a_frame_longer_than_the_most_is_refused)
{
	size_t n = WIRE_FRAME_MAX + 1;
	unsigned char *f = calloc(1, n);
	struct wire_buf b;

	cr_assert_not_null(f);
	/* A valid header whose bodylen does say the rest. */
	wire_begin(&b, f, n, WIRE_BATCH, "h", 1, 1);
	f[WIRE_HDR_FIXED + 1 - 4] = (unsigned char)(n - WIRE_HDR_FIXED - 1);
	f[WIRE_HDR_FIXED + 1 - 3] = (unsigned char)((n - WIRE_HDR_FIXED - 1) >> 8);
	f[WIRE_HDR_FIXED + 1 - 2] = (unsigned char)((n - WIRE_HDR_FIXED - 1) >> 16);
	cr_assert_eq(open_copy(f, n, NULL), -EPROTO);
	cr_assert_eq(open_copy(f, n - 1, NULL), -EPROTO, "bodylen no longer matches");

	/* And none is built. */
	wire_begin(&b, f, n, WIRE_BATCH, "h", 1, 1);
	while (b.len < WIRE_FRAME_MAX)
		wire_put_u8(&b, 0);
	wire_put_u8(&b, 0);
	cr_assert_eq(b.err, 0);
	cr_assert_eq(wire_room(&b, NULL), 0);
	cr_assert_eq(wire_finish(&b, NULL), -EMSGSIZE);
	free(f);
}

Test(wire, nothing_is_built_that_would_be_refused)
{
	unsigned char buf[256];
	char host[DR_HOST_MAX + 2];
	struct wire_buf b;

	memset(host, 'h', sizeof(host) - 1);
	host[DR_HOST_MAX + 1] = '\0';
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, host, 1, 1);
	cr_assert_eq(wire_finish(&b, NULL), -EINVAL, "64-byte host id");
	host[DR_HOST_MAX] = '\0';
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, host, 1, 1);
	cr_assert_gt(wire_finish(&b, NULL), 0, "63-byte host id");
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, "", 1, 1);
	cr_assert_eq(wire_finish(&b, NULL), -EINVAL);
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, "a b", 1, 1);
	cr_assert_eq(wire_finish(&b, NULL), -EINVAL);
	wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, NULL, 1, 1);
	cr_assert_eq(wire_finish(&b, NULL), -EINVAL);
	wire_begin(&b, buf, sizeof(buf), (enum wire_type)5, "h", 1, 1);
	cr_assert_eq(wire_finish(&b, NULL), -EINVAL);
	/* No room for the header; a str8 over 255 bytes. */
	wire_begin(&b, buf, WIRE_HDR_FIXED, WIRE_LEAVE, "h", 1, 1);
	cr_assert_eq(wire_finish(&b, NULL), -EMSGSIZE);
	wire_begin(&b, buf, sizeof(buf), WIRE_HEARTBEAT, "h", 1, 1);
	wire_put_str8(&b, buf, 256);
	cr_assert_eq(wire_finish(&b, NULL), -EMSGSIZE);
	/* Once failed, the puts after do nothing. */
	wire_begin(&b, buf, WIRE_HDR_FIXED + 1 + 3, WIRE_BATCH, "h", 1, 1);
	wire_put_u32(&b, 1);
	cr_assert_eq(b.err, -EMSGSIZE);
	wire_put_u8(&b, 1);
	cr_assert_eq(b.len, WIRE_HDR_FIXED + 1);
	cr_assert_eq(wire_finish(&b, NULL), -EMSGSIZE);
}

Test(wire, host_ids)
{
	cr_assert(wire_host_ok("a", 1));
	cr_assert(wire_host_ok("node-1.example.org", 18));
	cr_assert_not(wire_host_ok("", 0));
	cr_assert_not(wire_host_ok(NULL, 0));
	cr_assert_not(wire_host_ok("a b", 3));
	cr_assert_not(wire_host_ok("a\0b", 3));
	cr_assert_not(wire_host_ok("\xc3\xa9", 2));
	cr_assert_not(
	    wire_host_ok("0123456789012345678901234567890123456789012345678901234567890123", 64));
	cr_assert(
	    wire_host_ok("012345678901234567890123456789012345678901234567890123456789012", 63));
}

/* ---------------------------------------------------------------------- */
/* Bodies */

/* Every proper prefix of a valid body, and the body with one byte more,
 * fail the parser; the body itself passes. */
static void prefixes_fail(const unsigned char *body, size_t len,
			  int (*check)(const unsigned char *, size_t))
{
	unsigned char *more = malloc(len + 1);

	cr_assert_eq(check(body, len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		unsigned char *c = dup_bytes(body, cut);

		cr_assert_eq(check(c, cut), -EBADMSG, "cut at %zu of %zu", cut, len);
		free(c);
	}
	memcpy(more, body, len);
	more[len] = 0;
	cr_assert_eq(check(more, len + 1), -EBADMSG, "a trailing byte");
	free(more);
}

static int heartbeat_check(const unsigned char *b, size_t n)
{
	static struct wire_heartbeat hb;

	return wire_heartbeat_parse(b, n, &hb);
}

/* The body of sample frame i of type t, unsealed. */
static unsigned char *sample_body(enum wire_type t, unsigned i, size_t *len)
{
	size_t fl, bl;
	unsigned char *f = sample(t, i, NULL, &fl), *body, *copy;
	struct wire_hdr h;

	cr_assert_eq(wire_open(f, fl, NULL, &h, &body, &bl), 0);
	copy = dup_bytes(body, bl);
	free(f);
	*len = bl;
	return copy;
}

Test(wire, every_body_truncation_and_trailing_byte_is_refused)
{
	for (unsigned i = 0; i < 8; i++) {
		size_t n;
		unsigned char *b;

		b = sample_body(WIRE_HEARTBEAT, i, &n);
		prefixes_fail(b, n, heartbeat_check);
		free(b);
		b = sample_body(WIRE_BATCH, i, &n);
		prefixes_fail(b, n, wire_batch_check);
		free(b);
		b = sample_body(WIRE_REPLY, i, &n);
		prefixes_fail(b, n, wire_reply_check);
		free(b);
	}
}

/* A body built with the puts, for the field checks below. */
struct body {
	unsigned char buf[1024];
	struct wire_buf b;
};

static void body_begin(struct body *bd)
{
	wire_begin(&bd->b, bd->buf, sizeof(bd->buf), WIRE_BATCH, "h", 1, 1);
}

static const unsigned char *body_of(struct body *bd, size_t *len)
{
	cr_assert_eq(bd->b.err, 0);
	*len = bd->b.len - bd->b.body_at;
	return bd->buf + bd->b.body_at;
}

static int batch_of_one(uint8_t op, int32_t timeout, size_t name_len, uint32_t data_len_field,
			size_t data_len)
{
	static const unsigned char name[256];
	struct body bd;
	const unsigned char *p;
	size_t n;

	body_begin(&bd);
	wire_put_str8(&bd.b, "to", 2);
	wire_put_u64(&bd.b, 1);
	wire_put_u32(&bd.b, 1);
	wire_put_u8(&bd.b, op);
	wire_put_u64(&bd.b, 9);
	wire_put_u32(&bd.b, (uint32_t)timeout);
	wire_put_str8(&bd.b, name, name_len);
	wire_put_u32(&bd.b, data_len_field);
	for (size_t i = 0; i < data_len; i++)
		wire_put_u8(&bd.b, 0);
	p = body_of(&bd, &n);
	return wire_batch_check(p, n);
}

Test(wire, batch_item_fields_are_checked)
{
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -1, 1, 0, 0), 0);
	cr_assert_eq(batch_of_one(DR_FWD_WHEREIS, 0, DR_NAME_MAX, 3, 3), 0);
	cr_assert_eq(batch_of_one(0, -1, 1, 0, 0), -EBADMSG, "op 0");
	cr_assert_eq(batch_of_one(DR_FWD_START, -1, 1, 0, 0), 0, "op 5");
	cr_assert_eq(batch_of_one(DR_FWD_START + 1, -1, 1, 0, 0), -EBADMSG, "op 6");
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -2, 1, 0, 0), -EBADMSG, "timeout -2");
	cr_assert_eq(batch_of_one(DR_FWD_CALL, INT32_MIN, 1, 0, 0), -EBADMSG);
	cr_assert_eq(batch_of_one(DR_FWD_CALL, INT32_MAX, 1, 0, 0), 0);
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -1, 0, 0, 0), -EBADMSG, "empty name");
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -1, DR_NAME_MAX + 1, 0, 0), -EBADMSG, "name 128");
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -1, 1, 4, 3), -EBADMSG, "data past the end");
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -1, 1, UINT32_MAX, 3), -EBADMSG, "data 4 GiB");
	cr_assert_eq(batch_of_one(DR_FWD_CALL, -1, 1, 2, 3), -EBADMSG, "a byte left over");
}

static int reply_of_one(int32_t status, uint32_t data_len_field, size_t data_len)
{
	struct body bd;
	const unsigned char *p;
	size_t n;

	body_begin(&bd);
	wire_put_str8(&bd.b, "to", 2);
	wire_put_u64(&bd.b, 1);
	wire_put_u32(&bd.b, 1);
	wire_put_u64(&bd.b, 9);
	wire_put_u32(&bd.b, (uint32_t)status);
	wire_put_u32(&bd.b, data_len_field);
	for (size_t i = 0; i < data_len; i++)
		wire_put_u8(&bd.b, 0);
	p = body_of(&bd, &n);
	return wire_reply_check(p, n);
}

Test(wire, reply_item_fields_are_checked)
{
	cr_assert_eq(reply_of_one(0, 0, 0), 0);
	cr_assert_eq(reply_of_one(-EHOSTUNREACH, 5, 5), 0);
	cr_assert_eq(reply_of_one(-4095, 0, 0), 0);
	cr_assert_eq(reply_of_one(1, 0, 0), -EBADMSG, "a positive status");
	cr_assert_eq(reply_of_one(-4096, 0, 0), -EBADMSG, "not an errno");
	cr_assert_eq(reply_of_one(DR_NOTSERVED, 0, 0), 0, "a call that reached no worker");
	cr_assert_eq(reply_of_one(DR_NOTSERVED - 1, 0, 0), -EBADMSG);
	cr_assert_eq(reply_of_one(INT32_MIN, 0, 0), -EBADMSG);
	cr_assert_eq(reply_of_one(0, 6, 5), -EBADMSG, "data past the end");
	cr_assert_eq(reply_of_one(0, UINT32_MAX, 5), -EBADMSG);
}

Test(wire, counts_are_checked_before_items_are_read)
{
	struct body bd;
	const unsigned char *p;
	struct wire_rd rd;
	const char *to;
	uint8_t to_len;
	uint64_t batch;
	uint32_t count;
	size_t n;

	/* More than WIRE_ITEMS_MAX. */
	body_begin(&bd);
	wire_put_str8(&bd.b, "to", 2);
	wire_put_u64(&bd.b, 1);
	wire_put_u32(&bd.b, WIRE_ITEMS_MAX + 1);
	for (int i = 0; i < 500; i++)
		wire_put_u8(&bd.b, 0);
	p = body_of(&bd, &n);
	cr_assert_eq(wire_batch_head(&rd, p, n, &to, &to_len, &batch, &count), -EBADMSG);
	cr_assert_eq(count, 0);
	cr_assert_eq(wire_batch_check(p, n), -EBADMSG);
	cr_assert_eq(wire_reply_check(p, n), -EBADMSG);

	/* A count that cannot fit in what is left: 2 items in 16 bytes. */
	body_begin(&bd);
	wire_put_str8(&bd.b, "to", 2);
	wire_put_u64(&bd.b, 1);
	wire_put_u32(&bd.b, 2);
	for (int i = 0; i < 16; i++)
		wire_put_u8(&bd.b, 0);
	p = body_of(&bd, &n);
	cr_assert_eq(wire_batch_head(&rd, p, n, &to, &to_len, &batch, &count), -EBADMSG);

	/* A read past a failure returns zeros and keeps the error. */
	body_begin(&bd);
	wire_put_str8(&bd.b, "to", 2);
	wire_put_u64(&bd.b, 7);
	wire_put_u32(&bd.b, 0);
	p = body_of(&bd, &n);
	cr_assert_eq(wire_batch_head(&rd, p, n, &to, &to_len, &batch, &count), 0);
	cr_assert_eq(batch, 7);
	cr_assert_eq(count, 0);
	{
		struct wire_item it;

		cr_assert_eq(wire_batch_item(&rd, &it), -EBADMSG);
		cr_assert_eq(it.len, 0);
		cr_assert_eq(it.name_len, 0);
		cr_assert_eq(rd.err, -EBADMSG);
		cr_assert_eq(wire_batch_item(&rd, &it), -EBADMSG);
	}
}

Test(wire, heartbeat_fields_are_checked)
{
	static struct wire_heartbeat hb;
	char addr[DR_ADDR_MAX + 1];
	struct body bd;
	const unsigned char *p;
	size_t n;

	memset(addr, 'a', sizeof(addr));
#define HB(bus_len, npeers_field, npeers, fill)                                                    \
	do {                                                                                       \
		body_begin(&bd);                                                                   \
		wire_put_u32(&bd.b, WIRE_PROTO);                                                   \
		wire_put_u64(&bd.b, 1);                                                            \
		wire_put_str8(&bd.b, addr, (bus_len));                                             \
		wire_put_str8(&bd.b, "r", 1);                                                      \
		wire_put_u16(&bd.b, (npeers_field));                                               \
		for (int i = 0; i < (npeers); i++)                                                 \
			wire_put_str8(&bd.b, (fill), 1);                                           \
		p = body_of(&bd, &n);                                                              \
	} while (0)
	HB(DR_ADDR_MAX, 1, 1, "p");
	cr_assert_eq(wire_heartbeat_parse(p, n, &hb), 0);
	HB(DR_ADDR_MAX + 1, 0, 0, "p");
	cr_assert_eq(wire_heartbeat_parse(p, n, &hb), -EBADMSG, "a 128-byte address");
	HB(0, 0, 0, "p");
	cr_assert_eq(wire_heartbeat_parse(p, n, &hb), -EBADMSG, "an empty address");
	HB(1, 2, 1, "p");
	cr_assert_eq(wire_heartbeat_parse(p, n, &hb), -EBADMSG, "npeers past the end");
	cr_assert_eq(hb.npeers, 0, "a failed parse lists no peers");
	HB(1, 1, 1, " ");
	cr_assert_eq(wire_heartbeat_parse(p, n, &hb), -EBADMSG, "a space in an address");
	HB(1, 1, 1, "\n");
	cr_assert_eq(wire_heartbeat_parse(p, n, &hb), -EBADMSG, "a newline in an address");
	/* WIRE_PEERS_MAX + 1 peers, all present. */
	{
		static unsigned char big[8192];
		struct wire_buf b;

		wire_begin(&b, big, sizeof(big), WIRE_HEARTBEAT, "h", 1, 1);
		wire_put_u32(&b, WIRE_PROTO);
		wire_put_u64(&b, 1);
		wire_put_str8(&b, "b", 1);
		wire_put_str8(&b, "r", 1);
		wire_put_u16(&b, WIRE_PEERS_MAX + 1);
		for (int i = 0; i < WIRE_PEERS_MAX + 1; i++)
			wire_put_str8(&b, "p", 1);
		cr_assert_eq(b.err, 0);
		cr_assert_eq(wire_heartbeat_parse(big + b.body_at, b.len - b.body_at, &hb),
			     -EBADMSG);
	}
#undef HB
}

/* ---------------------------------------------------------------------- */
/* Replay window */

Test(wire, replay_duplicates_and_order)
{
	struct wire_replay w;

	memset(&w, 0, sizeof(w));
	cr_assert_eq(wire_replay_check(&w, 5, 100), 0, "the first frame");
	cr_assert_eq(wire_replay_check(&w, 5, 100), -EALREADY, "a duplicate");
	cr_assert_eq(wire_replay_check(&w, 5, 103), 0);
	cr_assert_eq(wire_replay_check(&w, 5, 101), 0, "out of order, within the window");
	cr_assert_eq(wire_replay_check(&w, 5, 101), -EALREADY, "accepted once");
	cr_assert_eq(wire_replay_check(&w, 5, 102), 0);
	cr_assert_eq(wire_replay_check(&w, 5, 103), -EALREADY);
	cr_assert_eq(wire_replay_check(&w, 5, 99), 0, "below the first, within the window");
	cr_assert_eq(wire_replay_check(&w, 5, 99), -EALREADY);
}

Test(wire, replay_below_the_window_is_stale)
{
	struct wire_replay w;

	memset(&w, 0, sizeof(w));
	cr_assert_eq(wire_replay_check(&w, 1, 5000), 0);
	cr_assert_eq(wire_replay_check(&w, 1, 5000 - WIRE_WINDOW), -ESTALE);
	cr_assert_eq(wire_replay_check(&w, 1, 0), -ESTALE);
	cr_assert_eq(wire_replay_check(&w, 1, 5000 - WIRE_WINDOW + 1), 0, "the window's last");
	cr_assert_eq(wire_replay_check(&w, 1, 5000 - WIRE_WINDOW + 1), -EALREADY);
	/* The window moves with the top. */
	cr_assert_eq(wire_replay_check(&w, 1, 5001), 0);
	cr_assert_eq(wire_replay_check(&w, 1, 5000 - WIRE_WINDOW + 1), -ESTALE);
}

Test(wire, replay_incarnations)
{
	struct wire_replay w;

	memset(&w, 0, sizeof(w));
	cr_assert_eq(wire_replay_check(&w, 10, 7), 0);
	cr_assert_eq(wire_replay_check(&w, 9, 8), -ESTALE, "an older incarnation");
	cr_assert_eq(wire_replay_check(&w, 9, 1000000), -ESTALE);
	cr_assert_eq(wire_replay_check(&w, 11, 1), 0, "a newer one: the peer restarted");
	cr_assert_eq(wire_replay_check(&w, 11, 7), 0, "a fresh window");
	cr_assert_eq(wire_replay_check(&w, 11, 1), -EALREADY);
	cr_assert_eq(wire_replay_check(&w, 10, 8), -ESTALE, "the old one is gone for good");
	cr_assert_eq(w.incarnation, 11);
	cr_assert_eq(w.top, 7);
}

Test(wire, replay_a_zeroed_window_is_empty)
{
	struct wire_replay w;

	memset(&w, 0, sizeof(w));
	cr_assert_eq(wire_replay_check(&w, 0, 0), 0, "incarnation 0, sequence 0");
	cr_assert_eq(wire_replay_check(&w, 0, 0), -EALREADY);
	memset(&w, 0, sizeof(w));
	cr_assert_eq(wire_replay_check(&w, UINT64_MAX, UINT64_MAX), 0);
	cr_assert_eq(wire_replay_check(&w, UINT64_MAX, UINT64_MAX), -EALREADY);
	cr_assert_eq(wire_replay_check(&w, UINT64_MAX, UINT64_MAX - WIRE_WINDOW + 1), 0);
	cr_assert_eq(wire_replay_check(&w, UINT64_MAX, UINT64_MAX - WIRE_WINDOW), -ESTALE);
}

/* The window slides by every distance, across word boundaries: against a
 * list of what was accepted. */
Test(wire, replay_slides_like_a_model)
{
	static const uint64_t steps[] = {1,   2,   63,	 64,   65,   127, 128,
					 129, 511, 1023, 1024, 1025, 3000};
	struct wire_replay w;
	static uint64_t seen[4096];
	size_t nseen = 0;
	uint64_t top = 1u << 20, s = 12345;

	memset(&w, 0, sizeof(w));
	cr_assert_eq(wire_replay_check(&w, 3, top), 0);
	seen[nseen++] = top;
	for (int round = 0; round < 40; round++) {
		/* Accept a third of the window below the top, at random. */
		for (int k = 0; k < 300; k++) {
			uint64_t seq;
			bool dup = false;

			s = s * 6364136223846793005ull + 1442695040888963407ull;
			seq = top - (s >> 33) % WIRE_WINDOW;
			for (size_t j = 0; j < nseen; j++)
				dup |= seen[j] == seq;
			cr_assert_eq(wire_replay_check(&w, 3, seq), dup ? -EALREADY : 0, "seq %llu",
				     (unsigned long long)(top - seq));
			if (!dup && nseen < 4096)
				seen[nseen++] = seq;
		}
		/* Every sequence of the window is as the list says. */
		top += steps[round % (sizeof(steps) / sizeof(steps[0]))];
		cr_assert_eq(wire_replay_check(&w, 3, top), 0);
		seen[nseen++] = top;
		for (uint64_t back = 0; back < WIRE_WINDOW + 2; back++) {
			uint64_t seq = top - back;
			bool dup = false;
			struct wire_replay probe = w;

			for (size_t j = 0; j < nseen; j++)
				dup |= seen[j] == seq;
			cr_assert_eq(wire_replay_check(&probe, 3, seq),
				     back >= WIRE_WINDOW ? -ESTALE
				     : dup		 ? -EALREADY
							 : 0,
				     "round %d back %llu", round, (unsigned long long)back);
		}
		/* Forget what fell out of the window. */
		{
			size_t j = 0;

			for (size_t k = 0; k < nseen; k++)
				if (top - seen[k] < WIRE_WINDOW)
					seen[j++] = seen[k];
			nseen = j;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* The key file */

static char key_path[64];

static void key_fini(void)
{
	if (key_path[0])
		unlink(key_path);
}

/* A new key file (mkstemp: unique per test) with these bytes and mode. */
static const char *key_file(const void *content, size_t n, mode_t mode)
{
	int fd;

	key_fini();
	snprintf(key_path, sizeof(key_path), "/tmp/distreg-test-key-XXXXXX");
	fd = mkstemp(key_path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(write(fd, content, n), (ssize_t)n);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return key_path;
}

TestSuite(wire_key, .timeout = TIMEOUT, .fini = key_fini);

static const unsigned char raw_key[32] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0xff,
};
static const char hex_key[] = "000102030405060708090a0b0c0d0e0ff0e1d2c3b4a5968778695a4b3c2d1eff";

Test(wire_key, raw_32_bytes)
{
	struct wire_key k;

	cr_assert_eq(wire_key_load(key_file(raw_key, 32, 0600), &k), 0);
	cr_assert(k.set);
	cr_assert_arr_eq(k.k, raw_key, 32);
}

Test(wire_key, hex_with_whitespace_around)
{
	char text[128];
	struct wire_key k;

	cr_assert_eq(wire_key_load(key_file(hex_key, 64, 0600), &k), 0);
	cr_assert_arr_eq(k.k, raw_key, 32);
	snprintf(text, sizeof(text), "  \n%s\r\n\n", hex_key);
	for (char *p = text; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	cr_assert_eq(wire_key_load(key_file(text, strlen(text), 0400), &k), 0, "upper case, 0400");
	cr_assert_arr_eq(k.k, raw_key, 32);
}

Test(wire_key, mode_must_keep_group_and_others_out)
{
	static const mode_t bad[] = {0644, 0640, 0620, 0604, 0602, 0601, 0610, 0666, 0777};
	struct wire_key k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k.set = true;
		cr_assert_eq(wire_key_load(key_file(raw_key, 32, bad[i]), &k), -EPERM, "mode %o",
			     (unsigned)bad[i]);
		cr_assert_not(k.set);
	}
	cr_assert_eq(wire_key_load(key_file(raw_key, 32, 0600), &k), 0);
	cr_assert_eq(wire_key_load(key_file(raw_key, 32, 0700), &k), 0, "owner bits only");
}

Test(wire_key, content_must_be_a_key)
{
	static const unsigned char zero[32];
	char text[300];
	struct wire_key k;

	cr_assert_eq(wire_key_load(key_file(raw_key, 31, 0600), &k), -EINVAL, "31 bytes");
	cr_assert_eq(wire_key_load(key_file(raw_key, 0, 0600), &k), -EINVAL, "empty");
	memcpy(text, raw_key, 32);
	text[32] = '\n';
	cr_assert_eq(wire_key_load(key_file(text, 33, 0600), &k), -EINVAL, "33 bytes");
	cr_assert_eq(wire_key_load(key_file(hex_key, 63, 0600), &k), -EINVAL, "63 digits");
	snprintf(text, sizeof(text), "%s0", hex_key);
	cr_assert_eq(wire_key_load(key_file(text, 65, 0600), &k), -EINVAL, "65 digits");
	snprintf(text, sizeof(text), "%s", hex_key);
	text[10] = 'g';
	cr_assert_eq(wire_key_load(key_file(text, 64, 0600), &k), -EINVAL, "not hex");
	snprintf(text, sizeof(text), "%s", hex_key);
	text[32] = ' ';
	cr_assert_eq(wire_key_load(key_file(text, 64, 0600), &k), -EINVAL, "a space inside");
	cr_assert_eq(wire_key_load(key_file(zero, 32, 0600), &k), -EINVAL, "all zero");
	memset(text, ' ', sizeof(text));
	memcpy(text + 100, hex_key, 64);
	cr_assert_eq(wire_key_load(key_file(text, sizeof(text), 0600), &k), -EINVAL, "300 bytes");
	cr_assert_not(k.set);
	cr_assert_eq(memcmp(k.k, zero, 32), 0, "wiped");
}

Test(wire_key, not_a_file)
{
	struct wire_key k;
	char dir[] = "/tmp/distreg-test-keydir-XXXXXX";

	cr_assert_eq(wire_key_load("/nonexistent/distreg/key", &k), -ENOENT);
	cr_assert_not_null(mkdtemp(dir));
	chmod(dir, 0700);
	cr_assert_eq(wire_key_load(dir, &k), -EINVAL);
	rmdir(dir);
}

/*
 * fuzz_wire.c - libFuzzer target for bridge/wire.c.
 *
 * Each input is, at once:
 *  1. a frame, opened without a key and with the fixed key (sample_key):
 *     a header fault gives the same error either way, exactly one of the
 *     two opens can succeed, and what opens lies inside the input;
 *  2. for a frame that opens, its body parsed by its type, and encoded
 *     again: an unsealed frame gives back the very same bytes, a sealed one
 *     (new nonce) opens again to the same header and body;
 *  3. a bare body, given to every parser; the iterating parsers agree with
 *     wire_batch_check() / wire_reply_check(), and what parses encodes
 *     back to the same bytes;
 *  4. a list of (incarnation, sequence) for wire_replay_check(), whose
 *     answers must be those of a plain model of the window.
 * A broken property aborts, which libFuzzer reports as a crash.
 *
 * Every buffer handed to wire.c is a heap copy of exactly the input's
 * length, so AddressSanitizer sees a read one byte past the frame.
 *
 * Built two ways: with clang -fsanitize=fuzzer (tests/fuzz/run.sh), and
 * with any compiler next to replay.c, which runs the corpus through it
 * (the unit suite's fuzz-corpus test).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "wire_samples.h"

/* Inputs that opened, with or without the key: replay.c checks that every
 * frame of the seed corpus does. */
unsigned long fuzz_wire_opened;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_wire.c:%d: property broken: %s\n", __LINE__, #cond); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static unsigned char *dup_input(const uint8_t *data, size_t size)
{
	unsigned char *p = malloc(size ? size : 1);

	CHECK(p);
	if (size)
		memcpy(p, data, size);
	return p;
}

static bool header_error(int rc)
{
	return rc == -EPROTO || rc == -EPROTONOSUPPORT;
}

/* 2: the opened frame encodes back. */
static void round_trip(const uint8_t *data, size_t size, const struct wire_hdr *h,
		       const unsigned char *body, size_t body_len, const struct wire_key *key)
{
	size_t cap = size + WIRE_NONCE_BYTES + WIRE_TAG_BYTES + 64;
	unsigned char *out = malloc(cap), *body2;
	struct wire_hdr h2;
	size_t body2_len;
	long n = sample_reencode(out, cap, h, body, body_len, key);
	bool parses;

	CHECK(out);
	switch (h->type) {
	case WIRE_HEARTBEAT: {
		static struct wire_heartbeat hb;

		parses = wire_heartbeat_parse(body, body_len, &hb) == 0;
		break;
	}
	case WIRE_LEAVE:
		parses = body_len == 0;
		break;
	case WIRE_BATCH:
		parses = wire_batch_check(body, body_len) == 0;
		break;
	default:
		parses = wire_reply_check(body, body_len) == 0;
		break;
	}
	CHECK(parses == (n >= 0));
	if (n < 0) {
		CHECK(n == -EBADMSG);
		free(out);
		return;
	}
	if (!key) {
		CHECK((size_t)n == size);
		CHECK(memcmp(out, data, size) == 0);
	} else {
		CHECK((size_t)n == size); /* same lengths, fresh nonce */
		CHECK(wire_open(out, (size_t)n, key, &h2, &body2, &body2_len) == 0);
		CHECK(h2.type == h->type && h2.flags == h->flags);
		CHECK(h2.incarnation == h->incarnation && h2.seq == h->seq);
		CHECK(strcmp(h2.host, h->host) == 0);
		CHECK(body2_len == body_len && memcmp(body2, body, body_len) == 0);
	}
	free(out);
}

/* 1 and 2. */
static void frame(const uint8_t *data, size_t size)
{
	unsigned char *plain = dup_input(data, size), *sealed = dup_input(data, size);
	unsigned char *body;
	size_t body_len;
	struct wire_hdr h;
	int rc = wire_open(plain, size, NULL, &h, &body, &body_len);

	if (rc == 0) {
		fuzz_wire_opened++;
		CHECK(!(h.flags & WIRE_SEALED));
		CHECK(h.host_len >= 1 && h.host_len <= DR_HOST_MAX);
		CHECK(strlen(h.host) == h.host_len);
		CHECK(body >= plain && body + body_len == plain + size);
		round_trip(data, size, &h, body, body_len, NULL);
	}

	int rck = wire_open(sealed, size, &sample_key, &h, &body, &body_len);

	if (rck == 0) {
		fuzz_wire_opened++;
		CHECK(h.flags & WIRE_SEALED);
		CHECK(strlen(h.host) == h.host_len);
		CHECK(body >= sealed + WIRE_NONCE_BYTES);
		CHECK(body + body_len + WIRE_TAG_BYTES == sealed + size);
		round_trip(data, size, &h, body, body_len, &sample_key);
	}
	/* The header is judged the same way with a key or without. */
	CHECK(header_error(rc) == header_error(rck));
	if (header_error(rc))
		CHECK(rc == rck);
	CHECK(!(rc == 0 && rck == 0));
	if (rc == 0)
		CHECK(rck == -EACCES);
	if (rck == 0)
		CHECK(rc == -EACCES);
	CHECK(rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EACCES);
	CHECK(rck == 0 || rck == -EPROTO || rck == -EPROTONOSUPPORT || rck == -EACCES);
	free(plain);
	free(sealed);
}

/* 3: the input as a bare body. */
static void bodies(const uint8_t *data, size_t size)
{
	static struct wire_heartbeat hb;
	struct wire_hdr h = {.host_len = 1, .host = "x"};
	size_t cap = size + 128;
	unsigned char *out = malloc(cap);
	const size_t hdr = WIRE_HDR_FIXED + 1;

	CHECK(out);
	for (uint8_t type = WIRE_HEARTBEAT; type <= WIRE_REPLY; type++) {
		struct wire_rd rd;
		const char *to;
		uint8_t to_len;
		uint64_t batch;
		uint32_t count;
		int ok = -1;

		switch (type) {
		case WIRE_HEARTBEAT:
			ok = wire_heartbeat_parse(data, size, &hb);
			CHECK(ok == 0 || ok == -EBADMSG);
			if (ok == 0) {
				CHECK(hb.npeers <= WIRE_PEERS_MAX);
				CHECK(hb.bus_len >= 1 && hb.bus_len <= DR_ADDR_MAX);
				CHECK(hb.rpc_len >= 1 && hb.rpc_len <= DR_ADDR_MAX);
			}
			break;
		case WIRE_LEAVE:
			ok = size == 0 ? 0 : -EBADMSG;
			break;
		case WIRE_BATCH:
		case WIRE_REPLY: {
			bool all = wire_batch_head(&rd, data, size, &to, &to_len, &batch, &count) == 0;

			for (uint32_t i = 0; all && i < count; i++) {
				if (type == WIRE_BATCH) {
					struct wire_item it;

					all = wire_batch_item(&rd, &it) == 0;
					if (all) {
						CHECK(it.op >= DR_FWD_CALL &&
						      it.op <= DR_FWD_START);
						CHECK(it.name_len >= 1 &&
						      it.name_len <= DR_NAME_MAX);
						CHECK(it.name >= data &&
						      it.name + it.name_len <= data + size);
						CHECK(it.len <= size &&
						      it.data + it.len <= data + size);
						CHECK(it.timeout_ms >= -1);
					}
				} else {
					struct wire_reply_item it;

					all = wire_reply_item(&rd, &it) == 0;
					if (all) {
						CHECK(it.status <= 0);
						CHECK(it.len <= size &&
						      it.data + it.len <= data + size);
					}
				}
			}
			all = all && rd.left == 0;
			ok = type == WIRE_BATCH ? wire_batch_check(data, size)
						: wire_reply_check(data, size);
			CHECK(ok == 0 || ok == -EBADMSG);
			CHECK(all == (ok == 0));
			break;
		}
		}
		h.type = type;
		long n = sample_reencode(out, cap, &h, data, size, NULL);

		CHECK((ok == 0) == (n >= 0));
		if (n >= 0) {
			CHECK((size_t)n == hdr + size);
			CHECK(memcmp(out + hdr, data, size) == 0);
		}
	}
	free(out);
}

/* 4: the replay window against a model that keeps every sequence seen of
 * the newest incarnation. Each operation: a byte (incarnation 0..3 in its
 * low bits; 0x80: a whole u64 sequence follows, else a u16 offset from 0
 * or, with 0x40, from near 2^64), then the sequence's bytes. */
#define OPS_MAX 512
static void replay(const uint8_t *data, size_t size)
{
	static uint64_t seen[OPS_MAX];
	struct wire_replay w;
	size_t nseen = 0, at = 0;
	bool empty = true;
	uint64_t inc = 0, top = 0;

	memset(&w, 0, sizeof(w));
	for (int op = 0; op < OPS_MAX && at < size; op++) {
		uint8_t b = data[at++];
		uint64_t i = b & 3, s = 0;
		int want, got;
		bool dup = false;

		if (b & 0x80) {
			if (size - at < 8)
				break;
			for (int k = 7; k >= 0; k--)
				s = s << 8 | data[at + (size_t)k];
			at += 8;
		} else {
			if (size - at < 2)
				break;
			s = (b & 0x40 ? UINT64_MAX - 70000 : 0) +
			    (uint64_t)(data[at] | data[at + 1] << 8);
			at += 2;
		}
		for (size_t k = 0; k < nseen; k++)
			dup |= seen[k] == s;
		if (empty || i > inc) {
			want = 0;
			empty = false;
			inc = i;
			top = s;
			nseen = 0;
		} else if (i < inc) {
			want = -ESTALE;
		} else if (s > top) {
			want = 0;
			top = s;
		} else if (top - s >= WIRE_WINDOW) {
			want = -ESTALE;
		} else {
			want = dup ? -EALREADY : 0;
		}
		if (want == 0)
			seen[nseen++] = s;
		got = wire_replay_check(&w, i, s);
		if (got != want)
			fprintf(stderr, "replay op %d: inc %llu seq %llu: got %d, model %d\n", op,
				(unsigned long long)i, (unsigned long long)s, got, want);
		CHECK(got == want);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame(data, size);
	bodies(data, size);
	replay(data, size);
	return 0;
}

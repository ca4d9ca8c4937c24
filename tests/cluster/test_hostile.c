/*
 * test_hostile.c - frames a bridge must drop, and go on: with a key, a frame
 * sealed with another key, one not sealed at all, a replayed one, an
 * oversized one and malformed ones, on the bus and on the rpc socket. Each
 * is dropped and counted, and the cluster carries on as if it had never
 * been sent.
 */
#include <nanomsg/bus.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "cluster.h"
#include "wire.h"

TestSuite(hostile, .timeout = CL_TIMEOUT);

static uint64_t incarnation_of(struct cl *c, int i, int j)
{
	struct dr_host hosts[DR_HOSTS_MAX];
	size_t n = 0;

	cr_assert_eq(dr_hosts(cl_reg(c, i), hosts, DR_HOSTS_MAX, &n, NULL), 0);
	for (size_t k = 0; k < n; k++)
		if (strcmp(hosts[k].id, c->h[j].id) == 0)
			return hosts[k].incarnation;
	return 0;
}

/* A LEAVE of host, sealed with key (NULL: not sealed). */
static long leave_frame(unsigned char *buf, size_t cap, const char *host, uint64_t inc,
			uint64_t seq, const struct wire_key *key)
{
	struct wire_buf b;

	wire_begin(&b, buf, cap, WIRE_LEAVE, host, inc, seq);
	return wire_finish(&b, key);
}

/* The counter of host i's bridge as its stop line gives it. */
static unsigned long long stop_count(struct cl *c, int i, const char *what)
{
	const char *log = cl_log_tail(c, i), *p = strstr(log, "stopping:");
	char key[64];

	cr_assert_not_null(p, "no stop line:\n%s", log);
	snprintf(key, sizeof(key), " %s", what);
	for (const char *q = p; (q = strstr(q, key)); q++) {
		const char *n = q;

		while (n > p && n[-1] >= '0' && n[-1] <= '9')
			n--;
		if (n < q)
			return strtoull(n, NULL, 10);
	}
	cr_assert_fail("no '%s' count in: %s", what, p);
	return 0;
}

Test(hostile, bad_frames_are_dropped_and_counted_and_change_nothing)
{
	struct cl c;
	struct wire_key key = { 0 }, wrong = { .set = true };
	static unsigned char buf[WIRE_FRAME_MAX + 64], leave[512];
	int bus, req, rc;
	long n, leave_len = 0;
	uint64_t inc, old_inc;

	cl_init(&c, 2, "ho", false);
	cl_make_key(&c);
	cr_assert_eq(wire_key_load(c.key_file, &key), 0);
	memset(wrong.k, 7, sizeof(wrong.k));
	c.seed_all = true;
	cl_start_all(&c);
	cl_wait_converged(&c, "start");

	/* Host 1 stops and comes back. Its last life's LEAVE, sealed with
	 * the cluster's key (what a listener on the wire recorded), is
	 * replayed below. */
	old_inc = incarnation_of(&c, 0, 1);
	cr_assert_eq(cl_stop(&c, 1, SIGTERM), 0);
	leave_len = leave_frame(leave, sizeof(leave), c.h[1].id, old_inc, 1, &key);
	cr_assert_gt(leave_len, 0);
	cl_start(&c, 1);
	cl_wait_converged(&c, "restart");
	inc = incarnation_of(&c, 0, 1);

	bus = nn_socket(AF_SP, NN_BUS);
	cr_assert_geq(bus, 0);
	cr_assert_geq(nn_connect(bus, c.h[0].bus), 0);
	req = nn_socket(AF_SP_RAW, NN_REQ);
	cr_assert_geq(req, 0);
	cr_assert_geq(nn_connect(req, c.h[0].rpc), 0);
	cl_sleep_ms(300);

	/* 1. Noise. */
	for (int i = 0; i < 100; i++)
		buf[i] = (unsigned char)(i * 37);
	cr_assert_eq(nn_send(bus, buf, 100, 0), 100);
	/* 2. Host 1 leaving, sealed with another key; 3. not sealed. */
	n = leave_frame(buf, sizeof(buf), c.h[1].id, inc, 1ull << 40, &wrong);
	cr_assert_eq(nn_send(bus, buf, (size_t)n, 0), n);
	n = leave_frame(buf, sizeof(buf), c.h[1].id, inc, (1ull << 40) + 1, NULL);
	cr_assert_eq(nn_send(bus, buf, (size_t)n, 0), n);
	/* 4. Host 1's own LEAVE of its last life, replayed. */
	cr_assert_eq(nn_send(bus, leave, (size_t)leave_len, 0), leave_len);
	/* 5. Malformed, but sealed with the right key: a heartbeat whose
	 * body stops short, and a LEAVE with a body. */
	{
		struct wire_buf b;

		wire_begin(&b, buf, sizeof(buf), WIRE_HEARTBEAT, c.h[1].id, inc, (1ull << 40) + 2);
		wire_put_u32(&b, WIRE_PROTO);
		n = wire_finish(&b, &key);
		cr_assert_eq(nn_send(bus, buf, (size_t)n, 0), n);
		wire_begin(&b, buf, sizeof(buf), WIRE_LEAVE, c.h[1].id, inc, (1ull << 40) + 3);
		wire_put_u8(&b, 1);
		n = wire_finish(&b, &key);
		cr_assert_eq(nn_send(bus, buf, (size_t)n, 0), n);
	}
	/* 6. On the rpc socket: noise after a request id, and a batch sealed
	 * with another key. */
	{
		struct wire_buf b;

		buf[0] = 0x80;
		buf[1] = buf[2] = 0;
		buf[3] = 1;
		memset(buf + 4, 0xab, 60);
		cr_assert_eq(nn_send(req, buf, 64, 0), 64);
		wire_begin(&b, buf + 4, sizeof(buf) - 4, WIRE_BATCH, c.h[1].id, inc, (1ull << 40) + 4);
		wire_put_batch_head(&b, c.h[0].id, 1, 0);
		n = wire_finish(&b, &wrong);
		buf[3] = 2;
		cr_assert_eq(nn_send(req, buf, (size_t)n + 4, 0), n + 4);
	}
	/* 7. Oversized: nanomsg drops it and the connection (NN_RCVMAXSIZE). */
	memset(buf, 0, WIRE_FRAME_MAX + 1);
	rc = nn_send(bus, buf, WIRE_FRAME_MAX + 1, NN_DONTWAIT);
	cr_assert(rc == WIRE_FRAME_MAX + 1 || (rc < 0 && nn_errno() == EAGAIN));
	nn_close(bus);
	nn_close(req);

	/* Nothing changed: host 0 still sees host 1 up, for longer than it
	 * would take a LEAVE or a silence to show. */
	cl_sleep_ms(2 * c.down_after_ms);
	cr_assert_eq(cl_state_of(&c, 0, 1), DR_HOST_UP, "%s", cl_log_tail(&c, 0));
	cr_assert_eq(incarnation_of(&c, 0, 1), inc);
	cr_assert(c.h[0].pid && kill(c.h[0].pid, 0) == 0, "host 0's bridge died");

	cr_assert_eq(cl_stop(&c, 0, SIGTERM), 0);
	cr_assert_geq(stop_count(&c, 0, "unauthenticated"), 3, "%s", cl_log_tail(&c, 0));
	cr_assert_geq(stop_count(&c, 0, "malformed"), 3, "%s", cl_log_tail(&c, 0));
	cr_assert_geq(stop_count(&c, 0, "replayed"), 1, "%s", cl_log_tail(&c, 0));
	cl_fini(&c);
}

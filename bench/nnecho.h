/*
 * nnecho.h - the nanomsg side that bench_call and bench_cluster compare
 * against: a cooked REP socket bound to a URL that answers every request
 * with its own bytes (up to 64), until killed. Include after proc.h.
 */
#ifndef DISTREG_BENCH_NNECHO_H
#define DISTREG_BENCH_NNECHO_H

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

static inline void nn_echo_server(const char *url)
{
	int s = nn_socket(AF_SP, NN_REP);
	char buf[64];

	if (s < 0 || nn_bind(s, url) < 0)
		die("nn_bind", nn_strerror(nn_errno()));
	for (;;) {
		int n = nn_recv(s, buf, sizeof(buf), 0);

		if (n < 0 || nn_send(s, buf, (size_t)n, 0) < 0)
			die("nanomsg server", nn_strerror(nn_errno()));
	}
}

#endif

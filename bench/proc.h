/*
 * proc.h - what the benchmarks share: dying with a message that names the
 * program, children that serve until killed (and die with their parent),
 * and free loopback ports.
 */
#ifndef DISTREG_BENCH_PROC_H
#define DISTREG_BENCH_PROC_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The program's name in messages (each benchmark defines it). */
extern const char *bench_prog;

static inline void die(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s: %s\n", bench_prog, what, why);
	exit(1);
}

/* A child that runs fn(arg), then exits; killed when we die. */
static inline pid_t fork_child(void (*fn)(void *), void *arg)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		fn(arg);
		_exit(0);
	}
	return pid;
}

/* A TCP port on 127.0.0.1 that nobody listens on now. */
static inline int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0)
		die("a free port", strerror(errno));
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

static inline void stop_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

#endif

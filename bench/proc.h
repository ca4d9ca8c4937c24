/*
 * proc.h - what bench_call and bench_cluster share: dying with a message
 * that names the program, and children that serve until killed (and die
 * with their parent).
 */
#ifndef DISTREG_BENCH_PROC_H
#define DISTREG_BENCH_PROC_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

static inline void stop_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

#endif

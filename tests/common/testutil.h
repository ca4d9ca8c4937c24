/*
 * Helpers shared by the test suites. Every test uses segment names unique
 * to its process and call, so suites run in parallel and never touch a
 * user's real segment.
 */
#ifndef DR_TESTUTIL_H
#define DR_TESTUTIL_H

#include <stdio.h>
#include <unistd.h>

/* Write "t.<tag>.<pid>.<n>" into buf (at least 64 bytes) and return buf. */
static inline char *dr_test_segment(char *buf, size_t len, const char *tag)
{
	static unsigned counter;
	snprintf(buf, len, "t.%s.%d.%u", tag, (int)getpid(), counter++);
	return buf;
}

#endif

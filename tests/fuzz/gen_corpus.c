/*
 * gen_corpus.c - write the fuzzer's seed corpus: valid frames of every
 * type, unsealed and sealed with the fuzz target's fixed key, from the
 * smallest to the longest fields (sample_frame in wire_samples.h).
 *
 *     gen_corpus DIR [COUNT]
 *
 * COUNT frames (default 16) of each type and sealing, as
 * DIR/<type>-<plain|sealed>-<nn>. The sealed ones differ at every run (the
 * nonce is random); everything else is the same every time.
 * To regenerate the committed corpus:
 *
 *     ninja -C build tests/fuzz/gen_corpus
 *     rm -rf tests/fuzz/corpus/wire && mkdir tests/fuzz/corpus/wire && build/tests/fuzz/gen_corpus
 * tests/fuzz/corpus/wire
 */
#include <stdio.h>
#include <stdlib.h>

#include "wire.h"
#include "wire_samples.h"

int main(int argc, char **argv)
{
	static const char *const names[] = {[WIRE_HEARTBEAT] = "heartbeat",
					    [WIRE_LEAVE] = "leave",
					    [WIRE_BATCH] = "batch",
					    [WIRE_REPLY] = "reply"};
	static unsigned char buf[1 << 17];
	unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 16;
	unsigned written = 0;

	if (argc < 2 || count == 0 || count > 99) {
		fprintf(stderr, "usage: %s DIR [COUNT 1..99]\n", argv[0]);
		return 2;
	}
	for (int type = WIRE_HEARTBEAT; type <= WIRE_REPLY; type++)
		for (int sealed = 0; sealed < 2; sealed++)
			for (unsigned i = 0; i < count; i++) {
				char path[4096];
				long n = sample_frame(buf, sizeof(buf), (enum wire_type)type, i,
						      sealed ? &sample_key : NULL);
				FILE *f;

				if (n < 0) {
					fprintf(stderr, "%s %u: %ld\n", names[type], i, n);
					return 1;
				}
				snprintf(path, sizeof(path), "%s/%s-%s-%02u", argv[1], names[type],
					 sealed ? "sealed" : "plain", i);
				f = fopen(path, "wb");
				if (!f || fwrite(buf, 1, (size_t)n, f) != (size_t)n || fclose(f)) {
					perror(path);
					return 1;
				}
				written++;
			}
	printf("%u frames written to %s\n", written, argv[1]);
	return 0;
}

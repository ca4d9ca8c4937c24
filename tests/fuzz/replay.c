/*
 * replay.c - run files through the fuzz target without libFuzzer: the seed
 * corpus (and any crash file kept as a regression) in the ordinary unit
 * suite, built with gcc, and under ASan/UBSan in CI's sanitizer build.
 *
 *     fuzz_wire_replay [--valid] PATH...
 *
 * PATH is a file or a directory (its files, not recursively). With
 * --valid every file must also open as a frame, with or without the key:
 * a corpus that the format has left behind seeds the fuzzer with noise,
 * and that should fail a test rather than go unnoticed. Exit 0, or 1.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern unsigned long fuzz_wire_opened;

static bool valid;
static unsigned files, failed;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;
	unsigned long before = fuzz_wire_opened;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fprintf(stderr, "%s: cannot read\n", path);
		failed++;
		goto out;
	}
	/* Exactly n bytes on the heap, as libFuzzer hands them. */
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "%s: cannot read\n", path);
		failed++;
		goto out;
	}
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	files++;
	if (valid && fuzz_wire_opened == before) {
		fprintf(stderr, "%s: not a frame that opens (stale corpus?)\n", path);
		failed++;
	}
out:
	free(buf);
	if (f)
		fclose(f);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path)
{
	struct dirent **ents;
	struct stat st;
	int n;

	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	n = scandir(path, &ents, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "%s: cannot list\n", path);
		failed++;
		return;
	}
	for (int i = 0; i < n; i++) {
		char file[4096];

		if (ents[i]->d_name[0] != '.' && (size_t)snprintf(file, sizeof(file), "%s/%s", path,
								  ents[i]->d_name) < sizeof(file))
			run_file(file);
		free(ents[i]);
	}
	free(ents);
}

int main(int argc, char **argv)
{
	int i = 1;

	if (i < argc && strcmp(argv[i], "--valid") == 0) {
		valid = true;
		i++;
	}
	if (i == argc) {
		fprintf(stderr, "usage: %s [--valid] PATH...\n", argv[0]);
		return 2;
	}
	for (; i < argc; i++)
		run_path(argv[i]);
	printf("%u inputs run, %u failed\n", files, failed);
	if (files == 0) {
		fprintf(stderr, "no inputs found\n");
		return 1;
	}
	return failed ? 1 : 0;
}

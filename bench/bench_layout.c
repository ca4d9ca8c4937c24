/*
 * bench_layout.c - what the entry layout and the segment's pages cost:
 * distreg alone, one process, in one run, side by side:
 *
 *   compact   names of 19 bytes and values of 16: one cache line per entry
 *             (the case the layout is for, as in bench_compare);
 *   long      names of 29 bytes and values of 40: past the 24 and 16 bytes
 *             an entry holds inline, so the entry's extension is read too;
 *   longest   names of 127 bytes and values of 64, the limits;
 *
 * each with the segment in huge pages (the default, where the kernel gives
 * them) and in 4 KiB pages (DR_OPEN_NOHUGEPAGES), for whereis hits, misses
 * and register+unregister pairs, at 10 k and 1 M preloaded names. Prints
 * ns per operation (median of the repeats) and two ratios: each layout
 * against compact, and 4 KiB pages against huge pages.
 *
 *   bench_layout [--names LIST] [--seconds S] [--repeat N] [--short]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <distreg.h>

enum { K_COMPACT, K_LONG, K_LONGEST, NKIND };
static const char *const kind_names[NKIND] = { "compact", "long", "longest" };
static const unsigned name_len[NKIND] = { 19, 29, DR_NAME_MAX };
static const unsigned value_len[NKIND] = { 16, 40, DR_VALUE_MAX };

enum { W_HIT, W_MISS, W_CHURN, NW };
static const char *const w_names[NW] = { "whereis-hit", "whereis-miss", "reg+unreg" };

#define CHURN 4096u
#define MAXREP 15

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t draw(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Name i of a set, exactly len bytes: a distinct prefix, padded. */
static void make_name(char *buf, unsigned len, const char *set, uint32_t i)
{
	int n = snprintf(buf, len + 1, "%s/%08" PRIu32 "/", set, i);

	if (n < (int)len)
		memset(buf + n, 'x', len - (unsigned)n);
	buf[len] = 0;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_layout: %s: %s\n", what, dr_strerror(rc));
	exit(1);
}

struct names {
	char *hit, *miss, *churn; /* stride DR_NAME_MAX + 1 */
};

#define AT(p, i) ((p) + (size_t)(i) * (DR_NAME_MAX + 1))

/* One cell: ns per operation over at least `seconds`. */
static double run(dr_registry *r, const struct names *nm, uint32_t n, unsigned kind, unsigned w,
		  double seconds)
{
	unsigned char value[DR_VALUE_MAX];
	struct dr_entry e;
	uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)kind << 8 | w), ops = 0;
	double t0 = now(), t;

	memset(value, 'v', sizeof(value));
	do {
		for (int k = 0; k < 256; k++) {
			uint64_t x = draw(&s);
			uint32_t i = (uint32_t)(((x >> 32) * n) >> 32);
			int rc;

			if (w == W_HIT) {
				rc = dr_whereis(r, AT(nm->hit, i), &e);
			} else if (w == W_MISS) {
				rc = dr_whereis(r, AT(nm->miss, i), &e) == -ENOENT ? 0 : -EEXIST;
			} else {
				const char *c = AT(nm->churn, (x >> 32) & (CHURN - 1));

				rc = dr_register(r, c, value, value_len[kind]);
				if (rc == 0)
					rc = dr_unregister(r, c);
			}
			if (rc)
				die(w_names[w], rc);
		}
		ops += 256;
		t = now() - t0;
	} while (t < seconds);
	return t / (double)ops * 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "names", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "short", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t sizes[8] = { 10000, 1000000 };
	unsigned nsizes = 2, repeat = 3;
	double seconds = 0.5, res[8][NKIND][2][NW];
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': {
			char *p = optarg, *end;

			nsizes = 0;
			while (*p && nsizes < 8) {
				unsigned long v = strtoul(p, &end, 10);

				if (end == p || v == 0 || v > 10000000)
					goto usage;
				if (*end == 'k' || *end == 'M')
					v *= *end++ == 'k' ? 1000 : 1000000;
				sizes[nsizes++] = (uint32_t)v;
				p = *end == ',' ? end + 1 : end;
				if (*end && *end != ',')
					goto usage;
			}
			if (!nsizes)
				goto usage;
			break;
		}
		case 's':
			seconds = atof(optarg);
			if (!(seconds > 0 && seconds <= 60))
				goto usage;
			break;
		case 'r':
			repeat = (unsigned)atoi(optarg);
			if (repeat < 1 || repeat > MAXREP)
				goto usage;
			break;
		case 'S':
			sizes[0] = 10000;
			nsizes = 1;
			seconds = 0.1;
			repeat = 1;
			break;
		case 'h':
			printf("usage: bench_layout [--names LIST] [--seconds S] [--repeat N] [--short]\n"
			       "distreg alone: compact, long and longest names and values, in huge\n"
			       "and in 4 KiB pages; whereis hits, misses, register+unregister.\n");
			return 0;
		default:
		usage:
			fprintf(stderr, "usage: bench_layout [--names LIST] [--seconds S] "
					"[--repeat N (1-%d)] [--short]\n", MAXREP);
			return 2;
		}
	}
	if (optind != argc)
		goto usage;

	printf("bench_layout: distreg, one process; names/values: compact %u/%u B, "
	       "long %u/%u B, longest %u/%u B\n", name_len[0], value_len[0], name_len[1],
	       value_len[1], name_len[2], value_len[2]);
	printf("%.2f s per cell, median of %u\n\n", seconds, repeat);
	for (unsigned si = 0; si < nsizes; si++) {
		uint32_t n = sizes[si];
		struct names nm;

		nm.hit = malloc((size_t)n * (DR_NAME_MAX + 1));
		nm.miss = malloc((size_t)n * (DR_NAME_MAX + 1));
		nm.churn = malloc((size_t)CHURN * (DR_NAME_MAX + 1));
		if (!nm.hit || !nm.miss || !nm.churn)
			die("malloc", -ENOMEM);
		for (unsigned kind = 0; kind < NKIND; kind++) {
			for (uint32_t i = 0; i < n; i++) {
				make_name(AT(nm.hit, i), name_len[kind], "svc/worker", i);
				make_name(AT(nm.miss, i), name_len[kind], "svc/absent", i);
			}
			for (uint32_t i = 0; i < CHURN; i++)
				make_name(AT(nm.churn, i), name_len[kind], "svc/churn", i);
			/* Both segments first, then their cells alternately:
			 * on a VM whose host maps guest memory on first touch,
			 * whichever segment runs first pays for it. */
			dr_registry *r[2];
			char segs[2][64];
			unsigned char value[DR_VALUE_MAX];

			memset(value, 'v', sizeof(value));
			for (unsigned pages = 0; pages < 2; pages++) {
				struct dr_options o = {
					.segment = segs[pages],
					.capacity = n + n / 4 + 4096,
					.flags = pages ? DR_OPEN_NOHUGEPAGES : 0,
				};
				int rc;

				snprintf(segs[pages], sizeof(segs[pages]), "bench.layout.%d.%u",
					 (int)getpid(), pages);
				rc = dr_open(&o, &r[pages]);
				if (rc)
					die("dr_open", rc);
				for (uint32_t i = 0; i < n; i++) {
					rc = dr_register(r[pages], AT(nm.hit, i), value, value_len[kind]);
					if (rc)
						die("preload", rc);
				}
			}
			for (unsigned w = 0; w < NW; w++) {
				double v[2][MAXREP];

				for (unsigned k = 0; k < repeat; k++)
					for (unsigned pages = 0; pages < 2; pages++)
						v[pages][k] = run(r[pages], &nm, n, kind, w, seconds);
				for (unsigned pages = 0; pages < 2; pages++) {
					qsort(v[pages], repeat, sizeof(v[0][0]), cmp_double);
					res[si][kind][pages][w] = v[pages][repeat / 2];
				}
			}
			for (unsigned pages = 0; pages < 2; pages++) {
				dr_close(r[pages]);
				dr_unlink(segs[pages]);
			}
		}
		free(nm.hit);
		free(nm.miss);
		free(nm.churn);
	}

	printf("%-13s %8s %-8s %11s %11s %9s %9s\n", "workload", "names", "layout", "huge ns/op",
	       "4KiB ns/op", "vs compact", "4KiB/huge");
	for (unsigned w = 0; w < NW; w++) {
		for (unsigned si = 0; si < nsizes; si++) {
			for (unsigned kind = 0; kind < NKIND; kind++) {
				double h = res[si][kind][0][w], p = res[si][kind][1][w];

				printf("%-13s %8" PRIu32 " %-8s %11.1f %11.1f %9.2f %9.2f\n", w_names[w],
				       sizes[si], kind_names[kind], h, p, h / res[si][0][0][w], p / h);
			}
		}
	}
	printf("\nvs compact: this layout's ns/op over compact's (huge pages); "
	       "4KiB/huge: the cost of 4 KiB pages.\nSegments under 8 MiB are never in huge "
	       "pages: at 10 k names both columns measure the same thing.\n");
	return 0;
}

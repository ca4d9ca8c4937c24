/*
 * test_segment.c - lib/segment.c: naming, creating, attaching to, validating
 * and removing segments.
 */
#include "unit.h"

TestSuite(segment, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

static int file_mode(const char *segment)
{
	struct stat st;

	cr_assert_eq(stat(seg_path(segment), &st), 0, "stat %s: %s",
		     seg_path(segment), strerror(errno));
	return (int)(st.st_mode & 07777);
}

static int file_exists(const char *segment)
{
	return access(seg_path(segment), F_OK) == 0;
}

/* Write len bytes of buf (NULL: zeros) as /dev/shm/distreg.<segment>. */
static void write_segment_file(const char *segment, const void *buf, size_t len)
{
	int fd = open(seg_path(segment), O_RDWR | O_CREAT | O_EXCL, 0600);

	cr_assert_geq(fd, 0, "create %s: %s", seg_path(segment), strerror(errno));
	if (buf) {
		const char *p = buf;
		size_t done = 0;
		while (done < len) {
			ssize_t n = write(fd, p + done, len - done);
			cr_assert_gt(n, 0, "write: %s", strerror(errno));
			done += (size_t)n;
		}
	} else {
		cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	}
	close(fd);
}

static int open_foreign(const char *segment)
{
	dr_registry *r = NULL;
	int rc = seg_open_opts(segment, 64, &r);

	if (rc == 0)
		dr_close(r);
	return rc;
}

/* Overwrite 8 bytes at off of a segment file with their complement. */
static void flip_word(const char *segment, off_t off)
{
	unsigned char b[8];
	int fd = open(seg_path(segment), O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, b, sizeof(b), off), (ssize_t)sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] ^= 0xff;
	cr_assert_eq(pwrite(fd, b, sizeof(b), off), (ssize_t)sizeof(b));
	close(fd);
}

/* A valid segment with one name, closed again (the file stays). */
static void make_valid_segment(const char *segment)
{
	dr_registry *r = seg_open(segment, 64);

	cr_assert_eq(dr_register(r, "name", "v", 1), 0);
	dr_close(r);
	cr_assert(file_exists(segment));
}

Test(segment, create_then_attach_sees_same_names)
{
	const char *seg = seg_new("seg");
	struct dr_entry e;
	struct dr_stats st;

	cr_assert_not(file_exists(seg));
	dr_registry *r1 = seg_open(seg, 64);
	cr_assert(file_exists(seg), "dr_open did not create %s", seg_path(seg));
	dr_registry *r2 = seg_open(seg, 64);

	cr_assert_eq(dr_register(r1, "svc", "addr", 4), 0);
	cr_assert_eq(dr_whereis(r2, "svc", &e), 0);
	cr_assert_eq(e.value_len, 4);
	cr_assert_arr_eq(e.value, "addr", 4);
	cr_assert_eq(dr_stats(r2, &st), 0);
	cr_assert_eq(st.procs, 2);
	cr_assert_eq(st.live, 1);

	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, nocreate_on_missing_segment_is_enoent)
{
	const char *seg = seg_new("seg");
	struct dr_options o = { .segment = seg, .flags = DR_OPEN_NOCREATE };
	dr_registry *r = NULL;

	cr_assert_eq(dr_open(&o, &r), -ENOENT);
	cr_assert_not(file_exists(seg), "NOCREATE created %s", seg_path(seg));
	cr_assert_eq(dr_unlink(seg), -ENOENT);
}

Test(segment, nocreate_attaches_existing_segment)
{
	const char *seg = seg_new("seg");
	struct dr_options o = { .segment = seg, .flags = DR_OPEN_NOCREATE };
	dr_registry *r1 = seg_open(seg, 64), *r2 = NULL;

	cr_assert_eq(dr_register(r1, "svc", "x", 1), 0);
	cr_assert_eq(dr_open(&o, &r2), 0);
	cr_assert_eq(dr_whereis(r2, "svc", NULL), 0);
	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, null_opts_uses_env_segment_and_defaults)
{
	const char *seg = seg_new("env");
	dr_registry *r = NULL;
	struct dr_stats st;

	cr_assert_eq(setenv("DISTREG_SEGMENT", seg, 1), 0);
	cr_assert_eq(dr_open(NULL, &r), 0);
	cr_assert_str_eq(dr_segment_name(r), seg);
	cr_assert(file_exists(seg), "DISTREG_SEGMENT not honoured");
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.capacity, DR_DEFAULT_CAPACITY);
	cr_assert_eq(st.max_procs, DR_DEFAULT_MAX_PROCS);
	cr_assert_eq(st.max_threads, DR_DEFAULT_MAX_THREADS);
	cr_assert_eq(file_mode(seg), 0600);
	dr_close(r);
	/* dr_unlink(NULL) means the same default segment. */
	cr_assert_eq(dr_unlink(NULL), 0);
	cr_assert_not(file_exists(seg));
}

Test(segment, zeroed_opts_with_null_segment_uses_env_segment)
{
	const char *seg = seg_new("env");
	struct dr_options o = { .capacity = 64, .max_procs = UNIT_MAX_PROCS,
				.max_threads = UNIT_MAX_THREADS };
	dr_registry *r = NULL;

	cr_assert_eq(setenv("DISTREG_SEGMENT", seg, 1), 0);
	cr_assert_eq(dr_open(&o, &r), 0);
	cr_assert_str_eq(dr_segment_name(r), seg);
	cr_assert(file_exists(seg));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, empty_segment_name_is_einval)
{
	dr_registry *r = NULL;

	cr_assert_eq(seg_open_opts("", 64, &r), -EINVAL);
	cr_assert_eq(dr_unlink(""), -EINVAL);
}

Test(segment, segment_name_with_slash_is_einval)
{
	char name[128];
	dr_registry *r = NULL;

	snprintf(name, sizeof(name), "%s/x", seg_new("slash"));
	cr_assert_eq(seg_open_opts(name, 64, &r), -EINVAL);
	cr_assert_eq(seg_open_opts("/", 64, &r), -EINVAL);
	cr_assert_eq(seg_open_opts("../etc", 64, &r), -EINVAL);
	cr_assert_eq(dr_unlink(name), -EINVAL);
}

Test(segment, segment_name_longer_than_max_is_einval)
{
	char name[DR_SEGMENT_MAX + 2];
	dr_registry *r = NULL;

	dr_test_segment(name, sizeof(name), "long");
	memset(name + strlen(name), 'x', sizeof(name) - 1 - strlen(name));
	name[DR_SEGMENT_MAX + 1] = 0;
	cr_assert_eq(strlen(name), DR_SEGMENT_MAX + 1);
	cr_assert_eq(seg_open_opts(name, 64, &r), -EINVAL);
	cr_assert_eq(dr_unlink(name), -EINVAL);
}

Test(segment, segment_name_of_max_length_is_accepted)
{
	char *name = dr_test_seg_new("max");
	dr_registry *r = NULL;

	cr_assert_not_null(name);
	memset(name + strlen(name), 'x', DR_SEGMENT_MAX - strlen(name));
	name[DR_SEGMENT_MAX] = 0;
	cr_assert_eq(strlen(name), DR_SEGMENT_MAX);
	r = seg_open(name, 64);
	cr_assert_str_eq(dr_segment_name(r), name);
	cr_assert_eq(dr_register(r, "a", NULL, 0), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(name), 0);
}

static void expect_bad_options(struct dr_options o, const char *what)
{
	const char *seg = seg_new("opt");
	dr_registry *r = NULL;

	o.segment = seg;
	cr_assert_eq(dr_open(&o, &r), -EINVAL, "%s", what);
	cr_assert_not(file_exists(seg), "%s: rejected open created the segment", what);
}

Test(segment, capacity_above_limit_is_einval)
{
	expect_bad_options((struct dr_options){ .capacity = (1u << 26) + 1 }, "1<<26 + 1");
	expect_bad_options((struct dr_options){ .capacity = UINT32_MAX }, "UINT32_MAX");
}

Test(segment, max_procs_above_limit_is_einval)
{
	expect_bad_options((struct dr_options){ .capacity = 64, .max_procs = 65536 }, "65536");
	expect_bad_options((struct dr_options){ .capacity = 64, .max_procs = UINT32_MAX }, "UINT32_MAX");
}

Test(segment, max_threads_above_limit_is_einval)
{
	expect_bad_options((struct dr_options){ .capacity = 64, .max_threads = (1u << 20) + 1 }, "1<<20 + 1");
}

Test(segment, mode_bits_outside_0777_are_einval)
{
	const uint32_t bad[] = { 01000, 02000, 04000, 010000, 01660, 0100600 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[32];
		snprintf(what, sizeof(what), "mode %#o", (unsigned)bad[i]);
		expect_bad_options((struct dr_options){ .capacity = 64, .mode = bad[i] }, what);
	}
}

Test(segment, unknown_flags_are_einval)
{
	expect_bad_options((struct dr_options){ .capacity = 64, .flags = 1u << 31 }, "flag 1<<31");
}

Test(segment, default_mode_is_0600)
{
	const char *seg = seg_new("mode");
	dr_registry *r;

	umask(0);
	r = seg_open(seg, 64);
	cr_assert_eq(file_mode(seg), 0600, "mode %#o", file_mode(seg));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, mode_0660_is_used_when_asked)
{
	const char *seg = seg_new("mode");
	struct dr_options o = { .segment = seg, .capacity = 64, .max_procs = UNIT_MAX_PROCS,
				.max_threads = UNIT_MAX_THREADS, .mode = 0660 };
	dr_registry *r = NULL;

	umask(022); /* the usual umask must not narrow the asked-for mode */
	cr_assert_eq(dr_open(&o, &r), 0);
	cr_assert_eq(file_mode(seg), 0660, "mode %#o", file_mode(seg));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, unlink_removes_name_and_open_handles_keep_working)
{
	const char *seg = seg_new("unlink");
	struct dr_options o = { .segment = seg, .flags = DR_OPEN_NOCREATE };
	dr_registry *r = seg_open(seg, 64), *r2 = NULL;

	cr_assert_eq(dr_register(r, "before", "1", 1), 0);
	cr_assert_eq(dr_unlink(seg), 0);
	cr_assert_not(file_exists(seg));
	cr_assert_eq(dr_unlink(seg), -ENOENT);
	cr_assert_eq(dr_open(&o, &r2), -ENOENT);

	/* The handle still has the (now nameless) segment mapped. */
	cr_assert_eq(dr_register(r, "after", "2", 1), 0);
	cr_assert_eq(dr_whereis(r, "before", NULL), 0);
	cr_assert_eq(dr_whereis(r, "after", NULL), 0);

	/* The next dr_open() creates a new, empty segment. */
	r2 = seg_open(seg, 64);
	cr_assert_eq(dr_whereis(r2, "before", NULL), -ENOENT);
	dr_close(r2);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, existing_segment_keeps_its_geometry)
{
	const char *seg = seg_new("geom");
	struct dr_options o1 = { .segment = seg, .capacity = 64, .max_procs = 16,
				 .max_threads = 128 };
	struct dr_options o2 = { .segment = seg, .capacity = 256, .max_procs = 32,
				 .max_threads = 512, .mode = 0666 };
	dr_registry *r1 = NULL, *r2 = NULL;
	struct dr_stats st;

	cr_assert_eq(dr_open(&o1, &r1), 0);
	cr_assert_eq(dr_open(&o2, &r2), 0);
	cr_assert_eq(dr_stats(r2, &st), 0);
	cr_assert_eq(st.capacity, 64);
	cr_assert_eq(st.max_procs, 16);
	cr_assert_eq(st.max_threads, 128);
	cr_assert_eq(file_mode(seg), 0600);
	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* Foreign files: never accepted, never a crash. */

Test(segment, empty_file_is_refused)
{
	const char *seg = seg_new("foreign");
	int rc;

	write_segment_file(seg, NULL, 0);
	rc = open_foreign(seg);
	cr_assert(rc == -EBADMSG || rc == -EPROTO, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, file_of_100_garbage_bytes_is_refused)
{
	const char *seg = seg_new("foreign");
	char buf[100];
	int rc;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 37 + 11);
	write_segment_file(seg, buf, sizeof(buf));
	rc = open_foreign(seg);
	cr_assert(rc == -EBADMSG || rc == -EPROTO, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, file_of_1mib_zeros_is_refused)
{
	const char *seg = seg_new("foreign");
	int rc;

	write_segment_file(seg, NULL, 1 << 20);
	rc = open_foreign(seg);
	cr_assert(rc == -EBADMSG || rc == -EPROTO, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, file_of_1mib_random_is_refused)
{
	const char *seg = seg_new("foreign");
	size_t len = 1 << 20;
	unsigned char *buf = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	int rc;

	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 24);
	}
	write_segment_file(seg, buf, len);
	free(buf);
	rc = open_foreign(seg);
	cr_assert(rc == -EBADMSG || rc == -EPROTO, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, segment_truncated_to_half_is_ebadmsg)
{
	const char *seg = seg_new("trunc");
	struct stat st;
	int rc;

	make_valid_segment(seg);
	cr_assert_eq(stat(seg_path(seg), &st), 0);
	cr_assert_eq(truncate(seg_path(seg), st.st_size / 2), 0);
	rc = open_foreign(seg);
	cr_assert_eq(rc, -EBADMSG, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, segment_with_flipped_magic_is_ebadmsg)
{
	const char *seg = seg_new("magic");
	int rc;

	make_valid_segment(seg);
	flip_word(seg, 0);
	rc = open_foreign(seg);
	cr_assert_eq(rc, -EBADMSG, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, segment_with_other_format_word_is_eproto)
{
	const char *seg = seg_new("format");
	int rc;

	make_valid_segment(seg);
	flip_word(seg, 8);
	rc = open_foreign(seg);
	cr_assert_eq(rc, -EPROTO, "dr_open gave %d (%s)", rc, dr_strerror(rc));
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(segment, invalid_env_segment_is_einval)
{
	dr_registry *r = NULL;

	cr_assert_eq(setenv("DISTREG_SEGMENT", "bad/name", 1), 0);
	cr_assert_eq(dr_open(NULL, &r), -EINVAL);
	cr_assert_eq(dr_unlink(NULL), -EINVAL);
}

static dr_registry *open_procs(const char *seg, uint32_t max_procs, int *rc)
{
	struct dr_options o = { .segment = seg, .capacity = 64, .max_procs = max_procs,
				.max_threads = UNIT_MAX_THREADS };
	dr_registry *r = NULL;

	*rc = dr_open(&o, &r);
	return r;
}

Test(segment, open_with_all_process_slots_live_is_eusers)
{
	const char *seg = seg_new("procs");
	dr_registry *r1, *r2, *r3;
	int rc;

	r1 = open_procs(seg, 2, &rc);
	cr_assert_eq(rc, 0);
	r2 = open_procs(seg, 2, &rc);
	cr_assert_eq(rc, 0);
	r3 = open_procs(seg, 2, &rc);
	cr_assert_eq(rc, -EUSERS, "third open of a 2-process segment: %s", dr_strerror(rc));
	dr_close(r2);
	r3 = open_procs(seg, 2, &rc);
	cr_assert_eq(rc, 0, "after a close freed a slot: %s", dr_strerror(rc));
	dr_close(r3);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

static int child_attach_and_die(void *p)
{
	const char *seg = p;
	int rc;

	if (!open_procs(seg, 2, &rc))
		return 1;
	return 0; /* exits holding the slot, without dr_close() */
}

Test(segment, process_slot_of_dead_process_is_reused)
{
	const char *seg = seg_new("procs");
	dr_registry *r1, *r2;
	int rc;

	r1 = open_procs(seg, 2, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_eq(wait_child(spawn(child_attach_and_die, (void *)seg)), 0);
	r2 = open_procs(seg, 2, &rc);
	cr_assert_eq(rc, 0, "the dead child's slot was not reused: %s", dr_strerror(rc));
	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

#define NCREATORS 8

struct creator_arg {
	const char *seg;
	int go_r, go_w;     /* all start when go_r reaches end of file */
	int ready_w;        /* one byte per creator once registered */
	int hold_r, hold_w; /* creators leave when hold_r reaches end of file */
	int id;
};

static int child_creator(void *p)
{
	struct creator_arg *a = p;
	dr_registry *r = NULL;
	char name[16], c;

	close(a->go_w);
	close(a->hold_w);
	while (read_byte(a->go_r, &c) > 0)
		;
	if (seg_open_opts(a->seg, 64, &r) != 0)
		return 1;
	snprintf(name, sizeof(name), "c%d", a->id);
	if (dr_register(r, name, NULL, 0) != 0)
		return 2;
	if (write_byte(a->ready_w, 'r') != 0)
		return 3;
	while (read_byte(a->hold_r, &c) > 0)
		;
	dr_close(r);
	return 0;
}

Test(segment, concurrent_creators_all_attach_to_one_segment)
{
	const char *seg = seg_new("race");
	struct dr_options o = { .segment = seg, .flags = DR_OPEN_NOCREATE };
	struct creator_arg a[NCREATORS];
	int go[2], ready[2], hold[2];
	pid_t pid[NCREATORS];
	dr_registry *r = NULL;
	char name[16], c;

	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(hold), 0);
	for (int i = 0; i < NCREATORS; i++) {
		a[i] = (struct creator_arg){ seg, go[0], go[1], ready[1], hold[0], hold[1], i };
		pid[i] = spawn(child_creator, &a[i]);
	}
	close(ready[1]);
	close(go[1]); /* go */
	for (int i = 0; i < NCREATORS; i++)
		cr_assert_eq(read_byte(ready[0], &c), 1, "a creator failed");
	cr_assert_eq(dr_open(&o, &r), 0);
	for (int i = 0; i < NCREATORS; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		cr_assert_eq(dr_whereis(r, name, NULL), 0, "%s is on another segment", name);
	}
	close(hold[1]);
	for (int i = 0; i < NCREATORS; i++)
		cr_assert_eq(wait_child(pid[i]), 0, "creator %d", i);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
	close(go[0]);
	close(ready[0]);
	close(hold[0]);
}

/* Register three names and exit without dr_close(): they are left dead. */
static int child_register_and_exit(void *p)
{
	dr_registry *r = NULL;

	if (seg_open_opts(p, 64, &r) != 0)
		return 1;
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "left.%d", i);
		if (dr_register(r, name, "x", 1) != 0)
			return 2;
	}
	return 0;
}

Test(segment, noreap_open_leaves_dead_names_and_plain_open_reaps_them)
{
	const char *seg = seg_new("noreap");
	struct dr_options o = {
		.segment = seg,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.flags = DR_OPEN_NOCREATE | DR_OPEN_NOREAP,
	};
	dr_registry *keep = seg_open(seg, 64), *look = NULL, *plain;
	struct dr_stats st;

	cr_assert_eq(wait_child(spawn(child_register_and_exit, (void *)seg)), 0);
	cr_assert_eq(dr_open(&o, &look), 0);
	cr_assert_eq(dr_stats(look, &st), 0);
	cr_assert_eq(st.dead, 3, "NOREAP open: %u dead names", st.dead);
	cr_assert_eq(dr_whereis(look, "left.0", NULL), 0);

	plain = seg_open(seg, 64);
	cr_assert_eq(dr_stats(look, &st), 0);
	cr_assert_eq(st.dead, 0, "plain open left %u dead names", st.dead);
	cr_assert_eq(dr_whereis(look, "left.0", NULL), -ENOENT);
	dr_close(plain);
	dr_close(look);
	dr_close(keep);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* dr_segment_name_error() names the rule a bad segment name breaks, with
 * the limit as a number. */
Test(segment, segment_name_error_names_the_rule)
{
	char longname[DR_SEGMENT_MAX + 2];
	const char *m;

	cr_assert_null(dr_segment_name_error("ok.name-1"));
	memset(longname, 'x', DR_SEGMENT_MAX);
	longname[DR_SEGMENT_MAX] = 0;
	cr_assert_null(dr_segment_name_error(longname));

	m = dr_segment_name_error("");
	cr_assert_not_null(m);
	cr_assert(strstr(m, "1 to 200 bytes"), "%s", m);
	longname[DR_SEGMENT_MAX] = 'x';
	longname[DR_SEGMENT_MAX + 1] = 0;
	m = dr_segment_name_error(longname);
	cr_assert_not_null(m);
	cr_assert(strstr(m, "1 to 200 bytes"), "%s", m);
	m = dr_segment_name_error("a/b");
	cr_assert_not_null(m);
	cr_assert(strstr(m, "no '/' in a segment name"), "%s", m);
	m = dr_segment_name_error("..");
	cr_assert_not_null(m);
	cr_assert(strstr(m, "'.' and '..' are not segment names"), "%s", m);
	cr_assert_str_eq(dr_segment_name_error("."), m);
	/* NULL resolves as dr_open() resolves it. */
	cr_assert_eq(setenv("DISTREG_SEGMENT", "x/y", 1), 0);
	m = dr_segment_name_error(NULL);
	cr_assert_not_null(m);
	cr_assert(strstr(m, "'/'"), "%s", m);
	cr_assert_eq(unsetenv("DISTREG_SEGMENT"), 0);
	cr_assert_null(dr_segment_name_error(NULL));
}

/* A symbolic link at the segment's path is not followed, and the error
 * says that segments must be regular files. */
Test(segment, symlink_at_segment_path_says_regular_file)
{
	const char *seg = seg_new("link");
	const char *target = seg_new("target");
	char path[DR_SEGMENT_MAX + 64], tpath[DR_SEGMENT_MAX + 64];
	dr_registry *r = NULL;

	snprintf(path, sizeof(path), "%s", dr_test_seg_path(seg));
	snprintf(tpath, sizeof(tpath), "%s", dr_test_seg_path(target));
	cr_assert_eq(symlink(tpath, path), 0, "symlink: %s", strerror(errno));
	cr_assert_eq(seg_open_opts(seg, 64, &r), -ELOOP);
	cr_assert_null(r);
	cr_assert(strstr(dr_strerror(-ELOOP), "must be regular files"), "%s",
		  dr_strerror(-ELOOP));
	cr_assert_not(file_exists(target), "the link was followed");
	cr_assert_eq(unlink(path), 0);
}

/* A /dev/shm too small for the segment fails with -EDQUOT (never the
 * table's -ENOSPC), and the message says /dev/shm. */
#include <sys/statvfs.h>
Test(segment, full_dev_shm_is_edquot_not_enospc)
{
	const char *seg = seg_new("big");
	struct statvfs sv;
	dr_registry *r = NULL;
	uint64_t total, lanes;

	cr_assert_eq(statvfs("/dev/shm", &sv), 0);
	total = (uint64_t)sv.f_blocks * sv.f_frsize;
	if (total == 0)
		cr_skip_test("/dev/shm has no size limit");
	/* Lanes of 1 GiB: more than the whole file system, so fallocate
	 * fails at once, before it allocates anything. */
	lanes = total / (1u << 30) + 2;
	if (lanes > 65535)
		cr_skip_test("/dev/shm is too large to overflow");
	struct dr_options o = { .segment = seg, .capacity = 64, .max_procs = UNIT_MAX_PROCS,
				.max_threads = UNIT_MAX_THREADS, .max_mailboxes = 1,
				.max_lanes = (uint32_t)lanes, .lane_bytes = 1u << 30 };
	int err = dr_open(&o, &r);
	cr_assert_eq(err, -EDQUOT, "dr_open: %d %s", err, dr_strerror(err));
	cr_assert_null(r);
	cr_assert_not(file_exists(seg));
	cr_assert(strstr(dr_strerror(err), "/dev/shm"), "%s", dr_strerror(err));
	cr_assert_null(strstr(dr_strerror(-ENOSPC), "/dev/shm"), "%s", dr_strerror(-ENOSPC));
	cr_assert_str_neq(dr_strerror(-ENOSPC), dr_strerror(-EDQUOT));
}

/* The tests' own hygiene (testutil.h): a child a failed test left running,
 * which opens its segment again and again, must not create it anew after
 * the .fini removed it, nor outlive the removal. */
static int reopener(void *arg)
{
	const char *name = arg;

	for (;;) {
		dr_registry *r = NULL;

		if (seg_open_opts(name, 64, &r) == 0)
			dr_close(r);
	}
	return 0;
}

Test(segment, test_fini_kills_running_children_before_removing_segments)
{
	const char *name = seg_new("fini");
	char path[DR_SEGMENT_MAX + 64];
	pid_t pid = spawn(reopener, (void *)name);
	struct stat st;

	snprintf(path, sizeof(path), "%s", seg_path(name));
	for (int i = 0; i < 5000 && stat(path, &st) != 0; i++)
		usleep(1000);
	cr_assert_eq(stat(path, &st), 0, "the child never created %s", path);
	dr_test_segs_unlink();
	cr_assert_eq(kill(pid, 0), -1, "the child still runs");
	cr_assert_eq(errno, ESRCH);
	usleep(20000);
	cr_assert_neq(stat(path, &st), 0, "%s is back after its removal", path);
}

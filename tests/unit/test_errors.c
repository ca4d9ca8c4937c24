/*
 * test_errors.c - lib/errors.c: dr_strerror().
 */
#include "unit.h"

TestSuite(errors, .timeout = UNIT_TIMEOUT);

/* Every code distreg.h documents for some function. */
static const int documented[] = {
	-EEXIST, -ENOENT, -EPERM, -ENOSPC, -EBUSY, -ENAMETOOLONG, -EMSGSIZE,
	-EINVAL, -EPROTO, -EBADMSG, -EUSERS, -ECHILD, -EACCES, -ENOMEM, -EMFILE,
	-EDESTADDRREQ, -EOWNERDEAD, -EAGAIN, -ETIMEDOUT, -ENOLCK,
	-ENOTCONN, -EHOSTUNREACH, -EREMOTE, -ERANGE, -EROFS, -EDQUOT, -ELOOP, -ESRCH, -ECANCELED,
};
#define NDOC (sizeof(documented) / sizeof(documented[0]))

Test(errors, documented_codes_have_distinct_messages)
{
	for (size_t i = 0; i < NDOC; i++) {
		const char *m = dr_strerror(documented[i]);
		cr_assert_not_null(m, "code %d", documented[i]);
		cr_assert_gt(strlen(m), 0, "code %d", documented[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(m, dr_strerror(documented[j]),
					  "codes %d and %d share \"%s\"", documented[i],
					  documented[j], m);
	}
}

Test(errors, success_has_its_own_message)
{
	const char *m = dr_strerror(0);

	cr_assert_not_null(m);
	cr_assert_gt(strlen(m), 0);
	for (size_t i = 0; i < NDOC; i++)
		cr_assert_str_neq(m, dr_strerror(documented[i]), "0 reads as code %d", documented[i]);
}

/* The cluster's codes say what to do about them. */
Test(errors, cluster_codes_name_their_cause)
{
	cr_assert(strstr(dr_strerror(-ENOTCONN), "no bridge runs on this host"));
	cr_assert(strstr(dr_strerror(-EREMOTE), "owned by another host"));
	cr_assert(strstr(dr_strerror(-EREMOTE), "dr_owner()"));
	cr_assert(strstr(dr_strerror(-EHOSTUNREACH), "cannot be reached"));
}

Test(errors, unknown_codes_get_a_message)
{
	const int unknown[] = { -100000, -4096, INT32_MIN, 1, EEXIST, 100000, INT32_MAX };

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const char *m = dr_strerror(unknown[i]);
		cr_assert_not_null(m, "code %d", unknown[i]);
		cr_assert_gt(strlen(m), 0, "code %d", unknown[i]);
		cr_assert_str_neq(m, dr_strerror(0), "code %d reads as success", unknown[i]);
	}
}

Test(errors, any_negative_errno_gets_a_message)
{
	for (int e = 1; e < 134; e++) {
		const char *m = dr_strerror(-e);
		cr_assert_not_null(m, "code %d", -e);
		cr_assert_gt(strlen(m), 0, "code %d", -e);
	}
}

/* A full table and a full /dev/shm read differently, and each says which. */
Test(errors, full_table_and_full_dev_shm_differ)
{
	cr_assert(strstr(dr_strerror(-ENOSPC), "table is full"), "%s", dr_strerror(-ENOSPC));
	cr_assert_null(strstr(dr_strerror(-ENOSPC), "/dev/shm"), "%s", dr_strerror(-ENOSPC));
	cr_assert(strstr(dr_strerror(-EDQUOT), "no space left in /dev/shm"), "%s",
		  dr_strerror(-EDQUOT));
}

/* Limits read as numbers, never as the macros' names. */
Test(errors, limits_are_numbers)
{
	char want[64];

	snprintf(want, sizeof(want), "longer than %d bytes", DR_NAME_MAX);
	cr_assert(strstr(dr_strerror(-ENAMETOOLONG), want), "%s", dr_strerror(-ENAMETOOLONG));
	snprintf(want, sizeof(want), "longer than %d bytes", DR_VALUE_MAX);
	cr_assert(strstr(dr_strerror(-EMSGSIZE), want), "%s", dr_strerror(-EMSGSIZE));
	for (int e = 1; e < 134; e++)
		cr_assert_null(strstr(dr_strerror(-e), "DR_"), "code %d: %s", -e, dr_strerror(-e));
}

/*
 * cmp_lmdb.c - LMDB as the registry: the name is the key, the 16-byte
 * value the data, in the unnamed database of an env in /dev/shm opened
 * with MDB_NOSYNC | MDB_NOMETASYNC (nothing is flushed: tmpfs has no disk
 * anyway), with or without MDB_WRITEMAP.
 *
 * Every process opens its own env after fork (LMDB forbids using one
 * across fork). One operation is one transaction, as a registry that
 * answers one request at a time would do it:
 *   lookup      mdb_txn_renew + mdb_get + copy the value + mdb_txn_reset, on
 *               a read transaction made once per process;
 *   register    mdb_txn_begin + mdb_put(MDB_NOOVERWRITE) + mdb_txn_commit;
 *   unregister  mdb_txn_begin + mdb_del + mdb_txn_commit.
 * Writers serialise on LMDB's writer mutex, across processes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "compare.h"

/* Names are preloaded this many per write transaction. */
#define PRELOAD_TXN 20000u

struct lmdb_worker {
	struct kv_worker kv;
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *rd;   /* the read transaction, reset between lookups */
};

const char *lmdb_version(void)
{
	return mdb_version(NULL, NULL, NULL);
}

static int lmdb_failed(struct kv_worker *w, const char *call, const struct bname *n, int rc)
{
	return kv_error(w, "%s(%.*s): %s", call, n->len, n->s, mdb_strerror(rc));
}

static int lm_lookup(struct kv_worker *w, const struct bname *n, bool present)
{
	struct lmdb_worker *lw = (struct lmdb_worker *)w;
	MDB_val key = { n->len, (void *)n->s }, data;
	unsigned char out[VALUE_LEN];
	int rc = mdb_txn_renew(lw->rd), found;

	if (rc)
		return lmdb_failed(w, "mdb_txn_renew", n, rc);
	rc = mdb_get(lw->rd, lw->dbi, &key, &data);
	found = rc == 0;
	if (found) {
		size_t len = data.mv_size < VALUE_LEN ? data.mv_size : VALUE_LEN;

		memcpy(out, data.mv_data, len);
		__asm__ volatile("" : : "r"(out) : "memory");
		w->sink += data.mv_size;
	}
	mdb_txn_reset(lw->rd);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_failed(w, "mdb_get", n, rc);
	if (found != present)
		return kv_error(w, "lookup of %.*s: %s", n->len, n->s,
				present ? "not found" : "found a name that should be absent");
	return 0;
}

/* One write transaction: put (if absent) or delete one name. */
static int lm_write(struct kv_worker *w, const struct bname *n, bool put)
{
	struct lmdb_worker *lw = (struct lmdb_worker *)w;
	MDB_val key = { n->len, (void *)n->s }, data = { VALUE_LEN, value_bytes };
	MDB_txn *txn;
	int rc = mdb_txn_begin(lw->env, NULL, 0, &txn);

	if (rc)
		return lmdb_failed(w, "mdb_txn_begin", n, rc);
	rc = put ? mdb_put(txn, lw->dbi, &key, &data, MDB_NOOVERWRITE)
		 : mdb_del(txn, lw->dbi, &key, NULL);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_failed(w, put ? "mdb_put" : "mdb_del", n, rc);
	}
	rc = mdb_txn_commit(txn);
	return rc ? lmdb_failed(w, "mdb_txn_commit", n, rc) : 0;
}

static int lm_insert(struct kv_worker *w, const struct bname *n)
{
	return lm_write(w, n, true);
}

static int lm_remove(struct kv_worker *w, const struct bname *n)
{
	return lm_write(w, n, false);
}

static const struct kv_ops lmdb_ops = {
	.lookup = lm_lookup, .insert = lm_insert, .remove = lm_remove, .flush = NULL,
};

static __attribute__((noinline)) int run_lmdb(struct kv_worker *w, unsigned wl, unsigned mode,
					      uint64_t seed, uint64_t *ops)
{
	(void)mode;
	return kv_loop(&lmdb_ops, w, wl, seed, ops);
}

#define LMDB_CHECK(lw, call)                                                               \
	do {                                                                               \
		int rc_ = (call);                                                          \
		if (rc_)                                                                   \
			kv_die(&(lw)->kv, "%s: %s", #call, mdb_strerror(rc_));             \
	} while (0)

/* Worker 0: load the names, PRELOAD_TXN per transaction, and count them. */
static void lmdb_preload(struct lmdb_worker *lw, uint32_t nnames)
{
	MDB_txn *txn = NULL;
	MDB_stat st;

	for (uint32_t i = 0; i < nnames; i++) {
		MDB_val key = {hit_names[i].len, hit_names[i].s}, data = {VALUE_LEN, value_bytes};
		int rc;

		if (!txn)
			LMDB_CHECK(lw, mdb_txn_begin(lw->env, NULL, 0, &txn));
		rc = mdb_put(txn, lw->dbi, &key, &data, MDB_NOOVERWRITE);
		if (rc)
			kv_die(&lw->kv, "preload: mdb_put of name %" PRIu32 ": %s", i,
			       mdb_strerror(rc));
		if ((i + 1) % PRELOAD_TXN == 0 || i + 1 == nnames) {
			LMDB_CHECK(lw, mdb_txn_commit(txn));
			txn = NULL;
		}
	}
	LMDB_CHECK(lw, mdb_txn_begin(lw->env, NULL, MDB_RDONLY, &txn));
	LMDB_CHECK(lw, mdb_stat(txn, lw->dbi, &st));
	mdb_txn_abort(txn);
	if (st.ms_entries != nnames)
		kv_die(&lw->kv, "preload: %zu names in the database, expected %" PRIu32,
		       st.ms_entries, nnames);
}

void lmdb_worker_main(struct ctl *c, unsigned idx, const char *dir, bool writemap,
		      uint32_t nnames)
{
	struct lmdb_worker lw = { .env = NULL };
	unsigned flags = MDB_NOSYNC | MDB_NOMETASYNC | (writemap ? MDB_WRITEMAP : 0);
	/* Room for the names and churn, B-tree slack and copy-on-write pages;
	 * sparse on tmpfs until used. */
	size_t mapsize = ((size_t)64 << 20) + (size_t)nnames * 512;
	MDB_txn *txn;
	uint64_t t0;

	kv_worker_init(&lw.kv, c, idx, nnames, sys[writemap ? SYS_LMDB_WM : SYS_LMDB].name);
	kv_wait_first(&lw.kv);
	t0 = now_ns();
	LMDB_CHECK(&lw, mdb_env_create(&lw.env));
	LMDB_CHECK(&lw, mdb_env_set_mapsize(lw.env, mapsize));
	LMDB_CHECK(&lw, mdb_env_open(lw.env, dir, flags, 0600));
	LMDB_CHECK(&lw, mdb_txn_begin(lw.env, NULL, MDB_RDONLY, &txn));
	LMDB_CHECK(&lw, mdb_dbi_open(txn, NULL, 0, &lw.dbi));
	/* The read transaction stays, reset, for the lookups. */
	lw.rd = txn;
	mdb_txn_reset(lw.rd);
	if (idx == 0)
		lmdb_preload(&lw, nnames);
	kv_setup_done(&lw.kv, (double)(now_ns() - t0) / 1e9);
	kv_serve(&lw.kv, run_lmdb);
	mdb_txn_abort(lw.rd);
	mdb_env_close(lw.env);
	_exit(0);
}

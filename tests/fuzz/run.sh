#!/usr/bin/env bash
# The wire decoder's fuzz run (meson test --suite fuzz): build fuzz_wire.c
# and bridge/wire.c with clang's libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, and fuzz for a short, bounded time from the
# seed corpus. Exit 77 (a skip) when clang or libFuzzer is missing.
#
# Environment (meson sets the first three):
#   CLANG         the clang to use ("" or unset: clang on PATH)
#   SRCDIR        the source tree's root
#   OUTDIR        where the binary, the corpus it grows and crash files go
#   FUZZ_SECONDS  how long to fuzz (default 20)
#   FUZZ_RUNS     at most this many inputs (default 5000000)
#   FUZZ_JOBS     parallel fuzzing processes (default 1; see README.md)
# A crash leaves OUTDIR/fuzz-wire/artifacts/crash-<sha1>; replay it with
#   OUTDIR/fuzz-wire/fuzz_wire OUTDIR/fuzz-wire/artifacts/crash-<sha1>
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SRCDIR=$(cd "${SRCDIR:-$here/../..}" && pwd)
OUTDIR=$(mkdir -p "${OUTDIR:-$PWD}" && cd "${OUTDIR:-$PWD}" && pwd)
CLANG=${CLANG:-$(command -v clang || command -v clang-14 || true)}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_RUNS=${FUZZ_RUNS:-5000000}
FUZZ_JOBS=${FUZZ_JOBS:-1}

if [ -z "$CLANG" ] || ! command -v "$CLANG" >/dev/null; then
	echo "SKIP: no clang (install clang and libfuzzer-14-dev to fuzz the wire decoder)"
	exit 77
fi

work="$OUTDIR/fuzz-wire"
mkdir -p "$work/corpus" "$work/artifacts"

# Does this clang link libFuzzer? (Debian ships it in libfuzzer-NN-dev.)
probe="$work/probe"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$CLANG" -fsanitize=fuzzer "$probe.c" -o "$probe" 2>"$probe.log"; then
	echo "SKIP: $CLANG cannot link -fsanitize=fuzzer (install libfuzzer-14-dev):"
	sed 's/^/  /' "$probe.log" | head -5
	exit 77
fi

sodium=$(pkg-config --cflags --libs libsodium 2>/dev/null || echo -lsodium)
# shellcheck disable=SC2086 # $sodium is a list of flags
"$CLANG" -std=gnu11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$SRCDIR/bridge" -I"$SRCDIR/lib/include" -I"$SRCDIR/tests/fuzz" \
	"$SRCDIR/tests/fuzz/fuzz_wire.c" "$SRCDIR/bridge/wire.c" \
	$sodium -lpthread -o "$work/fuzz_wire"

# The grown corpus (writable, kept between runs) first, the committed seeds
# second: libFuzzer writes new inputs only into the first directory.
# libFuzzer's own exit code for a crash is 77, which meson reads as a skip:
# make every failure 1. -jobs (even 1) switches libFuzzer to separate
# processes with logs of their own, so it is given only for more than one.
jobs=()
if [ "$FUZZ_JOBS" -gt 1 ]; then
	jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
set +e
(cd "$work" && ./fuzz_wire -max_total_time="$FUZZ_SECONDS" -runs="$FUZZ_RUNS" "${jobs[@]}" \
	-error_exitcode=1 -timeout_exitcode=1 -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$work/artifacts/" -print_final_stats=1 \
	"$work/corpus" "$SRCDIR/tests/fuzz/corpus/wire") >"$work/fuzz.log" 2>&1
rc=$?
set -e

# The figures: inputs run, speed, coverage.
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|^Done [0-9]+ runs|ERROR|SUMMARY|property broken' "$work/fuzz.log" | tail -20 || true
if [ "$FUZZ_JOBS" -gt 1 ]; then
	cat "$work"/fuzz-*.log 2>/dev/null | grep -E '^#[0-9]+[[:space:]]+DONE|ERROR|SUMMARY' | tail -20 || true
fi
if [ $rc -ne 0 ]; then
	echo "fuzz_wire failed (exit $rc); the log is $work/fuzz.log, crash files in $work/artifacts/"
	tail -40 "$work/fuzz.log"
	exit 1
fi
echo "fuzz_wire: no failure in ${FUZZ_SECONDS}s or $FUZZ_RUNS inputs (log: $work/fuzz.log)"

#!/usr/bin/env bash
# Erlang runner of the cluster benchmark: Erlang distreg (biokoda/distreg)
# and OTP global, each on three Erlang nodes on loopback.
# Output: bench/systems/CONTRACT.md on stdout; progress on stderr.
#
#   run.sh [--short] [--names N] [--src DIR]
#
# DIR (or $DISTREG_ERL_SRC) is a checkout of biokoda/distreg (or a bare git
# dir of it); without one it is cloned (--depth 1) from GitHub into a
# temporary directory.  Nothing of distreg is written into this tree.
# (Development: BE_ONLY=join, say, runs only the scenarios named so.)
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
DR_URL=https://github.com/biokoda/distreg
SHORT=0
NAMES=
SRC=${DISTREG_ERL_SRC:-}

while [ $# -gt 0 ]; do
	case "$1" in
	--short) SHORT=1; shift ;;
	--names) NAMES=${2:?--names needs a number}; shift 2 ;;
	--names=*) NAMES=${1#--names=}; shift ;;
	--src) SRC=${2:?--src needs a directory}; shift 2 ;;
	--src=*) SRC=${1#--src=}; shift ;;
	-h|--help) sed -n '2,10p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
case "$NAMES" in *[!0-9]*) echo "run.sh: --names wants a number" >&2; exit 2 ;; esac
# --short: about 1 k names
if [ -z "$NAMES" ]; then
	if [ "$SHORT" = 1 ]; then NAMES=1000; else NAMES=10000; fi
fi
[ "$NAMES" -ge 30 ] || { echo "run.sh: --names must be >= 30" >&2; exit 2; }

say() { echo "[run.sh] $*" >&2; }

if ! command -v erl >/dev/null 2>&1 || ! command -v erlc >/dev/null 2>&1; then
	echo "#skip,erlang-distreg,erl/erlc not installed"
	echo "#skip,otp-global,erl/erlc not installed"
	exit 0
fi

TMPD=$(mktemp -d "${TMPDIR:-/tmp}/bench_erl.XXXXXX") || exit 2
UNIQ="be$$x$RANDOM"
PIDFILE=$TMPD/pids
: >"$PIDFILE"

cleanup() {
	# every node this run started (controller and peers), by OS pid, and
	# only if that pid still runs a node of this run
	if [ -f "$PIDFILE" ]; then
		while read -r pid node; do
			[ -n "$pid" ] || continue
			if ps -p "$pid" -o args= 2>/dev/null | grep -qF -- "$node"; then
				kill -9 "$pid" 2>/dev/null
			fi
		done <"$PIDFILE"
	fi
	rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

OTP_REL=$(erl -noshell -eval 'R = erlang:system_info(otp_release),
  F = filename:join([code:root_dir(), "releases", R, "OTP_VERSION"]),
  V = case file:read_file(F) of {ok, B} -> string:trim(binary_to_list(B)); _ -> R end,
  io:put_chars(V), halt().' 2>/dev/null </dev/null)
[ -n "$OTP_REL" ] || { echo "#skip,erlang-distreg,erl does not start"; echo "#skip,otp-global,erl does not start"; exit 0; }

# ---- our own modules
BENCH_EBIN=$TMPD/bench_ebin
mkdir -p "$BENCH_EBIN"
if ! erlc -o "$BENCH_EBIN" "$HERE/bench_erl.erl" "$HERE/bench_erl_worker.erl" >&2; then
	echo "run.sh: cannot compile the benchmark modules" >&2
	exit 2
fi

# ---- distreg: checkout, build
DR_EBIN=""
DR_SKIP=""
DR_COMMIT=unknown
DR_DIR=""
if [ -n "$SRC" ]; then
	if [ -d "$SRC/src" ]; then
		DR_DIR=$SRC
	elif [ -f "$SRC/distreg.erl" ]; then
		DR_DIR=$(dirname "$SRC")
	elif [ "$(git -C "$SRC" rev-parse --is-bare-repository 2>/dev/null)" = true ]; then
		say "cloning the bare git dir $SRC"
		if git clone -q "$SRC" "$TMPD/distreg" >&2 2>&1; then
			DR_DIR=$TMPD/distreg
		else
			DR_SKIP="cannot clone $SRC"
		fi
	else
		DR_SKIP="no distreg source in $SRC"
	fi
else
	say "cloning $DR_URL"
	if timeout 120 git clone -q --depth 1 "$DR_URL" "$TMPD/distreg" >&2 2>&1; then
		DR_DIR=$TMPD/distreg
	else
		DR_SKIP="git clone --depth 1 $DR_URL failed (no network?); give a checkout with --src DIR or DISTREG_ERL_SRC"
	fi
fi
if [ -n "$DR_DIR" ]; then
	DR_COMMIT=$(git -C "$DR_DIR" rev-parse HEAD 2>/dev/null || echo unknown)
	DR_EBIN=$TMPD/distreg_ebin
	mkdir -p "$DR_EBIN"
	# distreg.erl includes eunit.hrl (for its tests only); Debian's
	# erlang-eunit ships no include/ (that is in erlang-dev): then give it
	# an empty stand-in and -DNOTEST so the tests are left out.
	EXTRA=""
	EUNIT=$(erl -noshell -eval 'case code:lib_dir(eunit) of D when is_list(D) -> io:put_chars(D); _ -> ok end, halt().' </dev/null 2>/dev/null)
	if [ ! -f "$EUNIT/include/eunit.hrl" ]; then
		mkdir -p "$TMPD/inc/eunit/include"
		echo '%% empty stand-in: eunit.hrl is not installed here' >"$TMPD/inc/eunit/include/eunit.hrl"
		EXTRA="-I $TMPD/inc -DNOTEST"
		say "eunit.hrl missing: compiling distreg without its tests"
	fi
	# shellcheck disable=SC2086
	if ! erlc -o "$DR_EBIN" $EXTRA -I "$DR_DIR/src" "$DR_DIR"/src/*.erl >"$TMPD/erlc.log" 2>&1; then
		cat "$TMPD/erlc.log" >&2
		DR_SKIP="erlc of distreg failed"
		DR_EBIN=""
	elif [ -f "$DR_DIR/src/distreg.app.src" ]; then
		cp "$DR_DIR/src/distreg.app.src" "$DR_EBIN/distreg.app"
	elif [ -f "$DR_DIR/ebin/distreg.app" ]; then
		cp "$DR_DIR/ebin/distreg.app" "$DR_EBIN/distreg.app"
	else
		DR_SKIP="no distreg.app(.src) in $DR_DIR"
		DR_EBIN=""
	fi
fi

# ---- run the controller (a hidden node; it starts the peers)
if [ "$SHORT" = 1 ]; then TICK=5; LIMIT=600; else TICK=60; LIMIT=1800; fi
COOKIE=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
epmd -daemon >/dev/null 2>&1 || true

export BE_SHORT=$SHORT BE_NAMES=$NAMES BE_UNIQ=$UNIQ BE_PIDFILE=$PIDFILE \
	BE_BENCH_EBIN=$BENCH_EBIN BE_DR_EBIN=$DR_EBIN BE_DR_SKIP=$DR_SKIP \
	BE_DR_COMMIT=$DR_COMMIT BE_OTP=$OTP_REL

say "names=$NAMES short=$SHORT net_ticktime=$TICK nodes ${UNIQ}_*@127.0.0.1"
# the controller writes its own OS pid to PIDFILE; a watchdog (timeout)
# bounds the whole run
: >"$TMPD/ctl.out"   # exists before tail -f opens it
timeout -s KILL "$LIMIT" erl -noshell -hidden -name "${UNIQ}_ctl@127.0.0.1" \
	-setcookie "$COOKIE" -kernel net_ticktime "$TICK" -pa "$BENCH_EBIN" \
	-s bench_erl main </dev/null >>"$TMPD/ctl.out" 2>&1 &
CTL=$!
# stream: contract lines to stdout, the rest to stderr.  In the background,
# so that `wait` (unlike a foreground pipeline) lets a signal run the traps.
tail -n +1 -f "$TMPD/ctl.out" --pid="$CTL" 2>/dev/null |
	awk '/^(#(version|setting|skip|note),|(erlang-distreg|otp-global),)/ { print; fflush(); next }
	     { print > "/dev/stderr"; fflush("/dev/stderr") }' &
PIPE=$!
wait "$CTL"
RC=$?
wait "$PIPE"
if [ "$RC" -ne 0 ]; then
	say "controller exited with $RC"
	exit 1
fi
exit 0

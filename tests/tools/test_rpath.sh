#!/bin/sh
# test_rpath.sh SRCDIR - installed to a prefix the dynamic linker does not
# search, the tools still find libdistreg.so: configure, build and install
# the library and the tools (no tests, benchmarks or bridge) to a temporary
# prefix, then run the installed shmdump and distreg with no
# LD_LIBRARY_PATH.
set -u
src=$1
d=$(mktemp -d /tmp/distreg-rpath.XXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
if ! meson setup "$d/build" "$src" --prefix="$d/prefix" -Dtests=false -Dbench=false \
	-Dbridge=false >"$d/log" 2>&1 || ! ninja -C "$d/build" >>"$d/log" 2>&1 ||
	! meson install -C "$d/build" >>"$d/log" 2>&1; then
	tail -20 "$d/log"
	echo "test_rpath: could not build and install to $d/prefix" >&2
	exit 1
fi
for exe in shmdump distreg; do
	if ! out=$(env -u LD_LIBRARY_PATH "$d/prefix/bin/$exe" --version 2>&1); then
		echo "test_rpath: installed $exe does not run: $out" >&2
		exit 1
	fi
	echo "$exe: $out" | head -1
done

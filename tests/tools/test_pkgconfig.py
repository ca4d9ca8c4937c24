#!/usr/bin/env python3
"""test_pkgconfig.py - distreg.pc asks for what libdistreg links, and no more:
every package in Requires and Requires.private must provide a library that
libdistreg.so needs (readelf's NEEDED), and libxxhash, which it needs, must
be there. A package it does not link (liburcu: headers only) would make
every user of pkg-config need it installed for nothing.

$DISTREG_PC: the generated distreg.pc; $LIBDISTREG: the built libdistreg.so;
run through meson test.
"""
import os
import re
import subprocess
import unittest


def pc_fields(path):
    fields = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z.]+):\s*(.*)$", line.strip())
            if m:
                fields[m.group(1)] = m.group(2)
    return fields


def packages(value):
    # "a, b >= 1.0 c" -> [a, b, c]
    words = re.split(r"[\s,]+", value.strip())
    out, skip = [], False
    for w in words:
        if not w:
            continue
        if skip:
            skip = False
            continue
        if w in ("=", "<", ">", "<=", ">=", "!="):
            skip = True
            continue
        out.append(w)
    return out


class PkgConfig(unittest.TestCase):
    def setUp(self):
        self.pc = os.environ.get("DISTREG_PC")
        self.lib = os.environ.get("LIBDISTREG")
        self.assertTrue(self.pc and self.lib, "run this test through meson test")

    def needed(self):
        out = subprocess.run(["readelf", "-d", self.lib], capture_output=True, text=True,
                             check=True).stdout
        return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))

    def test_requires_only_what_the_library_links(self):
        f = pc_fields(self.pc)
        reqs = packages(f.get("Requires", "")) + packages(f.get("Requires.private", ""))
        needed = self.needed()
        self.assertIn("libxxhash", reqs, f)
        for pkg in reqs:
            p = subprocess.run(["pkg-config", "--libs-only-l", pkg], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, "pkg-config %s: %s" % (pkg, p.stderr))
            libs = ["lib%s.so" % l[2:] for l in p.stdout.split() if l.startswith("-l")]
            self.assertTrue(any(n == l or n.startswith(l + ".") for l in libs for n in needed),
                            "distreg.pc requires %s (%s), which libdistreg.so does not "
                            "link (it needs %s)" % (pkg, " ".join(libs), sorted(needed)))
        self.assertIn("-ldistreg", f.get("Libs", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)

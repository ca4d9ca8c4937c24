#!/usr/bin/env python3
"""test_install.py - what `meson install` installs: every executable in bin/
comes with a man page of its own name (section 1 or 8), installed too.

$MESON_INSTALLED: the build's meson-info/intro-installed.json (built file ->
installed path); run through meson test.
"""
import json
import os
import re
import unittest


class Install(unittest.TestCase):
    def test_every_installed_executable_has_a_man_page(self):
        path = os.environ.get("MESON_INSTALLED")
        self.assertTrue(path, "run this test through meson test")
        with open(path) as f:
            installed = json.load(f)
        dests = list(installed.values())
        exes = [os.path.basename(d) for d in dests
                if os.path.basename(os.path.dirname(d)) in ("bin", "sbin")]
        self.assertIn("distreg-demo", exes)
        pages = {(os.path.basename(os.path.dirname(d)), os.path.basename(d)) for d in dests}
        for exe in exes:
            self.assertTrue(("man1", exe + ".1") in pages or ("man8", exe + ".8") in pages,
                            "%s is installed without a man page" % exe)
        # Each page's source says it is that page.
        for src, dest in installed.items():
            sec = os.path.basename(os.path.dirname(dest))
            if sec in ("man1", "man8"):
                name = os.path.basename(dest).rsplit(".", 1)[0]
                with open(src) as f:
                    th = f.readline().split()
                self.assertEqual(th[:3], [".TH", name.upper(), sec[3:]], src)

    def test_every_public_function_has_a_section_3_page(self):
        with open(os.environ["MESON_INSTALLED"]) as f:
            installed = json.load(f)
        pages = {os.path.basename(d): s for s, d in installed.items()
                 if os.path.basename(os.path.dirname(d)) == "man3"}
        self.assertIn("distreg.3", pages, "distreg(3) is not installed")
        with open(pages["distreg.3"]) as f:
            text = f.read()
        header = os.environ["DISTREG_HEADER"]
        with open(header) as f:
            declared = set(re.findall(r"^[a-z][^(;]*?\b(dr_[a-z_]+)\(", f.read(), re.M))
        self.assertGreater(len(declared), 40)
        for fn in sorted(declared):
            self.assertIn(fn + ".3", pages, "man %s: no page installed" % fn)
            self.assertRegex(text, r"\b%s\b" % fn, "distreg(3) does not mention %s" % fn)
            if fn + ".3" != "distreg.3":
                with open(pages[fn + ".3"]) as f:
                    self.assertEqual(f.read().strip(), ".so man3/distreg.3")


if __name__ == "__main__":
    unittest.main(verbosity=2)

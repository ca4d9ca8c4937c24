"""The Python binding (python/distreg) against the library just built.

meson test runs it with DISTREG_LIB (the built libdistreg), PYTHONPATH
(python/) and DISTREG_LAYOUT (a program printing the C structs' layout).
Every test uses segments of its own, removed again in tearDown.
"""
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import distreg

counter = [0]
SALT = os.urandom(4).hex()

# Small geometries: a default segment would take about 40 MiB.
SMALL = dict(capacity=64, max_procs=32, max_threads=64, max_mailboxes=4, max_lanes=8,
             lane_bytes=4096)


def new_segment():
    counter[0] += 1
    # A random part: a segment a failed run of an earlier process with
    # our pid left behind is never ours.
    return "t.py.%d.%s.%d" % (os.getpid(), SALT, counter[0])


class Base(unittest.TestCase):
    def setUp(self):
        self.seg = new_segment()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        try:
            os.unlink("/dev/shm/distreg." + self.seg)
        except FileNotFoundError:
            pass

    def open(self, **kw):
        args = dict(SMALL)
        args.update(kw)
        return distreg.Registry(self.seg, **args)

    def child(self, code):
        """A Python process running code (self.seg in SEG); its first line of
        output says it is ready."""
        env = dict(os.environ, SEG=self.seg)
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if not line:
            self.fail("child said nothing; stderr: %s" % p.stderr.read())
        return p, line.strip()


class Layout(unittest.TestCase):
    def test_ctypes_mirrors_match_the_c_structs(self):
        prog = os.environ.get("DISTREG_LAYOUT")
        if not prog:
            self.skipTest("DISTREG_LAYOUT is not set: run through meson test")
        out = subprocess.run([prog], capture_output=True, text=True, check=True).stdout
        seen = set()
        for line in out.splitlines():
            words = line.split()
            name, size = words[0], int(words[1])
            cls = distreg.STRUCTS[name]
            self.assertEqual(ctypes.sizeof(cls), size, "sizeof(struct %s)" % name)
            for w in words[2:]:
                field, off, fsize = w.split(":")
                attr = "global_" if field == "global" else field
                self.assertEqual(getattr(cls, attr).offset, int(off), "%s.%s" % (name, field))
                self.assertEqual(getattr(cls, attr).size, int(fsize), "%s.%s" % (name, field))
            self.assertEqual(len(words) - 2, len(cls._fields_), "%s: fields" % name)
            seen.add(name)
        self.assertEqual(seen, set(distreg.STRUCTS))


class Names(Base):
    def test_register_whereis_names_unregister(self):
        with self.open() as reg:
            self.assertEqual(reg.segment, self.seg)
            reg.register("a", b"addr-a")
            reg.register(b"b\xff")
            e = reg.whereis("a")
            self.assertIsInstance(e, distreg.Entry)
            self.assertEqual(e.pid, os.getpid())
            self.assertEqual(e.value, b"addr-a")
            self.assertGreater(e.regid, 0)
            self.assertEqual(reg.whereis(b"b\xff").value, b"")
            self.assertIsNone(reg.whereis("nobody"))
            self.assertIn("a", reg)
            self.assertEqual(sorted(reg.names(), key=distreg._bytes),
                             ["a", "b\udcff"])
            # A name from names() round-trips, undecodable bytes and all.
            self.assertEqual(reg.whereis("b\udcff").pid, os.getpid())
            reg.register("a", b"new")  # an update keeps the regid
            self.assertEqual(reg.whereis("a"), distreg.Entry(os.getpid(), e.regid, b"new"))
            reg.unregister("a")
            self.assertIsNone(reg.whereis("a"))
            with self.assertRaises(distreg.NotFound) as cm:
                reg.unregister("a")
            self.assertEqual(cm.exception.errno, 2)
            self.assertIn("no such name", str(cm.exception))

    def test_errors_carry_errno_and_message(self):
        with self.open() as one, self.open() as two:
            one.register("x")
            with self.assertRaises(distreg.AlreadyRegistered) as cm:
                two.register("x")
            self.assertEqual(cm.exception.errno, 17)
            self.assertEqual(cm.exception.code, -17)
            self.assertIn("registered by another live process", cm.exception.message)
            self.assertIsInstance(cm.exception, distreg.DistregError)
            with self.assertRaises(distreg.NotOwner):
                two.unregister("x")
            with self.assertRaises(distreg.DistregError) as cm:
                one.register("n" * 128)
            self.assertIn("longer than 127 bytes", str(cm.exception))
            with self.assertRaises(distreg.DistregError) as cm:
                one.register("v", b"x" * 65)
            self.assertIn("longer than 64 bytes", str(cm.exception))

    def test_full_table(self):
        with self.open(capacity=4) as reg:
            for i in range(4):
                reg.register("n%d" % i)
            with self.assertRaises(distreg.TableFull) as cm:
                reg.register("one-too-many")
            self.assertIn("table is full", str(cm.exception))
            self.assertNotIn("/dev/shm", str(cm.exception))

    def test_bad_segment_names_say_the_rule(self):
        for seg, rule in (("a/b", "no '/' in a segment name"),
                          ("", "segment names are 1 to 200 bytes"),
                          ("..", "'.' and '..' are not segment names"),
                          ("x" * 201, "segment names are 1 to 200 bytes")):
            with self.assertRaises(distreg.BadSegmentName) as cm:
                distreg.Registry(seg, **SMALL)
            self.assertIn(rule, str(cm.exception), repr(seg))
            self.assertEqual(cm.exception.errno, 22)

    def test_no_create(self):
        with self.assertRaises(distreg.NotFound):
            distreg.Registry(self.seg, create=False)
        self.assertFalse(os.path.exists("/dev/shm/distreg." + self.seg))

    def test_closed_handle_is_refused(self):
        reg = self.open()
        reg.close()
        reg.close()
        with self.assertRaises(ValueError):
            reg.whereis("a")


class Processes(Base):
    def test_another_process_sees_the_name(self):
        p, line = self.child("""
            import os, sys, distreg
            with distreg.Registry(os.environ["SEG"], capacity=64, max_procs=32,
                                  max_threads=64, max_mailboxes=4, max_lanes=8,
                                  lane_bytes=4096) as reg:
                reg.register("svc", b"from-child")
                print("ready", flush=True)
                sys.stdin.readline()
            print("closed", flush=True)
            """)
        self.assertEqual(line, "ready")
        with self.open() as reg:
            e = reg.whereis("svc")
            self.assertIsNotNone(e)
            self.assertEqual(e.pid, p.pid)
            self.assertEqual(e.value, b"from-child")
            self.assertIn("svc", reg.names())
            p.stdin.write("\n")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline().strip(), "closed")
            self.assertEqual(p.wait(timeout=10), 0)
            self.assertIsNone(reg.whereis("svc"))

    def test_sigkilled_owner_name_is_reclaimed(self):
        p, line = self.child("""
            import os, sys, distreg
            reg = distreg.Registry(os.environ["SEG"], capacity=64, max_procs=32,
                                   max_threads=64, max_mailboxes=4, max_lanes=8,
                                   lane_bytes=4096)
            reg.register("doomed", b"v")
            reg.register("doomed2", b"v")
            print("ready", flush=True)
            sys.stdin.readline()
            """)
        self.assertEqual(line, "ready")
        with self.open() as reg:
            self.assertEqual(reg.whereis("doomed").pid, p.pid)
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
            # The dead owner's names stay visible until reaped.
            entries = {n: alive for n, _, alive in reg.names(with_entries=True)}
            self.assertEqual(entries, {"doomed": False, "doomed2": False})
            self.assertEqual(reg.reap(), 2)
            self.assertIsNone(reg.whereis("doomed"))
            self.assertEqual(reg.names(), [])
            reg.register("doomed", b"mine")
            self.assertEqual(reg.whereis("doomed").pid, os.getpid())

    def test_sigkilled_owner_name_taken_over_by_register(self):
        p, _ = self.child("""
            import os, sys, distreg
            reg = distreg.Registry(os.environ["SEG"], capacity=64, max_procs=32,
                                   max_threads=64, max_mailboxes=4, max_lanes=8,
                                   lane_bytes=4096)
            reg.register("taken")
            print("ready", flush=True)
            sys.stdin.readline()
            """)
        with self.open() as reg:
            with self.assertRaises(distreg.AlreadyRegistered):
                reg.register("taken")
            p.kill()
            p.wait(timeout=10)
            reg.register("taken", b"new owner")
            self.assertEqual(reg.whereis("taken"), reg.whereis("taken")._replace(
                pid=os.getpid(), value=b"new owner"))


class Messages(Base):
    def test_call_served_by_a_mailbox(self):
        with self.open() as reg:
            mb = reg.mailbox()
            mb.serve("echo", b"echo-addr")
            self.assertEqual(reg.whereis("echo").value, b"echo-addr")
            got = []

            def worker():
                while True:
                    m = mb.recv(5000)
                    if m is None:
                        return
                    got.append(m)
                    if m.kind == distreg.MSG_CALL:
                        if m.data == b"fail":
                            mb.reply_error(m, 125)  # ECANCELED
                        else:
                            mb.reply(m, b"echo:" + m.data)
                    if m.data == b"stop":
                        return

            t = threading.Thread(target=worker)
            t.start()
            try:
                self.assertEqual(reg.call("echo", b"hi", 5000), b"echo:hi")
                self.assertEqual(reg.call("echo", b"", 5000), b"echo:")
                with self.assertRaises(distreg.DistregError) as cm:
                    reg.call("echo", b"fail", 5000)
                self.assertEqual(cm.exception.errno, 125)
                self.assertEqual(reg.call("echo", b"stop", 5000), b"echo:stop")
            finally:
                t.join(10)
            self.assertEqual([m.name for m in got], ["echo"] * 4)
            self.assertEqual(got[0].sender, os.getpid())
            self.assertIsNone(mb.recv(0))
            mb.close()
            with self.assertRaises(distreg.NotFound):
                reg.call("echo", b"x", 1000)

    def test_call_a_plain_name_or_nobody(self):
        with self.open() as reg:
            reg.register("plain")
            with self.assertRaises(distreg.DistregError) as cm:
                reg.call("plain", b"x", 1000)
            self.assertIn("without a mailbox", str(cm.exception))
            with self.assertRaises(distreg.NotFound):
                reg.call("nobody", b"x", 1000)

    def test_call_across_processes_times_out_then_answers(self):
        p, line = self.child("""
            import os, sys, distreg
            reg = distreg.Registry(os.environ["SEG"], capacity=64, max_procs=32,
                                   max_threads=64, max_mailboxes=4, max_lanes=8,
                                   lane_bytes=4096)
            mb = reg.mailbox()
            mb.serve("upper")
            print("ready", flush=True)
            sys.stdin.readline()
            while True:
                m = mb.recv(10000)
                if m is None:
                    break
                if m.kind == distreg.MSG_CALL:
                    mb.reply(m, m.data.upper())
            """)
        self.assertEqual(line, "ready")
        with self.open() as reg:
            t0 = time.monotonic()
            with self.assertRaises(distreg.Timeout):
                reg.call("upper", b"late", 100)
            self.assertLess(time.monotonic() - t0, 5)
            p.stdin.write("\n")
            p.stdin.flush()
            self.assertEqual(reg.call("upper", b"abc", 5000), b"ABC")


if __name__ == "__main__":
    unittest.main(verbosity=2)

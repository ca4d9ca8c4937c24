#!/usr/bin/env python3
"""test_distreg.py - the distreg command, driven as a user or a shell script
would: workers in background processes, calls and casts from others, exit
statuses, signals, and --json output read by a real JSON parser (Python's).

The path of the built command comes in $DISTREG; every test uses a segment
of its own (t.cli.<pid>.<n>) and removes it.
"""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

DISTREG = os.environ.get("DISTREG")
counter = [0]
SALT = os.urandom(4).hex()


def new_segment():
    counter[0] += 1
    # A random part: a segment a failed run of an earlier process with
    # our pid left behind is never ours.
    return "t.cli.%d.%s.%d" % (os.getpid(), SALT, counter[0])


class Cli(unittest.TestCase):
    def setUp(self):
        self.assertTrue(DISTREG, "$DISTREG is not set: run this test through meson test")
        self.seg = new_segment()
        self.segs = [self.seg]
        self.bg = []
        self.files = []

    def tearDown(self):
        for p in self.bg:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        for f in ["/dev/shm/distreg." + seg for seg in self.segs] + self.files:
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass

    def run_cli(self, *args, timeout=20, seg=None):
        p = subprocess.run([DISTREG, "--segment", self.seg if seg is None else seg] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def start(self, *args, seg=None):
        p = subprocess.Popen([DISTREG, "--segment", self.seg if seg is None else seg] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.bg.append(p)
        # Its first line says it is ready (registered, or serving).
        line = p.stdout.readline()
        if not line:
            self.fail("no first line from %s; stderr: %s" % (args, p.stderr.read()))
        return p, line

    def json_lines(self, out):
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def test_usage_errors_exit_2(self):
        for args in ([], ["bogus"], ["whereis"], ["call", "a"], ["call", "a", "b", "--timeout", "x"],
                     ["unregister", "--force"], ["echo-worker"], ["list", "extra"],
                     ["serve-global"], ["serve-global", "g"], ["serve-global", "g", "v", "x"],
                     ["serve-global", "--global", "g", "v"], ["hosts", "x"], ["owner"],
                     ["owner", "a", "b"], ["start"], ["start", "a"], ["start", "a", "k", "x", "y"],
                     ["start", "a", "k", "--timeout", "soon"], ["echo-factory", "--count", "0"],
                     ["echo-factory", "--count"], ["echo-factory", "--bogus", "x"], ["watch"],
                     ["watch", "a", "b"]):
            rc, out, err = self.run_cli(*args)
            self.assertEqual(rc, 2, "%s: %d %s" % (args, rc, err))
            self.assertIn("usage:", err)
        rc, out, _ = self.run_cli("--help")
        self.assertEqual(rc, 0)
        for cmd in ("echo-worker", "serve-global", "owner", "hosts", "segments", "unlink SEG",
                    "start NAME KIND", "echo-factory"):
            self.assertIn(cmd, out)
        self.assertIn("exit status: 0 ok, 1 not found, 2 usage, 3 timeout, 4 other errors", out)

    def test_bad_segment_name_names_the_rule(self):
        for seg, rule in (("a/b", "no '/' in a segment name"),
                          ("", "segment names are 1 to 200 bytes"),
                          ("..", "'.' and '..' are not segment names"),
                          ("x" * 201, "segment names are 1 to 200 bytes")):
            rc, _, err = self.run_cli("list", seg=seg)
            self.assertEqual(rc, 4, "%r: %s" % (seg, err))
            self.assertIn(rule, err, repr(seg))
            self.assertNotIn("nvalid argument", err, repr(seg))

    def test_symlink_segment_says_regular_files(self):
        path = "/dev/shm/distreg." + self.seg
        os.symlink("/dev/null", path)
        self.files.append(path)
        rc, _, err = self.run_cli("list")
        self.assertEqual(rc, 4, err)
        self.assertIn("segments must be regular files", err)

    def test_absent_names_and_segments_exit_1(self):
        rc, _, err = self.run_cli("whereis", "nobody")
        self.assertEqual(rc, 1, err)  # no segment at all
        self.start("register", "someone", "v")
        for args in (["whereis", "nobody"], ["call", "nobody", "x"], ["cast", "nobody", "x"]):
            rc, _, err = self.run_cli(*args)
            self.assertEqual(rc, 1, "%s: %s" % (args, err))
            self.assertIn("no such name", err)

    def test_register_holds_until_sigterm(self):
        p, line = self.start("--json", "register", "svc", "ipc:///tmp/svc")
        obj = json.loads(line)
        self.assertEqual(obj["name"], "svc")
        self.assertEqual(obj["pid"], p.pid)
        rc, out, _ = self.run_cli("--json", "whereis", "svc")
        self.assertEqual(rc, 0)
        got = json.loads(out)
        for key in ("name", "pid", "regid", "value"):
            self.assertIn(key, got)
        self.assertEqual(got["pid"], p.pid)
        self.assertEqual(got["value"], "ipc:///tmp/svc")
        self.assertEqual(got["regid"], obj["regid"])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=10), 0)
        rc, _, _ = self.run_cli("whereis", "svc")
        self.assertEqual(rc, 1, "the name outlived its holder")

    def test_echo_worker_answers_calls_and_takes_casts(self):
        w, line = self.start("--json", "echo-worker", "w.a", "w.b")
        first = json.loads(line)
        self.assertEqual(first["serving"], ["w.a", "w.b"])
        self.assertEqual(first["pid"], w.pid)
        rc, out, err = self.run_cli("call", "w.a", "hello world")
        self.assertEqual((rc, out), (0, "hello world\n"), err)
        rc, out, err = self.run_cli("--json", "call", "w.b", 'quote " and \\')
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["reply"], 'quote " and \\')
        rc, out, err = self.run_cli("--json", "cast", "w.a", "tick")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"name": "w.a", "name_encoding": "text", "sent": True})
        rc, _, err = self.run_cli("send", "w.b", "info")
        self.assertEqual(rc, 0, err)
        # The worker printed one object per message, in order.
        seen = [json.loads(w.stdout.readline()) for _ in range(4)]
        self.assertEqual([(m["kind"], m["name"], m["data"]) for m in seen],
                         [("call", "w.a", "hello world"), ("call", "w.b", 'quote " and \\'),
                          ("cast", "w.a", "tick"), ("info", "w.b", "info")])
        rc, out, _ = self.run_cli("--json", "list")
        self.assertEqual(rc, 0)
        names = {o["name"]: o for o in self.json_lines(out)}
        self.assertEqual(set(names), {"w.a", "w.b"})
        self.assertTrue(all(o["alive"] and o["pid"] == w.pid for o in names.values()))
        # list's objects carry whereis's keys, with the same values.
        for name, o in names.items():
            rc, out, err = self.run_cli("--json", "whereis", name)
            self.assertEqual(rc, 0, err)
            one = json.loads(out)
            for key in ("name", "pid", "regid", "value"):
                self.assertIn(key, o)
                self.assertEqual(o[key], one[key], key)
        self.assertNotEqual(names["w.a"]["regid"], names["w.b"]["regid"])
        # SIGTERM as SIGINT (test_call_times_out_...): unregister, exit 0.
        w.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=10), 0)
        rc, out, _ = self.run_cli("list")
        self.assertEqual((rc, out), (0, ""), "names outlived the echo worker")

    def test_call_times_out_with_exit_3_and_a_plain_name_takes_no_call(self):
        w, _ = self.start("echo-worker", "slow")
        os.kill(w.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            rc, _, err = self.run_cli("call", "slow", "x", "--timeout", "200")
            self.assertEqual(rc, 3, err)
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            os.kill(w.pid, signal.SIGCONT)
        self.start("register", "plain", "v")
        rc, _, err = self.run_cli("call", "plain", "x")
        self.assertEqual(rc, 4, err)
        self.assertIn("without a mailbox", err)
        # SIGINT ends an echo worker as SIGTERM does: it unregisters, exit 0.
        w.send_signal(signal.SIGINT)
        self.assertEqual(w.wait(timeout=10), 0)
        rc, _, err = self.run_cli("whereis", "slow")
        self.assertEqual(rc, 1, "the name outlived the echo worker: %s" % err)

    def test_unregister_dead_owner_live_owner_and_force(self):
        holder, _ = self.start("register", "held", "v")
        rc, _, err = self.run_cli("unregister", "held")
        self.assertEqual(rc, 4, "a live owner's name: %s" % err)
        rc, out, err = self.run_cli("--json", "unregister", "--force", "held")
        self.assertEqual(rc, 0, err)
        self.assertTrue(json.loads(out)["unregistered"])
        self.assertEqual(self.run_cli("whereis", "held")[0], 1)
        dead, _ = self.start("register", "orphan", "v")
        dead.kill()
        dead.wait()
        rc, _, err = self.run_cli("unregister", "orphan")
        self.assertEqual(rc, 0, "a dead owner's name: %s" % err)
        self.assertEqual(self.run_cli("whereis", "orphan")[0], 1)

    def test_start_through_an_echo_factory(self):
        f, line = self.start("--json", "echo-factory", "--count", "2")
        first = json.loads(line)
        self.assertEqual((first["factory"], first["count"], first["pid"]), ("echo", 2, f.pid))
        rc, out, err = self.run_cli("--json", "start", "s.a", "echo")
        self.assertEqual(rc, 0, err)
        a = json.loads(out)
        self.assertEqual((a["name"], a["pid"], a["created"]), ("s.a", f.pid, True))
        self.assertEqual(a["host"], os.uname().nodename[:63])
        self.assertEqual(json.loads(f.stdout.readline())["started"], "s.a")
        # Again: it runs already, the same registration.
        rc, out, err = self.run_cli("--json", "start", "s.a", "echo")
        self.assertEqual(rc, 0, err)
        again = json.loads(out)
        self.assertEqual((again["created"], again["regid"]), (False, a["regid"]))
        rc, out, err = self.run_cli("call", "--global", "s.a", "hello")
        self.assertEqual((rc, out), (0, "hello\n"), err)
        rc, out, err = self.run_cli("start", "s.b", "echo")
        self.assertEqual(rc, 0, err)
        self.assertIn("s.b started on host", out)
        # --count 2: the third is refused, and says why.
        rc, _, err = self.run_cli("start", "s.c", "echo")
        self.assertEqual(rc, 4, err)
        self.assertIn("the factory refused: echo-factory is full: 2 workers", err)
        rc, _, err = self.run_cli("start", "s.c", "nokind")
        self.assertEqual(rc, 1, err)
        self.assertIn("no factory of kind nokind runs on its owner", err)
        # Its workers go with it.
        f.send_signal(signal.SIGTERM)
        self.assertEqual(f.wait(timeout=10), 0)
        self.assertEqual(self.run_cli("whereis", "--global", "s.a")[0], 1)
        rc, _, err = self.run_cli("start", "s.a", "echo")
        self.assertEqual(rc, 1, err)

    def test_watch_says_when_a_name_goes(self):
        holder, _ = self.start("register", "watched", "v")
        w = subprocess.Popen([DISTREG, "--segment", self.seg, "--json", "watch", "watched"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.bg.append(w)
        time.sleep(0.3)  # the watch has seen the registration
        holder.kill()
        holder.wait()
        ev = json.loads(w.stdout.readline())
        self.assertEqual((ev["event"], ev["name"], ev["global"]), ("owner-died", "watched", False))
        # Registered again, then unregistered by its holder, which stays.
        again, _ = self.start("register", "watched", "v2")
        time.sleep(0.3)
        rc, _, err = self.run_cli("unregister", "--force", "watched")
        self.assertEqual(rc, 0, err)
        ev = json.loads(w.stdout.readline())
        self.assertEqual((ev["event"], ev["name"]), ("unregistered", "watched"))
        w.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=10), 0)

    def test_global_names_beside_local_ones(self):
        node = os.uname().nodename[:63]
        w, line = self.start("--json", "echo-worker", "--global", "g.a")
        first = json.loads(line)
        self.assertEqual(first["serving"], ["g.a"])
        self.assertTrue(first["global"])
        rc, out, err = self.run_cli("call", "--global", "g.a", "hello")
        self.assertEqual((rc, out), (0, "hello\n"), err)
        rc, _, err = self.run_cli("call", "g.a", "hello")
        self.assertEqual(rc, 1, "no local g.a: %s" % err)
        rc, _, err = self.run_cli("send", "--global", "g.a", "tick")
        self.assertEqual(rc, 0, err)
        seen = [json.loads(w.stdout.readline()) for _ in range(2)]
        self.assertEqual([(m["kind"], m["name"], m["global"]) for m in seen],
                         [("call", "g.a", True), ("info", "g.a", True)])

        # A local g.a beside it: two names, told apart.
        self.start("register", "g.a", "local")
        rc, out, _ = self.run_cli("--json", "list")
        self.assertEqual(rc, 0)
        names = {(o["name"], o["global"]): o for o in self.json_lines(out)}
        self.assertEqual(set(names), {("g.a", True), ("g.a", False)})
        self.assertEqual(names[("g.a", True)]["pid"], w.pid)
        rc, out, _ = self.run_cli("list")
        lines = sorted(out.splitlines())
        self.assertEqual(len(lines), 2, out)
        self.assertEqual(lines[0].split()[:5], ["g.a", "pid", str(w.pid), "alive", "global"])
        self.assertEqual(lines[1].split()[4], "regid", "a local name prints as before")

        rc, out, err = self.run_cli("--json", "whereis", "--global", "g.a")
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        self.assertEqual((got["pid"], got["global"], got["host"]), (w.pid, True, node))
        rc, out, _ = self.run_cli("--json", "whereis", "g.a")
        self.assertEqual(json.loads(out)["value"], "local")

        # No bridge ever ran: this host is the whole cluster.
        rc, out, err = self.run_cli("owner", "g.a")
        self.assertEqual((rc, out), (0, node + "\n"), err)
        rc, out, err = self.run_cli("--json", "hosts")
        self.assertEqual(rc, 0, err)
        hosts = self.json_lines(out)
        self.assertEqual(len(hosts), 1)
        self.assertEqual((hosts[0]["id"], hosts[0]["state"], hosts[0]["self"], hosts[0]["epoch"]),
                         (node, "up", True, "0"))
        rc, _, err = self.run_cli("owner", "--global", "g.a")
        self.assertEqual(rc, 2, err)
        rc, _, err = self.run_cli("list", "--global")
        self.assertEqual(rc, 2, err)

    def test_serve_global_served_called_and_gone_after_sigterm(self):
        node = os.uname().nodename[:63]
        w, line = self.start("--json", "serve-global", "sg.a", "tcp://10.0.0.1:9")
        first = json.loads(line)
        self.assertEqual((first["name"], first["pid"], first["value"], first["global"],
                          first["host"]), ("sg.a", w.pid, "tcp://10.0.0.1:9", True, node))
        rc, out, err = self.run_cli("--json", "whereis", "--global", "sg.a")
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        self.assertEqual((got["name"], got["pid"], got["value"], got["host"], got["regid"]),
                         ("sg.a", w.pid, "tcp://10.0.0.1:9", node, first["regid"]))
        self.assertEqual(self.run_cli("whereis", "sg.a")[0], 1, "a global name is not local")
        # A call is answered, empty; a cast and a send are taken.
        rc, out, err = self.run_cli("call", "--global", "sg.a", "hello")
        self.assertEqual((rc, out), (0, "\n"), err)
        rc, out, err = self.run_cli("--json", "call", "--global", "sg.a", "again")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["reply"], "")
        self.assertEqual(self.run_cli("cast", "--global", "sg.a", "tick")[0], 0)
        self.assertEqual(self.run_cli("send", "--global", "sg.a", "info")[0], 0)
        seen = [json.loads(w.stdout.readline()) for _ in range(4)]
        for m in seen:
            for key in ("kind", "name", "sender", "data"):
                self.assertIn(key, m)
        self.assertEqual([(m["kind"], m["name"], m["data"]) for m in seen],
                         [("call", "sg.a", "hello"), ("call", "sg.a", "again"),
                          ("cast", "sg.a", "tick"), ("info", "sg.a", "info")])
        # Served once: a second server of the name fails (exit 4).
        rc, _, err = self.run_cli("serve-global", "sg.a", "other")
        self.assertEqual(rc, 4, err)
        w.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=10), 0)
        rc, _, err = self.run_cli("whereis", "--global", "sg.a")
        self.assertEqual(rc, 1, "the name outlived its server: %s" % err)
        rc, out, _ = self.run_cli("list")
        self.assertEqual((rc, out), (0, ""))
        # Plain text: the first line is the entry, then one line per message.
        w, line = self.start("serve-global", "sg.b", "v")
        self.assertEqual(line.split()[:2], ["sg.b", "pid"])
        self.assertEqual(line.split()[-2:], ["host", node])
        self.assertEqual(self.run_cli("call", "--global", "sg.b", "x")[:2], (0, "\n"))
        self.assertEqual(w.stdout.readline().split()[:2], ["call", "sg.b"])
        w.send_signal(signal.SIGINT)
        self.assertEqual(w.wait(timeout=10), 0)

    def test_hosts_and_owner_json_without_a_bridge(self):
        node = os.uname().nodename[:63]
        self.start("register", "someone", "v")  # the segment exists
        rc, out, err = self.run_cli("--json", "hosts")
        self.assertEqual(rc, 0, err)
        hosts = self.json_lines(out)
        self.assertEqual(len(hosts), 1)
        h = hosts[0]
        for key in ("host", "state", "address", "incarnation"):
            self.assertIn(key, h)
        self.assertEqual((h["host"], h["state"], h["address"], h["self"]), (node, "up", "", True))
        self.assertIn(h["state"], ("up", "suspect", "down", "ignored"))
        rc, out, err = self.run_cli("--json", "owner", "any.name")
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        self.assertEqual((got["name"], got["host"]), ("any.name", node))
        rc, out, err = self.run_cli("hosts")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:2], [node, "up"])

    def test_global_names_across_two_hosts(self):
        bridge = os.environ.get("DISTREG_BRIDGE")
        if not bridge:
            self.skipTest("no bridge built (meson option bridge=false)")
        seg_a, seg_b = self.seg, new_segment()
        self.segs.append(seg_b)
        base = "/tmp/distreg.%s" % seg_a
        bus = {h: "ipc://%s.%s.bus" % (base, h) for h in "ab"}
        rpc = {h: "ipc://%s.%s.rpc" % (base, h) for h in "ab"}
        self.files += [u[len("ipc://"):] for u in list(bus.values()) + list(rpc.values())]
        for h, seg, peer in (("a", seg_a, "b"), ("b", seg_b, "a")):
            p = subprocess.Popen([bridge, "--segment", seg, "--host", "host" + h.upper(),
                                  "--bus", bus[h], "--rpc", rpc[h], "--peer", bus[peer],
                                  "--heartbeat-ms", "50", "--down-after-ms", "2000",
                                  "--log-level", "warn"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.bg.append(p)
        deadline = time.monotonic() + 10
        while True:
            rc, out, _ = self.run_cli("--json", "hosts")
            views = self.json_lines(out) if rc == 0 else []
            if sorted((h["host"], h["state"]) for h in views) == [("hostA", "up"),
                                                                  ("hostB", "up")]:
                rc, out, _ = self.run_cli("--json", "hosts", seg=seg_b)
                if rc == 0 and len([h for h in self.json_lines(out) if h["state"] == "up"]) == 2:
                    break
            self.assertLess(time.monotonic(), deadline, "the bridges never saw each other")
            time.sleep(0.05)
        for h in views:
            self.assertEqual(h["address"], rpc[h["host"][-1].lower()])
            self.assertEqual(h["self"], h["host"] == "hostA")
            self.assertGreater(int(h["incarnation"]), 0)
        # A name owned by hostB, as both hosts compute it.
        name = next(n for n in ("x.%d" % i for i in range(100))
                    if self.run_cli("owner", n)[1] == "hostB\n")
        rc, out, _ = self.run_cli("--json", "owner", name, seg=seg_b)
        self.assertEqual((rc, json.loads(out)["host"]), (0, "hostB"))
        # Not servable on hostA: exit 4, and the error names the owner.
        rc, _, err = self.run_cli("serve-global", name, "v")
        self.assertEqual(rc, 4, err)
        self.assertIn("hostB", err)
        rc, _, err = self.run_cli("echo-worker", "--global", name)
        self.assertEqual(rc, 4, err)
        self.assertIn("hostB", err)
        # Served on hostB, reached from hostA.
        w, line = self.start("--json", "serve-global", name, "on-b", seg=seg_b)
        self.assertEqual(json.loads(line)["host"], "hostB")
        rc, out, err = self.run_cli("--json", "whereis", "--global", name)
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        self.assertEqual((got["host"], got["value"], got["pid"]), ("hostB", "on-b", w.pid))
        rc, out, err = self.run_cli("call", "--global", name, "from a")
        self.assertEqual((rc, out), (0, "\n"), err)
        self.assertEqual(self.run_cli("cast", "--global", name, "cast a")[0], 0)
        self.assertEqual(self.run_cli("send", "--global", name, "send a")[0], 0)
        seen = [json.loads(w.stdout.readline()) for _ in range(3)]
        self.assertEqual([(m["kind"], m["data"]) for m in seen],
                         [("call", "from a"), ("cast", "cast a"), ("info", "send a")])
        w.send_signal(signal.SIGTERM)
        self.assertEqual(w.wait(timeout=10), 0)
        rc, _, err = self.run_cli("whereis", "--global", name)
        self.assertEqual(rc, 1, err)
        for p in self.bg[:2]:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=10), 0)

    def segments(self, *opts):
        """distreg segments: {segment: (size, attached)} of this test's own."""
        rc, out, err = self.run_cli(*opts, "segments")
        self.assertEqual(rc, 0, err)
        mine = {}
        if "--json" in opts:
            for o in self.json_lines(out):
                self.assertEqual(set(o), {"segment", "segment_encoding", "size", "attached"})
                if o["segment"] in self.segs:
                    mine[o["segment"]] = (o["size"], o["attached"])
        else:
            for line in out.splitlines():
                f = line.split()
                self.assertEqual((len(f), f[1], f[3]), (5, "size", "attached"), line)
                if f[0] in self.segs:
                    mine[f[0]] = (int(f[2]), int(f[4]))
        return mine

    def test_segments_lists_name_size_and_processes_attached(self):
        other = self.seg + ".other"
        self.segs.append(other)
        self.assertEqual(self.segments(), {})
        a, _ = self.start("register", "a", "v")
        b, _ = self.start("register", "b", "v")
        self.start("register", "c", "v", seg=other)
        size = os.stat("/dev/shm/distreg." + self.seg).st_size
        osize = os.stat("/dev/shm/distreg." + other).st_size
        want = {self.seg: (size, 2), other: (osize, 1)}
        self.assertEqual(self.segments(), want)
        self.assertEqual(self.segments("--json"), want)
        # Listing attached nothing and created nothing; a process gone is
        # no longer counted, even killed (its lock dies with it).
        a.send_signal(signal.SIGTERM)
        self.assertEqual(a.wait(timeout=10), 0)
        b.kill()
        b.wait()
        self.assertEqual(self.segments(), {self.seg: (size, 0), other: (osize, 1)})
        rc, _, err = self.run_cli("segments", "extra")
        self.assertEqual(rc, 2, err)
        self.assertIn("usage:", err)

    def test_unlink_removes_a_segment_exit_1_if_absent_2_if_a_bad_name(self):
        path = "/dev/shm/distreg." + self.seg
        p, _ = self.start("register", "a", "v")
        # Processes attached keep it; stderr says so.
        rc, out, err = self.run_cli("--json", "unlink", self.seg)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"segment": self.seg, "segment_encoding": "text",
                                           "unlinked": True})
        self.assertIn("1 process still attached", err)
        self.assertFalse(os.path.exists(path))
        self.assertNotIn(self.seg, self.segments())
        self.assertEqual(self.run_cli("whereis", "a")[0], 1)  # no such segment
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=10), 0)
        rc, out, err = self.run_cli("unlink", self.seg)
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("no such segment", err)
        # One made again, nobody attached: removed without a word.
        q, _ = self.start("register", "a", "v")
        q.send_signal(signal.SIGTERM)
        self.assertEqual(q.wait(timeout=10), 0)
        self.assertTrue(os.path.exists(path))
        self.assertEqual(self.run_cli("unlink", self.seg), (0, "", ""))
        self.assertFalse(os.path.exists(path))
        for args in (["unlink"], ["unlink", ""], ["unlink", "a/b"], ["unlink", ".."],
                     ["unlink", "x" * 201], ["unlink", "a", "b"]):
            rc, _, err = self.run_cli(*args)
            self.assertEqual(rc, 2, "%s: %d %s" % (args, rc, err))
            self.assertIn("usage:", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)

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


def new_segment():
    counter[0] += 1
    return "t.cli.%d.%d" % (os.getpid(), counter[0])


class Cli(unittest.TestCase):
    def setUp(self):
        self.assertTrue(DISTREG, "$DISTREG is not set: run this test through meson test")
        self.seg = new_segment()
        self.bg = []

    def tearDown(self):
        for p in self.bg:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            os.unlink("/dev/shm/distreg." + self.seg)
        except FileNotFoundError:
            pass

    def run_cli(self, *args, timeout=20):
        p = subprocess.run([DISTREG, "--segment", self.seg] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def start(self, *args):
        p = subprocess.Popen([DISTREG, "--segment", self.seg] + list(args),
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
                     ["unregister", "--force"], ["echo-worker"], ["list", "extra"]):
            rc, out, err = self.run_cli(*args)
            self.assertEqual(rc, 2, "%s: %d %s" % (args, rc, err))
            self.assertIn("usage:", err)
        rc, out, _ = self.run_cli("--help")
        self.assertEqual(rc, 0)
        self.assertIn("echo-worker", out)

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
        w.send_signal(signal.SIGINT)
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


if __name__ == "__main__":
    unittest.main(verbosity=2)

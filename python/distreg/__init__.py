"""distreg: a Python binding of libdistreg (ctypes, standard library only).

    import distreg

    with distreg.Registry("myapp") as reg:
        reg.register("worker.1", b"tcp://10.0.0.5:7000")
        e = reg.whereis("worker.1")      # Entry(pid=..., regid=..., value=b'...')
        reg.names()                      # ['worker.1']

The library is loaded from $DISTREG_LIB if set, else by its soname
(libdistreg.so.2) through the default loader path. Names are str (encoded
as UTF-8, undecodable bytes kept through surrogateescape) or bytes; values
are bytes. Every failure raises a DistregError (or a subclass) carrying the
errno and libdistreg's own message (dr_strerror).

A Registry handle belongs to the process that opened it: after os.fork()
the child must open its own (the library answers -ECHILD otherwise).
"""
import collections
import ctypes
import errno as _errno
import os

__all__ = [
    "Registry", "Mailbox", "Entry", "Message", "DistregError", "NotFound",
    "AlreadyRegistered", "NotOwner", "TableFull", "ShmFull", "Timeout",
    "BadSegmentName", "NAME_MAX", "VALUE_MAX", "SEGMENT_MAX",
    "MSG_CALL", "MSG_CAST", "MSG_INFO", "MSG_REPLY", "MSG_SYSTEM",
]

SONAME = "libdistreg.so.2"

# distreg.h's limits and constants.
NAME_MAX = 127
VALUE_MAX = 64
SEGMENT_MAX = 200
OPEN_NOCREATE = 1 << 0
OPEN_NOREAP = 1 << 1
OPEN_NOHUGEPAGES = 1 << 2
MSG_CALL, MSG_CAST, MSG_INFO, MSG_REPLY, MSG_SYSTEM = 1, 2, 3, 4, 5

_pid_t = ctypes.c_int  # pid_t is int on Linux


class _Options(ctypes.Structure):
    """struct dr_options"""
    _fields_ = [
        ("segment", ctypes.c_char_p),
        ("capacity", ctypes.c_uint32),
        ("max_procs", ctypes.c_uint32),
        ("max_threads", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("max_mailboxes", ctypes.c_uint32),
        ("max_lanes", ctypes.c_uint32),
        ("lane_bytes", ctypes.c_uint32),
    ]


class _Entry(ctypes.Structure):
    """struct dr_entry"""
    _fields_ = [
        ("pid", _pid_t),
        ("regid", ctypes.c_uint64),
        ("value_len", ctypes.c_size_t),
        ("value", ctypes.c_ubyte * VALUE_MAX),
    ]


class _NameInfo(ctypes.Structure):
    """struct dr_name_info"""
    _fields_ = [
        ("name", ctypes.POINTER(ctypes.c_ubyte)),
        ("name_len", ctypes.c_size_t),
        ("entry", _Entry),
        ("alive", ctypes.c_int),
        ("global_", ctypes.c_int),
    ]


class _Msg(ctypes.Structure):
    """struct dr_msg"""
    _fields_ = [
        ("kind", ctypes.c_int),
        ("status", ctypes.c_int),
        ("name", ctypes.POINTER(ctypes.c_ubyte)),
        ("name_len", ctypes.c_size_t),
        ("regid", ctypes.c_uint64),
        ("sender", _pid_t),
        ("call_id", ctypes.c_uint64),
        ("data", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("reply_to", ctypes.c_uint32),
        ("global_", ctypes.c_int),
    ]


# The C structs, by their C names, for layout checks.
STRUCTS = {
    "dr_options": _Options,
    "dr_entry": _Entry,
    "dr_name_info": _NameInfo,
    "dr_msg": _Msg,
}

_FOREACH_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_NameInfo), ctypes.c_void_p)

_lib = None


def _load():
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(os.environ.get("DISTREG_LIB") or SONAME)
    vp, sz, cp, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int
    protos = {
        "dr_open": (i, [ctypes.POINTER(_Options), ctypes.POINTER(vp)]),
        "dr_close": (None, [vp]),
        "dr_unlink": (i, [cp]),
        "dr_register_bin": (i, [vp, cp, sz, cp, sz]),
        "dr_unregister_bin": (i, [vp, cp, sz]),
        "dr_unregister_force_bin": (i, [vp, cp, sz]),
        "dr_whereis_bin": (i, [vp, cp, sz, ctypes.POINTER(_Entry)]),
        "dr_reap": (i, [vp, ctypes.POINTER(ctypes.c_uint)]),
        "dr_foreach": (i, [vp, _FOREACH_FN, vp]),
        "dr_segment_name": (cp, [vp]),
        "dr_segment_name_error": (cp, [cp]),
        "dr_strerror": (cp, [i]),
        "dr_message_max": (sz, [vp]),
        "dr_call_bin": (i, [vp, cp, sz, cp, sz, ctypes.c_char_p, ctypes.POINTER(sz), i]),
        "dr_mailbox_open": (i, [vp, ctypes.POINTER(vp)]),
        "dr_mailbox_close": (None, [vp]),
        "dr_mailbox_fd": (i, [vp]),
        "dr_serve_bin": (i, [vp, cp, sz, cp, sz]),
        "dr_recv": (i, [vp, ctypes.POINTER(_Msg), i]),
        "dr_reply": (i, [vp, ctypes.POINTER(_Msg), cp, sz]),
        "dr_reply_error": (i, [vp, ctypes.POINTER(_Msg), i]),
    }
    for fname, (res, args) in protos.items():
        f = getattr(lib, fname)
        f.restype = res
        f.argtypes = args
    _lib = lib
    return lib


def strerror(code):
    """libdistreg's message for a code (negative errno) it returned."""
    return _load().dr_strerror(code).decode()


class DistregError(Exception):
    """A libdistreg call failed. errno: the (positive) errno value; code: the
    negative value the library returned; message: dr_strerror's text."""

    def __init__(self, code, what="", message=None):
        self.code = code
        self.errno = -code
        self.message = message if message is not None else strerror(code)
        self.what = what
        super().__init__("%s: %s" % (what, self.message) if what else self.message)


class NotFound(DistregError, LookupError):
    """-ENOENT: no such name (or no such segment)."""


class AlreadyRegistered(DistregError):
    """-EEXIST: another live process or handle holds the name."""


class NotOwner(DistregError):
    """-EPERM: the name is owned by another live process."""


class TableFull(DistregError):
    """-ENOSPC: all of the segment's entries hold live names."""


class ShmFull(DistregError):
    """-EDQUOT: no space left in /dev/shm for the segment."""


class Timeout(DistregError, TimeoutError):
    """-ETIMEDOUT."""


class BadSegmentName(DistregError, ValueError):
    """-EINVAL from opening: the segment name breaks a rule (the message says which)."""


_BY_CODE = {
    -_errno.ENOENT: NotFound,
    -_errno.EEXIST: AlreadyRegistered,
    -_errno.EPERM: NotOwner,
    -_errno.ENOSPC: TableFull,
    -_errno.EDQUOT: ShmFull,
    -_errno.ETIMEDOUT: Timeout,
}


def _check(code, what):
    if code < 0:
        raise _BY_CODE.get(code, DistregError)(code, what)
    return code


def _bytes(name):
    if isinstance(name, str):
        return name.encode("utf-8", "surrogateescape")
    return bytes(name)


def _text(b):
    return b.decode("utf-8", "surrogateescape")


# A lookup's result; value is bytes.
Entry = collections.namedtuple("Entry", "pid regid value")

# A received message. kind: MSG_*; name: str (None for REPLY and SYSTEM);
# data: bytes. Answer a CALL with Mailbox.reply(msg, data).
Message = collections.namedtuple(
    "Message", "kind status name regid sender call_id data is_global raw")


class Registry:
    """One open segment (dr_open). Use as a context manager, or close()."""

    def __init__(self, segment=None, create=True, capacity=0, max_procs=0,
                 max_threads=0, mode=0, reap=True, max_mailboxes=0, max_lanes=0,
                 lane_bytes=0):
        lib = _load()
        self._lib = lib
        self._h = None
        seg = None if segment is None else _bytes(segment)
        flags = (0 if create else OPEN_NOCREATE) | (0 if reap else OPEN_NOREAP)
        opts = _Options(seg, capacity, max_procs, max_threads, mode, flags,
                        max_mailboxes, max_lanes, lane_bytes)
        h = ctypes.c_void_p()
        rc = lib.dr_open(ctypes.byref(opts), ctypes.byref(h))
        if rc == -_errno.EINVAL:
            rule = lib.dr_segment_name_error(seg)
            if rule:
                raise BadSegmentName(rc, "open segment %r" % (segment,), rule.decode())
        _check(rc, "open segment %s" % (segment if segment is not None else "(default)"))
        self._h = h
        self._mailboxes = []

    # -- life --
    def close(self):
        """Unregister this handle's names, detach and free it (dr_close)."""
        for mb in self._mailboxes:
            mb.close()
        self._mailboxes = []
        if self._h:
            self._lib.dr_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _handle(self):
        if not self._h:
            raise ValueError("the registry is closed")
        return self._h

    @property
    def segment(self):
        """The segment name this handle has open."""
        return _text(self._lib.dr_segment_name(self._handle()))

    @staticmethod
    def unlink(segment=None):
        """Remove the segment's name from /dev/shm (dr_unlink)."""
        _check(_load().dr_unlink(None if segment is None else _bytes(segment)),
               "unlink segment %s" % (segment,))

    # -- names --
    def register(self, name, value=b""):
        """Register name with value (bytes, at most VALUE_MAX), owned by this handle."""
        n, v = _bytes(name), bytes(value)
        _check(self._lib.dr_register_bin(self._handle(), n, len(n), v, len(v)),
               "register %s" % (name,))

    def unregister(self, name, force=False):
        """Unregister a name this handle holds (force: whoever holds it)."""
        n = _bytes(name)
        f = self._lib.dr_unregister_force_bin if force else self._lib.dr_unregister_bin
        _check(f(self._handle(), n, len(n)), "unregister %s" % (name,))

    def whereis(self, name):
        """The name's Entry(pid, regid, value), or None if it is not registered."""
        n = _bytes(name)
        e = _Entry()
        rc = self._lib.dr_whereis_bin(self._handle(), n, len(n), ctypes.byref(e))
        if rc == -_errno.ENOENT:
            return None
        _check(rc, "whereis %s" % (name,))
        return Entry(e.pid, e.regid, bytes(e.value[:e.value_len]))

    def __contains__(self, name):
        return self.whereis(name) is not None

    def names(self, with_entries=False):
        """Every registered local name (str), in table order; with_entries:
        (name, Entry, alive) triples instead."""
        out = []

        def fn(info_p, _arg):
            info = info_p.contents
            if info.global_:
                return 0
            name = _text(ctypes.string_at(info.name, info.name_len))
            if with_entries:
                e = info.entry
                out.append((name, Entry(e.pid, e.regid, bytes(e.value[:e.value_len])),
                            bool(info.alive)))
            else:
                out.append(name)
            return 0

        cb = _FOREACH_FN(fn)  # kept alive for the call
        _check(self._lib.dr_foreach(self._handle(), cb, None), "foreach")
        return out

    def reap(self):
        """Remove dead processes' names now; returns how many (dr_reap)."""
        n = ctypes.c_uint()
        _check(self._lib.dr_reap(self._handle(), ctypes.byref(n)), "reap")
        return n.value

    # -- messages --
    def message_max(self):
        """The largest message the segment carries, in bytes."""
        return self._lib.dr_message_max(self._handle())

    def call(self, name, data=b"", timeout_ms=-1):
        """Call name (served through a Mailbox): send data, wait up to
        timeout_ms (-1: for ever) and return the answer (bytes)."""
        n, d = _bytes(name), bytes(data)
        cap = self._lib.dr_message_max(self._handle())
        buf = ctypes.create_string_buffer(max(cap, 1))
        ln = ctypes.c_size_t(cap)
        _check(self._lib.dr_call_bin(self._handle(), n, len(n), d, len(d), buf,
                                     ctypes.byref(ln), timeout_ms), "call %s" % (name,))
        return buf.raw[:ln.value]

    def mailbox(self):
        """Open a Mailbox of this process (dr_mailbox_open)."""
        mb = Mailbox(self)
        self._mailboxes.append(mb)
        return mb


class Mailbox:
    """A mailbox: serve names through it, receive their messages and answer
    calls. One thread at a time receives."""

    def __init__(self, registry):
        self._lib = registry._lib
        self._registry = registry
        h = ctypes.c_void_p()
        _check(self._lib.dr_mailbox_open(registry._handle(), ctypes.byref(h)), "mailbox open")
        self._h = h

    def close(self):
        if self._h:
            self._lib.dr_mailbox_close(self._h)
            self._h = None
            try:
                self._registry._mailboxes.remove(self)
            except ValueError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _handle(self):
        if not self._h:
            raise ValueError("the mailbox is closed")
        return self._h

    def fileno(self):
        """A descriptor to poll (POLLIN) once recv(0) has raised Timeout or returned None."""
        return self._lib.dr_mailbox_fd(self._handle())

    def serve(self, name, value=b""):
        """Register name and have its messages delivered here (dr_serve)."""
        n, v = _bytes(name), bytes(value)
        _check(self._lib.dr_serve_bin(self._handle(), n, len(n), v, len(v)),
               "serve %s" % (name,))

    def recv(self, timeout_ms=-1):
        """The next Message, or None if none came within timeout_ms (0: do not
        wait; -1: wait for ever)."""
        m = _Msg()
        rc = self._lib.dr_recv(self._handle(), ctypes.byref(m), timeout_ms)
        if rc in (-_errno.EAGAIN, -_errno.ETIMEDOUT):
            return None
        _check(rc, "recv")
        name = _text(ctypes.string_at(m.name, m.name_len)) if m.name_len else None
        data = ctypes.string_at(m.data, m.len) if m.len else b""
        # The struct is copied: dr_reply takes a copy after the next recv.
        raw = _Msg.from_buffer_copy(m)
        return Message(m.kind, m.status, name, m.regid, m.sender, m.call_id, data,
                       bool(m.global_), raw)

    def reply(self, msg, data=b""):
        """Answer the CALL msg with data."""
        d = bytes(data)
        _check(self._lib.dr_reply(self._handle(), ctypes.byref(msg.raw), d, len(d)), "reply")

    def reply_error(self, msg, err):
        """Fail the CALL msg: the caller gets the errno err (positive)."""
        _check(self._lib.dr_reply_error(self._handle(), ctypes.byref(msg.raw), -abs(err)),
               "reply")

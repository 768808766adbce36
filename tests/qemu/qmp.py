# SPDX-License-Identifier: MIT
"""A small QMP client: standard library only (socket, json).

    q = QMP('/path/qmp.sock', timeout=10)     # connects, negotiates capabilities
    q.cmd('query-status')                     # -> the 'return' value
    q.cmd('migrate-set-parameters', **{'multifd-channels': 4})
    q.events                                  # asynchronous events received so far
    q.wait_event('MIGRATION', timeout=30, pred=lambda e: ...)
    q.close()

A command that QEMU answers with an 'error' raises QMPError (its .cls and
.desc are QEMU's). Every read has a deadline: a QEMU that stops answering
raises TimeoutError instead of hanging the caller. QEMU exiting raises
QMPClosed.
"""

import json
import os
import socket
import time


class QMPError(Exception):
    """QEMU answered a command with an error."""

    def __init__(self, cmd, cls, desc):
        super().__init__(f"{cmd}: {cls}: {desc}")
        self.cmd = cmd
        self.cls = cls
        self.desc = desc


class QMPClosed(Exception):
    """The monitor connection closed (QEMU exited)."""


class QMP:
    def __init__(self, path, timeout=10.0, connect_timeout=30.0):
        self.path = path
        self.timeout = timeout
        self.events = []
        self._buf = b""
        self._id = 0
        self.sock = self._connect(connect_timeout)
        try:
            greeting = self._read_msg(time.monotonic() + timeout)
            if "QMP" not in greeting:
                raise QMPClosed(f"{path}: no QMP greeting: {greeting!r}")
            self.version = greeting["QMP"].get("version", {}).get("qemu", {})
            self.cmd("qmp_capabilities")
        except BaseException:
            self.sock.close()
            raise

    def _connect(self, connect_timeout):
        """QEMU creates the socket some time after it starts: retry."""
        deadline = time.monotonic() + connect_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no QMP socket at {self.path} after {connect_timeout} s")
                time.sleep(0.05)

    def _read_msg(self, deadline):
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"QMP {self.path}: no answer in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"QMP {self.path}: no answer in time") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise QMPClosed(f"QMP {self.path}: connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, timeout=None, **args):
        """Runs command @name with @args; returns its 'return' value."""
        self._id += 1
        msg = {"execute": name, "id": self._id}
        if args:
            msg["arguments"] = args
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            raise QMPClosed(f"QMP {self.path}: connection closed") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            r = self._read_msg(deadline)
            if "event" in r:
                self.events.append(r)
                continue
            if r.get("id") != self._id:
                continue
            if "error" in r:
                e = r["error"]
                raise QMPError(name, e.get("class", "?"), e.get("desc", "?"))
            return r.get("return")

    def poll_events(self):
        """Reads whatever events are already waiting, without blocking long."""
        try:
            while True:
                self.events.append(self._read_msg(time.monotonic() + 0.01))
        except TimeoutError:
            pass
        return self.events

    def wait_event(self, name, timeout, pred=None):
        """Returns the first event @name (matching @pred) seen, waiting up to @timeout s."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.events[seen:]:
                if e.get("event") == name and (pred is None or pred(e)):
                    return e
            seen = len(self.events)
            try:
                r = self._read_msg(deadline)
            except TimeoutError:
                raise TimeoutError(f"QMP {self.path}: no {name} event in {timeout} s") from None
            if "event" in r:
                self.events.append(r)

    def hmp(self, line):
        """An HMP command through QMP; returns its text."""
        return self.cmd("human-monitor-command", **{"command-line": line})

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def wait_socket_gone(path, timeout):
    """True once @path no longer exists (QEMU removes its socket on exit)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

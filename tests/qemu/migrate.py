# SPDX-License-Identifier: MIT
"""Drives a QEMU migration between two local QEMU processes, over rmig or
stock multifd, and collects QEMU's figures (tests/qemu/README.md).

As a library (tests/qemu/qemu-test.py, bench/qemu-vs-stock.sh):
    guest = build_guest(cache_dir)            # Debian's kernel + memcheck initramfs
    src = VM(qemu, 'src', out, guest_args(guest, 1024, 512))
    dst = VM(qemu, 'dst', out, guest_args(guest, 1024, 512), incoming=True)
    res = migrate(src, dst, Config(rmig=True, channels=2))

As a program:
    migrate.py --qemu PATH --out DIR [--mode running|paused] [--rmig|--stock]
               [--channels N] [--mem MB] [--json FILE]

The QEMU binary is the same for both kinds of migration: with rmig-uri set
(the integrations/qemu patch), multifd's RAM pages go through rmig; without
it, the same binary is stock QEMU 10 multifd.
"""

import argparse
import atexit
import ctypes
import glob
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import QMP, QMPClosed, QMPError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GiB = 1 << 30
MiB = 1 << 20

# ---------------------------------------------------------------- processes

_children = []


def _kill_all(*_):
    for p in _children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    for p in _children:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # A QEMU must not outlive this driver, even if the driver is SIGKILLed.
    os.setsid()
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_qemu(path):
    """Returns the version line of @path, or raises SystemExit naming what is wrong."""
    if not path:
        raise SystemExit("FAIL: RMIG_QEMU is not set: it must name the qemu-system-x86_64 "
                         "to test (integrations/qemu/build.sh prints it as its last line)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SystemExit(f"FAIL: RMIG_QEMU={path} is not an executable file")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SystemExit(f"FAIL: RMIG_QEMU={path} does not run: {e}")
    if out.returncode != 0:
        raise SystemExit(f"FAIL: RMIG_QEMU={path} --version exited {out.returncode}: "
                         f"{out.stderr.strip()}")
    return out.stdout.splitlines()[0] if out.stdout else "?"


# ---------------------------------------------------------------- the guest

def _cpio_entry(name, mode, data=b"", rdev=(0, 0), ino=1):
    name_b = name.encode() + b"\0"
    hdr = "070701" + "".join(f"{v:08x}" for v in (
        ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
    out = hdr.encode() + name_b
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def _cpio(entries):
    """A newc archive (what the kernel unpacks as initramfs); no root needed
    for the device node since the archive only describes it."""
    out = b""
    for i, e in enumerate(entries, 1):
        out += _cpio_entry(*e, ino=i)
    return out + _cpio_entry("TRAILER!!!", 0, ino=0)


def guest_kernel():
    k = os.environ.get("RMIG_GUEST_KERNEL")
    if k:
        return k
    ks = sorted(glob.glob("/boot/vmlinuz-*"))
    if not ks:
        raise SystemExit("FAIL: no /boot/vmlinuz-*: install linux-image-amd64 "
                         "(scripts/install-deps.sh --with-rxe)")
    return ks[-1]


def build_guest(cache):
    """Builds memcheck (static) and its initramfs in @cache unless they are
    newer than memcheck.c; returns {'kernel', 'initrd'}."""
    os.makedirs(cache, exist_ok=True)
    src = os.path.join(HERE, "guest", "memcheck.c")
    exe = os.path.join(cache, "memcheck")
    initrd = os.path.join(cache, "memcheck.cpio.gz")
    if not os.path.exists(initrd) or os.path.getmtime(initrd) < os.path.getmtime(src):
        tmp = f"{exe}.{os.getpid()}"
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-static", "-std=gnu11", "-Wall", "-Wextra", "-Wshadow",
                        "-Wformat=2", "-Wmissing-prototypes", "-Wstrict-prototypes", "-Werror",
                        "-o", tmp, src], check=True)
        os.replace(tmp, exe)
        with open(exe, "rb") as f:
            init = f.read()
        data = _cpio([("dev", 0o40755), ("dev/console", 0o20600, b"", (5, 1)),
                      ("init", 0o100755, init)])
        with gzip.open(f"{initrd}.{os.getpid()}", "wb", compresslevel=6) as f:
            f.write(data)
        os.replace(f"{initrd}.{os.getpid()}", initrd)
    return {"kernel": guest_kernel(), "initrd": initrd}


def build_mbcheck(cache):
    """Builds guest/mbcheck.c (memcheck as a multiboot kernel: no Linux to
    boot, for QEMU inside the rxe guests) in @cache unless it is newer than
    its sources; returns the ELF's path."""
    os.makedirs(cache, exist_ok=True)
    src = os.path.join(HERE, "guest", "mbcheck.c")
    lds = os.path.join(HERE, "guest", "mbcheck.ld")
    elf = os.path.join(cache, "mbcheck.elf")
    if os.path.exists(elf) and os.path.getmtime(elf) >= max(os.path.getmtime(src),
                                                           os.path.getmtime(lds)):
        return elf
    obj, tmp = f"{elf}.{os.getpid()}.o", f"{elf}.{os.getpid()}"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-m32", "-O2", "-std=gnu11", "-ffreestanding", "-fno-pic",
                    "-fno-stack-protector", "-nostdinc", "-fno-asynchronous-unwind-tables",
                    "-Wall", "-Wextra", "-Wshadow", "-Werror", "-c", "-o", obj, src], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "--no-warn-rwx-segments", "-T", lds, "-o", tmp, obj],
                   check=True)
    os.unlink(obj)
    os.replace(tmp, elf)
    return elf


def mbcheck_args(elf, mem_mb, work_mb, ticks=4):
    """QEMU arguments of the mbcheck guest: @mem_mb of RAM, @work_mb rewritten."""
    return ["-m", str(mem_mb), "-smp", "1", "-kernel", elf,
            "-append", f"mc_mb={work_mb} mc_ticks={ticks}"]


def guest_args(guest, mem_mb, work_mb, ticks=8):
    """QEMU arguments of the memcheck guest: @mem_mb of RAM, @work_mb of it rewritten."""
    append = (f"console=ttyS0 panic=-1 loglevel=4 mitigations=off nokaslr "
              f"mc_mb={work_mb} mc_ticks={ticks}")
    return ["-m", str(mem_mb), "-smp", "1", "-kernel", guest["kernel"],
            "-initrd", guest["initrd"], "-append", append]


def shm_ram_args(path, size):
    """RAM in a memory-backend-file (share=on) at @path."""
    return ["-m", f"{size // MiB}",
            "-object", f"memory-backend-file,id=ram0,size={size},mem-path={path},share=on",
            "-machine", "memory-backend=ram0"]


class VM:
    """One QEMU process with a QMP socket and its serial console in a file."""

    def __init__(self, qemu, name, out, args, incoming=False, paused=False):
        self.name = name
        self.sock = os.path.join(out, f"{name}.qmp")
        self.serial = os.path.join(out, f"{name}.serial")
        self.log = os.path.join(out, f"{name}.log")
        for p in (self.sock, self.serial):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [qemu, "-nodefaults", "-no-user-config", "-machine", "pc", "-accel", "tcg",
               "-display", "none", "-no-reboot",
               "-qmp", f"unix:{self.sock},server=on,wait=off",
               "-serial", f"file:{self.serial}"] + list(args)
        if incoming:
            cmd += ["-incoming", "defer"]
        if paused:
            cmd += ["-S"]
        self.cmdline = cmd
        with open(self.log, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        _children.append(self.proc)
        try:
            self.qmp = QMP(self.sock, timeout=20, connect_timeout=30)
        except (TimeoutError, QMPClosed) as e:
            self.kill()
            raise RuntimeError(f"{name}: QEMU did not start: {e}\n{self.log_text()}")

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    def serial_text(self):
        try:
            with open(self.serial, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.qmp.close()
        except AttributeError:
            pass

    def quit(self):
        try:
            self.qmp.cmd("quit", timeout=10)
        except (QMPClosed, QMPError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


# ---------------------------------------------------------------- serial

def passes(text):
    """Numbers of the 'memcheck: pass N ok' lines in @text."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "memcheck:" and f[1] == "pass" and f[3] == "ok":
            out.append(int(f[2]))
    return out


def fail_lines(text):
    return [ln for ln in text.splitlines() if "memcheck: FAIL" in ln]


def wait_serial(vm, pred, timeout, what):
    """Waits until @pred(serial text) is true; raises naming @what otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        text = vm.serial_text()
        if fail_lines(text):
            raise AssertionError(f"{vm.name}: guest reports corrupt memory: {fail_lines(text)[0]}")
        if pred(text):
            return text
        if not vm.alive():
            raise AssertionError(f"{vm.name}: QEMU exited while waiting for {what}\n"
                                 f"{vm.log_text()[-2000:]}")
        if time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-5:])
            raise AssertionError(f"{vm.name}: no {what} within {timeout} s; serial ends:\n{tail}")
        time.sleep(0.2)


# ---------------------------------------------------------------- migration

class Config:
    def __init__(self, rmig=True, channels=2, postcopy=False, downtime_ms=300,
                 max_bw=128 * GiB, rmig_uri=None, dst_channels=None, multifd=True,
                 timeout=300, start_postcopy_after_syncs=2):
        self.rmig = rmig
        self.channels = channels
        self.dst_channels = channels if dst_channels is None else dst_channels
        self.postcopy = postcopy
        self.downtime_ms = downtime_ms
        self.max_bw = max_bw
        self.rmig_uri = rmig_uri  # None: tcp:127.0.0.1:<free port>
        self.multifd = multifd
        self.timeout = timeout
        self.start_postcopy_after_syncs = start_postcopy_after_syncs

    def label(self):
        return "rmig" if self.rmig else "stock"


def configure(vm, cfg, channels, rmig_uri, source):
    """multifd first, then the parameters with rmig-uri, then postcopy-ram:
    QEMU refuses postcopy-ram next to multifd unless rmig-uri is set."""
    vm.qmp.cmd("migrate-set-capabilities",
               capabilities=[{"capability": "multifd", "state": cfg.multifd}])
    params = {"multifd-channels": channels}
    if source:
        params["max-bandwidth"] = cfg.max_bw
        params["downtime-limit"] = cfg.downtime_ms
    if rmig_uri is not None:  # "" clears it
        params["rmig-uri"] = rmig_uri
    vm.qmp.cmd("migrate-set-parameters", **params)
    if cfg.postcopy:
        vm.qmp.cmd("migrate-set-capabilities",
                   capabilities=[{"capability": "postcopy-ram", "state": True}])


def figures(info):
    """The figures of one query-migrate answer."""
    ram = info.get("ram", {})
    return {
        "status": info.get("status"),
        "total_time_ms": info.get("total-time"),
        "downtime_ms": info.get("downtime"),
        "setup_time_ms": info.get("setup-time"),
        "mbps": ram.get("mbps"),
        "transferred": ram.get("transferred"),
        "total": ram.get("total"),
        "normal_pages": ram.get("normal"),
        "duplicate_pages": ram.get("duplicate"),
        "dirty_sync_count": ram.get("dirty-sync-count"),
        "postcopy_requests": ram.get("postcopy-requests"),
        "rmig": info.get("rmig"),
        "error_desc": info.get("error-desc"),
    }


def cpu_seconds(vm):
    """CPU time (user + system, all threads) QEMU process @vm has used, or None."""
    try:
        with open(f"/proc/{vm.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def migrate(src, dst, cfg, on_poll=None, configure_only=False):
    """Configures both sides, migrates, polls until the end; returns a dict:
    the source's figures, the samples taken while active, and errors met.
    Raises nothing for a failed migration (status 'failed' is a result);
    raises QMPError if QEMU refuses the configuration."""
    main_port = free_port()
    rmig_uri = None
    if cfg.rmig:
        rmig_uri = cfg.rmig_uri or f"tcp:127.0.0.1:{free_port()}"
    configure(dst, cfg, cfg.dst_channels, rmig_uri, source=False)
    configure(src, cfg, cfg.channels, rmig_uri, source=True)
    if configure_only:
        return None
    dst.qmp.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{main_port}")
    samples = []
    cpu0 = (cpu_seconds(src), cpu_seconds(dst))
    t0 = time.monotonic()
    src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{main_port}")
    postcopy_started = None
    deadline = t0 + cfg.timeout
    info = {}
    while True:
        info = src.qmp.cmd("query-migrate")
        st = info.get("status")
        now = time.monotonic() - t0
        vmst = src.status()
        samples.append({"t": round(now, 3), "status": st, "vm": vmst,
                        "serial_bytes": os.path.getsize(src.serial) if os.path.exists(src.serial) else 0,
                        "dirty_sync_count": info.get("ram", {}).get("dirty-sync-count")})
        if on_poll:
            on_poll(info, samples)
        if (cfg.postcopy and postcopy_started is None and st == "active" and
                info.get("ram", {}).get("dirty-sync-count", 0) >= cfg.start_postcopy_after_syncs):
            src.qmp.cmd("migrate-start-postcopy")
            postcopy_started = now
        if st in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            try:
                src.qmp.cmd("migrate_cancel")
            except QMPError:
                pass
            ram = {k: info.get("ram", {}).get(k) for k in
                   ("transferred", "remaining", "dirty-sync-count", "postcopy-requests")}
            raise AssertionError(f"migration ({cfg.label()}) not finished after {cfg.timeout} s: "
                                 f"last status {st}, ram {ram}, rmig {info.get('rmig')}")
        time.sleep(0.05)
    wall = time.monotonic() - t0
    cpu1 = (cpu_seconds(src), cpu_seconds(dst))
    res = figures(info)
    # CPU both QEMUs used from 'migrate' to the end (polled, so up to 50 ms
    # late): with both on one host, their sum against wall x cpus says
    # whether the run was bound by CPU rather than by either side's design.
    for side, a, b in (("src", cpu0[0], cpu1[0]), ("dst", cpu0[1], cpu1[1])):
        res[f"cpu_{side}_s"] = round(b - a, 3) if a is not None and b is not None else None
    res.update({"kind": cfg.label(), "channels": cfg.channels, "rmig_uri": rmig_uri,
                "wall_s": round(wall, 3), "samples": samples,
                "postcopy_started_s": postcopy_started})
    try:
        res["hmp_info_migrate"] = src.qmp.hmp("info migrate")
    except (QMPClosed, QMPError, TimeoutError, OSError) as e:
        res["hmp_info_migrate"] = f"(error: {e})"
    try:
        dinfo = dst.qmp.cmd("query-migrate")
        res["dst"] = {"status": dinfo.get("status"), "rmig": dinfo.get("rmig"),
                      "error_desc": dinfo.get("error-desc")}
    except (QMPClosed, QMPError, TimeoutError, OSError) as e:
        res["dst"] = {"error": str(e)}
    return res


def wait_dst_status(dst, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st = dst.status()
        if st == want:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"dst: VM status {st}, expected {want} within {timeout} s")
        time.sleep(0.1)


# ---------------------------------------------------------------- reporting

COLS = [("total_time_ms", "total ms"), ("downtime_ms", "downtime ms"),
        ("setup_time_ms", "setup ms"), ("mbps", "Mbit/s"), ("transferred", "transferred B"),
        ("dirty_sync_count", "syncs"), ("wall_s", "wall s")]


def table(rows):
    """A side-by-side table of migration results (one column per row)."""
    lines = []
    head = f"{'':16}" + "".join(f"{r['kind']:>18}" for r in rows)
    lines.append(head)
    for key, title in COLS:
        vals = []
        for r in rows:
            v = r.get(key)
            if isinstance(v, float):
                v = f"{v:.1f}"
            vals.append(f"{'-' if v is None else v!s:>18}")
        lines.append(f"{title:16}" + "".join(vals))
    for r in rows:
        if r.get("rmig"):
            lines.append(f"rmig ({r['kind']}): {json.dumps(r['rmig'], sort_keys=True)}")
        for ln in (r.get("hmp_info_migrate") or "").splitlines():
            if ln.startswith("rmig"):
                lines.append(f"info migrate ({r['kind']}): {ln.strip()}")
    if len(rows) == 2 and rows[0].get("total_time_ms") and rows[1].get("total_time_ms"):
        lines.append(f"ratio total time {rows[0]['kind']}/{rows[1]['kind']}: "
                     f"{rows[0]['total_time_ms'] / rows[1]['total_time_ms']:.3f}")
    return "\n".join(lines)


def save_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- CLI

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qemu", default=os.environ.get("RMIG_QEMU"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["running", "paused"], default="running")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--rmig", dest="rmig", action="store_true", default=True)
    g.add_argument("--stock", dest="rmig", action="store_false")
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--mem", type=int, help="guest RAM, MiB (running 1024, paused 2048)")
    ap.add_argument("--work", type=int, default=512, help="running: MiB the guest rewrites")
    ap.add_argument("--downtime", type=int, default=300, help="downtime-limit, ms")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    check_qemu(a.qemu)
    os.makedirs(a.out, exist_ok=True)
    cfg = Config(rmig=a.rmig, channels=a.channels, downtime_ms=a.downtime)
    if a.mode == "running":
        res = run_running(a.qemu, a.out, cfg, a.mem or 1024, a.work)
    else:
        res = run_paused(a.qemu, a.out, cfg, (a.mem or 2048) * MiB)
    print(table([res]))
    if a.json:
        save_json(a.json, res)
    return 0 if res.get("ok") else 1


def run_running(qemu, out, cfg, mem_mb, work_mb, guest=None, after_passes=3):
    """A running memcheck guest migrated live; checks the source kept running
    and the guest passes @after_passes more verify passes on the destination."""
    guest = guest or build_guest(os.path.join(out, "cache"))
    tag = cfg.label()
    args = guest_args(guest, mem_mb, work_mb)
    src = VM(qemu, f"{tag}-src", out, args)
    dst = VM(qemu, f"{tag}-dst", out, args, incoming=True)
    res = {}
    try:
        wait_serial(src, lambda t: len(passes(t)) >= 1, 240, "first memcheck pass")
        res = migrate(src, dst, cfg)
        res["src_serial"] = src.serial
        res["dst_serial"] = dst.serial
        if res["status"] != "completed":
            raise AssertionError(f"{tag}: migration {res['status']}: {res.get('error_desc')}")
        check_source_ran(res)
        wait_dst_status(dst, "running", 30)
        src_passes = passes(src.serial_text())
        if fail_lines(src.serial_text()):
            raise AssertionError(f"{tag}: source guest: {fail_lines(src.serial_text())[0]}")
        text = wait_serial(dst, lambda t: len(passes(t)) >= after_passes, 300,
                           f"{after_passes} memcheck passes on the destination")
        dp = passes(text)
        if "memcheck: start" in text:
            raise AssertionError(f"{tag}: the guest restarted on the destination")
        if src_passes and dp[0] <= src_passes[-1]:
            raise AssertionError(f"{tag}: destination pass {dp[0]} does not follow the source's "
                                 f"last pass {src_passes[-1]}")
        res["src_passes"] = src_passes[-1] if src_passes else 0
        res["dst_passes"] = dp
        res["ok"] = True
        return res
    finally:
        if res:
            save_json(os.path.join(out, f"{tag}-running.json"), res)
        src.quit()
        dst.quit()


def check_source_ran(res):
    """The source VM was 'running' at every sample until the switchover (after
    which it is only ever finish-migrate or postmigrate), and its console kept
    growing while it ran."""
    samples = res["samples"]
    running = []
    for i, s in enumerate(samples):
        if s["vm"] != "running":
            break
        running.append(s)
    rest = samples[len(running):]
    if len(running) < 2:
        raise AssertionError(f"{res['kind']}: fewer than 2 samples of a running source "
                             f"during the migration: {samples[:3]}")
    odd = [s for s in rest if s["vm"] not in ("finish-migrate", "postmigrate", "paused")]
    if odd:
        raise AssertionError(f"{res['kind']}: source VM {odd[0]['vm']} at {odd[0]['t']} s after "
                             f"the switchover (migration {odd[0]['status']})")
    grew = running[-1]["serial_bytes"] - running[0]["serial_bytes"]
    res["src_running_s"] = running[-1]["t"]
    res["src_serial_growth_while_active"] = grew
    if grew <= 0:
        raise AssertionError(f"{res['kind']}: source console did not progress during the "
                             f"migration ({len(running)} samples over {running[-1]['t']} s)")


def fill_random(path, size):
    """@size random bytes at @path (in /dev/shm)."""
    chunk = 64 * MiB
    with open("/dev/urandom", "rb") as r, open(path, "wb") as w:
        left = size
        while left:
            n = min(chunk, left)
            w.write(r.read(n))
            left -= n


def cmp_files(a, b):
    r = subprocess.run(["cmp", a, b], capture_output=True, text=True, timeout=300)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def run_paused(qemu, out, cfg, size, shm_dir="/dev/shm", tag=None):
    """A paused (-S) guest whose RAM is random bytes in a shared file; the
    destination's RAM file must equal the source's byte for byte. Raises
    AssertionError (QMPError for a refused configuration) on any failure."""
    tag = tag or cfg.label()
    base = os.path.join(shm_dir, f"rmig-qemu-{os.getpid()}-{tag}")
    sfile, dfile = base + "-src.ram", base + "-dst.ram"
    src = dst = None
    try:
        fill_random(sfile, size)
        src = VM(qemu, f"{tag}-src", out, shm_ram_args(sfile, size), paused=True)
        dst = VM(qemu, f"{tag}-dst", out, shm_ram_args(dfile, size), incoming=True)
        res = migrate(src, dst, cfg)
        if res["status"] != "completed":
            raise AssertionError(f"{tag}: migration {res['status']}: {res.get('error_desc')}")
        src.quit()
        dst.quit()
        same, msg = cmp_files(sfile, dfile)
        res["ram_identical"] = same
        if not same:
            raise AssertionError(f"{tag}: destination RAM differs from the source's: {msg}")
        res["ok"] = True
        return res
    finally:
        for vm in (src, dst):
            if vm:
                vm.kill()
        for p in (sfile, dfile):
            if os.path.exists(p):
                os.unlink(p)


if __name__ == "__main__":
    sys.exit(main())

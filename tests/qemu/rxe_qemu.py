#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU 10 migrating a paused guest between the two rxe guests (tests/rxe)
over soft-RoCE: QEMU's own rdma: migration (phase a), then multifd with
rmig-uri (the integrations/qemu patch) over rmig's rdma (phase b), and
ib_write_bw between the same guests for scale; then a running guest
(guest/mbcheck.c) live-migrated over rmig's rdma (phase c,
rxe_running.py). See tests/qemu/README.md.

    rxe_qemu.py host OUTDIR     boots the pair (tests/rxe/rxe-vm.sh), prints
                                the table, writes OUTDIR/qemu-rxe.json
    rxe_qemu.py dst|src         the guest sides (run by rxe-vm.sh)

The host writes MB (RMIG_QEMU_RXE_MB, default 256) MiB of random bytes to
OUTDIR/ram.src; the source guest copies them into /dev/shm and starts its
QEMU (-S, -M pc, TCG, no disk) on that file (memory-backend-file,
share=on). After each migration the destination's RAM file and the
source's are both compared with OUTDIR/ram.src by cmp. The two guests
step through the phases with flag files in OUTDIR/sync.

Environment: RMIG_QEMU (the qemu-system-x86_64, required),
RMIG_QEMU_RXE_MB, RMIG_QEMU_CHANNELS (multifd channels of the rmig run,
default 2), RMIG_QEMU_RXE_TIMEOUT (the pair's budget, s, default 480),
RMIG_QEMU_RXE_CPUS (vCPUs per guest; default: the pair's, 1),
RMIG_QEMU_RXE_PHASES (default a,b,c: which phases run).
"""

import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import migrate as m  # noqa: E402
from qmp import QMPClosed, QMPError  # noqa: E402

IBWB_PORT = 18515
RDMA_PORT = 4444          # QEMU's rdma: main channel (phase a)
MAIN_PORT = 4445          # the tcp main channel of the rmig run (phase b)
RMIG_PORT = 4446          # rmig's rdma listener (phase b)
# RMIG_QEMU_RXE_PHASES picks some of a, b (paused) and c (running) to run,
# for working on one; the test runs all three.
_ALL = ("a", "b", "c")
_PICK = [p for p in os.environ.get("RMIG_QEMU_RXE_PHASES", "a,b,c").split(",") if p in _ALL]
PHASES = tuple(p for p in ("a", "b") if p in _PICK)
RUN_C = "c" in _PICK
LABEL = {"a": "qemu rdma:", "b": "qemu+rmig rdma"}


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


# ---------------------------------------------------------------- flags

def sync_dir():
    return os.path.join(os.environ["OUT"], "sync")


def put(name, obj=None):
    """Writes flag @name (JSON @obj) in OUT/sync, atomically."""
    path = os.path.join(sync_dir(), name)
    with open(path + ".tmp", "w") as f:
        json.dump(obj or {}, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def get(name):
    try:
        with open(os.path.join(sync_dir(), name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def wait_any(names, timeout):
    """Waits for the first of flags @names; returns (name, content).
    Raises TimeoutError naming them."""
    deadline = time.monotonic() + timeout
    while True:
        for n in names:
            v = get(n)
            if v is not None:
                return n, v
        if time.monotonic() > deadline:
            raise TimeoutError(f"none of {', '.join(names)} within {timeout} s")
        time.sleep(0.1)


def log(msg):
    print(f"[{os.environ.get('RXE_ROLE', '?')} {time.monotonic():.1f}] {msg}", flush=True)


# ---------------------------------------------------------------- guest helpers

def listening(port, rdma_cm):
    """True if a TCP socket or an rdma_cm id listens on @port."""
    lib = os.path.join(os.environ["RXE_LIB"], "guest-lib.sh")
    fn = "rxe_cm_listening" if rdma_cm else "rxe_tcp_listening"
    return subprocess.run(["bash", "-c", f'. "{lib}"; {fn} {port}'],
                          timeout=20).returncode == 0


def wait_listening(port, rdma_cm, timeout):
    deadline = time.monotonic() + timeout
    while not listening(port, rdma_cm):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout} s")
        time.sleep(0.2)


def cmp_with_source(path):
    t = time.monotonic()
    ok, text = m.cmp_files(path, os.path.join(os.environ["OUT"], "ram.src"))
    return {"identical": ok, "cmp": text, "cmp_s": round(time.monotonic() - t, 1)}


def ibwb_cmd():
    # perftest times with rdtsc, and the vCPUs' TSCs differ under TCG: one vCPU.
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 else []
    return pin + ["ib_write_bw", "-R", "-d", os.environ.get("RXE_DEV", "rxe0"), "-x",
            os.environ.get("RXE_GID_INDEX", "1"), "-s", "1048576", "-q", "1", "-D", "5",
            "-F", "--report_gbits"]


def ibwb_parse(text):
    """(iterations, Gb/s) from the line after perftest's '#bytes' header."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("#bytes") and i + 1 < len(lines):
            f = lines[i + 1].split()
            try:
                return int(f[1]), float(f[3])
            except (IndexError, ValueError):
                break
    return 0, None


def start_vm(name, ram_path, size, incoming):
    qemu = os.environ["RMIG_QEMU"]
    wd = f"/tmp/rxe-qemu-{name}"
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    return m.VM(qemu, name, wd, m.shm_ram_args(ram_path, size), incoming=incoming,
                paused=True)


def keep_log(vm, phase):
    try:
        shutil.copy(vm.log, os.path.join(os.environ["OUT"], f"{phase}.{vm.name}.qemu.log"))
    except OSError:
        pass


def rmig_params(channels):
    """Both sides name the destination's rmig listener."""
    dst_addr = os.environ["RXE_ADDR" if os.environ["RXE_ROLE"] == "dst" else "RXE_PEER_ADDR"]
    return {"multifd-channels": channels, "rmig-uri": f"rdma:{dst_addr}:{RMIG_PORT}"}


def set_rmig(vm, channels):
    """multifd + rmig-uri + rmig-psk-file (librmig listens on a guest's own
    address, not loopback, only with a key). Raises QMPError: a QEMU without
    the patch refuses rmig-uri."""
    vm.qmp.cmd("migrate-set-capabilities",
               capabilities=[{"capability": "multifd", "state": True}])
    vm.qmp.cmd("migrate-set-parameters", **rmig_params(channels))
    key = "/tmp/rxe-qemu-rmig.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("rxe-qemu-test-key-not-a-secret-0123456789abcdef\n")
    vm.qmp.cmd("migrate-set-parameters", **{"rmig-psk-file": key})


def migrate_and_wait(vm, uri, on_poll=None, timeout=240, interval=0.05):
    """Starts the source's migration to @uri and polls query-migrate until it
    ends; cancels it after @timeout s (the answer's error-desc says so).
    @on_poll(info) runs at every poll. Returns the last answer."""
    t0 = time.monotonic()
    vm.qmp.cmd("migrate", uri=uri, timeout=60)
    while True:
        info = vm.qmp.cmd("query-migrate")
        if on_poll:
            on_poll(info)
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        if time.monotonic() - t0 > timeout:
            vm.qmp.cmd("migrate_cancel")
            info = vm.qmp.cmd("query-migrate")
            info["error-desc"] = (f"not finished after {timeout} s (cancelled): "
                                  f"{info.get('error-desc')}")
            return info
        time.sleep(interval)


# ---------------------------------------------------------------- destination

def dst_phase(phase, size, channels):
    res = {"phase": phase, "status": None}
    ram = "/dev/shm/rxe-qemu-dst.ram"
    if os.path.exists(ram):
        os.unlink(ram)
    vm = None
    try:
        vm = start_vm("dst", ram, size, incoming=True)
        if phase == "a":
            uri = f"rdma:{os.environ['RXE_ADDR']}:{RDMA_PORT}"
        else:
            uri = f"tcp:{os.environ['RXE_ADDR']}:{MAIN_PORT}"
            try:
                set_rmig(vm, channels)
            except QMPError as e:
                if "rmig-uri" not in e.desc or "unexpected" not in e.desc:
                    raise
                res["unavailable"] = (f"this QEMU has no rmig-uri (migrate-set-parameters: "
                                      f"{e.desc}): integrations/qemu/patches not applied")
                log(res["unavailable"])
                put(f"{phase}.unavailable", res)
                return res
        vm.qmp.cmd("migrate-incoming", uri=uri)
        wait_listening(RDMA_PORT if phase == "a" else MAIN_PORT, phase == "a", 30)
        res["uri"] = uri
        put(f"{phase}.listen", {"uri": uri})
        log(f"{phase}: listening on {uri}")
        deadline = time.monotonic() + 240
        src_done_at = None
        while True:
            info = vm.qmp.cmd("query-migrate")
            st = info.get("status")
            if st in ("completed", "failed", "cancelled"):
                break
            if src_done_at is None and get(f"{phase}.src-done") is not None:
                src_done_at = time.monotonic()
            if src_done_at is not None and time.monotonic() - src_done_at > 20:
                st = f"{st} (source finished 20 s ago)"
                break
            if time.monotonic() > deadline:
                st = f"{st} (timeout)"
                break
            time.sleep(0.1)
        res["status"] = st
        res["error_desc"] = info.get("error-desc")
        res["rmig"] = info.get("rmig")
        res["vm_status"] = vm.status()
    except (QMPClosed, QMPError, TimeoutError, OSError, RuntimeError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"{phase}: {res['error']}")
    finally:
        if vm:
            vm.quit()
            keep_log(vm, phase)
    res.update(cmp_with_source(ram))
    if os.path.exists(ram):
        os.unlink(ram)
    log(f"{phase}: destination {res['status']}, RAM identical: {res['identical']} {res['cmp']}")
    return res


def role_dst():
    size = env_int("RMIG_QEMU_RXE_MB", 256) * m.MiB
    channels = env_int("RMIG_QEMU_CHANNELS", 2)
    # The source may boot and fill its RAM file meanwhile.
    open(os.path.join(os.environ["OUT"], "dst.ready"), "w").close()

    srv_log = os.path.join(os.environ["OUT"], "ibwb-server.log")
    with open(srv_log, "w") as f:
        srv = subprocess.Popen(ibwb_cmd(), stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_listening(IBWB_PORT, True, 30)
        put("ibwb.listen")
        srv.wait(timeout=180)
    except (TimeoutError, subprocess.TimeoutExpired) as e:
        log(f"ib_write_bw server: {e}")
        srv.kill()
        srv.wait()
    put("ibwb.server-done", {"rc": srv.returncode})

    rc = 0
    for phase in PHASES:
        try:
            wait_any([f"{phase}.src-ready"], 240)
        except TimeoutError as e:
            log(f"{phase}: {e}")
            return 1
        res = dst_phase(phase, size, channels)
        put(f"{phase}.dst-done", res)
        if not res.get("unavailable") and not (res["status"] == "completed" and res["identical"]):
            rc = 1
    if not RUN_C:
        return rc
    import rxe_running
    try:
        wait_any([f"{rxe_running.PHASE}.src-ready"], 240)
    except TimeoutError as e:
        log(f"{rxe_running.PHASE}: {e}")
        return 1
    res = rxe_running.dst_running(channels)
    put(f"{rxe_running.PHASE}.dst-done", res)
    return rc if res.get("status") == "completed" and not res.get("error") else 1


# ---------------------------------------------------------------- source

def src_phase(phase, ram, size, channels):
    res = {"phase": phase, "label": LABEL[phase], "status": None}
    name, flag = wait_any([f"{phase}.listen", f"{phase}.unavailable", f"{phase}.dst-done"], 120)
    if name != f"{phase}.listen":
        res["unavailable" if name.endswith("unavailable") else "error"] = (
            flag.get("unavailable") or f"destination ended before listening: {flag}")
        return res
    vm = None
    try:
        vm = start_vm("src", ram, size, incoming=False)
        if phase == "b":
            set_rmig(vm, channels)
            res["channels"] = channels
            res["rmig_uri"] = rmig_params(channels)["rmig-uri"]
        # QEMU's default max-bandwidth (128 MiB/s) would be the measure.
        vm.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 128 * m.GiB})
        uri = flag["uri"]
        res["uri"] = uri
        t0 = time.monotonic()
        info = migrate_and_wait(vm, uri)
        res["wall_s"] = round(time.monotonic() - t0, 3)
        res.update(m.figures(info))
        if res.get("total_time_ms") and res.get("transferred"):
            res["gbits_per_s"] = round(res["transferred"] * 8 / (res["total_time_ms"] / 1000) / 1e9, 3)
        res["vm_status"] = vm.status()
    except (QMPClosed, QMPError, TimeoutError, OSError, RuntimeError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"{phase}: {res['error']}")
    finally:
        if vm:
            vm.quit()
            keep_log(vm, phase)
    res.update(cmp_with_source(ram))
    log(f"{phase}: source {res['status']} in {res.get('total_time_ms')} ms, "
        f"downtime {res.get('downtime_ms')} ms, {res.get('gbits_per_s')} Gb/s, "
        f"source RAM unchanged: {res['identical']}")
    return res


def role_src():
    size = env_int("RMIG_QEMU_RXE_MB", 256) * m.MiB
    channels = env_int("RMIG_QEMU_CHANNELS", 2)
    ram = "/dev/shm/rxe-qemu-src.ram"
    t = time.monotonic()
    shutil.copyfile(os.path.join(os.environ["OUT"], "ram.src"), ram)
    log(f"RAM file filled ({size >> 20} MiB) in {time.monotonic() - t:.1f} s")

    ibwb = {"iterations": 0, "gbits_per_s": None}
    try:
        wait_any(["ibwb.listen"], 120)
        r = subprocess.run(ibwb_cmd() + [os.environ["RXE_PEER_ADDR"]], capture_output=True,
                           text=True, timeout=120)
        ibwb["rc"] = r.returncode
        ibwb["iterations"], ibwb["gbits_per_s"] = ibwb_parse(r.stdout)
        with open(os.path.join(os.environ["OUT"], "ibwb-client.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        wait_any(["ibwb.server-done"], 60)
    except (TimeoutError, subprocess.TimeoutExpired) as e:
        ibwb["error"] = str(e)
    log(f"ib_write_bw: {ibwb}")
    put("ibwb.json", ibwb)

    rc = 0 if ibwb["iterations"] > 0 else 1
    for phase in PHASES:
        put(f"{phase}.src-ready")
        res = src_phase(phase, ram, size, channels)
        put(f"{phase}.src-done", res)
        try:
            _, d = wait_any([f"{phase}.dst-done"], 300)
        except TimeoutError as e:
            d = {"error": f"destination: {e}"}
        if not res.get("unavailable") and not (res["status"] == "completed" and res["identical"]
                                               and d.get("identical")):
            rc = 1
    if not RUN_C:
        return rc
    import rxe_running
    put(f"{rxe_running.PHASE}.src-ready")
    res = rxe_running.src_running(channels)
    put(f"{rxe_running.PHASE}.src-done", res)
    try:
        wait_any([f"{rxe_running.PHASE}.dst-done"], 300)
    except TimeoutError as e:
        log(f"{rxe_running.PHASE}: destination: {e}")
        rc = 1
    return rc if res.get("status") == "completed" and not res.get("error") else 1


# ---------------------------------------------------------------- host

def patched():
    """True once integrations/qemu/patches/series lists a patch: from then on
    the rmig run is required, not reported as unavailable."""
    try:
        with open(os.path.join(REPO, "integrations", "qemu", "patches", "series")) as f:
            return any(ln.split("#", 1)[0].strip() for ln in f)
    except FileNotFoundError:
        return False


def fmt(v, spec=""):
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def report(out, ibwb, rows):
    """The side-by-side table; returns the list of failures."""
    cols = [("ib_write_bw", None)] + [(LABEL[p], rows[p]) for p in PHASES]
    lines = [f"{'':22}" + "".join(f"{c:>18}" for c, _ in cols)]

    def row(title, ib, key, spec=""):
        vals = [fmt(ib, spec)]
        for p in PHASES:
            s = rows[p]["src"]
            vals.append("n/a" if s.get("unavailable") else fmt(s.get(key), spec))
        lines.append(f"{title:22}" + "".join(f"{v:>18}" for v in vals))

    row("status", "ok" if ibwb.get("iterations") else "FAIL", "status")
    row("total time ms", None, "total_time_ms")
    row("downtime ms", None, "downtime_ms")
    row("setup time ms", None, "setup_time_ms")
    row("Gb/s", ibwb.get("gbits_per_s"), "gbits_per_s", ".3f")
    row("QEMU mbps", None, "mbps", ".1f")
    row("transferred MiB", None, "transferred_mib", ".1f")
    vals = ["-"]
    for p in PHASES:
        d, s = rows[p]["dst"], rows[p]["src"]
        vals.append("n/a" if s.get("unavailable") else
                    ("yes" if d.get("identical") and s.get("identical") else "NO"))
    lines.append(f"{'RAM identical (cmp)':22}" + "".join(f"{v:>18}" for v in vals))
    a, b = (rows.get(p, {"src": {}})["src"] for p in ("a", "b"))
    ratios = {}
    if b.get("gbits_per_s") and a.get("gbits_per_s"):
        ratios["rmig_vs_qemu_rdma"] = round(b["gbits_per_s"] / a["gbits_per_s"], 3)
    for p, s in (("qemu_rdma", a), ("rmig", b)):
        if s.get("gbits_per_s") and ibwb.get("gbits_per_s"):
            ratios[f"{p}_vs_ib_write_bw"] = round(s["gbits_per_s"] / ibwb["gbits_per_s"], 3)
    for k, v in ratios.items():
        lines.append(f"ratio {k}: {v}")
    for side in ("src", "dst"):
        r = rows.get("b", {}).get(side, {}).get("rmig")
        if r:
            lines.append(f"rmig ({side}): {json.dumps(r, sort_keys=True)}")
    for p in PHASES:
        if rows[p]["src"].get("unavailable"):
            lines.append(f"{LABEL[p]}: not run: {rows[p]['src']['unavailable']}")
    print("\n".join(lines))

    fails = []
    if not ibwb.get("iterations"):
        fails.append(f"ib_write_bw between the guests did not run: {ibwb}")
    for p in PHASES:
        s, d = rows[p]["src"], rows[p]["dst"]
        if s.get("unavailable") or d.get("unavailable"):
            if p == "b" and patched():
                fails.append(f"{LABEL[p]}: {s.get('unavailable') or d.get('unavailable')}, "
                             f"but integrations/qemu/patches/series lists patches: rebuild "
                             f"with integrations/qemu/build.sh")
            elif p != "b":
                fails.append(f"{LABEL[p]}: unavailable: {s.get('unavailable')}")
            continue
        if s.get("status") != "completed":
            fails.append(f"{LABEL[p]}: source status {s.get('status')}: "
                         f"{s.get('error_desc') or s.get('error')}")
        if d.get("status") != "completed":
            fails.append(f"{LABEL[p]}: destination status {d.get('status')}: "
                         f"{d.get('error_desc') or d.get('error')}")
        if not d.get("identical"):
            fails.append(f"{LABEL[p]}: destination RAM differs from the source's: {d.get('cmp')}")
        if not s.get("identical"):
            fails.append(f"{LABEL[p]}: source RAM file changed: {s.get('cmp')}")
        if s.get("vm_status") not in ("postmigrate", "paused", "prelaunch", None):
            fails.append(f"{LABEL[p]}: source VM {s.get('vm_status')} after the migration")
        if p == "b":
            want = {"transport": "rdma", "verified": True,
                    "channels": env_int("RMIG_QEMU_CHANNELS", 2)}
            for side, r in (("source", s), ("destination", d)):
                got = {k: (r.get("rmig") or {}).get(k) for k in want}
                if got != want:
                    fails.append(f"{LABEL[p]}: {side}'s query-migrate rmig figures {got}, "
                                 f"expected {want}")
        if d.get("vm_status") not in ("paused", "prelaunch", "inmigrate", None):
            fails.append(f"{LABEL[p]}: destination VM {d.get('vm_status')}: a paused (-S) "
                         f"guest must not start")
    import rxe_running
    c = rows.get(rxe_running.PHASE)
    if c:
        s, d = c["src"], c["dst"]
        print(f"{rxe_running.LABEL}: {s.get('status')} in {fmt(s.get('total_time_ms'))} ms, "
              f"downtime {fmt(s.get('downtime_ms'))} ms, {fmt(s.get('dirty_sync_count'))} syncs, "
              f"source running {fmt(s.get('src_running_s'))} s of it, last source pass "
              f"{fmt(s.get('src_last_pass'))}, destination passes {d.get('dst_passes')}")
        fails += rxe_running.check(c)
    m.save_json(os.path.join(out, "qemu-rxe.json"),
                {"ib_write_bw": ibwb, "phases": rows, "ratios": ratios, "failures": fails,
                 "mb": env_int("RMIG_QEMU_RXE_MB", 256)})
    return fails


def role_host(out):
    qemu = os.environ.get("RMIG_QEMU")
    print(f"qemu: {m.check_qemu(qemu)} ({qemu})", flush=True)
    mb = env_int("RMIG_QEMU_RXE_MB", 256)
    budget = env_int("RMIG_QEMU_RXE_TIMEOUT", 480)
    vm_sh = os.path.join(REPO, "tests", "rxe", "rxe-vm.sh")
    r = subprocess.run([vm_sh, "check"])
    if r.returncode != 0:
        print(f"FAIL: rxe-vm.sh check exited {r.returncode}: the rxe harness cannot run here "
              f"(scripts/install-deps.sh --with-rxe)")
        return 1
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "sync"))
    m.fill_random(os.path.join(out, "ram.src"), mb * m.MiB)
    m.build_mbcheck(out)  # OUT/mbcheck.elf, the running guest of phase c
    me = os.path.abspath(__file__)
    env = ["--env", f"RMIG_QEMU={os.path.abspath(qemu)}", "--env", f"RMIG_QEMU_RXE_MB={mb}",
           "--env", f"RMIG_QEMU_CHANNELS={env_int('RMIG_QEMU_CHANNELS', 2)}"]
    # Guest RAM: the RAM file in /dev/shm (half the guest's RAM at most) and
    # QEMU's own memory.
    mem = max(1024, 4 * mb + 512)
    cpus = ["--cpus", os.environ["RMIG_QEMU_RXE_CPUS"]] if os.environ.get("RMIG_QEMU_RXE_CPUS") else []
    cmd = [vm_sh, "pair", "--out", out, "--timeout", str(budget), "--mem", str(mem)] + cpus + [
           "--ready", "manual", "--ready-timeout", "120", "-q"] + env + [
           "--dst", f"python3 {me} dst", "--src", f"python3 {me} src"]
    print(" ".join(cmd), flush=True)
    for attempt in (1, 2):
        t = time.monotonic()
        try:
            vm_rc = subprocess.run(cmd, timeout=budget + 120).returncode
        except subprocess.TimeoutExpired:
            vm_rc = 124
        print(f"rxe-vm.sh pair exited {vm_rc} after {time.monotonic() - t:.0f} s", flush=True)
        # 125 with no command started: a guest did not boot (under heavy load
        # a TCG guest's kernel can fail its IO-APIC timer check). Once more.
        started = any(os.path.exists(os.path.join(out, f"{r}.log")) for r in ("dst", "src"))
        if vm_rc != 125 or started or attempt == 2:
            break
        print("the guests did not boot: trying once more", flush=True)
    for role in ("dst", "src"):
        try:
            with open(os.path.join(out, f"{role}.log"), errors="replace") as f:
                print(f"--- {role}.log\n" + f.read()[-6000:], flush=True)
        except FileNotFoundError:
            print(f"--- {role}.log missing")
    rows = {}
    for p in PHASES:
        src = get(f"{p}.src-done") or {"status": None, "error": "no result from the source"}
        dst = get(f"{p}.dst-done") or {"status": None, "error": "no result from the destination"}
        if src.get("transferred"):
            src["transferred_mib"] = src["transferred"] / m.MiB
        rows[p] = {"src": src, "dst": dst}
    import rxe_running
    pc = rxe_running.PHASE
    if RUN_C:
        rows[pc] = {"src": get(f"{pc}.src-done") or {"status": None,
                                                     "error": "no result from the source"},
                    "dst": get(f"{pc}.dst-done") or {"status": None,
                                                     "error": "no result from the destination"}}
    fails = report(out, get("ibwb.json") or {}, rows)
    try:
        os.unlink(os.path.join(out, "ram.src"))
    except OSError:
        pass
    if vm_rc != 0:
        why = {124: "timeout", 125: "a guest or the harness failed (console tails above)"}
        fails.insert(0, f"rxe-vm.sh pair exited {vm_rc}: {why.get(vm_rc, 'a guest side failed')}")
    for f in fails:
        print(f"FAIL: {f}")
    print(f"results: {os.path.join(out, 'qemu-rxe.json')}")
    return 1 if fails else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "host":
        os.environ["OUT"] = os.path.abspath(sys.argv[2])
        return role_host(os.environ["OUT"])
    if len(sys.argv) == 2 and sys.argv[1] in ("dst", "src"):
        return role_dst() if sys.argv[1] == "dst" else role_src()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

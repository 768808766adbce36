# SPDX-License-Identifier: MIT
"""Phase c of rxe_qemu.py: a RUNNING guest live-migrated by QEMU+rmig over
rmig's rdma between the two rxe guests.

The guest is mbcheck (guest/mbcheck.c): memcheck as a multiboot kernel, so
that QEMU under nested TCG starts it in a second rather than booting Linux
for minutes. It keeps rewriting RUNNING_WORK_MB of its RAM and verifying
it, printing "memcheck: pass N ok" per pass. The source waits for its
first pass, migrates while sampling that the source VM runs and its
console grows; the destination waits for the guest to run there and for
two more passes that continue the source's numbering, with no FAIL line.
"""

import os
import time

import migrate as m
import rxe_qemu as rq
from qmp import QMPClosed, QMPError

PHASE = "c"
LABEL = "qemu+rmig rdma, running"
# Small on purpose: registering (pinning) RAM the guest never touched took
# 8.5 s for 256 MiB in a 1-vCPU rxe guest under load, while the soft-RoCE
# device of that same vCPU answered nothing (a peer's keepalive can give up).
RUNNING_MEM_MB = 128
RUNNING_WORK_MB = 32
# Rounds must converge with the inner guest dirtying its region under
# nested TCG; 1 s of downtime leaves room for the first round's tail.
RUNNING_DOWNTIME_MS = 1000


def elf_path():
    return os.path.join(os.environ["OUT"], "mbcheck.elf")


def start_vm(name, incoming):
    wd = f"/tmp/rxe-qemu-{name}-running"
    os.makedirs(wd, exist_ok=True)
    return m.VM(os.environ["RMIG_QEMU"], name, wd,
                m.mbcheck_args(elf_path(), RUNNING_MEM_MB, RUNNING_WORK_MB),
                incoming=incoming)


def dst_running(channels):
    """The destination: listens, waits for the migration and for the guest
    to go on checking its memory here."""
    res = {"phase": PHASE, "status": None}
    vm = None
    try:
        vm = start_vm("dst", incoming=True)
        rq.set_rmig(vm, channels)
        uri = f"tcp:{os.environ['RXE_ADDR']}:{rq.MAIN_PORT}"
        vm.qmp.cmd("migrate-incoming", uri=uri)
        rq.wait_listening(rq.MAIN_PORT, False, 30)
        rq.put(f"{PHASE}.listen", {"uri": uri})
        deadline = time.monotonic() + 300
        while True:
            info = vm.qmp.cmd("query-migrate")
            st = info.get("status")
            if st in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                st = f"{st} (timeout)"
                break
            time.sleep(0.2)
        res["status"] = st
        res["error_desc"] = info.get("error-desc")
        res["rmig"] = info.get("rmig")
        if st == "completed":
            m.wait_dst_status(vm, "running", 30)
            src = rq.wait_any([f"{PHASE}.src-done"], 60)[1]
            last = src.get("src_last_pass") or 0
            text = m.wait_serial(vm, lambda t: len([p for p in m.passes(t) if p > last]) >= 2,
                                 240, "two memcheck passes on the destination")
            res["dst_passes"] = m.passes(text)
            res["fail_lines"] = m.fail_lines(text)
            res["restarted"] = "memcheck: start" in text
        res["vm_status"] = vm.status()
    except (QMPClosed, QMPError, TimeoutError, OSError, RuntimeError, AssertionError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        rq.log(f"{PHASE}: {res['error']}")
    finally:
        if vm:
            vm.quit()
            rq.keep_log(vm, PHASE)
    rq.log(f"{PHASE}: destination {res['status']}, passes {res.get('dst_passes')}, "
           f"fail lines {res.get('fail_lines')}")
    return res


def src_running(channels):
    """The source: runs the guest, migrates it once it has passed once."""
    res = {"phase": PHASE, "label": LABEL, "status": None}
    name, flag = rq.wait_any([f"{PHASE}.listen", f"{PHASE}.dst-done"], 120)
    if name != f"{PHASE}.listen":
        res["error"] = f"destination ended before listening: {flag}"
        return res
    vm = None
    try:
        vm = start_vm("src", incoming=False)
        m.wait_serial(vm, lambda t: len(m.passes(t)) >= 1, 120, "first memcheck pass")
        rq.set_rmig(vm, channels)
        vm.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 128 * m.GiB,
                                                "downtime-limit": RUNNING_DOWNTIME_MS})
        res["channels"] = channels
        res["rmig_uri"] = rq.rmig_params(channels)["rmig-uri"]
        samples = []
        t0 = time.monotonic()
        info = rq.migrate_and_wait(
            vm, flag["uri"], interval=0.1,
            on_poll=lambda i: samples.append({"t": round(time.monotonic() - t0, 3),
                                              "status": i.get("status"), "vm": vm.status(),
                                              "serial_bytes": os.path.getsize(vm.serial)}))
        res["wall_s"] = round(time.monotonic() - t0, 3)
        res.update(m.figures(info))
        res["samples"] = samples
        if res["status"] == "completed":
            m.check_source_ran(res)
        text = vm.serial_text()
        p = m.passes(text)
        res["src_last_pass"] = p[-1] if p else 0
        res["src_fail_lines"] = m.fail_lines(text)
        res["vm_status"] = vm.status()
    except (QMPClosed, QMPError, TimeoutError, OSError, RuntimeError, AssertionError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        rq.log(f"{PHASE}: {res['error']}")
    finally:
        if vm:
            vm.quit()
            rq.keep_log(vm, PHASE)
    res.pop("samples", None)
    rq.log(f"{PHASE}: source {res['status']} in {res.get('total_time_ms')} ms, downtime "
           f"{res.get('downtime_ms')} ms, last pass {res.get('src_last_pass')}, source ran "
           f"{res.get('src_running_s')} s during it")
    return res


def check(rows):
    """Failures of phase c, from both sides' results."""
    s, d = rows["src"], rows["dst"]
    fails = []
    if s.get("status") != "completed" or d.get("status") != "completed":
        fails.append(f"{LABEL}: source {s.get('status')} ({s.get('error_desc') or s.get('error')}), "
                     f"destination {d.get('status')} ({d.get('error_desc') or d.get('error')})")
        return fails
    if not s.get("src_running_s"):
        fails.append(f"{LABEL}: the source VM was not seen running during the migration")
    if s.get("src_fail_lines") or d.get("fail_lines"):
        fails.append(f"{LABEL}: the guest reports corrupt memory: "
                     f"{(s.get('src_fail_lines') or d.get('fail_lines'))[0]}")
    later = [p for p in d.get("dst_passes") or [] if p > (s.get("src_last_pass") or 0)]
    if len(later) < 2:
        fails.append(f"{LABEL}: the guest did not go on passing its checks on the destination "
                     f"(destination passes {d.get('dst_passes')}, source's last "
                     f"{s.get('src_last_pass')}): {d.get('error') or s.get('error')}")
    if d.get("restarted"):
        fails.append(f"{LABEL}: the guest started over on the destination")
    want = {"transport": "rdma", "verified": True}
    for side, r in (("source", s), ("destination", d)):
        got = {k: (r.get("rmig") or {}).get(k) for k in want}
        if got != want:
            fails.append(f"{LABEL}: {side}'s query-migrate rmig figures {got}, expected {want}")
    return fails

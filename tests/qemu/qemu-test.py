#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The QEMU suite (tests/qemu/README.md): QEMU with the integrations/qemu
patch, given by RMIG_QEMU, migrating between two local QEMU processes.

    qemu-test.py running|paused|postcopy|faults OUTDIR

running   a 1 GiB memcheck guest migrated live over rmig's tcp, then the same
          guest by stock multifd (no rmig-uri); both checked, figures side by side
paused    2 GiB of random RAM (-S, memory-backend-file in /dev/shm), rmig then
          stock multifd, the destination's RAM compared byte for byte each time
postcopy  precopy through rmig, migrate-start-postcopy after the first round
faults    destination killed mid-migration, rmig listener unreachable, rmig-uri
          without multifd, mismatched multifd-channels

Exit 0 if every check held, 1 otherwise (a missing QEMU is a failure, never
a skip). Results: OUTDIR/<scenario>.json and a table on stdout.
"""

import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migrate as m  # noqa: E402
from qmp import QMPError  # noqa: E402

CHANNELS = int(os.environ.get("RMIG_QEMU_CHANNELS", "2"))


def scenario_running(qemu, out, guest):
    rows, errors = [], []
    for rmig in (True, False):
        cfg = m.Config(rmig=rmig, channels=CHANNELS)
        try:
            rows.append(m.run_running(qemu, out, cfg, 1024, 512, guest=guest))
        except (AssertionError, QMPError, RuntimeError) as e:
            errors.append(f"{cfg.label()}: {e}")
            rows.append({"kind": cfg.label(), "error": str(e)})
    check_rmig_used(rows[0], errors)
    return rows, errors


def scenario_paused(qemu, out, guest):
    size = int(os.environ.get("RMIG_QEMU_PAUSED_MB", "2048")) * m.MiB
    rows, errors = [], []
    for rmig in (True, False):
        cfg = m.Config(rmig=rmig, channels=CHANNELS)
        try:
            rows.append(m.run_paused(qemu, out, cfg, size))
        except (AssertionError, QMPError, RuntimeError) as e:
            errors.append(f"{cfg.label()}: {e}")
            rows.append({"kind": cfg.label(), "error": str(e)})
    check_rmig_used(rows[0], errors)
    return rows, errors


def check_rmig_used(row, errors):
    """With rmig-uri set, query-migrate must show rmig's figures."""
    if "error" in row:
        return
    r = row.get("rmig")
    if not r:
        errors.append("rmig: query-migrate has no 'rmig' object: were the pages carried by rmig?")


def scenario_postcopy(qemu, out, guest):
    cfg = m.Config(rmig=True, channels=CHANNELS, postcopy=True)
    errors = []
    try:
        row = m.run_running(qemu, out, cfg, 1024, 512, guest=guest)
        states = [s["status"] for s in row["samples"]]
        if "postcopy-active" not in states or row["postcopy_started_s"] is None:
            errors.append(f"postcopy: never in postcopy-active (states seen: {sorted(set(states))})")
        row["kind"] = "rmig+postcopy"
        check_rmig_used(row, errors)
    except (AssertionError, QMPError, RuntimeError) as e:
        errors.append(f"postcopy: {e}")
        row = {"kind": "rmig+postcopy", "error": str(e)}
    return [row], errors


# ---------------------------------------------------------------- faults

def src_keeps_running(src, what, errors):
    """After a failed migration: the source VM runs and its guest makes progress."""
    st = src.status()
    if st != "running":
        errors.append(f"{what}: source VM is {st!r}, not running")
        return
    before = len(src.serial_text())
    deadline = time.monotonic() + 30
    while len(src.serial_text()) <= before:
        if time.monotonic() > deadline:
            errors.append(f"{what}: source guest printed nothing for 30 s after the failure")
            return
        time.sleep(0.2)
    fails = m.fail_lines(src.serial_text())
    if fails:
        errors.append(f"{what}: source guest reports corrupt memory: {fails[0]}")


def names_rmig(text):
    return text is not None and "rmig" in text.lower()


def fault_dst_killed(qemu, out, guest, src, errors):
    what = "destination killed"
    dst = m.VM(qemu, "kill-dst", out, m.guest_args(guest, 1024, 512), incoming=True)
    killed = []

    def on_poll(info, samples):
        if not killed and info.get("status") == "active" and \
                info.get("ram", {}).get("transferred", 0) >= 16 * m.MiB:
            dst.kill()
            killed.append(samples[-1]["t"])

    try:
        res = m.migrate(src, dst, m.Config(rmig=True, channels=CHANNELS, timeout=120),
                        on_poll=on_poll)
    finally:
        dst.kill()
    res["killed_at_s"] = killed[0] if killed else None
    if not killed:
        errors.append(f"{what}: migration ended ({res['status']}) before the kill")
    elif res["status"] != "failed":
        errors.append(f"{what}: migration {res['status']}, expected failed")
    elif not names_rmig(res.get("error_desc")):
        errors.append(f"{what}: error-desc does not name rmig: {res.get('error_desc')!r}")
    src_keeps_running(src, what, errors)
    return res


def fault_unreachable(qemu, out, guest, src, errors):
    what = "rmig listener unreachable"
    dst = m.VM(qemu, "unreach-dst", out, m.guest_args(guest, 1024, 512), incoming=True)
    try:
        # The destination listens on one port; the source is told another,
        # where nothing listens.
        cfg = m.Config(rmig=True, channels=CHANNELS, timeout=120)
        m.configure(dst, cfg, CHANNELS, f"tcp:127.0.0.1:{m.free_port()}", source=False)
        cfg.rmig_uri = f"tcp:127.0.0.1:{m.free_port()}"
        m.configure(src, cfg, CHANNELS, cfg.rmig_uri, source=True)
        res = run_configured(src, dst, cfg)
        if res["status"] != "failed":
            errors.append(f"{what}: migration {res['status']}, expected failed")
        elif not names_rmig(res.get("error_desc")):
            errors.append(f"{what}: error-desc does not name rmig: {res.get('error_desc')!r}")
        dst_never_runs(dst, what, errors)
        src_keeps_running(src, what, errors)
        return res
    finally:
        dst.kill()


def run_configured(src, dst, cfg):
    """migrate() for two sides configured by hand."""
    port = m.free_port()
    dst.qmp.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
    t0 = time.monotonic()
    src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    while True:
        info = src.qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() - t0 > cfg.timeout:
            src.qmp.cmd("migrate_cancel")
            raise AssertionError(f"migration not finished after {cfg.timeout} s")
        time.sleep(0.05)
    res = m.figures(info)
    res["wall_s"] = round(time.monotonic() - t0, 3)
    return res


def dst_never_runs(dst, what, errors):
    time.sleep(1)
    if dst.alive():
        st = dst.status()
        if st == "running":
            errors.append(f"{what}: the destination started the guest")


def fault_no_multifd(qemu, out, guest, src, errors):
    """rmig-uri without the multifd capability: refused, naming multifd."""
    what = "rmig-uri without multifd"
    dst = m.VM(qemu, "nomfd-dst", out, m.guest_args(guest, 1024, 512), incoming=True)
    res = {"refused_by": None}
    try:
        cfg = m.Config(rmig=True, channels=CHANNELS, multifd=False, timeout=60)
        try:
            res = m.migrate(src, dst, cfg)
            res["refused_by"] = "migration" if res["status"] == "failed" else None
            msg = res.get("error_desc")
        except QMPError as e:
            res = {"refused_by": e.cmd, "error_desc": e.desc}
            msg = e.desc
        if res.get("status") == "completed":
            errors.append(f"{what}: the migration completed")
        elif not res.get("refused_by"):
            errors.append(f"{what}: not refused ({res.get('status')})")
        elif not msg or "multifd" not in msg.lower():
            errors.append(f"{what}: the refusal does not name multifd: {msg!r}")
        dst_never_runs(dst, what, errors)
        src_keeps_running(src, what, errors)
        # Leave the source as the other cases expect it.
        src.qmp.cmd("migrate-set-parameters", **{"rmig-uri": ""})
        return res
    finally:
        dst.kill()


def fault_channels(qemu, out, errors):
    """Source 2 channels, destination 4: the migration either fails naming
    the channel count, or completes with the RAM identical; never hangs."""
    what = "mismatched multifd-channels"
    size = 256 * m.MiB
    base = os.path.join("/dev/shm", f"rmig-qemu-{os.getpid()}-chan")
    sfile, dfile = base + "-src.ram", base + "-dst.ram"
    src = dst = None
    try:
        m.fill_random(sfile, size)
        src = m.VM(qemu, "chan-src", out, m.shm_ram_args(sfile, size), paused=True)
        dst = m.VM(qemu, "chan-dst", out, m.shm_ram_args(dfile, size), incoming=True)
        cfg = m.Config(rmig=True, channels=2, dst_channels=4, timeout=90)
        res = m.migrate(src, dst, cfg)
        if res["status"] == "completed":
            src.quit()
            dst.quit()
            same, msg = m.cmp_files(sfile, dfile)
            res["ram_identical"] = same
            if not same:
                errors.append(f"{what}: completed but the RAM differs: {msg}")
        elif res["status"] == "failed":
            d = (res.get("error_desc") or "").lower()
            if "channel" not in d:
                errors.append(f"{what}: failed without naming the channels: {d!r}")
            st = src.status()
            if st not in ("paused", "prelaunch"):
                errors.append(f"{what}: paused source is now {st!r}")
            dst_never_runs(dst, what, errors)
        else:
            errors.append(f"{what}: migration {res['status']}")
        return res
    except AssertionError as e:
        errors.append(f"{what}: {e}")
        return {"error": str(e)}
    finally:
        for vm in (src, dst):
            if vm:
                vm.kill()
        for p in (sfile, dfile):
            if os.path.exists(p):
                os.unlink(p)


def scenario_faults(qemu, out, guest):
    errors, rows = [], []
    src = m.VM(qemu, "faults-src", out, m.guest_args(guest, 1024, 512))
    try:
        m.wait_serial(src, lambda t: len(m.passes(t)) >= 1, 240, "first memcheck pass")
        for name, fn in (("dst-killed", fault_dst_killed), ("unreachable", fault_unreachable),
                         ("no-multifd", fault_no_multifd)):
            n = len(errors)
            try:
                r = fn(qemu, out, guest, src, errors)
            except (AssertionError, QMPError, RuntimeError) as e:
                errors.append(f"{name}: {e}")
                r = {"error": str(e)}
            r = {k: v for k, v in r.items() if k != "samples"}
            r["case"] = name
            r["ok"] = len(errors) == n
            rows.append(r)
            print(f"fault {name}: {'ok' if r['ok'] else 'FAILED'}: "
                  f"status={r.get('status')} error-desc={r.get('error_desc')!r}", flush=True)
        # After all that, the same source still migrates, and its guest is intact.
        dst = m.VM(qemu, "after-dst", out, m.guest_args(guest, 1024, 512), incoming=True)
        try:
            r = m.migrate(src, dst, m.Config(rmig=True, channels=CHANNELS))
            if r["status"] != "completed":
                errors.append(f"migration after the faults: {r['status']}: {r.get('error_desc')}")
            else:
                m.wait_serial(dst, lambda t: len(m.passes(t)) >= 2, 300,
                              "2 memcheck passes on the destination after the faults")
            rows.append({"case": "after-faults", "status": r["status"],
                         "error_desc": r.get("error_desc")})
        except (AssertionError, QMPError) as e:
            errors.append(f"migration after the faults: {e}")
        finally:
            dst.kill()
    finally:
        src.kill()
    n = len(errors)
    r = fault_channels(qemu, out, errors)
    r = {k: v for k, v in r.items() if k != "samples"}
    r.update({"case": "channels-2-vs-4", "ok": len(errors) == n})
    rows.append(r)
    print(f"fault channels 2 vs 4: {'ok' if r['ok'] else 'FAILED'}: status={r.get('status')} "
          f"error-desc={r.get('error_desc')!r}", flush=True)
    return rows, errors


SCENARIOS = {"running": scenario_running, "paused": scenario_paused,
             "postcopy": scenario_postcopy, "faults": scenario_faults}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    name, out = sys.argv[1], sys.argv[2]
    qemu = os.environ.get("RMIG_QEMU", "")
    print(f"qemu: {m.check_qemu(qemu)} ({qemu})", flush=True)
    os.makedirs(out, exist_ok=True)
    guest = m.build_guest(os.path.join(out, "cache"))
    t0 = time.monotonic()
    try:
        rows, errors = SCENARIOS[name](qemu, out, guest)
    except Exception as e:  # the scenario itself broke: still a clear FAIL
        traceback.print_exc()
        rows, errors = [], [f"{name}: {type(e).__name__}: {e}"]
    m.save_json(os.path.join(out, f"{name}.json"),
                {"scenario": name, "qemu": qemu, "rows": rows, "errors": errors,
                 "seconds": round(time.monotonic() - t0, 1)})
    if name in ("running", "paused", "postcopy"):
        print(m.table([r for r in rows if "error" not in r]) if rows else "")
    for e in errors:
        print(f"FAIL: {e}")
    print(f"{name}: {'ok' if not errors else 'FAILED'} ({time.monotonic() - t0:.0f} s); "
          f"results in {out}/{name}.json")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())

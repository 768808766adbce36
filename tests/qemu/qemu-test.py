#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The QEMU suite (tests/qemu/README.md): QEMU with the integrations/qemu
patch, given by RMIG_QEMU, migrating between two local QEMU processes.

    qemu-test.py selftest|running|paused|postcopy|faults OUTDIR

selftest  the guest's memcheck run on the host (no QEMU): clean passes pass,
          a stale page and a flipped bit are each reported as FAIL
running   a 1 GiB memcheck guest migrated live over rmig's tcp, then the same
          guest by stock multifd (no rmig-uri); both checked, figures side by side
paused    2 GiB of random RAM (-S, memory-backend-file in /dev/shm), rmig then
          stock multifd, the destination's RAM compared byte for byte each time
postcopy  precopy through rmig, migrate-start-postcopy after the first round
faults    destination killed mid-migration, rmig listener unreachable, rmig-uri
          without multifd, migrate_cancel, rmig-uri on one side only,
          multifd-channels differing between the sides

Exit 0 if every check held, 1 otherwise (a missing QEMU is a failure, never
a skip). Results: OUTDIR/<scenario>.json and a table on stdout.
"""

import os
import re
import subprocess
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


def check_rmig_used(row, errors, channels=CHANNELS):
    """With rmig-uri set, query-migrate on both sides shows rmig's figures:
    tcp, the source's channel count, pages carried, verified."""
    if "error" in row:
        return
    for side, r in (("source", row.get("rmig")), ("destination", row.get("dst", {}).get("rmig"))):
        if not r:
            errors.append(f"rmig: the {side}'s query-migrate has no 'rmig' object")
            continue
        bad = []
        if r.get("transport") != "tcp":
            bad.append(f"transport {r.get('transport')!r}")
        if r.get("channels") != channels:
            bad.append(f"channels {r.get('channels')} (expected {channels})")
        if not r.get("normal-pages"):
            bad.append("no normal pages")
        if r.get("verified") is not True:
            bad.append("not verified")
        if bad:
            errors.append(f"rmig: the {side}'s rmig figures: {', '.join(bad)}: {r}")
    hmp = row.get("hmp_info_migrate") or ""
    if not any(ln.startswith("rmig: ") and " over tcp" in ln for ln in hmp.splitlines()):
        errors.append(f"rmig: HMP 'info migrate' on the source has no 'rmig: ... over tcp' "
                      f"line:\n{hmp}")


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


def fault_cancel(qemu, out, guest, src, errors):
    """migrate_cancel once 16 MiB have gone: cancelled, the source runs on."""
    what = "migrate_cancel mid-transfer"
    dst = m.VM(qemu, "cancel-dst", out, m.guest_args(guest, 1024, 512), incoming=True)
    done = []

    def on_poll(info, samples):
        if not done and info.get("status") == "active" and \
                info.get("ram", {}).get("transferred", 0) >= 16 * m.MiB:
            src.qmp.cmd("migrate_cancel")
            done.append(samples[-1]["t"])

    try:
        res = m.migrate(src, dst, m.Config(rmig=True, channels=CHANNELS, timeout=120),
                        on_poll=on_poll)
        res["cancelled_at_s"] = done[0] if done else None
        if not done:
            errors.append(f"{what}: migration ended ({res['status']}) before the cancel")
        elif res["status"] != "cancelled":
            errors.append(f"{what}: migration {res['status']} ({res.get('error_desc')}), "
                          f"expected cancelled")
        dst_never_runs(dst, what, errors)
        src_keeps_running(src, what, errors)
        return res
    finally:
        dst.kill()


def fault_peer_without_rmig(qemu, out, guest, src, errors):
    """rmig-uri on one side only, both ways: the migration fails, the error
    names rmig (the source's error-desc, or the destination's log when the
    destination is the side that knows), the source runs on."""
    res = {}
    for rmig_side in ("source", "destination"):
        what = f"rmig-uri on the {rmig_side} only"
        dst = m.VM(qemu, f"half-{rmig_side}-dst", out, m.guest_args(guest, 1024, 512),
                   incoming=True)
        try:
            cfg = m.Config(rmig=True, channels=CHANNELS, timeout=120)
            uri = f"tcp:127.0.0.1:{m.free_port()}"
            m.configure(dst, cfg, CHANNELS, uri if rmig_side == "destination" else None,
                        source=False)
            m.configure(src, cfg, CHANNELS, uri if rmig_side == "source" else "", source=True)
            r = run_configured(src, dst, cfg)
            time.sleep(1)
            dlog = dst.log_text()
            r["dst_log_rmig"] = [ln for ln in dlog.splitlines() if "rmig" in ln.lower()][-3:]
            res[rmig_side] = r
            if r["status"] != "failed":
                errors.append(f"{what}: migration {r['status']}, expected failed")
            elif not (names_rmig(r.get("error_desc")) or r["dst_log_rmig"]):
                errors.append(f"{what}: neither the source's error-desc "
                              f"({r.get('error_desc')!r}) nor the destination's log names rmig")
            dst_never_runs(dst, what, errors)
            src_keeps_running(src, what, errors)
        finally:
            dst.kill()
    res["status"] = "/".join(str(res[k]["status"]) for k in ("source", "destination"))
    res["error_desc"] = " / ".join(str(res[k].get("error_desc") or res[k]["dst_log_rmig"])
                                   for k in ("source", "destination"))
    src.qmp.cmd("migrate-set-parameters", **{"rmig-uri": ""})
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


def fault_ram_blocks(qemu, out, guest, src, errors):
    """RAM blocks that differ between the sides (a 1 GiB source, a 768 MiB
    destination): the migration fails before any page lands, and the
    source's error-desc or the destination's log names the mismatched
    block; the source runs on and the destination never starts the guest."""
    what = "RAM blocks differ"
    dst = m.VM(qemu, "blocks-dst", out, m.guest_args(guest, 768, 512), incoming=True)
    try:
        res = m.migrate(src, dst, m.Config(rmig=True, channels=CHANNELS, timeout=120))
        time.sleep(1)
        dlog = [ln for ln in dst.log_text().splitlines()
                if re.search(r"mismatch|differ|size", ln, re.I)]
        res["dst_log"] = dlog[-3:]
        text = " ".join([str(res.get("error_desc"))] + dlog)
        if res["status"] != "failed":
            errors.append(f"{what}: migration {res['status']}, expected failed")
        elif not re.search(r"pc\.ram|ram0|block", text, re.I) or \
                not re.search(r"mismatch|differ|size", text, re.I):
            errors.append(f"{what}: neither the source's error-desc "
                          f"({res.get('error_desc')!r}) nor the destination's log "
                          f"names the block and the mismatch")
        dst_never_runs(dst, what, errors)
        src_keeps_running(src, what, errors)
        return res
    finally:
        dst.kill()


def fault_bad_uri(qemu, out, guest, src, errors):
    """A malformed rmig-uri is refused by migrate-set-parameters, naming
    rmig-uri, and leaves the parameter as it was (the cases before set it)."""
    what = "malformed rmig-uri"
    res = {"status": "refused"}
    before = src.qmp.cmd("query-migrate-parameters").get("rmig-uri")
    for uri in ("rdma-10.0.0.2:4444", "udp:127.0.0.1:4444"):
        try:
            src.qmp.cmd("migrate-set-parameters", **{"rmig-uri": uri})
            errors.append(f"{what}: {uri!r} was accepted")
            res["status"] = "accepted"
        except QMPError as e:
            res["error_desc"] = e.desc
            if "rmig-uri" not in e.desc:
                errors.append(f"{what}: the refusal of {uri!r} does not name rmig-uri: {e.desc!r}")
    got = src.qmp.cmd("query-migrate-parameters").get("rmig-uri")
    if got != before:
        errors.append(f"{what}: rmig-uri is {got!r} after the refusals, was {before!r}")
    src_keeps_running(src, what, errors)
    return res


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
    """rmig-uri without the multifd capability: the destination's
    migrate-incoming and the source's migrate each refuse, naming multifd."""
    what = "rmig-uri without multifd"
    dst = m.VM(qemu, "nomfd-dst", out, m.guest_args(guest, 1024, 512), incoming=True)
    res = {}
    try:
        cfg = m.Config(rmig=True, channels=CHANNELS, multifd=False, timeout=60)
        uri = f"tcp:127.0.0.1:{m.free_port()}"
        main = f"tcp:127.0.0.1:{m.free_port()}"
        for side, vm, cmd in (("destination", dst, "migrate-incoming"), ("source", src, "migrate")):
            m.configure(vm, cfg, CHANNELS, uri, source=vm is src)
            try:
                vm.qmp.cmd(cmd, uri=main)
                res[side] = "accepted"
                errors.append(f"{what}: the {side}'s {cmd} was accepted")
            except QMPError as e:
                res[side] = e.desc
                if "multifd" not in e.desc.lower():
                    errors.append(f"{what}: the {side}'s refusal does not name multifd: {e.desc!r}")
        res["status"] = src.qmp.cmd("query-migrate").get("status")
        res["error_desc"] = res.get("source")
        dst_never_runs(dst, what, errors)
        src_keeps_running(src, what, errors)
        # Leave the source as the other cases expect it.
        src.qmp.cmd("migrate-set-parameters", **{"rmig-uri": ""})
        return res
    finally:
        dst.kill()


def fault_channels(qemu, out, errors, src_ch, dst_ch):
    """multifd-channels differing between the sides: with rmig-uri the
    destination takes as many rmig channels as the source opens (the patch's
    rmig_opts_fill()), so the migration completes with the source's count
    and identical RAM (stock multifd waits for channels that never come)."""
    what = f"multifd-channels {src_ch} (source) vs {dst_ch} (destination)"
    cfg = m.Config(rmig=True, channels=src_ch, dst_channels=dst_ch, timeout=90)
    try:
        res = m.run_paused(qemu, out, cfg, 256 * m.MiB, tag=f"chan{src_ch}{dst_ch}")
    except (AssertionError, QMPError, RuntimeError) as e:
        errors.append(f"{what}: {e}")
        return {"error": str(e)}
    n = len(errors)
    check_rmig_used(res, errors, channels=src_ch)
    errors[n:] = [f"{what}: {e}" for e in errors[n:]]
    return res


def scenario_faults(qemu, out, guest):
    errors, rows = [], []
    src = m.VM(qemu, "faults-src", out, m.guest_args(guest, 1024, 512))
    try:
        m.wait_serial(src, lambda t: len(m.passes(t)) >= 1, 240, "first memcheck pass")
        for name, fn in (("dst-killed", fault_dst_killed), ("unreachable", fault_unreachable),
                         ("no-multifd", fault_no_multifd), ("cancel", fault_cancel),
                         ("peer-without-rmig", fault_peer_without_rmig),
                         ("ram-blocks-differ", fault_ram_blocks), ("bad-uri", fault_bad_uri)):
            n = len(errors)
            try:
                r = fn(qemu, out, guest, src, errors)
            except Exception as e:  # noqa: BLE001 - every case reports, whatever broke
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
        except Exception as e:  # noqa: BLE001
            errors.append(f"migration after the faults: {e}")
        finally:
            dst.kill()
    finally:
        src.kill()
    for src_ch, dst_ch in ((2, 4), (4, 1)):
        n = len(errors)
        r = fault_channels(qemu, out, errors, src_ch, dst_ch)
        r = {k: v for k, v in r.items() if k != "samples"}
        r.update({"case": f"channels-{src_ch}-vs-{dst_ch}", "ok": len(errors) == n})
        rows.append(r)
        print(f"fault channels {src_ch} vs {dst_ch}: {'ok' if r['ok'] else 'FAILED'}: "
              f"status={r.get('status')} error-desc={r.get('error_desc')!r}", flush=True)
    return rows, errors


def scenario_selftest(qemu, out, guest):
    """memcheck itself, run on the host: clean passes pass, and a stale page
    or a flipped bit is reported as FAIL naming the page."""
    exe = os.path.join(out, "cache", "memcheck")
    errors, rows = [], []
    for name, env, want_rc, want in (
            ("clean", {"mc_passes": "3"}, 0, "memcheck: pass 3 ok"),
            ("stale", {"mc_stale": "2"}, 1, "memcheck: FAIL pass 2 page 512: header"),
            ("flip", {"mc_flip": "3"}, 1, "memcheck: FAIL pass 3 page 341 gen 3: word 17")):
        e = {"mc_mb": "4", "mc_ticks": "0"}
        e.update(env)
        r = subprocess.run([exe], env=e, capture_output=True, text=True, timeout=60)
        rows.append({"case": name, "rc": r.returncode, "stdout": r.stdout})
        print(f"selftest {name}: rc {r.returncode}: {r.stdout.strip().splitlines()[-1:]}")
        if r.returncode != want_rc or want not in r.stdout:
            errors.append(f"selftest {name}: rc {r.returncode} (want {want_rc}), "
                          f"no {want!r} in:\n{r.stdout}")
    return rows, errors


SCENARIOS = {"selftest": scenario_selftest, "running": scenario_running, "paused": scenario_paused,
             "postcopy": scenario_postcopy, "faults": scenario_faults}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        return 2
    name, out = sys.argv[1], sys.argv[2]
    qemu = os.environ.get("RMIG_QEMU", "")
    if name != "selftest":
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
        good = [r for r in rows if "error" not in r]
        if good:
            print(m.table(good))
    for e in errors:
        print(f"FAIL: {e}")
    print(f"{name}: {'ok' if not errors else 'FAILED'} ({time.monotonic() - t0:.0f} s); "
          f"results in {out}/{name}.json")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Cold-start proxy, peak RSS at the first response, and zip sizes of the Lambda functions.

    python3 bench/cold_start.py [--functions jwks,register-options,mfa-complete | all] [--starts 20]

See bench/README.md: what is measured, what is included, how to build the binaries first.
Standard library only; moto runs from .tools/venv (scripts/moto_server.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_stub import (  # noqa: E402
    ROOT, Launcher, LocalAws, RuntimeApi, TlsFront, all_functions, default_bin_dir, event_for, log,
)

BASELINE = "jwks"
HELLO = "bench-hello"
MIB = 1024 * 1024


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def measure_starts(launcher: Launcher, binary: Path, name: str, starts: int, timeout: float) -> list[float]:
    """Exec → first `next`, in ms, `starts` times (the `next` is held unanswered, then the
    process is killed)."""
    times = []
    for i in range(starts):
        r = launcher.start(binary, name, [], nexts=1, timeout=timeout)
        if not r.run.nexts:
            raise SystemExit(
                f"{name}: no `next` within {timeout} s (exit status {r.returncode}); stderr:\n{r.stderr}"
            )
        times.append((r.run.nexts[0].t - r.t0) * 1000)
    return times


def measure_first_response(launcher: Launcher, binary: Path, name: str, event: bytes, timeout: float) -> dict:
    """One start that serves one event: VmHWM when the second `next` arrives (the response has
    been posted), the status code posted, and exec → response time."""
    r = launcher.start(binary, name, [event], nexts=2, timeout=timeout)
    out = {"hwm_kb": None, "status": None, "first_response_ms": None, "init_hwm_kb": None}
    if r.run.nexts:
        out["init_hwm_kb"] = r.run.nexts[0].hwm_kb
    if len(r.run.nexts) >= 2:
        out["hwm_kb"] = r.run.nexts[1].hwm_kb
    if r.run.responses:
        t, kind, body = r.run.responses[0]
        out["first_response_ms"] = (t - r.t0) * 1000
        if r.run.nexts:
            out["first_request_ms"] = (t - r.run.nexts[0].t) * 1000
        if kind == "response":
            try:
                out["status"] = json.loads(body).get("statusCode")
            except ValueError:
                out["status"] = "?"
        else:
            out["status"] = f"runtime {kind}"
    else:
        log(f"{name}: no response posted (exit status {r.returncode}); stderr tail:\n{r.stderr}")
    return out


def zip_size(zip_dir: Path, name: str) -> tuple[float, float] | None:
    path = zip_dir / name / "bootstrap.zip"
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as z:
            unzipped = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError):
        return None
    return path.stat().st_size / MIB, unzipped / MIB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--functions", default="jwks,register-options,mfa-complete",
                    help="comma-separated function names, or 'all' (every crate under functions/)")
    ap.add_argument("--starts", type=int, default=20, help="cold starts per function (default 20)")
    ap.add_argument("--bin-dir", type=Path, default=default_bin_dir(),
                    help="x86_64 release binaries (default $CARGO_TARGET_DIR/release or target/release)")
    ap.add_argument("--zip-dir", type=Path, default=ROOT / "target" / "lambda",
                    help="scripts/package.sh's arm64 zips, <dir>/<function>/bootstrap.zip (default target/lambda)")
    ap.add_argument("--python", type=Path, default=ROOT / ".tools" / "venv" / "bin" / "python",
                    help="python with moto[server] (default .tools/venv)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a start (default 30)")
    ap.add_argument("--tls", action="store_true",
                    help="the functions reach moto through a local TLS proxy (handshakes as against AWS)")
    ap.add_argument("--first-responses", type=int, default=1,
                    help="starts that serve one event each; the table gives their median (default 1)")
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown output (default bench/results/<UTC date and time>.md)")
    args = ap.parse_args()

    functions = all_functions() if args.functions == "all" else [f for f in args.functions.split(",") if f]
    unknown = set(functions) - set(all_functions())
    if unknown:
        raise SystemExit(f"unknown functions: {', '.join(sorted(unknown))}")
    if BASELINE not in functions:
        functions.insert(0, BASELINE)
    else:
        functions.remove(BASELINE)
        functions.insert(0, BASELINE)
    names = ([HELLO] if (args.bin_dir / HELLO).is_file() else []) + functions
    missing = [n for n in names if not (args.bin_dir / n).is_file()]
    if missing:
        raise SystemExit(f"not built in {args.bin_dir}: {', '.join(missing)} (see bench/README.md)")
    if HELLO not in names:
        log(f"{args.bin_dir / HELLO} not built: no lambda_http hello baseline (see bench/README.md)")

    log_dir = Path(tempfile.mkdtemp(prefix="bench-cold-start-"))
    rows = {}
    with LocalAws(args.python, args.bin_dir, log_dir) as aws:
        api = RuntimeApi()
        front = TlsFront(aws.env["AWS_ENDPOINT_URL"], log_dir) if args.tls else None
        if front:
            log(f"functions reach moto through {front.endpoint} (TLS)")
        launcher = Launcher(api, front.env(aws.env) if front else aws.env, log_dir)
        try:
            for name in names:
                binary = args.bin_dir / name
                log(f"{name}: {args.starts} starts")
                times = measure_starts(launcher, binary, name, args.starts, args.timeout)
                if name == HELLO:
                    event_name, event = "jwks/200-keys.json", (ROOT / "events/jwks/200-keys.json").read_bytes()
                else:
                    aws.new_principal()  # the previous function's event may have erased the user
                    event_name, event = event_for(name, aws)
                    event_name = f"{name}/{event_name}"
                firsts = [measure_first_response(launcher, binary, name, event, args.timeout)
                          for _ in range(max(1, args.first_responses))]
                first = firsts[-1]
                samples = [f["first_response_ms"] for f in firsts if f["first_response_ms"] is not None]
                if samples:
                    first["first_response_ms"] = statistics.median(samples)
                handling = [f["first_request_ms"] for f in firsts if f.get("first_request_ms") is not None]
                first["first_request_ms"] = statistics.median(handling) if handling else None
                rows[name] = dict(times=times, event=event_name, **first)
        finally:
            api.close()
            if front:
                front.close()
    log(f"function logs: {log_dir}")

    base = statistics.median(rows[BASELINE]["times"])
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"# Cold start proxy, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"Host: {os.cpu_count()} × {cpu}; load average at the end {' '.join(loadavg)}. "
        f"Binaries: `{args.bin_dir}` (x86_64 release). {args.starts} starts per function.",
        "",
        "cold start = exec → first `GET /runtime/invocation/next` at a stub Runtime API (includes SDK "
        "config and the KMS `GetPublicKey` / Secrets Manager `GetSecretValue` reads at init, against "
        "local moto); peak RSS = VmHWM after the first response is posted (event and status shown); "
        "first response = exec → response posted (includes the handler's moto round trips); first "
        "request = first `next` → response posted (the handler with whatever connections Init left "
        f"open); both medians of {args.first_responses} start(s). Endpoint: "
        f"{'TLS proxy in front of moto' if args.tls else 'moto over plain HTTP'}; "
        f"DYNAMODB_WARM_UP={os.environ.get('DYNAMODB_WARM_UP', '(unset: on)')}. "
        f"Ratio: to the `{BASELINE}` median.",
        "",
        "| function | cold start median ms | p90 ms | × jwks | peak RSS MiB | first response ms | first request ms | event (status) | arm64 zip MiB (unzipped) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name in names:
        r = rows[name]
        med, p90 = statistics.median(r["times"]), percentile(r["times"], 90)
        hwm = f"{r['hwm_kb'] / 1024:.1f}" if r["hwm_kb"] else "–"
        first = f"{r['first_response_ms']:.1f}" if r["first_response_ms"] is not None else "–"
        handling = f"{r['first_request_ms']:.1f}" if r.get("first_request_ms") is not None else "–"
        z = zip_size(args.zip_dir, name) if name != HELLO else None
        zs = f"{z[0]:.2f} ({z[1]:.2f})" if z else ("–" if name == HELLO else "absent")
        label = f"{name} (lambda_http hello)" if name == HELLO else (f"{name} (baseline)" if name == BASELINE else name)
        lines.append(
            f"| {label} | {med:.1f} | {p90:.1f} | {med / base:.2f} | {hwm} | {first} | {handling} | "
            f"`{r['event']}` ({r['status']}) | {zs} |"
        )
    zips = [zip_size(args.zip_dir, n) for n in functions]
    if not any(zips):
        lines += ["", f"No arm64 zips in `{args.zip_dir}` (run `scripts/package.sh`, or pass `--zip-dir`)."]
    else:
        lines += ["", f"Zips: `{args.zip_dir}/<function>/bootstrap.zip` (scripts/package.sh, arm64)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or ROOT / "bench" / "results" / f"{now:%Y-%m-%d-%H%M}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"written to {out}")


if __name__ == "__main__":
    main()

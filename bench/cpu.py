#!/usr/bin/env python3
"""CPU per request of one function process, from /proc/<pid>/stat (utime + stime).

    python3 bench/cpu.py [--function register-options] [--requests 500] [--warmup 20]

Starts the function against the stub Runtime API (bench/lambda_stub.py) and local moto, serves
it `warmup + requests` copies of one real event (for register-options: 200-passkey-options.json
with a real tenant and a bearer token from authctl), and reads the process's CPU ticks when each
`next` arrives. CPU per request = ticks consumed between the `next` after the warm-up and the
`next` after the last request, over `requests`. Includes everything the process does for a
request: the Runtime API round trip, JSON (de)serialisation, token verification, the DynamoDB
client's work (request signing, HTTP); not moto's time. See bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_stub import (  # noqa: E402
    CLK_TCK, ROOT, Launcher, LocalAws, RuntimeApi, all_functions, default_bin_dir, event_for, log,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--function", default="register-options", choices=all_functions())
    ap.add_argument("--requests", type=int, default=500, help="measured requests (default 500)")
    ap.add_argument("--warmup", type=int, default=20, help="requests before measuring (default 20)")
    ap.add_argument("--bin-dir", type=Path, default=default_bin_dir())
    ap.add_argument("--python", type=Path, default=ROOT / ".tools" / "venv" / "bin" / "python")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown output (default bench/results/<UTC date and time>-cpu-<function>.md)")
    args = ap.parse_args()

    binary = args.bin_dir / args.function
    if not binary.is_file():
        raise SystemExit(f"{binary} is not built (see bench/README.md)")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    total = args.warmup + args.requests
    with LocalAws(args.python, args.bin_dir, log_dir) as aws:
        event_name, event = event_for(args.function, aws)
        api = RuntimeApi()
        try:
            log(f"{args.function}: {total} requests of {event_name}")
            r = Launcher(api, aws.env, log_dir).start(binary, args.function, [event] * total, total + 1, args.timeout)
        finally:
            api.close()
    nexts = r.run.nexts
    if len(nexts) < total + 1:
        raise SystemExit(f"only {len(nexts) - 1} of {total} requests answered; stderr:\n{r.stderr}")
    statuses = collections.Counter()
    for _, kind, body in r.run.responses:
        statuses[json.loads(body).get("statusCode") if kind == "response" else kind] += 1
    a, b = nexts[args.warmup], nexts[total]
    cpu_ms = (b.cpu_ticks - a.cpu_ticks) / CLK_TCK * 1000 / args.requests
    wall_ms = (b.t - a.t) * 1000 / args.requests
    init_ms = nexts[0].cpu_ticks / CLK_TCK * 1000
    now = datetime.datetime.now(datetime.timezone.utc)
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = "\n".join([
        f"# CPU per request, {args.function}, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"`{binary}`; event `{event_name}`; {args.warmup} warm-up + {args.requests} measured requests, "
        f"one at a time through the stub Runtime API against local moto; load average at the end {loadavg}. "
        f"Clock tick {1000 / CLK_TCK:.0f} ms (so ±{1000 / CLK_TCK / args.requests:.3f} ms per request).",
        "",
        "| function | CPU per request ms (utime+stime) | wall per request ms (incl. moto) | CPU at init ms | peak RSS MiB | statuses |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| {args.function} | {cpu_ms:.3f} | {wall_ms:.2f} | {init_ms:.0f} | {b.hwm_kb / 1024:.1f} | "
        + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)) + " |",
    ]) + "\n"
    print(text)
    out = args.out or ROOT / "bench" / "results" / f"{now:%Y-%m-%d-%H%M}-cpu-{args.function}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"written to {out}; function logs: {log_dir}")


if __name__ == "__main__":
    main()

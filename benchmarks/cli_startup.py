"""How fast the `fastvlm-hybrid` command starts, with and without shell completion.

    python benchmarks/cli_startup.py [--runs 7]

Prints medians over `--runs` fresh processes (one warm-up run first, so the OS file cache is hot):

1. `fastvlm-hybrid --help`: wall time of the installed entry point (target: under 0.5 s).
2. `from fastvlm_gemini_hybrid.cli import main`: the import alone, timed inside the process, and the
   cumulative figure `python -X importtime` gives for `fastvlm_gemini_hybrid.cli`.
3. The same import and a completion request with `_ARGCOMPLETE=1` set (what the shell does on TAB):
   wall time to answer `fastvlm-hybrid ask --mode <TAB>`, and whether argcomplete was imported on a
   normal start (it must not be: only the completion environment variable loads it).

Not a unit test: start-up depends on the machine. Run it before and after a change to the CLI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORT_SNIPPET = (
    "import time, sys; t = time.perf_counter(); from fastvlm_gemini_hybrid.cli import main; "
    "print(time.perf_counter() - t, 'argcomplete' in sys.modules)"
)


def entry_point() -> list[str]:
    """The installed `fastvlm-hybrid` script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("fastvlm-hybrid")
    if script.exists():
        return [str(script)]
    found = shutil.which("fastvlm-hybrid")
    return [found] if found else [sys.executable, "-m", "fastvlm_gemini_hybrid"]


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def median_of(runs: int, fn: object) -> float:
    assert callable(fn)
    fn()  # warm-up: file cache, .pyc files
    return statistics.median(fn() for _ in range(runs))


def import_time(env: dict[str, str]) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], env=env, capture_output=True, text=True, check=True)
    seconds, imported = out.stdout.split()
    return float(seconds), imported == "True"


def importtime_cumulative(env: dict[str, str]) -> float:
    """Seconds `-X importtime` reports for the `fastvlm_gemini_hybrid.cli` import, children included."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "from fastvlm_gemini_hybrid.cli import main"],
                         env=env, capture_output=True, text=True, check=True).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "fastvlm_gemini_hybrid.cli":
            return int(parts[1]) / 1e6
    return float("nan")


def completion_env(base: dict[str, str], out_file: str) -> dict[str, str]:
    line = "fastvlm-hybrid ask --mode "
    return {**base, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line, "COMP_POINT": str(len(line)),
            "COMP_TYPE": "9", "_ARGCOMPLETE_STDOUT_FILENAME": out_file}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("_ARGCOMPLETE", "COMP_"))}
    cmd = entry_point()

    help_s = median_of(args.runs, lambda: wall([*cmd, "--help"], base))
    plain = [import_time(base) for _ in range(args.runs + 1)][1:]
    cumulative = statistics.median(importtime_cumulative(base) for _ in range(args.runs))
    print(f"entry point: {' '.join(cmd)}  ({args.runs} runs, medians)")
    print(f"--help wall time                      {help_s * 1000:7.1f} ms  (target < 500 ms)")
    print(f"import cli.main, in process           {statistics.median(p[0] for p in plain) * 1000:7.1f} ms")
    print(f"import cli.main, -X importtime        {cumulative * 1000:7.1f} ms")
    print(f"argcomplete imported on a normal start: {'yes (BAD)' if any(p[1] for p in plain) else 'no'}")

    with tempfile.TemporaryDirectory() as tmp:
        out_file = str(Path(tmp) / "completions")
        env = completion_env(base, out_file)
        with_env = [import_time(env) for _ in range(args.runs + 1)][1:]
        print(f"import cli.main with _ARGCOMPLETE=1   {statistics.median(p[0] for p in with_env) * 1000:7.1f} ms")
        complete_s = median_of(args.runs, lambda: wall(cmd, env))
        answer = Path(out_file).read_text().split() if Path(out_file).exists() else []
        shown = " ".join(answer) or "(nothing)"
        print(f"TAB on 'ask --mode ' (completion)     {complete_s * 1000:7.1f} ms  -> {shown}")


if __name__ == "__main__":
    main()

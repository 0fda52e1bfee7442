"""Sizes of the built Lambda functions: each function's code plus the layers it uses, against the limits.

    .venv/bin/python benchmarks/bench_build.py [--build-dir .aws-sam/build] [--json PATH]

Reads the template `sam build` wrote (``.aws-sam/build/template.yaml``) to know which layers each function
uses, and sums the sizes of the regular files (what Lambda counts, unzipped). Also lists the biggest
top-level packages of each layer. Run ``make build`` first (``make bench-build`` does).

Limits: Lambda's 262,144,000 bytes per function (code + all its layers, unzipped), and the project's
160 MB target for the Processor. Reported as PASS/MISS; the exit status is 1 if a limit is exceeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jobgraph.sam.build import LAMBDA_UNZIPPED_LIMIT, built_functions, tree_size

ROOT = Path(__file__).resolve().parents[1]
PROCESSOR_TARGET = 160_000_000


def mb(size: int) -> str:
    return f"{size / 1e6:7.1f} MB ({size / 2**20:6.1f} MiB)"


def largest_packages(layer_dir: Path, top: int = 6) -> list[tuple[str, int]]:
    python = layer_dir / "python"
    sizes = [(p.name, tree_size(p) if p.is_dir() else p.stat().st_size) for p in python.iterdir()]
    return sorted(sizes, key=lambda item: -item[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    functions = built_functions(args.build_dir)
    report, failures, layers = {"functions": {}, "layers": {}}, [], {}
    print(f"build: {args.build_dir}")
    print(f"{'function':<20}{'code':>12}{'layers':>16}{'total bytes':>16}   total             limit  target")
    for logical_id, function in sorted(functions.items()):
        sizes = function.sizes()
        total = sum(sizes.values())
        layer_bytes = total - sizes[logical_id]
        within_limit = total < LAMBDA_UNZIPPED_LIMIT
        verdict = "PASS" if within_limit else "MISS"
        target = ""
        if logical_id == "ProcessorFunction":
            target = "PASS" if total <= PROCESSOR_TARGET else "MISS"
            within_limit = within_limit and total <= PROCESSOR_TARGET
        if not within_limit:
            failures.append(logical_id)
        print(
            f"{logical_id:<20}{sizes[logical_id]:>12,}{layer_bytes:>16,}{total:>16,}   {mb(total)}  {verdict}  {target}"
        )
        report["functions"][logical_id] = {
            "code_bytes": sizes[logical_id],
            "layers": [name for name, _ in function.layers],
            "total_bytes": total,
            "limit_bytes": LAMBDA_UNZIPPED_LIMIT,
        }
        layers.update(dict(function.layers))
    print(f"\nlimit: {LAMBDA_UNZIPPED_LIMIT:,} B per function; Processor target: {PROCESSOR_TARGET:,} B")
    for name, folder in sorted(layers.items()):
        size = tree_size(folder)
        biggest = largest_packages(folder)
        report["layers"][name] = {"bytes": size, "largest": dict(biggest)}
        print(f"\n{name}: {size:,} B = {mb(size).strip()}")
        for package, package_size in biggest:
            print(f"  {package:<36}{package_size:>14,}  {mb(package_size)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    if failures:
        print(f"\nover the limit/target: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

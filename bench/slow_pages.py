"""Pages built to be slow: parse time at 1x, 10x and 100x a base size, and the ratios.

    .venv/bin/python bench/slow_pages.py          # about a minute on 2 cores
    .venv/bin/python bench/slow_pages.py --max 10  # 1x and 10x only

Each shape is one found by the fault campaign of issue 20 (at 100x, what it measured):
a statement "2, 2, ... procent." (48 KB: 46 s), "2 och 2 och ... x procent" (96 KB: 63 s),
one results section of 20,000 bullets (133 s), a 250 KB page of such runs (> 300 s), and
100,000 levels of nested <div> (content silently lost). Linear parsing means each ratio
10x/1x and 100x/10x stays near 10 (small inputs carry a fixed cost, so the first ratio
is often lower); quadratic work shows as ~100.

Times are this process's CPU seconds (`time.process_time`), so other work on the machine
does not blur them; wall seconds are printed beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parsers import parse_page  # noqa: E402

URL = "https://www.kalmar.se/omsorg/oppna-jamforelser/socialpsykiatri.html"


def page(bullets: list[str], *, wrap: int = 0) -> str:
    """A municipal results page: one "Årets resultat visar att:" section of `bullets`,
    inside `wrap` levels of <div>."""
    items = "".join(f"<li>{bullet}</li>" for bullet in bullets)
    body = f"<h2>Årets resultat visar att:</h2><ul>{items}</ul>"
    return (
        "<html><head><title>Socialpsykiatri - Kalmar kommun</title></head><body>"
        f"<h1>Socialpsykiatri</h1>{'<div>' * wrap}{body}{'</div>' * wrap}</body></html>"
    )


def comma_run(scale: int) -> str:
    return page(["2, " * (160 * scale) + "procent."])


def och_run(scale: int) -> str:
    return page(["2 och " * (160 * scale) + "x procent"])


def many_bullets(scale: int) -> str:
    return page(
        [
            f"{i % 100} procent av kommunerna har en aktuell rutin nummer {i}. "
            f"<p>Kalmar har en rutin för samordning nummer {i}.</p>"
            for i in range(200 * scale)
        ]
    )


def page_of_runs(scale: int) -> str:
    """~2.5 KB of bullets that are runs of numbers at 1x (250 KB at 100x)."""
    run = "2 och " * 20 + "x procent, " + "3, " * 20 + "procent"
    # Each bullet differs (its last figure), so none is read from the grammar's cache.
    return page([f"{run} {i}." for i in range(13 * scale)])


def deep_nesting(scale: int) -> str:
    return page(["63 procent av kommunerna har en rutin."], wrap=1000 * scale)


SHAPES: dict[str, Callable[[int], str]] = {
    "comma run in one statement": comma_run,
    "'och' run in one statement": och_run,
    "bullets in one section": many_bullets,
    "page of number runs": page_of_runs,
    "nested <div>s": deep_nesting,
}


def measure(html: str) -> tuple[float, float, int, int]:
    """(CPU s, wall s, findings, rejects) of one parse."""
    cpu, wall = time.process_time(), time.perf_counter()
    parsed = parse_page(html, url=URL, municipality="Kalmar")
    return (
        time.process_time() - cpu,
        time.perf_counter() - wall,
        len(parsed.findings),
        len(parsed.rejects),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=100, choices=(10, 100),
                        help="largest scale (default 100)")  # fmt: skip
    args = parser.parse_args(argv)
    scales = [scale for scale in (1, 10, 100) if scale <= args.max]
    print(f"{'shape':<28} {'scale':>5} {'size':>10} {'cpu s':>8} {'wall s':>8} "
          f"{'findings':>8} {'rejects':>7}")  # fmt: skip
    for name, build in SHAPES.items():
        cpu_times = []
        for scale in scales:
            html = build(scale)
            cpu, wall, n_findings, n_rejects = measure(html)
            cpu_times.append(cpu)
            size = len(html.encode("utf-8"))
            print(f"{name:<28} {scale:>4}x {size:>10,} {cpu:>8.3f} {wall:>8.3f} "
                  f"{n_findings:>8} {n_rejects:>7}", flush=True)  # fmt: skip
        ratios = ", ".join(
            f"{scales[i + 1]}x/{scales[i]}x = {cpu_times[i + 1] / max(cpu_times[i], 1e-4):.1f}"
            for i in range(len(scales) - 1)
        )
        print(f"{'':<28} ratios (cpu): {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

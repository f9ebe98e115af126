"""Rewrite the golden findings from the current parser: review `git diff tests/golden` by hand.

    python tests/golden/regenerate.py

One JSON Lines file per shipped seed page, named by the seed's archive id.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import parse_seed, seed_records  # noqa: E402

for seed_id, record in seed_records().items():
    page = parse_seed(record)
    lines = [json.dumps(f.to_dict(), ensure_ascii=False, sort_keys=True) for f in page.findings]
    (ROOT / "tests" / "golden" / f"{seed_id}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    print(f"{seed_id}: {len(lines)} findings")

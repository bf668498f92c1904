"""Kept for old instructions: ``activegen gaal-quality CONFIG --out OUT`` does this now.

Usage: python scripts/gaal_quality.py CONFIG OUT [--n 1000] [--threshold 0.8]
"""

from __future__ import annotations

import sys

from activegen.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    config, out, *rest = sys.argv[1:]
    sys.exit(main(["gaal-quality", config, "--out", out, *rest]))

"""Seconds per SimCLR epoch on the mnist10k pool for some encoder widths and thread counts."""

import sys
import time

from common import splits

from activegen.features.self_supervised import SelfSupervisedSettings, train_encoder

X, y, _, _ = splits("mnist10k")
for spec in sys.argv[1:]:
    width, threads = (int(v) for v in spec.split(","))
    s = SelfSupervisedSettings(epochs=1, width=width)
    t = time.perf_counter()
    _, rec = train_encoder(X[:2048], s, threads=threads, display="none")
    print(f"width {width} threads {threads}: {rec.seconds:.1f} s for 2048 images "
          f"→ {rec.seconds * 8000 / 2048:.0f} s/epoch on 8000; loss {rec.losses}", flush=True)

"""Seconds per SimCLR step, split into augmentation, forward and backward.

    python prof_step.py THREADS WIDTH
"""

import sys
import time

import torch

from activegen.features.augment import Augment
from activegen.features.contrastive import nt_xent
from activegen.features.encoder import ProjectionHead, SmallResNet

threads, width = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
x = torch.rand(256, 1, 28, 28)
augment = Augment(1, (28, 28))
encoder = SmallResNet(1, (28, 28), width, stem_stride=1)
head = ProjectionHead(encoder.feature_dim, 64)
optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()])
spent = {"aug": 0.0, "fwd": 0.0, "bwd": 0.0}
for i in range(6):
    t0 = time.perf_counter()
    with torch.no_grad():
        views = torch.cat([augment(x), augment(x)])
    t1 = time.perf_counter()
    z = head(encoder(views))
    loss = nt_xent(z[:256], z[256:], 0.5)
    t2 = time.perf_counter()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    t3 = time.perf_counter()
    if i >= 2:  # after two warm-up steps
        spent["aug"] += t1 - t0
        spent["fwd"] += t2 - t1
        spent["bwd"] += t3 - t2
print(threads, width, {k: round(v / 4, 3) for k, v in spent.items()})

"""Pool images per second of SimCLR training by width and batch size (one thread; best of 3)."""

import time

import torch

from activegen.features.augment import Augment
from activegen.features.contrastive import nt_xent
from activegen.features.encoder import ProjectionHead, SmallResNet

torch.set_num_threads(1)
x_all = torch.rand(1024, 1, 28, 28)
setups = {}
for width in (16, 24, 32):
    encoder = SmallResNet(1, (28, 28), width, 1, 2)
    head = ProjectionHead(encoder.feature_dim, 64)
    setups[width] = (encoder, head,
                     torch.optim.AdamW([*encoder.parameters(), *head.parameters()]))
augment = Augment(1, (28, 28))
times: dict[tuple[int, int], list[float]] = {}
for _ in range(3):
    for width, (encoder, head, optimizer) in setups.items():
        for batch in (64, 256):
            t = time.perf_counter()
            for s in range(0, 1024, batch):
                x = x_all[s:s + batch]
                with torch.no_grad():
                    views = torch.cat([augment(x), augment(x)])
                z = head(encoder(views))
                loss = nt_xent(z[:batch], z[batch:], 0.5)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            times.setdefault((width, batch), []).append(time.perf_counter() - t)
for key, values in times.items():
    print(key, f"{1024 / min(values):.0f} images/s (2 views each)")

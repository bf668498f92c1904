"""SimCLR views per second with and without ``channels_last`` (stride-2 stem, one thread)."""

import time

import torch

from activegen.features.contrastive import nt_xent
from activegen.features.encoder import ProjectionHead, SmallResNet

torch.set_num_threads(1)
for channels_last in (False, True):
    for width in (16, 32):
        encoder = SmallResNet(1, (28, 28), width, 1, 2)
        head = ProjectionHead(encoder.feature_dim, 64)
        x = torch.rand(256, 1, 28, 28)
        if channels_last:
            encoder = encoder.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()])

        def step(encoder=encoder, head=head, x=x, optimizer=optimizer) -> None:
            z = head(encoder(x))
            loss = nt_xent(z[:128], z[128:], 0.5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step()
        t = time.perf_counter()
        for _ in range(5):
            step()
        name = "channels_last" if channels_last else "contiguous"
        print(name, width, f"{256 * 5 / (time.perf_counter() - t):.0f} views/s", flush=True)

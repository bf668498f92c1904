"""Labelability learned from the oracle's own answers: can a person name this image?

Every synthesized query an oracle answered is an example: named (the labeled synthesized
images, ``QueryState.X_extra``) or refused (``QueryState.X_refused``). :class:`Labelability`
is a kernel (Nadaraya–Watson) estimate of the probability that an image is named, from those
examples, in pixels (what the person sees):

    p(x) = (Σ_named k(x, a) + α·π) / (Σ_all k(x, e) + α),

``k`` an RBF kernel whose bandwidth is the median distance between the answered images, π the
share named so far (smoothed by one named and one refused pseudo-answer) and α = 1 the weight
of that prior: far from every answer the estimate is the overall rate, near answers it is
theirs. A kernel estimate needs no fitting, so it is refitted from the state each round (the
strategy stays a function of its state), and it is differentiable in ``x``, so the synthesis can
descend on ``−log p(G(z))`` (:class:`~activegen.strategies.synthesis.LabelabilityTerm`).
"""

from __future__ import annotations

import torch

from activegen.strategies.synthesis import sq_dist

#: weight α of the prior rate, in answers
PRIOR_WEIGHT = 1.0


class Labelability:
    """The estimate from ``named`` and ``refused`` images (``[N, C, H, W]`` in ``[0, 1]``)."""

    def __init__(self, named: torch.Tensor, refused: torch.Tensor) -> None:
        if len(named) + len(refused) < 2:
            raise ValueError("labelability needs at least two answered images")
        answered = torch.cat([named, refused]).reshape(len(named) + len(refused), -1).float()
        self.answered = answered
        self.named = torch.zeros(len(answered), dtype=answered.dtype)
        self.named[:len(named)] = 1.0
        self.rate = (len(named) + 1.0) / (len(answered) + 2.0)
        with torch.no_grad():
            d = sq_dist(answered, answered).sqrt()
            d = d[~torch.eye(len(answered), dtype=torch.bool)]
            self.bandwidth = float(d[d > 0].median()) if (d > 0).any() else 1.0

    @classmethod
    def from_answers(cls, named: torch.Tensor | None,
                     refused: torch.Tensor | None) -> Labelability | None:
        """The estimate, or ``None`` while nothing was refused (every image is then as
        nameable as the next, and the term would only add a constant)."""
        if refused is None or len(refused) == 0:
            return None
        if named is None:
            named = refused[:0]
        if len(named) + len(refused) < 2:
            return None
        return cls(named, refused)

    def to(self, device: torch.device | str) -> Labelability:
        self.answered, self.named = self.answered.to(device), self.named.to(device)
        return self

    def log_prob(self, images: torch.Tensor) -> torch.Tensor:
        """``log p(named)`` of each image ``[N]``, differentiable in the images."""
        flat = images.reshape(len(images), -1)
        k = torch.exp(-sq_dist(flat, self.answered) / (2.0 * self.bandwidth**2))
        numerator = k @ self.named + PRIOR_WEIGHT * self.rate
        return torch.log(numerator) - torch.log(k.sum(dim=1) + PRIOR_WEIGHT)

"""A generated stand-in for MKT embeddings of real photos (no torch: benchmarks import it freely)."""

import numpy as np

D, N = 512, 196  # ViT-B/16 sizes


class Surrogate:
    """Generated MKT-like embeddings: photos made of 1-4 concepts (Zipf popularity) covering random
    shares of the 196 patches over a background, in a space with a power-law spectrum."""

    def __init__(self, seed: int = 0, concepts: int = 2000, dim: int = D, patches: int = N):
        self.dim, self.patches = dim, patches
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.spectrum = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)
        self.q = q.astype(np.float32)
        self.rng = rng
        self.mean = self.draw(1)[0]
        self.concepts = self.draw(concepts)
        self.noise = (rng.standard_normal((20000, dim)) / np.sqrt(dim)).astype(np.float32)
        pop = 1.0 / np.arange(1, concepts + 1) ** 0.8
        self.popularity = pop / pop.sum()

    def draw(self, n: int) -> np.ndarray:
        v = (self.rng.standard_normal((n, self.dim)).astype(np.float32) * self.spectrum) @ self.q.T
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def photos(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        count = rng.integers(1, 5, n)
        picked = rng.choice(len(self.concepts), (n, 4), p=self.popularity)
        strength = rng.uniform(0.5, 1.5, (n, 4)).astype(np.float32)
        weights = rng.dirichlet(np.ones(5), n) * np.concatenate([np.ones((n, 1)), np.arange(4) < count[:, None]], 1)
        cumulative = np.cumsum(weights / weights.sum(1, keepdims=True), axis=1)
        # -1 background, else concept slot
        region = (rng.random((n, self.patches, 1)) > cumulative[:, None, :]).sum(-1) - 1
        region = np.minimum(region, 3)
        slot = np.maximum(region, 0)
        objects = self.concepts[np.take_along_axis(picked, slot, 1)] * np.take_along_axis(strength, slot, 1)[..., None]
        objects *= (region >= 0)[..., None]
        background = 0.5 * self.concepts[rng.integers(len(self.concepts), size=n)] + 0.5 * self.draw(n)
        noise = (self.noise[rng.integers(len(self.noise), size=(n, self.patches))]
                 * rng.uniform(0.5, 1.5, (n, self.patches, 1)))
        local = 0.5 * self.mean + objects + 0.4 * background[:, None] + 0.8 * noise
        share = np.stack([(region == j).mean(1) for j in range(4)], 1)
        objects_global = (self.concepts[picked] * (strength * np.sqrt(share))[..., None]).sum(1)
        global_ = (0.5 * self.mean + objects_global + 0.3 * background
                   + 0.3 * self.noise[rng.integers(len(self.noise), size=n)])
        return global_.astype(np.float32), local.astype(np.float32)

    def labels(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        z = self.concepts[rng.choice(len(self.concepts), n, replace=False, p=self.popularity)] + 0.3 * self.draw(n)
        return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)



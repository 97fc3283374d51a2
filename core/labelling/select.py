"""Which unlabelled images to label next, on the frozen backbone's features: typical first, then unsure but diverse.

With a few labels a class, the images a head is unsure about are mostly outliers and near-duplicates of each
other, and labelling them teaches little (Hacohen et al. 2022, "Active learning on a budget"). So a cold start
labels the most typical image of each group of similar images that has no label yet (TypiClust): k-means with
one cluster per label so far plus one per pick, typicality = inverse mean distance to the nearest neighbours.
After that, a batch mixes uncertainty with diversity (BADGE, Ash et al. 2020; cluster-margin, Citovsky et al. 2021):
k-means++ seeding on embeddings scaled by the head's uncertainty, among the most uncertain images, so the picks
are unsure images spread over the feature space, never two near-identical ones. The uncertainty is any task's
score in [0, 1] (see `uncertainty.py`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NearestNeighbors

NEIGHBOURS = 20  # TypiClust's K for typicality
MIN_GROUP = 5  # smaller clusters are outliers, not groups (at most a fraction of the pool's mean group size)
DUPLICATE = 0.5  # closer than half the pool's median nearest-neighbour distance: a near-duplicate
CANDIDATES = 3  # a batch is drawn from the 3 x batch most uncertain images (bench/active_learning.py)
PCA_ROWS = 2000
DIMENSIONS = 64  # clustering and distances in a PCA space: faster, and less noise than 1280 raw dimensions


@dataclass(frozen=True)
class Pick:
    index: int  # a row of the pool arrays
    kind: str  # "typical" (cold start) or "uncertain"
    group_size: int = 0  # typical picks: the images in its group (cluster)


def geometry(features: np.ndarray, dimensions: int = DIMENSIONS, seed: int = 0) -> np.ndarray:
    """Rows centred, reduced by PCA and scaled to unit length: pooled CNN features share a large common part
    (non-negative, mean cosine 0.3-0.7 between unrelated photos), which hides the differences clustering needs."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) == 0:
        return x.reshape(0, 0)
    x = x - x.mean(axis=0)
    k = min(dimensions, len(x) - 1, x.shape[1])
    if k >= 2 and x.any():
        # the directions from a sample of rows: a big pool's PCA took 9 s (20,000 images), its projection 0.1 s
        sample = x if len(x) <= PCA_ROWS else x[np.random.default_rng(seed).choice(len(x), PCA_ROWS, replace=False)]
        x = PCA(n_components=k, random_state=seed).fit(sample).transform(x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def typicality(x: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """TypiClust's typicality: the inverse of the mean distance to the `neighbours` nearest other rows."""
    if len(x) < 2:
        return np.ones(len(x))
    return 1.0 / (_neighbour_distances(x, min(neighbours, len(x) - 1)).mean(axis=1) + 1e-12)


def typical_diverse(pool: np.ndarray, labelled: np.ndarray, batch: int, seed: int = 0) -> list[Pick]:
    """The most typical image of each of the largest groups that hold no labelled image yet (rows of `pool`).

    `pool` and `labelled` are rows of one `geometry()` space. k-means runs on both together with one cluster per
    label so far plus one per pick, so at least `batch` clusters hold no label; a group already labelled is
    skipped, because a second label there teaches less than a first label elsewhere."""
    batch = min(batch, len(pool))
    if batch <= 0:
        return []
    everything = np.vstack([pool, labelled]) if len(labelled) else pool
    k = min(len(labelled) + batch, len(everything))
    with warnings.catch_warnings():  # identical images make fewer distinct clusters than asked: that is fine
        warnings.simplefilter("ignore", ConvergenceWarning)
        clusters = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(everything)
    in_pool, covered = clusters[:len(pool)], set(clusters[len(pool):].tolist())
    sizes = np.bincount(in_pool, minlength=k)
    # a group of a few images is an outlier k-means gave a cluster of its own (TypiClust skips them too)
    smallest = min(MIN_GROUP, max(1, len(pool) // (2 * k)))
    order = sorted((c for c in range(k) if c not in covered and sizes[c] >= smallest), key=lambda c: (-sizes[c], c))
    picks = []
    for c in order[:batch]:
        members = np.flatnonzero(in_pool == c)
        picks.append(Pick(int(members[np.argmax(typicality(pool[members]))]), "typical", int(sizes[c])))
    if len(picks) < batch:  # fewer uncovered groups than picks: typical images far from the picks so far
        weight = typicality(pool)
        rest = diverse(pool, weight / weight.max(), labelled, batch - len(picks), seed, [p.index for p in picks])
        picks += [Pick(i, "typical", 0) for i in rest]
    return picks


def uncertain_diverse(pool: np.ndarray, uncertainty: np.ndarray, labelled: np.ndarray, batch: int,
                      seed: int = 0, candidates: int = CANDIDATES) -> list[Pick]:
    """Unsure images spread over the feature space, for any task's uncertainty (one score in [0, 1] per row):
    k-means++ seeding on uncertainty-scaled rows, among the `candidates` x `batch` most uncertain rows.

    Among the most uncertain only: k-means++ over the whole pool drifts to sure images that are merely far apart
    (on 10-class digits it needed 10% more labels than uncertainty-first); uncertainty-first alone fills a batch
    with near-copies of one hard image."""
    unsure = np.asarray(uncertainty, dtype=np.float64)
    shortlist = np.argsort(-unsure, kind="stable")[:max(1, candidates) * batch]
    picks = diverse(pool[shortlist], unsure[shortlist], labelled, batch, seed)
    return [Pick(int(shortlist[i]), "uncertain") for i in picks]


def diverse(pool: np.ndarray, weight: np.ndarray, labelled: np.ndarray, batch: int, seed: int = 0,
            chosen: list[int] = ()) -> list[int]:
    """`batch` more rows by k-means++ seeding (D² sampling) on `weight`-scaled rows, the heaviest first; rows
    `chosen` already count as picks.

    Scaled rows of sure images sit near the origin, so the origin acts as a centre already chosen: a pick is
    likely where the head is unsure and far from the picks so far. A candidate closer than DUPLICATE x the pool's
    median nearest-neighbour distance to a pick or a labelled image is never drawn: no near-identical pairs."""
    picks = [int(i) for i in chosen]
    batch = min(batch, len(pool) - len(picks))
    if batch <= 0:
        return []
    rng = np.random.default_rng(seed)
    scaled = pool * np.asarray(weight, dtype=np.float64)[:, None]
    d2 = np.sum(scaled ** 2, axis=1)
    radius = DUPLICATE * median_neighbour_distance(pool)
    allowed = np.ones(len(pool), dtype=bool)
    if len(labelled):
        allowed &= _pairwise(pool, labelled).min(axis=1) > radius
    for i in picks:
        d2 = np.minimum(d2, np.sum((scaled - scaled[i]) ** 2, axis=1))
        allowed &= _pairwise(pool, pool[i:i + 1])[:, 0] > radius
        allowed[i] = False
    first = len(picks)
    while len(picks) < first + batch:
        chances = np.where(allowed, d2, 0.0)
        if chances.sum() <= 0:  # only near-duplicates or fully sure images left: the farthest of those not picked
            chances = np.where(np.isin(np.arange(len(pool)), picks), -1.0, d2)
            i = int(np.argmax(chances))
        elif not picks:  # the heaviest row first, as BADGE does
            i = int(np.argmax(chances))
        else:
            i = int(rng.choice(len(pool), p=chances / chances.sum()))
        picks.append(i)
        d2 = np.minimum(d2, np.sum((scaled - scaled[i]) ** 2, axis=1))
        allowed &= _pairwise(pool, pool[i:i + 1])[:, 0] > radius
        allowed[i] = False
    return picks[first:]


def median_neighbour_distance(x: np.ndarray) -> float:
    return float(np.median(_neighbour_distances(x, 1)[:, 0])) if len(x) > 1 else 0.0


def _neighbour_distances(x: np.ndarray, k: int) -> np.ndarray:
    """(N, k) distances to the k nearest other rows; sklearn works in chunks, so a big pool fits in memory."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return distances[:, 1:]


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = np.sum(a ** 2, axis=1)[:, None] + np.sum(b ** 2, axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))

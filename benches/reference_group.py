#!/usr/bin/env python3
"""scipy reference for `ptycho bench group`: groups of C = 4 (gridsize 2) from
n uniform random positions: a cKDTree query of the K + 1 nearest, the seed
kept as member 0 and 3 members drawn without replacement from its K
neighbours (vectorised with argsort of random keys), then centroids and
offsets. Prints JSON: {"seconds": [...]}."""
import argparse
import json
import time

import numpy as np
from scipy.spatial import cKDTree


def group(pos, k, rng):
    tree = cKDTree(pos)
    _, nn = tree.query(pos, k=k + 1)
    neighbours = nn[:, 1:]
    pick = np.argsort(rng.random(neighbours.shape), axis=1)[:, :3]
    members = np.concatenate([nn[:, :1], np.take_along_axis(neighbours, pick, 1)], axis=1)
    coords = pos[members]
    centroids = coords.mean(axis=1)
    return members, centroids, coords - centroids[:, None, :]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 5000, (args.n, 2))
    group(pos[:1000], args.k, rng)
    seconds = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        group(pos, args.k, rng)
        seconds.append(time.perf_counter() - t)
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()

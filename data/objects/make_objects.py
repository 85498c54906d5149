"""Natural-image test objects for simulations (`object.kind = "png"`).

astronaut_256.png: scikit-image's `data.astronaut()` (Eileen Collins, a NASA
photograph released into the public domain), converted to grayscale and
resampled to 256×256. The quality suite's natural-image case reads it.

Run: .venv/bin/python data/objects/make_objects.py
"""
import pathlib

import numpy as np
from skimage import data, transform
from skimage.color import rgb2gray
from skimage.io import imsave

HERE = pathlib.Path(__file__).resolve().parent
img = transform.resize(rgb2gray(data.astronaut()), (256, 256), anti_aliasing=True)
imsave(HERE / "astronaut_256.png", (np.clip(img, 0, 1) * 255).round().astype(np.uint8), check_contrast=False)
print("wrote", HERE / "astronaut_256.png")

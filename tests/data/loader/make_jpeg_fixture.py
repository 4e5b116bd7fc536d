# cifar_cat_0000.jpg is cifar10-jpeg/train/cat/0000.jpg from /work/shared/data/cifar10-jpeg.tar.gz
# (baseline JPEG, quality 75). cifar_cat_0000_pil.npy is what the references feed their model
# before scaling: np.array(Image.open(f).convert("RGB")), here with Pillow 13.0.0.
import numpy as np
from PIL import Image

np.save("cifar_cat_0000_pil.npy", np.array(Image.open("cifar_cat_0000.jpg").convert("RGB")))

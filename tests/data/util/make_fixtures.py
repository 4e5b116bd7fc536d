# Makes numpy_savez.npz, the fixture for tests/util/npy_test.cpp: an archive written by numpy
# itself (np.savez: stored ZIP with ZIP64 local headers), so the C++ reader is checked against the
# format as numpy really writes it. Run: python3 make_fixtures.py (numpy only).
import numpy as np

arr_0 = (np.arange(2 * 3 * 4 * 3) * 7 % 256).astype(np.uint8).reshape(2, 3, 4, 3)
arr_1 = np.array([5, -1, 1 << 40], dtype=np.int64)
np.savez("numpy_savez.npz", arr_0, arr_1, f=np.array([0.5, -2.25], dtype=np.float32))

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """The offline copies of MNIST, Fashion-MNIST and ImageNet images beside the checkout."""
    path = pathlib.Path(os.environ.get("TF_SANITY_SHARED_DATA", SHARED_DATA))
    if not path.is_dir():
        pytest.skip(f"no offline data at {path}")
    return path

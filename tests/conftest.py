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


@pytest.fixture(scope="session")
def mnist_dataset(shared_data, tmp_path_factory):
    """MNIST built with tfds from shared_data/mnist into a fresh folder (checksums on), loaded once.

    Session-scoped because the tfds build and decode take ~30 s; tests must not modify its arrays.
    """
    from tf_sanity.models import datasets

    return datasets.load("mnist", shared_data, tfds_dir=tmp_path_factory.mktemp("tfds"))

"""The ImageNet test bed (slim_models.imagenet), the checkpoint cache and the inception-eval CLI."""

import tarfile
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import slim_models
from slim_models import checkpoint, imagenet
from tf_sanity.errors import SanityError


@pytest.fixture(scope="module")
def bed(shared_data):
    return imagenet.TestBed(shared_data / "imagenet")


def test_labels_and_class_names_agree(bed, shared_data):
    assert len(bed) == 235
    names = imagenet.class_names(shared_data / "imagenet")
    assert names[0] == ("n01440764", "tench")
    assert all(names[r.label][0] == r.synset for r in bed.records)
    slim_names = imagenet.slim_class_names(shared_data / "imagenet")
    assert len(slim_names) == 1001 and slim_names[0] == "background" and slim_names[1] == "tench"
    subset = imagenet.TestBed(shared_data / "imagenet", subset="val_imagenette224/", limit=30)
    assert len(subset) == 30 and all("val_imagenette224" in str(r.path) for r in subset.records)


def test_index_mapping():
    np.testing.assert_array_equal(imagenet.to_slim_index([0, 217, 999]), [1, 218, 1000])
    np.testing.assert_array_equal(imagenet.to_imagenet_index([0, 1, 1000]), [-1, 0, 999])
    with pytest.raises(SanityError):
        imagenet.to_slim_index([1000])
    with pytest.raises(SanityError):
        imagenet.to_imagenet_index([1001])
    logits = np.zeros((2, 1001))
    logits[0, 1] = logits[1, 5] = 1.0  # image 0 says tench (ImageNet 0), image 1 says class 4
    np.testing.assert_array_equal(imagenet.top_k_correct(logits, [0, 0], 1), [True, False])


def _resize_bilinear_tf1(image, size):
    """Reference: TF1 resize_bilinear(align_corners=False), source = dest * in / out, no half pixel."""
    h, w = image.shape[:2]
    ys, xs = np.arange(size) * h / size, np.arange(size) * w / size
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def test_preprocess_is_slims_eval_preprocessing():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (224, 200, 3), dtype=np.uint8)
    got = imagenet.preprocess(image)
    # central_crop(0.875): offsets int((1 - 0.875) * n / 2), sizes n - 2 * offset.
    oy, ox = int(0.125 * 224 / 2), int(0.125 * 200 / 2)
    crop = image[oy:224 - oy, ox:200 - ox].astype(np.float64) / 255
    expected = (_resize_bilinear_tf1(crop, 299) - 0.5) * 2
    assert got.shape == (299, 299, 3) and got.dtype == np.float32
    # 1e-4: TF computes the source coordinates in float32; TF2's half-pixel resize differs by ~0.1.
    np.testing.assert_allclose(got, expected, atol=1e-4)
    half_pixel = tf.image.resize(crop, (299, 299), method="bilinear").numpy() * 2 - 1
    assert np.abs(half_pixel - expected).max() > 0.05
    plain = imagenet.preprocess(image, central_fraction=1.0)
    np.testing.assert_allclose(plain, (_resize_bilinear_tf1(image / 255.0, 299) - 0.5) * 2, atol=1e-4)
    assert imagenet.preprocess(np.full((10, 10, 3), 255, np.uint8)).min() == 1.0
    assert imagenet.preprocess(np.zeros((10, 10, 3), np.uint8)).max() == -1.0


def test_all_test_bed_images_decode_including_grayscale(bed):
    from PIL import Image
    modes = {r.path: Image.open(r.path).mode for r in bed.records}
    gray = [p for p, m in modes.items() if m != "RGB"]
    assert len(gray) >= 7
    images, _ = imagenet.load_images([r for r in bed.records if r.path in gray[:3]])
    assert images.shape == (3, 299, 299, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 1])


def test_bad_labels_file_is_a_clear_error(tmp_path):
    (tmp_path / "labels.csv").write_text("file,class_index_1000\nnothere.jpg,3\n")
    with pytest.raises(SanityError, match="missing"):
        imagenet.TestBed(tmp_path)
    (tmp_path / "labels.csv").write_text("name,label\na.jpg,3\n")
    with pytest.raises(SanityError, match="columns"):
        imagenet.TestBed(tmp_path)


def test_offline_download_fails_at_once_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_SANITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(checkpoint, "OFFICIAL_URL", "http://127.0.0.1:9/inception_v3_2016_08_28.tar.gz")
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    start = time.perf_counter()
    with pytest.raises(SanityError) as info:
        checkpoint.official_checkpoint()
    assert time.perf_counter() - start < checkpoint.CONNECT_TIMEOUT_S + 1
    assert str(tmp_path / "cache") in str(info.value) and "inception_v3_2016_08_28.tar.gz" in str(info.value)
    assert "\n" not in str(info.value)


def test_cached_archive_is_extracted_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_SANITY_CACHE", str(tmp_path))
    monkeypatch.setattr(checkpoint, "OFFICIAL_URL", "http://127.0.0.1:9/never-used")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "inception_v3.ckpt").write_bytes(b"ckpt")
    with tarfile.open(tmp_path / checkpoint.ARCHIVE_NAME, "w:gz") as tar:
        tar.add(tmp_path / "src" / "inception_v3.ckpt", arcname="inception_v3.ckpt")
    path = checkpoint.official_checkpoint()
    assert path == tmp_path / "inception_v3.ckpt" and path.read_bytes() == b"ckpt"
    assert checkpoint.official_checkpoint(download=False) == path


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """A slim-format checkpoint of a freshly initialized (untrained) Keras Inception v3."""
    keras.utils.set_random_seed(0)
    model = slim_models.inception_v3()
    prefix = slim_models.save_slim_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "random.ckpt")
    x = np.random.default_rng(1).uniform(-1, 1, (1, 299, 299, 3)).astype(np.float32)
    return prefix, x, np.asarray(model(x, training=False))


def test_save_and_load_round_trip(random_checkpoint):
    prefix, x, logits = random_checkpoint
    model = slim_models.load_inception_v3(prefix)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), logits)
    assert model.checkpoint_path == prefix


def test_inception_eval_cli_on_a_random_checkpoint(random_checkpoint, shared_data, capsys):
    from tf_sanity import cli
    prefix = random_checkpoint[0]
    code = cli.main(["inception-eval", "--checkpoint", prefix, "--images",
                     str(shared_data / "imagenet"), "--limit", "20", "--batch-size", "10",
                     "--show", "1"])
    out = capsys.readouterr().out
    print(out)
    assert code == 0
    assert "top-1" in out and "top-5" in out and "/20)" in out
    assert "not a trained ImageNet checkpoint" in out
    assert "true tench" in out


def test_inception_eval_cli_bad_checkpoint(tmp_path, shared_data, capsys):
    from tf_sanity import cli
    code = cli.main(["inception-eval", "--checkpoint", str(tmp_path / "none.ckpt"),
                     "--images", str(shared_data / "imagenet"), "--limit", "1"])
    assert code == 2 and "cannot read checkpoint" in capsys.readouterr().err

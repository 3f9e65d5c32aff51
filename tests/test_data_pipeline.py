"""Tests of ``get_dataset`` on synthetic data and image folders: arguments, batches, the order
and seeds of its steps, determinism, shuffling, distribution."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import first_batches, make_image_folder

from bireal_larq import data as D
from bireal_larq.data import pipeline, sources
from bireal_larq.data import preprocessing as P
from bireal_larq.data.mixing import mix_batch
from bireal_larq.utils import derive_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("imagefolder")))


# ------------------------------------------------------------------------------------------
# Arguments and batches


def test_get_dataset_rejects_bad_arguments(folder):
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenet'"):
        D.get_dataset("imagenet", "train", batch_size=2, training=True)
    with pytest.raises(ValueError, match=r"split='validation' is invalid"):
        D.get_dataset("synthetic", "validation", batch_size=2, training=False)
    with pytest.raises(ValueError, match=r"batch_size=0 is invalid"):
        D.get_dataset("synthetic", "train", batch_size=0, training=True)
    with pytest.raises(ValueError, match=r"num_classes=5 does not match imagefolder"):
        D.get_dataset(
            "imagefolder", "train", batch_size=2, training=True, data_dir=folder, num_classes=5
        )
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['colour'\]"):
        D.get_dataset(
            "imagefolder", "train", batch_size=2, training=True, data_dir=folder, colour=True
        )
    with pytest.raises(ValueError, match=r"need RGB images.*fashion_mnist"):
        D.get_dataset(
            "fashion_mnist", "train", batch_size=2, training=True, augment=D.preset("imagenet")
        )
    with pytest.raises(ValueError, match=r"augment=.* is invalid"):
        D.get_dataset("synthetic", "train", batch_size=2, training=True, augment="cifar")
    for kwargs, message in [
        (dict(seed="a"), r"seed='a' is invalid; valid: None or an int"),
        (dict(image_size=(32, 32, 3)), r"image_size=\(32, 32, 3\) is invalid; valid: one int"),
        (dict(shuffle_buffer=-3), r"shuffle_buffer=-3 is invalid; valid: an int >= 1"),
        (dict(num_examples={"train": 64}), r"num_examples=\{'train': 64\} is invalid"),
        (dict(num_examples=-4), r"num_examples=-4 is invalid"),
    ]:
        with pytest.raises(ValueError, match=message):
            D.get_dataset("synthetic", "train", batch_size=2, training=True, **kwargs)


def test_cutout_in_the_pipeline_sets_a_square_of_the_normalised_image_to_zero():
    # after normalisation and PCA lighting (on here), as the paper zeroes normalised pixels
    kwargs = dict(batch_size=4, training=True, seed=3, image_size=16, num_classes=2,
                  num_examples=8)
    augment = D.AugmentConfig(crop="none", flip=False, lighting_alphastd=0.1)
    plain, _ = D.get_dataset("synthetic", "train", augment=augment, **kwargs)
    cut, _ = D.get_dataset("synthetic", "train", **kwargs,
                           augment=dataclasses.replace(augment, cutout=6))
    x0, x1 = first_batches(plain, 1)[0][0], first_batches(cut, 1)[0][0]
    changed = (x0 != x1).any(axis=-1)
    for image, mask in zip(x1, changed):
        assert 9 <= mask.sum() <= 36
        np.testing.assert_array_equal(image[mask], 0.0)
    assert len({tuple(np.argwhere(m)[0]) for m in changed}) > 1  # a square of its own each
    np.testing.assert_array_equal(x1[~changed], x0[~changed])  # nothing else moved


def test_synthetic_train_and_evalfirst_batches():
    ds, n = D.get_dataset(
        "synthetic",
        "train",
        batch_size=4,
        training=True,
        seed=0,
        image_size=16,
        num_classes=5,
        num_examples=10,
    )
    batches = first_batches(ds, 10)
    assert n == 10 and len(batches) == 2  # drop_remainder
    x, y = batches[0]
    assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
    assert y.shape == (4, 5) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    ds, n = D.get_dataset(
        "synthetic",
        "test",
        batch_size=4,
        training=False,
        image_shape=(8, 8, 1),
        num_classes=3,
        num_examples=10,
    )
    sizes = [x.shape[0] for x, _ in ds]
    assert sizes == [4, 4, 2]  # eval keeps the remainder
    assert ds.element_spec[0].shape.as_list() == [None, 8, 8, 1]


@pytest.mark.parametrize("preset", ["imagenet", "imagenet_caffe", "imagenet_jitter"])
def test_imagefolder_trainingfirst_batches(folder, preset):
    augment = D.preset(preset, mixup_alpha=0.2) if preset == "imagenet" else D.preset(preset)
    ds, n = D.get_dataset(
        "imagefolder",
        "train",
        batch_size=4,
        training=True,
        data_dir=folder,
        seed=1,
        image_size=32,
        augment=augment,
    )
    assert n == 12
    batches = first_batches(ds, 10)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and np.isfinite(x).all()
    assert -3.0 < x.min() and x.max() < 3.5  # normalised
    assert y.shape == (4, 3)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_imagefolder_eval_labels_follow_sorted_folders(folder):
    ds, n = D.get_dataset("imagefolder", "test", batch_size=4, training=False, data_dir=folder)
    assert n == 6
    batches = list(ds)
    assert [x.shape[0] for x, _ in batches] == [4, 2]
    labels = np.concatenate([y.numpy().argmax(axis=1) for _, y in batches])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])  # cat, dog, emu; not shuffled
    x = batches[0][0].numpy()
    assert x.shape == (4, 224, 224, 3)
    # The eval pipeline is exactly eval_preprocess of the decoded file.
    first = D.load_image(os.path.join(folder, "val", "cat", "cat_0.JPEG"))
    np.testing.assert_allclose(
        x[0], D.eval_preprocess(first, "imagefolder", data_dir=folder), atol=1e-5
    )


def test_imagefolder_labels_index_the_given_class_list(folder, tmp_path):
    # A run's classes.json, not the folders that happen to be in this val/, fixes the labels.
    names = ["ant", "cat", "dog", "emu"]
    ds, n = D.get_dataset("imagefolder", "test", batch_size=8, training=False, data_dir=folder,
                          image_size=16, num_classes=4, class_names=names)
    (_, y), = list(ds)
    assert n == 6 and y.shape == (6, 4)
    np.testing.assert_array_equal(y.numpy().argmax(axis=1), [1, 1, 2, 2, 3, 3])
    # A folder the class list lacks is refused by name, never given another class's index.
    with pytest.raises(ValueError, match=r"val/emu is a class missing from the class list"):
        D.get_dataset("imagefolder", "test", batch_size=8, training=False, data_dir=folder,
                      class_names=["cat", "dog"])
    for bad in ("cat", [], ["cat", "cat"], ["cat", 1]):
        with pytest.raises(ValueError, match="class_names=.* is invalid"):
            D.get_dataset("imagefolder", "test", batch_size=8, training=False,
                          data_dir=folder, class_names=bad)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['class_names'\] for 'cifar10'"):
        D.get_dataset("cifar10", "test", batch_size=8, training=False, class_names=names)
    with pytest.raises(ValueError, match="imagefolder needs data_dir"):
        D.get_dataset("imagefolder", "test", batch_size=8, training=False, class_names=names)


# ------------------------------------------------------------------------------------------
# Seeds, order of the steps, determinism


def test_a_training_batch_is_the_documented_composition_of_its_seeded_steps():
    """get_dataset's training batches are, to float rounding, the steps of the pipeline's
    docstring done by hand: the source shuffled with stream 1 of the run's seed, train_geometry
    of each example with the first half of its seed from stream 2, then per batch, with the
    halves of its seed from stream 3, train_photometric and mixup / cutmix."""
    seed, n, size, classes = 5, 8, 16, 5
    for augment in (D.preset("cifar_mixup"), D.preset("imagenet_jitter", crop="pad_random_crop",
                                                         cutmix_alpha=1.0, cutout=4)):
        ds, _ = D.get_dataset("synthetic", "train", batch_size=4, training=True, seed=seed,
                              image_size=size, num_classes=classes, num_examples=n,
                              augment=augment)
        got = first_batches(ds, 2)
        info = D.dataset_info("synthetic", image_shape=(size, size, 3), num_classes=classes)
        examples = sources.synthetic_examples(n, (size, size, 3), classes, 0).shuffle(
            n, seed=derive_seed(seed, 1), reshuffle_each_iteration=True)
        example_seeds, batch_seeds = (
            tf.data.Dataset.random(seed=derive_seed(seed, salt), rerandomize_each_iteration=True)
            .batch(2) for salt in (2, 3)
        )
        pairs = list(tf.data.Dataset.zip((examples, example_seeds)))
        for b, ((x, y), s) in enumerate(zip(got, batch_seeds, strict=False)):
            chunk = pairs[4 * b : 4 * b + 4]
            images = tf.stack([
                D.train_geometry(image, P.split_seed(es, 2)[0], info, augment)
                for (image, _), es in chunk
            ])
            labels = tf.one_hot([int(label) for (_, label), _ in chunk], classes)
            photometric_seed, mix_seed = P.split_seed(s, 2)
            images = D.train_photometric(images, photometric_seed, info, augment)
            images, labels = mix_batch(images, labels, mix_seed, augment.mixup_alpha,
                                       augment.cutmix_alpha, augment.cutmix_prob)
            np.testing.assert_allclose(x, images.numpy(), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(y, labels.numpy(), atol=1e-6)
        assert len(got) == 2 and not np.array_equal(got[0][0], got[1][0])


def test_fast_training_tail_is_resize_flip_lighting_and_normalisation():
    """The fast path's per-example tail (flip of the crop, resize, then a multiply-add on rows
    of width x channels values against tiled per-channel constants) with its chunked draws
    computes the reference maths: resize, flip when the example's uniform draw is below 1/2,
    then normalize(x / 255 + PCA lighting shift). Non-square crop and output, so
    that a mix-up of height and width or of the channel order in the tiled rows shows."""
    # ImageNet's mean / std: three different values per channel (synthetic data has equal ones)
    info = dataclasses.replace(
        D.dataset_info("imagefolder", class_names=["a", "b"]), image_shape=(6, 10, 3)
    )
    augment = D.preset("imagenet")
    tail = pipeline._fused_tail(info, augment, normalise=True)
    chunk = 4
    draws = list(pipeline._fast_draws(5, 0, info, augment, chunk=chunk).take(2 * chunk))
    # the same random stream, drawn again by hand: 2 * chunk crop seed values, then the seed
    # of the flips and the seed of the lighting alphas
    stream = tf.data.Dataset.random(seed=derive_seed(5, 0), rerandomize_each_iteration=True)
    values = np.concatenate([v.numpy() for v in stream.batch(2 * chunk + 4).take(2)])
    crop = tf.cast(tf.random.stateless_uniform((9, 13, 3), [1, 2], 0, 256, tf.int32), tf.uint8)
    eigvec, eigval = np.array(P.IMAGENET_EIGVEC), np.array(P.IMAGENET_EIGVAL)
    flips = set()
    for i, (crop_seed, flip, row_offset) in enumerate(draws):
        c, j = divmod(i, chunk)
        first = c * (2 * chunk + 4)
        np.testing.assert_array_equal(crop_seed, values[first + 2 * j : first + 2 * j + 2])
        seeds = values[first + 2 * chunk : first + 2 * chunk + 4]
        flipped = bool(tf.random.stateless_uniform([chunk], seeds[:2]).numpy()[j] < 0.5)
        alpha = tf.random.stateless_normal(
            [chunk, 3], seeds[2:], stddev=augment.lighting_alphastd
        ).numpy()[j]
        assert bool(flip) == flipped
        flips.add(flipped)
        resized = P.resize(crop, (6, 10)).numpy()
        source = resized[:, ::-1] if flipped else resized  # flipped after the resize here
        shift = eigvec @ (alpha * eigval)
        expected = (source / 255.0 + shift - np.array(info.mean)) / np.array(info.std)
        got = tail(crop, flip, row_offset).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert flips == {False, True}  # both branches were compared


def test_training_is_deterministic_given_a_seed(folder):
    def firstfirst_batches(seed):
        ds, _ = D.get_dataset(
            "imagefolder",
            "train",
            batch_size=4,
            training=True,
            data_dir=folder,
            seed=seed,
            image_size=24,
            augment=D.preset("imagenet_jitter", cutmix_alpha=1.0),
        )
        return first_batches(ds, 2)

    a, b, c = firstfirst_batches(7), firstfirst_batches(7), firstfirst_batches(8)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_training_reshuffles_every_epoch(folder):
    ds, _ = D.get_dataset(
        "imagefolder",
        "train",
        batch_size=12,
        training=True,
        data_dir=folder,
        seed=3,
        image_size=8,
        augment=D.preset("none"),
    )
    epoch1 = [x.numpy() for x, _ in ds]
    epoch2 = [x.numpy() for x, _ in ds]
    assert len(epoch1) == len(epoch2) == 1  # one pass is one epoch: no repeat
    # The same 12 images (no augmentation: each image is fixed), in another order.
    first, second = epoch1[0], epoch2[0]
    assert sorted(map(bytes, first)) == sorted(map(bytes, second))
    assert len({bytes(image) for image in first}) == 12  # distinct images: order is visible
    assert not np.array_equal(first, second)


# ------------------------------------------------------------------------------------------
# Distribution: two replicas on logical CPU devices (needs a fresh process)


_DISTRIBUTED = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from bireal_larq import data as D
    folder = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    for name, kwargs in [
        ("synthetic", dict(image_size=8, num_classes=4, num_examples=16)),
        ("imagefolder", dict(data_dir=folder, image_size=16)),
    ]:
        def fn(ctx, name=name, kwargs=kwargs):
            ds, _ = D.get_dataset(name, "train", batch_size=4, training=True, seed=1,
                                  input_context=ctx, **kwargs)
            return ds
        dist = strategy.distribute_datasets_from_function(fn)
        batch = next(iter(dist))
        xs = strategy.experimental_local_results(batch[0])
        ys = strategy.experimental_local_results(batch[1])
        assert len(xs) == 2, len(xs)
        assert all(x.shape[0] == 2 for x in xs), [x.shape for x in xs]  # global 4 -> 2 each
        assert not np.array_equal(xs[0].numpy(), xs[1].numpy())
        assert all(np.allclose(y.numpy().sum(1), 1) for y in ys)
        steps = sum(1 for _ in dist)
        print(name, "steps", steps)
    print("OK")
    """
)


def test_pipeline_under_two_replica_strategy(folder):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", _DISTRIBUTED, folder],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    # synthetic: 16 examples, 2 pipelines of 8, 2 per replica -> 4 steps; folder: 12 -> 3.
    assert "synthetic steps 4" in result.stdout and "imagefolder steps 3" in result.stdout
    assert result.stdout.strip().endswith("OK")

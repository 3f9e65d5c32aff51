"""Tests of what describes a dataset: the DatasetSpecs, AugmentConfig and its presets,
DatasetInfo, the class-name file and the listing of an image folder."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from data_helpers import first_batches, jpeg_bytes, make_image_folder, rgb_array, write

from bireal_larq import data as D
from bireal_larq.data import sources, specs
from bireal_larq.data.info import imagefolder_classes, imagefolder_files


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("imagefolder")))


# ------------------------------------------------------------------------------------------
# Configs and infos


def test_augment_config_rejects_bad_values_naming_field_and_valid_values():
    with pytest.raises(ValueError, match=r"AugmentConfig.crop='center'.*random_resized"):
        D.AugmentConfig(crop="center")
    with pytest.raises(ValueError, match=r"AugmentConfig.area_range.*0 < lo <= hi <= 1"):
        D.AugmentConfig(area_range=(0.5, 0.1))
    with pytest.raises(ValueError, match=r"AugmentConfig.hue"):
        D.AugmentConfig(hue=0.7)
    with pytest.raises(ValueError, match=r"AugmentConfig.eval_resize_ratio"):
        D.AugmentConfig(eval_resize_ratio=0.9)
    for bad in (-1, 8.5, True):
        with pytest.raises(ValueError, match=r"AugmentConfig.cutout=.*an integer >= 0"):
            D.AugmentConfig(cutout=bad)
    with pytest.raises(ValueError, match=r"Unknown AugmentConfig field\(s\) \['flipp'\]"):
        D.AugmentConfig.from_dict({"flipp": True})
    with pytest.raises(ValueError, match=r"Unknown augmentation preset 'imagenet_v9'"):
        D.preset("imagenet_v9")


def test_presets_follow_the_recipes():
    default = D.AugmentConfig()  # the authors' PyTorch ImageNet recipe
    assert (default.crop, default.area_range, default.lighting_alphastd) == (
        "random_resized",
        (0.08, 1.0),
        0.1,
    )
    assert not default.color_jitter and default.flip
    jitter = D.preset("imagenet_jitter")
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.4,
        0.4,
        0.4,
        0.1,
    )
    assert D.preset("imagenet_caffe").crop == "resize_random_crop"
    cifar = D.default_augment("cifar100")
    assert (cifar.crop, cifar.pad, cifar.rotation_degrees, cifar.flip) == (
        "pad_random_crop",
        4,
        15.0,
        True,
    )
    assert D.preset("digits").flip is False
    assert D.preset("cifar_autoaugment").autoaugment == "cifar10"
    assert D.preset("cifar_autoaugment").cutout == 16  # AutoAugment's CIFAR recipe
    assert {D.preset(p).cutout for p in D.PRESETS if p != "cifar_autoaugment"} == {0}
    assert D.preset("imagenet", eval_resize_ratio=1.35).eval_resize_ratio == 1.35
    config = D.preset("cifar_mixup")
    assert D.AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.flip = False  # type: ignore[misc]


def test_dataset_info_shapes_and_splits():
    fmnist = D.dataset_info("fashion_mnist")
    assert (fmnist.num_classes, fmnist.image_shape, fmnist.eval_split) == (10, (28, 28, 1), "test")
    assert fmnist.class_names is not None and fmnist.class_names[0] == "T-shirt/top"
    assert D.dataset_info("cifar10").image_shape == (32, 32, 3)
    assert D.dataset_info("cifar100").num_classes == 100
    imagenet = D.dataset_info("imagenet2012")
    assert (imagenet.image_shape, imagenet.eval_split, imagenet.resize_eval) == (
        (224, 224, 3),
        "validation",
        True,
    )
    assert imagenet.class_names[0] == "n01440764"
    synthetic = D.dataset_info("synthetic", image_shape=(16, 20, 3), num_classes=7)
    assert (synthetic.image_shape, synthetic.num_classes) == ((16, 20, 3), 7)
    with pytest.raises(ValueError, match=r"Unknown dataset 'mnist'.*fashion_mnist"):
        D.dataset_info("mnist")
    with pytest.raises(ValueError, match=r"split='val' is invalid; valid: 'train' or 'test'"):
        imagenet.source_split("val")


def test_imagefolder_info_and_classes_json_round_trip(folder, tmp_path):
    info = D.dataset_info("imagefolder", data_dir=folder)
    assert info.class_names == ("cat", "dog", "emu")  # sorted folder names
    assert (info.image_shape, info.eval_split) == ((224, 224, 3), "val")
    path = D.save_class_names(str(tmp_path / "ckpt"), info.class_names)
    assert os.path.basename(path) == D.CLASSES_FILE
    assert D.load_class_names(str(tmp_path / "ckpt")) == ["cat", "dog", "emu"]
    with pytest.raises(FileNotFoundError, match="No classes.json"):
        D.load_class_names(str(tmp_path / "nowhere"))
    write(str(tmp_path / "bad" / "classes.json"), b"[1, 2]")
    with pytest.raises(ValueError, match="is not a class list"):
        D.load_class_names(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="duplicates"):
        D.save_class_names(str(tmp_path / "dup"), ["a", "a"])
    with pytest.raises(FileNotFoundError, match="needs train/ and val/"):
        D.dataset_info("imagefolder", data_dir=str(tmp_path))


def test_imagefolder_skips_hidden_folders_and_says_what_it_ignores(tmp_path, caplog):
    root = make_image_folder(str(tmp_path / "f"), classes=("cat", "dog"), per_class=2)
    # A notebook's checkpoint folder is no class: indices stay cat 0, dog 1.
    os.makedirs(os.path.join(root, "train", ".ipynb_checkpoints"))
    write(os.path.join(root, "train", "dog", "notes.txt"), b"not an image")
    write(os.path.join(root, "train", "dog", ".DS_Store"), b"x")
    assert imagefolder_classes(root) == ["cat", "dog"]
    with caplog.at_level("WARNING"):
        paths, labels = imagefolder_files(root, "train", ["cat", "dog"])
    assert labels == [0, 0, 1, 1] and len(paths) == 4
    assert "ignored 1 file(s)" in caplog.text and "notes.txt" in caplog.text
    # A class folder without images is an error, not a class that never appears.
    os.makedirs(os.path.join(root, "train", "emu"))
    write(os.path.join(root, "val", "emu", "e.JPEG"), jpeg_bytes(rgb_array(8, 8)))
    with pytest.raises(ValueError, match=r"train/emu holds no images .*a class the model"):
        imagefolder_files(root, "train", imagefolder_classes(root))


# ------------------------------------------------------------------------------------------
# DatasetSpecs: one per dataset, the source of every per-dataset table


def test_the_specs_drive_the_dataset_tables():
    assert D.DATASETS == tuple(specs.SPECS) == (
        "imagenet2012", "imagefolder", "cifar10", "cifar100", "fashion_mnist", "synthetic"
    )
    assert specs.TFDS_DATASETS == ("imagenet2012", "cifar10", "cifar100", "fashion_mnist")
    assert D.DEFAULT_PRESETS == {n: s.default_preset for n, s in specs.SPECS.items()}
    assert set(D.DEFAULT_PRESETS.values()) <= set(D.PRESETS)
    # the manual files prepare() checks are the specs' lists
    assert sources.IMAGENET_FILES == dict(specs.SPECS["imagenet2012"].manual_files)
    assert sources.FASHION_MNIST_FILES == specs.SPECS["fashion_mnist"].manual_file_names
    assert sources.CIFAR_ARCHIVES == {"cifar10": "cifar-10-binary.tar.gz",
                                      "cifar100": "cifar-100-binary.tar.gz"}
    for name, spec in specs.SPECS.items():
        assert D.dataset_spec(name) is spec
        assert spec.manual_files == () or spec.is_tfds, name
        if spec.source == specs.TFDS:  # DatasetInfo as the spec has it, whatever TFDS adds
            info = D.dataset_info(name)
            assert (info.num_classes, info.image_shape, info.mean, info.std) == (
                spec.num_classes, spec.image_shape, spec.mean, spec.std)
            assert (info.train_split, info.eval_split, info.resize_eval) == (
                spec.train_split, spec.eval_split, spec.resize_eval)
    with pytest.raises(ValueError, match=r"Unknown dataset 'mnist'; valid: \['imagenet2012'"):
        D.dataset_spec("mnist")


def test_a_dataset_is_added_by_adding_its_spec(monkeypatch, folder, tmp_path):
    """One spec in specs.SPECS is all a dataset of a known source kind needs: its info, its
    default recipe, get_dataset and, for a TFDS one, the manual-file check follow."""
    photos = specs.DatasetSpec(
        name="photos", title="Photos", source=specs.IMAGE_FOLDER, image_shape=(20, 24, 3),
        mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), default_preset="imagenet_caffe",
        eval_split="val", resize_eval=True, encoded=True,
    )
    monkeypatch.setitem(specs.SPECS, "photos", photos)
    info = D.dataset_info("photos", data_dir=folder)
    assert (info.name, info.num_classes, info.image_shape, info.mean) == (
        "photos", 3, (20, 24, 3), (0.5, 0.4, 0.3))
    assert D.default_augment("photos") == D.preset("imagenet_caffe")
    ds, n = D.get_dataset("photos", "train", batch_size=4, training=True, data_dir=folder,
                          seed=0)
    (x, y), = first_batches(ds, 1)
    assert n == 12 and x.shape == (4, 20, 24, 3) and y.shape == (4, 3)
    # a TFDS dataset: TFDS's mnist builder, prepared from the spec's manual files
    mnist = specs.DatasetSpec(
        name="mnist", title="MNIST", source=specs.TFDS, image_shape=(28, 28, 1), mean=(0.13,),
        std=(0.31,), default_preset="digits", num_classes=10,
        manual_files=(("train-images-idx3-ubyte.gz", "the training images"),
                      ("train-labels-idx1-ubyte.gz", "their labels")),
        manual_source="Download them from the MNIST page",
    )
    monkeypatch.setitem(specs.SPECS, "mnist", mnist)
    assert D.default_augment("mnist").flip is False  # the digits preset
    manual = tmp_path / "manual"
    write(str(manual / "train-images-idx3-ubyte.gz"), b"")
    with pytest.raises(FileNotFoundError) as error:
        D.prepare("mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
    message = str(error.value)
    assert message.startswith(f"MNIST is not prepared in {tmp_path}/tfds and {manual} lacks "
                              "train-labels-idx1-ubyte.gz. Put them there")
    assert "Download them from the MNIST page." in message
    assert f"{manual}/train-labels-idx1-ubyte.gz: their labels  [MISSING]" in message
    assert f"{manual}/train-images-idx3-ubyte.gz: the training images\n" in message


def test_a_spec_with_invalid_values_names_the_field_and_the_valid_ones():
    base = dict(name="x", title="X", source=specs.SYNTHETIC, image_shape=(8, 8, 3),
                mean=(0.5,) * 3, std=(0.25,) * 3, default_preset="none", num_classes=2)
    specs.DatasetSpec(**base)  # valid
    for change, message in [
        (dict(source="ftp"), r"DatasetSpec\('x'\).source='ftp' is invalid; valid: \['tfds', "),
        (dict(image_shape=(8, 8)), r"image_shape=\(8, 8\) is invalid; valid: \(H, W, C\)"),
        (dict(mean=(0.5,)), r"mean=\(0.5,\) is invalid; valid: one value per channel \(3\)"),
        (dict(std=(0.2, 0.0, 0.2)), r"std=.* is invalid; valid: positive values"),
        (dict(class_names=("a",)), r"class_names=\('a',\) is invalid; valid: None or "
                                   r"num_classes \(2\) names"),
        (dict(source=specs.TFDS), r"manual_files=\(\) is invalid; valid: the \(file name"),
        (dict(source=specs.TFDS, num_classes=None, manual_files=(("f", "g"),)),
         r"num_classes=None is invalid"),
        (dict(shuffle_buffer=0), r"shuffle_buffer=0 is invalid; valid: an int >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            specs.DatasetSpec(**{**base, **change})
    with pytest.raises(dataclasses.FrozenInstanceError):
        specs.SPECS["cifar10"].num_classes = 11  # type: ignore[misc]


def test_the_class_names_a_spec_fixes_are_those_of_the_tfds_builder(tmp_path):
    import tensorflow_datasets as tfds

    fixed = {n: s for n, s in specs.SPECS.items() if s.is_tfds and s.class_names}
    assert "fashion_mnist" in fixed
    for name, spec in fixed.items():
        builder = tfds.builder(name, data_dir=str(tmp_path))
        assert spec.class_names == tuple(builder.info.features["label"].names), name


def test_save_class_names_replaces_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    directory = str(tmp_path / "run")
    D.save_class_names(directory, ["cat", "dog"])
    D.save_class_names(directory, ["cat", "dog", "emu"])
    assert os.listdir(directory) == [D.CLASSES_FILE]
    assert D.load_class_names(directory) == ["cat", "dog", "emu"]

    def disk_full(obj, f, **kwargs):
        f.write('{"class_names": ["a"')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", disk_full)
    with pytest.raises(OSError, match=r"Could not write .*classes.json: No space left on device"):
        D.save_class_names(directory, ["ant"])
    assert os.listdir(directory) == [D.CLASSES_FILE]  # no partial or temporary file
    assert D.load_class_names(directory) == ["cat", "dog", "emu"]

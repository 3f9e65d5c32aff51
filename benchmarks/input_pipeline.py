"""Input-pipeline throughput on ImageNet-sized JPEGs, in one run:

  (a) this project's ImageNet training pipeline (``get_dataset("imagefolder", training=True)``:
      fused decode-and-crop RandomResizedCrop, flip, PCA lighting, normalisation, one-hot,
      batching);
  (b) a plain full decode + resize to 224 of the same files with tf.data (the decoding limit);
  (c) the same augmentation with PIL + NumPy, one image at a time (what the PyTorch recipe does
      per image in a DataLoader worker);
  (d) the floor of (a): the same fused decode-and-crop and bilinear resize, with nothing else
      (no flip, lighting, normalisation, robust decoding or one-hot). (a) / (d) is what the
      augmentation and bookkeeping cost on top of the decoder and the resize.

Every variant runs on ``--cores`` cores (tf.data private thread pool / worker processes) and is
reported per core. The whole process (and the PIL workers) is pinned to that many CPUs, so no
variant can borrow an idle core through threads of its own; CPU time (own + children) is also
measured: images per CPU-second is the per-core rate least disturbed by other jobs on a shared
machine. Targets: (a) >= 1.0x (b) and >= 3x (c) per core.

Each variant makes passes over all the images and over the first half of them (a folder of
links for (a)). A pass's rate includes what the pass costs before its first image (building
the iterator and its functions, filling buffers: about 0.2 s of CPU time for (a), a few ms for
(b)). The steady rate, (N - N/2) / (T(N) - T(N/2)) with T the best time of each pass, leaves
that fixed cost out: it is the rate of the long passes of real training.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/input_pipeline.py --num_images=2000

Prints a markdown table and writes it with the raw numbers to ``--output`` (JSON).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import platform
import random
import resource
import shutil
import time

import numpy as np
from absl import app, flags
from PIL import Image

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 2000, "JPEGs to generate (about 500x375 each).")
flags.DEFINE_integer("num_classes", 10, "Class folders the JPEGs are spread over.")
flags.DEFINE_integer("batch_size", 64, "Batch size of every variant.")
flags.DEFINE_integer("cores", 1, "Cores each variant may use (thread pool size / processes).")
flags.DEFINE_integer("image_size", 224, "Model input size.")
flags.DEFINE_string("image_dir", ".cache/benchmark_jpegs", "Where the JPEGs are generated.")
flags.DEFINE_string("output", "benchmarks/results/input_pipeline.json", "JSON result file.")
flags.DEFINE_integer("seed", 0, "Seed of the generated images and of the augmentation.")
flags.DEFINE_integer("repeats", 3, "Timed passes per variant (interleaved); the best counts.")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


# ------------------------------------------------------------------------------------------
# Data


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the PIL workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour fields plus texture noise: compresses roughly like a photo."""
    coarse = rng.uniform(0, 255, size=(rng.integers(6, 14), rng.integers(8, 18), 3))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 12, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def link_half(root: str, paths: list[str]) -> str:
    """``root``_half: train/ links to the first half of ``paths``, val/ links to root's."""
    half = root.rstrip("/") + "_half"
    if os.path.isdir(half):
        shutil.rmtree(half)
    for path in paths[: len(paths) // 2]:
        class_dir = os.path.join(half, "train", os.path.basename(os.path.dirname(path)))
        os.makedirs(class_dir, exist_ok=True)
        os.symlink(os.path.abspath(path), os.path.join(class_dir, os.path.basename(path)))
    for class_name in os.listdir(os.path.join(root, "val")):
        source = os.path.join(root, "val", class_name)
        os.makedirs(os.path.join(half, "val"), exist_ok=True)
        os.symlink(os.path.abspath(source), os.path.join(half, "val", class_name))
    return half


def generate_jpegs(root: str, num_images: int, num_classes: int, seed: int) -> list[str]:
    """root/train/cNN/*.JPEG (and one val image per class); reuses files already there."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(num_images):
        class_dir = os.path.join(root, "train", f"c{i % num_classes:03d}")
        path = os.path.join(class_dir, f"img_{i:06d}.JPEG")
        paths.append(path)
        if os.path.exists(path):
            continue
        os.makedirs(class_dir, exist_ok=True)
        landscape = rng.random() < 0.75
        size = (500, 375) if landscape else (375, 500)
        _photo_like(rng, *size).save(path, quality=90)
    for c in range(num_classes):
        val_dir = os.path.join(root, "val", f"c{c:03d}")
        os.makedirs(val_dir, exist_ok=True)
        if not os.listdir(val_dir):
            _photo_like(rng, 500, 375).save(os.path.join(val_dir, "v.JPEG"), quality=90)
    # A previous run with more images left extra files: the folder must hold exactly these.
    keep = set(paths)
    for dirpath, _, files in os.walk(os.path.join(root, "train")):
        for f in files:
            if os.path.join(dirpath, f) not in keep:
                os.remove(os.path.join(dirpath, f))
    return paths


# ------------------------------------------------------------------------------------------
# (c) PIL + NumPy, the per-image recipe of the PyTorch code


def _pil_random_resized_crop(image, rng, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            break
    else:  # centre crop fallback
        w, h = width, height
        top = left = 0
    return image.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))


_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
    np.float32,
)


def pil_augment(path: str, rng: random.Random, size: int) -> np.ndarray:
    with Image.open(path) as f:
        image = f.convert("RGB")
    image = _pil_random_resized_crop(image, rng, size)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, np.float32) * (1.0 / 255.0)
    alpha = np.array([rng.gauss(0, 0.1) for _ in range(3)], np.float32)
    pixels += _EIGVEC @ (alpha * _EIGVAL)
    return (pixels - IMAGENET_MEAN) / IMAGENET_STD


def _pil_worker(args) -> int:
    paths, batch_size, size, seed = args
    rng = random.Random(seed)
    n = 0
    for start in range(0, len(paths) - batch_size + 1, batch_size):
        batch = np.stack([pil_augment(p, rng, size) for p in paths[start : start + batch_size]])
        n += batch.shape[0]
    return n


def bench_pil(paths, batch_size, size, cores, seed) -> tuple[int, float, float]:
    order = list(paths)
    random.Random(seed).shuffle(order)
    shards = [(order[i::cores], batch_size, size, seed + i) for i in range(cores)]
    _pil_worker((order[: batch_size * 2], batch_size, size, seed))  # warm the page cache
    start, cpu = time.perf_counter(), _cpu_seconds()
    if cores == 1:
        n = _pil_worker(shards[0])
    else:
        pool = multiprocessing.get_context("fork").Pool(cores)
        n = sum(pool.map(_pil_worker, shards))
        pool.close()
        pool.join()  # reaped: their CPU time counts
    return n, time.perf_counter() - start, _cpu_seconds() - cpu


# ------------------------------------------------------------------------------------------
# (a) and (b): tf.data


def _time_dataset(ds) -> tuple[int, float, float]:
    start, cpu = time.perf_counter(), _cpu_seconds()
    n = 0
    for images, _ in ds:
        n += int(images.shape[0])
    return n, time.perf_counter() - start, _cpu_seconds() - cpu


def _threading(ds, cores):
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def _warm(ds):
    for _ in ds.take(2):  # tracing and thread start-up are not throughput
        pass
    return ds


def project_dataset(root, batch_size, size, cores, seed):
    from bireal_larq.data import get_dataset

    ds, _ = get_dataset(
        "imagefolder",
        "train",
        batch_size=batch_size,
        training=True,
        data_dir=root,
        seed=seed,
        image_size=size,
    )
    return _warm(_threading(ds, cores))


def crop_resize_dataset(paths, batch_size, size, cores, seed):
    import tensorflow as tf

    from bireal_larq.data import preprocessing

    def load(path, crop_seed):
        crop = preprocessing.decode_random_crop(tf.io.read_file(path), crop_seed)
        return preprocessing.resize(crop, (size, size)), 0

    ds = tf.data.Dataset.from_tensor_slices(paths).shuffle(len(paths), seed=seed)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _warm(_threading(ds, cores))


def decode_resize_dataset(paths, batch_size, size, cores):
    import tensorflow as tf

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(image, (size, size)), 0

    ds = tf.data.Dataset.from_tensor_slices(paths).shuffle(len(paths), seed=0)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _warm(_threading(ds, cores))


# ------------------------------------------------------------------------------------------


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cores = FLAGS.cores
    available = sorted(os.sched_getaffinity(0))
    if cores > len(available):
        raise app.UsageError(f"--cores={cores}, but this process may use {len(available)} CPUs")
    os.sched_setaffinity(0, available[:cores])  # before TF starts threads / PIL forks workers
    t0 = time.perf_counter()
    paths = generate_jpegs(FLAGS.image_dir, FLAGS.num_images, FLAGS.num_classes, FLAGS.seed)
    mean_kb = np.mean([os.path.getsize(p) for p in paths[:200]]) / 1024
    print(
        f"{len(paths)} JPEGs in {FLAGS.image_dir} (mean {mean_kb:.0f} kB), "
        f"{time.perf_counter() - t0:.0f} s"
    )

    # PIL first: it forks workers, which must not inherit TensorFlow's threads. The machine may
    # be shared: every variant runs --repeats passes of each length, interleaved, and its best
    # pass counts.
    size, batch = FLAGS.image_size, FLAGS.batch_size
    half_root = link_half(FLAGS.image_dir, paths)
    half_paths = paths[: len(paths) // 2]
    keys = ("a", "b", "c", "d")
    passes = {(k, length): [] for k in keys for length in ("full", "half")}
    for r in range(FLAGS.repeats):
        passes["c", "full"].append(bench_pil(paths, batch, size, cores, FLAGS.seed + r))
        passes["c", "half"].append(bench_pil(half_paths, batch, size, cores, FLAGS.seed + r))
    # Imported first, as in the project's CLIs: its process-wide TF settings (the CPU
    # allocator, see bireal_larq/__init__.py) apply alike to (a), (b) and (d).
    import bireal_larq  # noqa: F401, I001 - before TensorFlow, on purpose
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(cores)
    tf.config.threading.set_intra_op_parallelism_threads(cores)
    datasets = {}
    for length, (root, files) in {"full": (FLAGS.image_dir, paths),
                                  "half": (half_root, half_paths)}.items():
        datasets["b", length] = decode_resize_dataset(files, batch, size, cores)
        datasets["a", length] = project_dataset(root, batch, size, cores, FLAGS.seed)
        datasets["d", length] = crop_resize_dataset(files, batch, size, cores, FLAGS.seed)
    for _ in range(FLAGS.repeats):
        for key, ds in datasets.items():
            passes[key].append(_time_dataset(ds))
    # per pass: the best pass by each measure (wall-clock, CPU time)
    rate = {k: max(n / s for n, s, _ in passes[k, "full"]) for k in keys}
    per_cpu = {k: max(n / max(c, 1e-9) for n, _, c in passes[k, "full"]) for k in keys}
    # steady: the difference of the best full and half passes
    steady = {}
    for k in keys:
        n_full, n_half = passes[k, "full"][0][0], passes[k, "half"][0][0]
        cpu_full = min(c for _, _, c in passes[k, "full"])
        cpu_half = min(c for _, _, c in passes[k, "half"])
        steady[k] = (n_full - n_half) / max(cpu_full - cpu_half, 1e-9)

    labels = {
        "a": "(a) bireal_larq training pipeline (fused decode+crop, flip, lighting, normalise)",
        "b": "(b) tf.data full decode + resize (decoding limit)",
        "c": "(c) PIL + NumPy, same augmentation, per image",
        "d": "(d) fused decode+crop + resize only (the floor of (a))",
    }
    rows = []
    for key in keys:
        n, seconds, _ = max(passes[key, "full"], key=lambda ns: ns[0] / ns[1])
        rows.append(
            {
                "variant": labels[key],
                "images": n,
                "seconds": round(seconds, 2),
                "images_per_s": round(rate[key], 1),
                "images_per_s_per_core": round(rate[key] / cores, 1),
                "a_over_this": round(rate["a"] / rate[key], 2),
                "images_per_cpu_s": round(per_cpu[key], 1),
                "a_over_this_cpu": round(per_cpu["a"] / per_cpu[key], 2),
                "steady_images_per_cpu_s": round(steady[key], 1),
                "a_over_this_steady": round(steady["a"] / steady[key], 2),
            }
        )
    table = [
        "| variant | images | s | images/s | images/s per core | (a) / this "
        "| images per CPU-s | (a) / this (CPU) | steady images per CPU-s | (a) / this (steady) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {r['variant']} | {r['images']} | {r['seconds']} | {r['images_per_s']} | "
        f"{r['images_per_s_per_core']} | {r['a_over_this']}x | {r['images_per_cpu_s']} | "
        f"{r['a_over_this_cpu']}x | {r['steady_images_per_cpu_s']} | "
        f"{r['a_over_this_steady']}x |"
        for r in rows
    ]
    setup = (
        f"{len(paths)} JPEGs of 500x375 / 375x500 (mean {mean_kb:.0f} kB) -> "
        f"best of {FLAGS.repeats} passes (of all and of half the images), "
        f"{FLAGS.image_size}x{FLAGS.image_size}, batch {FLAGS.batch_size}, {cores} core(s) "
        "(process pinned to them), "
        f"{platform.processor() or platform.machine()}, TF {tf.__version__}, TF CPU allocator "
        f"{'BFC' if os.environ.get('TF_CPU_ALLOCATOR_USE_BFC') == 'true' else 'default'}, "
        f"oneDNN {'off' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '0' else 'TF default'}"
    )
    markdown = setup + "\n\n" + "\n".join(table)
    print(markdown)
    verdict = {
        "a_over_b": round(rate["a"] / rate["b"], 2),
        "a_over_c": round(rate["a"] / rate["c"], 2),
        "a_over_b_cpu": round(per_cpu["a"] / per_cpu["b"], 2),
        "a_over_c_cpu": round(per_cpu["a"] / per_cpu["c"], 2),
        "a_over_b_steady": round(steady["a"] / steady["b"], 2),
        "a_over_c_steady": round(steady["a"] / steady["c"], 2),
        "target_a_over_b": 1.0,
        "target_a_over_c": 3.0,
    }
    print(
        f"\n(a)/(b) = {verdict['a_over_b']} (target >= 1.0), "
        f"(a)/(c) = {verdict['a_over_c']} (target >= 3.0); per CPU-second: "
        f"(a)/(b) = {verdict['a_over_b_cpu']}, (a)/(c) = {verdict['a_over_c_cpu']}; steady: "
        f"(a)/(b) = {verdict['a_over_b_steady']}, (a)/(c) = {verdict['a_over_c_steady']}"
    )
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        json.dump({"setup": setup, "rows": rows, **verdict, "markdown": markdown}, f, indent=2)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)

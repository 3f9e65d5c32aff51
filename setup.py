"""Packaging for bireal_larq.

The ranges here say what the code supports, so the package installs next to other tools. The
exact, tested versions live in the lock files under ``locks/`` (``locks/main.txt``: Python
3.12 + TensorFlow 2.21; ``locks/reference.txt``: Python 3.11 + TensorFlow 2.15.1).
"""

import sys

# A clear refusal before pip tries to resolve: larq 0.14 needs numpy < 2 (no wheels of numpy 1.x
# exist for Python 3.13) and Larq Compute Engine 0.16 ships wheels for CPython 3.10-3.12 only.
if not (3, 10) <= sys.version_info[:2] <= (3, 12):
    sys.exit(
        f"bireal_larq supports Python 3.10, 3.11 and 3.12; this is Python "
        f"{sys.version.split()[0]}. larq 0.14 requires numpy < 2 (which has no wheels for "
        "Python 3.13) and larq-compute-engine 0.16 publishes wheels for CPython 3.10-3.12 only. "
        "Use Python 3.12 (e.g. `python3.12 -m venv .venv`, `uv venv -p 3.12`, or `pyenv install "
        "3.12`) and install again."
    )

from setuptools import find_packages, setup  # noqa: E402

# Platforms with larq-compute-engine 0.16 wheels (the converter and its interpreter). Elsewhere
# (e.g. Linux aarch64) training works and export says why it cannot run.
LCE_PLATFORMS = (
    "(sys_platform == 'linux' and platform_machine == 'x86_64')"
    " or sys_platform == 'darwin' or sys_platform == 'win32'"
)

# Command name -> its entry point; bireal_larq recognises a command run by these names.
CONSOLE_SCRIPTS = {
    "bireal-train": "bireal_larq.train:run",
    "bireal-evaluate": "bireal_larq.evaluate:run",
    "bireal-export": "bireal_larq.export.__main__:run",
    "bireal-benchmark": "bireal_larq.benchmark.__main__:run",
    "bireal-report": "bireal_larq.report:run",
    "bireal-study": "bireal_larq.study:run",
    "bireal-demo": "bireal_larq.demo:run",
    "bireal-prepare-data": "bireal_larq.prepare_data:run",
    "bireal-convert-weights": "bireal_larq.convert_weights:run",
    "bireal-doctor": "bireal_larq.doctor:run",
}

setup(
    name="bireal_larq",
    version="0.2.0",
    description="Bi-Real Net binarized neural networks on Larq: models, training, LCE export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    # experiments/ (the recipes, each a get_config file) ships inside the package, so that
    # --experiment=NAME also works from a wheel (a checkout reads the folder itself).
    packages=find_packages(include=["bireal_larq", "bireal_larq.*"])
    + ["bireal_larq.experiments"],
    package_dir={"bireal_larq.experiments": "experiments"},
    install_requires=[
        # The full TensorFlow wheel (it uses a GPU where CUDA is present; never tensorflow-cpu).
        # 2.18-2.21 is the main stack; 2.15.1 (Keras 2 built in) is the reference stack.
        "tensorflow>=2.15.1,!=2.16.*,!=2.17.*,<2.22",
        # Keras 2 for TF >= 2.16 (larq does not support Keras 3). Each tf-keras release pins its
        # TensorFlow minor, so pip pairs them; with TF 2.15 it is unused.
        "tf-keras>=2.15.1,!=2.16.*,!=2.17.*,<2.22",
        "larq==0.14.0",
        f"larq-compute-engine==0.16.0; {LCE_PLATFORMS}",
        # TensorFlow >= 2.21 no longer pulls TensorBoard, which tf.summary (the run directory's
        # logs) needs; tensorflow-datasets 4.9 prepares data through importlib_resources
        # without declaring it.
        "tensorboard",
        "tensorflow-datasets",
        "importlib_resources",
        "numpy>=1.23.5,<2",
        "h5py",
        "absl-py",
        "matplotlib",
        "pillow",
    ],
    extras_require={
        # The CUDA libraries of TensorFlow's own wheels (Linux); pip pairs the version.
        "gpu": [
            "tensorflow[and-cuda]>=2.15.1,!=2.16.*,!=2.17.*,<2.22; sys_platform == 'linux'"
        ],
        # larq-zoo's model code, for the parity tests and benchmarks. Its own pins (protobuf <
        # 3.21, tensorflow-datasets < 4.9) do not resolve with TF >= 2.20, so it is installed
        # with --no-deps plus these (see Makefile); its .h5 weight files load without it.
        "zoo": ["click", "typeguard"],
        # torch runs the PyTorch reference of the weight-conversion tests (CPU build).
        "test": ["pytest", "pytest-xdist", "pytest-timeout", "nbclient", "nbformat",
                 "ipykernel", "torch", "dill", "click", "typeguard"],
        "lint": ["ruff"],
        "pytorch": ["torch"],
    },
    # The commands, also as `python -m bireal_larq.<module>` (CONSOLE_SCRIPTS below).
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in CONSOLE_SCRIPTS.items()]
    },
)

"""Packaging for bireal_larq.

Exact versions live in ``constraints.txt`` (a full lock of the tested stack); the ranges here
only say what the code needs, so the package can still be installed next to other tools.
"""

from setuptools import find_packages, setup

setup(
    name="bireal_larq",
    version="0.1.0",
    description="Bi-Real Net binarized neural networks on Larq: models, training, LCE export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    # experiments/ (the recipes, each a get_config file) ships inside the package, so that
    # --experiment=NAME also works from a wheel (a checkout reads the folder itself).
    packages=find_packages(include=["bireal_larq", "bireal_larq.*"]) + [
        "bireal_larq.experiments"
    ],
    package_dir={"bireal_larq.experiments": "experiments"},
    install_requires=[
        # TF 2.15 is the last release whose tf.keras is Keras 2; larq does not support Keras 3.
        "tensorflow-cpu==2.15.1; platform_machine == 'x86_64'",
        "tensorflow==2.15.1; platform_machine != 'x86_64'",
        "larq==0.14.0",
        "larq-zoo==2.4.0",
        # No Linux aarch64 wheel exists: on a Pi use lce_benchmark_model instead.
        "larq-compute-engine==0.16.0; platform_machine == 'x86_64' or sys_platform == 'darwin'",
        "tensorflow-datasets",
        "numpy<2",
        "absl-py",
        "matplotlib",
        "pillow",
    ],
    extras_require={
        # torch runs the PyTorch reference of the weight-conversion tests (CPU build).
        "test": ["pytest", "pytest-xdist", "nbclient", "nbformat", "ipykernel", "torch", "dill"],
        "lint": ["ruff"],
        "pytorch": ["torch"],
    },
)

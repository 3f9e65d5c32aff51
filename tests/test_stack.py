"""The supported stacks: Keras 2 chosen at import, clear errors for what cannot work, packaging."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from bireal_larq import stack

ROOT = Path(__file__).resolve().parent.parent
TF_MINOR = tuple(int(x) for x in tf.__version__.split(".")[:2])
KERAS3_POSSIBLE = TF_MINOR >= (2, 16)
TIMEOUT = 300  # a hang fails the test instead of stalling the suite


def run_python(code: str, env_updates: dict | None = None, drop=("TF_USE_LEGACY_KERAS",)):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, cwd=str(ROOT))


def test_importing_bireal_larq_first_makes_tf_keras_keras_2():
    done = run_python(
        "import bireal_larq, tensorflow as tf, larq\n"
        "print(tf.keras.layers.Layer.__module__.split('.')[0], bireal_larq.stack.keras_version())"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    package, version = done.stdout.split()
    assert version.startswith("2."), done.stdout
    assert package == ("keras" if TF_MINOR == (2, 15) else "tf_keras")


@pytest.mark.smoke
@pytest.mark.parametrize("first", [
    "import tensorflow as tf\ntf.keras.layers.Dense(1)\n",  # a notebook cell that used Keras 3
    "import tensorflow as tf\n",  # imported only: TF already chose Keras 3 for tensorflow.keras
])
def test_tensorflow_imported_first_works_or_gets_the_clear_import_error(first):
    done = run_python(first + "import bireal_larq\nprint('imported')")
    if not KERAS3_POSSIBLE:  # TF 2.15: tf.keras is always Keras 2
        assert done.returncode == 0, done.stderr[-3000:]
        return
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bireal_larq.stack.StackError: bireal_larq needs Keras 2"), last
    assert "Restart" in last and "TF_USE_LEGACY_KERAS=1" in last
    assert "AttributeError" not in done.stderr  # never larq's own failure


@pytest.mark.smoke
def test_tensorflow_imported_first_with_the_variable_set_works():
    done = run_python("import os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
                      "import tensorflow as tf\nimport bireal_larq\n"
                      "bireal_larq.create_model('birealnet18_small', input_shape=(32, 32, 3))\n"
                      "print('built')")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "built" in done.stdout


@pytest.mark.skipif(not KERAS3_POSSIBLE, reason="TF 2.15 has Keras 2 whatever the variable says")
def test_a_user_value_asking_for_keras_3_is_refused_by_name():
    done = run_python("import bireal_larq", {"TF_USE_LEGACY_KERAS": "0"})
    assert done.returncode == 1
    assert "TF_USE_LEGACY_KERAS='0' asks TensorFlow" in done.stderr
    assert "Unset the variable or set it to 1" in done.stderr


def test_stack_error_is_an_import_error_and_names_the_remedy():
    assert issubclass(stack.StackError, ImportError)
    with pytest.raises(stack.StackError, match=r"numpy 2\.1\.0 is installed.*numpy<2"):
        stack.check_numpy("2.1.0")
    stack.check_numpy("1.26.4")
    with pytest.raises(stack.StackError, match=r"Python 3\.10-3\.12, not 3\.13.*Use Python 3\.12"):
        stack.check_python((3, 13))
    for ok in ((3, 10), (3, 11), (3, 12)):
        stack.check_python(ok)


def test_the_legacy_hdf5_module_is_the_one_tf_keras_uses():
    module = stack.hdf5_format()
    assert module.__name__.split(".")[0] == ("keras" if TF_MINOR == (2, 15) else "tf_keras")
    assert callable(module.load_weights_from_hdf5_group_by_name)
    assert module.__name__.split(".")[0] == tf.keras.layers.Layer.__module__.split(".")[0]


def test_the_reference_stack_keeps_its_own_keras_and_the_main_stack_gets_tf_keras():
    # TF 2.15 with tf-keras 2.15 beside it: the variable would switch tf.keras to tf-keras, so
    # the package leaves it unset there; every other TensorFlow gets it.
    done = run_python("import os, bireal_larq\nprint(os.environ.get('TF_USE_LEGACY_KERAS'))")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == ("None" if TF_MINOR == (2, 15) else "1")


def test_the_running_stack_is_a_supported_one():
    minor = TF_MINOR[1]
    assert TF_MINOR[0] == 2 and (minor in stack.MAIN_TF_MINORS or minor == stack.REFERENCE_TF_MINOR)
    import numpy

    assert int(numpy.__version__.split(".")[0]) == 1


@pytest.mark.smoke
def test_a_process_importing_bireal_larq_first_trains_and_exports_every_binary_conv_fused(
        tmp_path):
    code = f"""
import bireal_larq, numpy as np, tensorflow as tf
from bireal_larq.export import export_model
model = bireal_larq.create_model("birealnet18_small", input_shape=(32, 32, 3), num_classes=10)
model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
y = tf.keras.utils.to_categorical(rng.integers(0, 10, 16), 10)
history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
assert np.isfinite(history.history["loss"][0])
report = export_model(model, r"{tmp_path / 'm.tflite'}", verify_samples=4)
print("FUSED", report["lce_bconv2d_ops"], report["binary_layers"])
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr[-3000:]
    fused, binary = done.stdout.split("FUSED")[1].split()
    assert int(binary) > 0 and fused == binary
    assert (tmp_path / "m.tflite").stat().st_size > 0


def _python(version: str) -> str | None:
    found = subprocess.run([str(ROOT / "scripts" / "find_python.sh"), version],
                           capture_output=True, text=True, timeout=60)
    return found.stdout.strip() if found.returncode == 0 else None


def test_setup_refuses_python_3_13_with_the_reason_and_the_python_to_use():
    python313 = _python("3.13")
    if python313 is None:
        pytest.skip("no Python 3.13 on this machine")
    done = subprocess.run([python313, "setup.py", "--name"], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=str(ROOT))
    assert done.returncode == 1
    assert "supports Python 3.10, 3.11 and 3.12; this is Python 3.13" in done.stderr
    assert "numpy < 2" in done.stderr and "larq-compute-engine 0.16" in done.stderr
    assert "Use Python 3.12" in done.stderr


def test_find_python_finds_a_working_interpreter_or_says_what_to_install(tmp_path):
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert _python(here) is not None
    done = subprocess.run([str(ROOT / "scripts" / "find_python.sh"), "3.4"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYENV_ROOT": str(tmp_path)})
    assert done.returncode == 1 and done.stdout == ""
    assert "No Python 3.4 found" in done.stderr and "PYTHON=/path/to/python3.4" in done.stderr


def test_packaging_declares_the_supported_stacks():
    text = (ROOT / "setup.py").read_text()
    assert 'python_requires=">=3.10,<3.13"' in text
    assert '"tensorflow>=2.15.1,!=2.16.*,!=2.17.*,<2.22"' in text
    assert '"tensorflow-cpu' not in text  # never requires a CPU-only build
    assert "tensorflow[and-cuda]" in text
    main = (ROOT / "locks" / "main.txt").read_text().splitlines()
    reference = (ROOT / "locks" / "reference.txt").read_text().splitlines()
    assert "tensorflow==2.21.0" in main and "tf_keras==2.21.0" in main
    assert "tensorflow==2.15.1" in reference
    for lock in (main, reference):
        assert not any(line.startswith("tensorflow-cpu") for line in lock)


@pytest.mark.slow
def test_the_gpu_extra_resolves_to_cuda_wheels(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "--dry-run", f"{ROOT}[gpu]"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    would = done.stdout.split("Would install")[-1]
    assert "nvidia-cudnn-cu12" in would and "nvidia-cublas-cu12" in would
    assert "tensorflow-2.2" in would and "tensorflow-cpu" not in would


BLOCK_LCE = """
import sys
class _NoLce:  # as on a platform without larq-compute-engine wheels (e.g. Linux aarch64)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "larq_compute_engine":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NoLce())
"""


@pytest.mark.smoke
def test_without_lce_training_works_and_export_says_why_it_cannot_run(tmp_path):
    code = BLOCK_LCE + f"""
import runpy
import bireal_larq, numpy as np
model = bireal_larq.create_model("birealnet18_small", input_shape=(24, 24, 1), num_classes=4)
model.compile(optimizer="adam", loss="categorical_crossentropy")
model.fit(np.zeros((4, 24, 24, 1), "float32"), np.eye(4, dtype="float32"), verbose=0)
print("TRAINED", flush=True)
sys.argv = ["export", "--model=birealnet18_small", "--input_shape=24,24,1", "--num_classes=4",
            "--output={tmp_path / 'm.tflite'}"]
runpy.run_module("bireal_larq.export", run_name="__main__")
"""
    done = run_python(code)
    assert "TRAINED" in done.stdout, done.stderr[-3000:]
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Larq Compute Engine is not installed" in done.stderr
    assert "Linux x86-64, macOS and Windows" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.smoke
@pytest.mark.parametrize("written_on", ["2.15.1", "2.21.0"])
def test_weights_written_on_either_stack_load_here_with_the_same_outputs(written_on):
    import json

    import numpy as np

    from bireal_larq.models import create_model

    fixtures = ROOT / "tests" / "fixtures"
    recorded = json.loads((fixtures / f"weights_tf{written_on}.json").read_text())
    assert recorded["tensorflow"] == written_on
    spec = dict(recorded["model"])
    model = create_model(spec.pop("name"), weights=str(fixtures / f"weights_tf{written_on}.h5"),
                         **spec)
    inputs = np.random.default_rng(1).normal(size=(8, 28, 28, 1)).astype("float32")
    outputs = model(inputs, training=False).numpy()
    np.testing.assert_allclose(outputs, np.array(recorded["outputs"]), atol=2e-5)
    assert (outputs.argmax(1) == np.array(recorded["outputs"]).argmax(1)).all()

"""tf.distribute: the engine spreads rows over several logical CPU devices with MirroredStrategy.

Logical devices must be configured before TensorFlow starts, so this runs in a fresh process.
"""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 3)
    import tf_sanity
    from tests.helpers import images, small_cnn
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    assert strategy.num_replicas_in_sync == 3
    with strategy.scope():
        model = small_cnn(seed=1)
    x, t = images(5), np.array([0, 1, 2, 3, 4])
    settings = {"integrated_gradients": dict(steps=6, batch_size=16), "guided_backprop": {}, "gradcam": {}}
    plain = {m: tf_sanity.explain(model, x, m, t, **s) for m, s in settings.items()}
    with tf_sanity.attribution.engine.distribute(strategy):
        for m, expected in plain.items():
            np.testing.assert_allclose(tf_sanity.explain(model, x, m, t, **settings[m]), expected, rtol=1e-5, atol=1e-7)
        ig = tf_sanity.explain(model, x, "integrated_gradients", t, steps=6, batch_size=16)
        err = tf_sanity.attribution.methods.completeness_error(model, x, ig, t)
    print("replicas", strategy.num_replicas_in_sync, "ok", np.abs(err).max() < 1)
""")


def test_mirrored_strategy_over_logical_cpus_gives_the_same_masks():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 3 ok True" in result.stdout


EXPERIMENT = textwrap.dedent("""
    import dataclasses, sys, tempfile
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 3)
    from experiments import common, sc_fig7_conv_sumpool as exp
    config = dataclasses.replace(exp.PRESETS["quick"], images=1, size=64, widths=(8,), nets=(0,),
                                 methods=("gradient", "integrated_gradients"), ig_steps=3, data_dir=sys.argv[1])
    with tempfile.TemporaryDirectory() as out:
        plain, _ = common.run(exp, "quick", out, config=config, progress=False)
    common.replica_devices = lambda: tf.config.list_logical_devices("CPU")
    assert common._strategy("paper").num_replicas_in_sync == 3 and common._strategy("quick") is None
    from tf_sanity.attribution import engine
    wrapped, original = [], engine._distributed
    engine._distributed = lambda fn, strategy: wrapped.append(strategy) or original(fn, strategy)
    with tempfile.TemporaryDirectory() as out:
        mirrored, _ = common.run(exp, "paper", out, config=config, progress=False)
    assert wrapped and all(s.num_replicas_in_sync == 3 for s in wrapped)   # the explainers really were mirrored
    assert len(mirrored) == len(plain) > 0
    for a, b in zip(plain, mirrored):
        assert {k: v for k, v in a.items() if k != "value"} == {k: v for k, v in b.items() if k != "value"}
        assert np.isclose(a["value"], b["value"], rtol=1e-4, atol=1e-6, equal_nan=True), (a, b)
    print("experiment mirrored over", 3, "replicas: same rows")
""")


def test_paper_preset_route_runs_an_experiment_mirrored_with_the_same_rows(shared_data):
    result = subprocess.run([sys.executable, "-c", EXPERIMENT, str(shared_data)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same rows" in result.stdout

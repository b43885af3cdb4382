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
    with tf_sanity.engine.distribute(strategy):
        for m, expected in plain.items():
            np.testing.assert_allclose(tf_sanity.explain(model, x, m, t, **settings[m]), expected, rtol=1e-5, atol=1e-7)
        ig = tf_sanity.explain(model, x, "integrated_gradients", t, steps=6, batch_size=16)
        err = tf_sanity.methods.completeness_error(model, x, ig, t)
    print("replicas", strategy.num_replicas_in_sync, "ok", np.abs(err).max() < 1)
""")


def test_mirrored_strategy_over_logical_cpus_gives_the_same_masks():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 3 ok True" in result.stdout

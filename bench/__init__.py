"""Keras/TensorFlow GPU benchmark suite.

Data flows one way: config -> cases -> measurement (worker processes) -> result files -> compare / report.
The parent process never imports TensorFlow or Keras: only worker processes do, one per device layout,
because logical devices and ``KERAS_BACKEND`` must be fixed before the framework initialises.
"""

__version__ = "0.1.0"

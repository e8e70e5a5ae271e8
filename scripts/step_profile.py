"""One Keras (JAX backend) training step taken apart: where its time goes, host or device.

For each global batch and precision, on the first device, with the training set on the device:

- ``fit``: ``model.fit`` fed device-resident batches (the suite's ``input = "device"``), per step;
- ``train_function``: Keras' own compiled train function called in a bare Python loop — no ``fit``, no
  callbacks, no epoch machinery: ``enqueue`` is the host's time per step (JAX dispatches asynchronously),
  ``total`` the time per step once the device has finished;
- ``keras_scan``: Keras' ``train_step`` inside one ``jax.jit(jax.lax.scan(...))`` over the steps — the device
  time of Keras' own step with no host in the loop (what a scan-based steps_per_execution could reach);
- ``native_step`` / ``native_scan``: the suite's hand-written loop (:mod:`bench.measure.native`), the same two ways.

Then one sentence per configuration: if ``fit``'s time per step exceeds the step's device time
(``keras_scan``), the device waits on the host. ``--trace DIR`` also writes a ``jax.profiler`` trace of a few
``fit`` steps (open it in TensorBoard's profile plugin or Perfetto).

    KERAS_BACKEND=jax python scripts/step_profile.py --batches 4096 16384 --out profile.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _per_step(seconds: float, steps: int) -> float:
    return seconds / steps


def profile(batch: int, precision: str, data, steps: int, trace: str | None) -> dict:
    import jax
    import keras

    from bench.cases import NativeCase
    from bench.measure import native
    from bench.measure.devices import Placement
    from bench.measure.inputs import JaxDeviceFeed
    from bench.measure.model import build_model, compile_model, precision_policy
    from bench.measure.rounds import epoch_timer

    device = jax.devices()[0]
    placement = Placement("none (single device)", [str(device)], 1, device.platform, False, None, [])
    out: dict = {"global_batch": batch, "precision": precision, "device": str(device), "steps": steps}
    with precision_policy(precision):
        feed = JaxDeviceFeed(data, batch, placement)
        model = build_model(seed=0)
        compile_model(model, True, 1)
        feed.fit(model, epochs=1, steps=steps)  # compile and warm up
        timer = epoch_timer(time.perf_counter)
        feed.fit(model, epochs=2, steps=steps, callbacks=[timer])
        out["fit_s"] = _per_step(timer.durations[-1], steps)
        if trace:
            try:  # a profiler that cannot start (no CUPTI, say) must not cost the timings
                jax.profiler.start_trace(trace)
                try:
                    feed.fit(model, epochs=1, steps=min(steps, 20))
                finally:
                    jax.profiler.stop_trace()
                out["trace"] = trace
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                out["trace_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]

        # The same compiled step Keras' fit calls, in a bare loop. The state buffers are donated to the
        # step, so the model's variables are not used after this point.
        model.make_train_function()
        state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                     optimizer_variables=True, metrics_variables=True)
        batches = itertools.cycle(feed.batches)
        for _ in range(5):
            logs, state = model.train_function(state, batches)
        jax.block_until_ready(logs)
        t0 = time.perf_counter()
        for _ in range(steps):
            logs, state = model.train_function(state, batches)
        enqueued = time.perf_counter() - t0
        jax.block_until_ready(logs)
        total = time.perf_counter() - t0
        out["train_function_enqueue_s"] = _per_step(enqueued, steps)
        out["train_function_s"] = _per_step(total, steps)

        # Keras' own train_step, every step inside one XLA while loop.
        xs = jax.numpy.stack([b[0] for b in feed.batches])
        ys = jax.numpy.stack([b[1] for b in feed.batches])
        k = len(feed.batches)

        def epoch(state, xs, ys):
            def body(s, i):
                xb = jax.lax.dynamic_index_in_dim(xs, i % k, keepdims=False)
                yb = jax.lax.dynamic_index_in_dim(ys, i % k, keepdims=False)
                logs, s = model.train_step(s, (xb, yb))
                return s, logs["loss"]

            state, losses = jax.lax.scan(body, state, jax.numpy.arange(steps))
            return state, losses[-1]

        scan = jax.jit(epoch, donate_argnums=0)
        state, loss = scan(state, xs, ys)
        loss.block_until_ready()
        t0 = time.perf_counter()
        state, loss = scan(state, xs, ys)
        float(loss)
        out["keras_scan_s"] = _per_step(time.perf_counter() - t0, steps)

    params = native.init_params(0)
    for variant in ("step", "epoch_scan"):
        runner = native._JaxRunner(NativeCase("jax", batch, precision, variant), data, str(device), params, 0)
        runner.run(steps)  # compile (epoch_scan: for this length) and warm up
        t0 = time.perf_counter()
        runner.run(steps)
        out[f"native_{'step' if variant == 'step' else 'scan'}_s"] = _per_step(time.perf_counter() - t0, steps)
    keras.backend.clear_session()
    out["sentence"] = explain(out)
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def explain(p: dict) -> str:
    """Host vs device per step, in words, from the measured times."""
    host, device = p["fit_s"], p["keras_scan_s"]
    bare_host = p["train_function_enqueue_s"]
    parts = [f"batch {p['global_batch']} {p['precision']}: fit {_ms(host)}/step, Keras' step alone on the device "
             f"{_ms(device)}, native step {_ms(p['native_step_s'])} (scan {_ms(p['native_scan_s'])})"]
    if host > 1.2 * device:
        parts.append(f"the device waits on the host: fit takes {host / device:.1f}x the step's device time per step; "
                     f"Keras' bare compiled step dispatches in {_ms(bare_host)} (host) and completes in "
                     f"{_ms(p['train_function_s'])}, so {_ms(max(0.0, host - p['train_function_s']))} per step "
                     "is fit's own loop (data adapter, callbacks, state hand-over)")
    else:
        parts.append("the device sets the pace: fit's time per step is within 20 % of the step's device time")
    if device > 1.2 * p["native_scan_s"]:
        parts.append(f"Keras' step itself costs {device / p['native_scan_s']:.2f}x the native step on the device "
                     "(metrics, loss bookkeeping, optimizer implementation)")
    return "; ".join(parts) + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed measurement")
    parser.add_argument("--npz", help="mnist.npz (default: the Keras cache, else synthetic data)")
    parser.add_argument("--trace", help="write a jax.profiler trace of the first configuration here")
    parser.add_argument("--out", help="write the measurements as JSON here")
    args = parser.parse_args(argv)

    from bench.config import DataSettings
    from bench.measure import data as data_mod

    settings = DataSettings(source="npz" if args.npz else "auto", path=args.npz, download_timeout_s=5)
    data = data_mod.load(data_mod.resolve(settings, 0))
    results = []
    for i, (batch, precision) in enumerate(itertools.product(args.batches, args.precisions)):
        result = profile(batch, precision, data, args.steps, args.trace if i == 0 else None)
        results.append(result)
        print(result["sentence"], flush=True)
        if args.out:  # after every configuration: a run cut short by its time limit keeps what it measured
            Path(args.out).write_text(json.dumps({"data": data.spec.source, "profiles": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

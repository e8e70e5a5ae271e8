"""Cluster formation without a framework: the scheduler's variables, the local launcher's environment, ports,
and the pure parts of the workers' rendezvous and results (bench.run.cluster, bench.measure.distributed,
bench.measure.multiworker, bench.analyze.scaling)."""

from __future__ import annotations

import html
import json
import re
import socket

import numpy as np
import pytest

from bench.analyze.scaling import worker_scaling
from bench.cases import TrainCase, check_cases
from bench.config import ClusterSettings, ConfigError, parse_config
from bench.measure.data import DataSpec, Mnist
from bench.measure.distributed import all_gather_json, cluster_message, find_mismatch
from bench.measure.multiworker import ShardFeed, job_rounds, per_worker_metrics
from bench.measure.protocol import TimedRounds
from bench.run import cluster
from bench.run.cluster import ClusterError, ClusterMember
from tests.conftest import run_cli

AUTO = ClusterSettings()


def tf_config(workers, index, kind="worker", chief=None):
    spec = {"cluster": {"worker": workers}, "task": {"type": kind, "index": index}}
    if chief:
        spec["cluster"]["chief"] = chief
    return json.dumps(spec)


# --------------------------------------------------------------------------- the scheduler's variables


def test_tf_config_orders_chief_first_and_finds_this_task():
    member = cluster.detect({"TF_CONFIG": tf_config(["h1:2222", "h2:2222"], 1, chief=["h0:2222"])}, AUTO)
    assert member == ClusterMember("TF_CONFIG", 2, 3, ("h0:2222", "h1:2222", "h2:2222"))
    assert not member.is_chief and member.describe() == "worker 2 of 3 (h2:2222), from TF_CONFIG"
    assert cluster.detect({"TF_CONFIG": tf_config(["h1:1", "h2:1"], 0)}, AUTO).is_chief


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "TF_CONFIG is not valid JSON"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), 'needs "cluster" and "task"'),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}),
     "job 'ps' is not one MultiWorkerMirroredStrategy trains with"),
    (tf_config(["a:1", "b:1"], 2), "task worker 2 is not in the cluster"),
    (tf_config(["a:1", "a:1"], 0), "listed twice"),
    (tf_config(["a"], 0), "must be a list of 'host:port' strings"),
])
def test_bad_tf_config_is_one_line(text, message):
    with pytest.raises(ClusterError) as err:
        cluster.detect({"TF_CONFIG": text}, AUTO)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_keras_distribution_variables_and_slurm_steps():
    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
           "KERAS_DISTRIBUTION_PROCESS_ID": "1"}
    member = cluster.detect(env, AUTO)
    assert (member.source, member.index, member.size, member.every_address) == ("KERAS_DISTRIBUTION", 1, 2, False)
    with pytest.raises(ClusterError, match=r"must lie in \[0"):
        cluster.detect({**env, "KERAS_DISTRIBUTION_PROCESS_ID": "2"}, AUTO)
    step = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_JOB_ID": "7"}
    assert cluster.detect(step, AUTO) == ClusterMember("SLURM", 1, 4)
    # The allocation's own shell (one task) is a single machine: the local launcher runs the workers.
    assert cluster.detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, AUTO) is None
    assert cluster.detect({}, AUTO) is None
    assert cluster.detect(step, ClusterSettings(launcher="local")) is None


def test_what_a_cluster_can_run():
    def params(backend="tensorflow", workers=2, keras="keras3", feed="tf_data_prefetch"):
        return {"backend": backend, "workers": workers, "keras": keras, "input": feed}

    slurm = ClusterMember("SLURM", 0, 2)
    assert cluster.skip_reason(params(), slurm) is None
    assert "has 2 workers and this case asks for 3" in cluster.skip_reason(params("jax", 3), slurm)
    assert "no multi-process data parallelism on torch" in cluster.skip_reason(params("torch"), None)
    assert "Keras 2 for TensorFlow only" in cluster.skip_reason(params("jax", keras="tf_keras"), None)
    assert "input device is not offered with workers > 1 on tensorflow; choose tf_data_prefetch" in \
        cluster.skip_reason(params(feed="device"), None)
    assert cluster.skip_reason(params("jax", feed="numpy"), None) is None
    coordinator_only = ClusterMember("KERAS_DISTRIBUTION", 0, 2, ("h:1",))
    assert "names only the coordinator" in cluster.skip_reason(params(), coordinator_only)
    assert cluster.skip_reason(params("jax"), coordinator_only) is None


# --------------------------------------------------------------------------- what each worker process gets


def test_local_launcher_environment_per_backend():
    addresses = ("127.0.0.1:5000", "127.0.0.1:5001")
    inherited = {"TF_CONFIG": "{...}", "KERAS_DISTRIBUTION_PROCESS_ID": "9", "PATH": "/bin"}
    tf_env = cluster.worker_environment("tensorflow", 1, addresses, None, inherited)
    assert json.loads(tf_env["TF_CONFIG"]) == {"cluster": {"worker": list(addresses)},
                                               "task": {"type": "worker", "index": 1}}
    assert "KERAS_DISTRIBUTION_PROCESS_ID" not in tf_env and tf_env["PATH"] == "/bin"
    jax_env = cluster.worker_environment("jax", 0, addresses, None, inherited)
    assert "TF_CONFIG" not in jax_env
    assert (jax_env["KERAS_DISTRIBUTION_JOB_ADDRESSES"], jax_env["KERAS_DISTRIBUTION_NUM_PROCESSES"],
            jax_env["KERAS_DISTRIBUTION_PROCESS_ID"]) == (",".join(addresses), "2", "0")
    # The scheduler's TF_CONFIG gives JAX its coordinator (task 0); SLURM's variables pass through untouched.
    member = ClusterMember("TF_CONFIG", 1, 2, addresses)
    derived = cluster.worker_environment("jax", 1, addresses, member, {"TF_CONFIG": "x"})
    assert derived["TF_CONFIG"] == "x" and derived["KERAS_DISTRIBUTION_PROCESS_ID"] == "1"
    slurm = {"SLURM_PROCID": "1"}
    assert cluster.worker_environment("tensorflow", 1, (), ClusterMember("SLURM", 1, 2), slurm) == slurm


def test_free_loopback_ports_are_distinct_and_a_taken_port_is_refused():
    addresses = cluster.local_addresses("127.0.0.1", 3)
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        assert cluster.port_in_use(port)
        member = ClusterMember("TF_CONFIG", 1, 2, ("127.0.0.1:1", f"127.0.0.1:{port}"))
        with pytest.raises(ClusterError, match=f"port {port} .* is already in use on this machine"):
            cluster.check_own_port(member)
    cluster.check_own_port(member)  # released: nothing to say


def test_cli_refuses_bad_cluster_input_before_the_sweep(write_config, tmp_path):
    config = write_config('name = "c"\nsuites = ["train"]\n[train]\nworkers = [2]\n')
    bad = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "r"), env={"TF_CONFIG": "{"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "TF_CONFIG is not valid JSON" in bad.stderr
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        taken = run_cli("run", "--config", str(config), "--results-dir", str(tmp_path / "r"),
                        env={"TF_CONFIG": tf_config([f"127.0.0.1:{port}", "127.0.0.1:1"], 0)})
    assert taken.returncode == 2 and f"port {port}" in taken.stderr and "already in use" in taken.stderr
    assert "Traceback" not in taken.stderr and not list(tmp_path.glob("r/*"))


# --------------------------------------------------------------------------- config and case ids


def test_workers_and_keras_axes():
    config = parse_config({"name": "m", "train": {"workers": [1, 2], "keras": ["keras3", "tf_keras"],
                                                  "global_batch": [128]}})
    assert (config.train.workers, config.train.keras) == ((1, 2), ("keras3", "tf_keras"))
    plain = TrainCase("tensorflow", 1, 128, "float32", "auto")
    # Defaults keep the ids of runs made before these axes existed.
    assert plain.case_id == "train/tensorflow/gpus=1/batch=128/float32/jit=auto/input=device/spe=1"
    two = TrainCase("tensorflow", 1, 128, "float32", "auto", workers=2, keras="tf_keras")
    assert two.case_id.endswith("/spe=1/workers=2/keras=tf_keras")
    assert (two.per_worker_batch, two.per_replica_batch, two.params()["workers"]) == (64, 64, 2)
    with pytest.raises(ConfigError, match="not divisible by workers x gpus = 3 x 1"):
        check_cases(parse_config({"name": "m", "train": {"workers": [3], "global_batch": [128]}}))
    with pytest.raises(ConfigError, match="unknown value 'keras2'"):
        parse_config({"name": "m", "train": {"keras": ["keras2"]}})
    with pytest.raises(ConfigError, match=r"\[cluster\] launcher: unknown value 'srun'"):
        parse_config({"name": "m", "cluster": {"launcher": "srun"}})


# --------------------------------------------------------------------------- the workers' rendezvous, results


def fake_gather(rows_by_worker):
    """A collective over len(rows_by_worker) workers: call i of each worker is answered together."""
    calls = []

    def gather(row):
        calls.append(row)
        others = [np.asarray(r[len(calls) - 1]) for r in rows_by_worker]
        return np.stack([row, *others])

    return gather, calls


def test_all_gather_json_is_exact_and_keeps_worker_order():
    worker1 = {"worker": 1, "round_s": [0.1 + 1e-12, 2.5], "host": "b"}
    payload = np.frombuffer(json.dumps(worker1, sort_keys=True).encode(), dtype=np.uint8).astype(np.int32)
    mine = {"worker": 0, "round_s": [1 / 3], "host": "a-much-longer-host-name"}
    own = np.frombuffer(json.dumps(mine, sort_keys=True).encode(), dtype=np.uint8).astype(np.int32)
    longest = max(payload.size, own.size)
    padded = np.full(longest, -1, dtype=np.int32)
    padded[:payload.size] = payload
    gather, _ = fake_gather([[np.array([payload.size], dtype=np.int32), padded]])
    assert all_gather_json(gather, mine) == [mine, worker1]  # floats survive bit for bit


def test_mismatch_names_the_worker_and_the_first_difference():
    base = {"worker": 0, "host": "a", "config_sha256": "x", "config": {"measure": {"rounds": 5}}, "case_ids": ["c"],
            "data": {"sha256": "d"}, "keras": ["keras3", "3.15.1"], "versions": {"tensorflow": "2.21.0"}, "bench": "0.1"}
    assert find_mismatch([base, {**base, "worker": 1, "host": "b"}]) is None
    other = {**base, "worker": 1, "host": "b", "config_sha256": "y", "config": {"measure": {"rounds": 7}}}
    message = find_mismatch([base, other])
    assert message.startswith("mismatched configs: worker 1 (b) and worker 0 (a)") and "measure.rounds = 7 vs 5" in message
    versions = {**base, "worker": 1, "host": "b", "versions": {"tensorflow": "2.20.0"}}
    assert "mismatched framework versions" in find_mismatch([base, versions])


def test_cluster_errors_become_one_informative_line():
    per_replica = ValueError("Attempt to convert a value (PerReplica:{\n  0: <tf.Tensor: shape=(), dtype=float32>\n"
                             "}) with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) "
                             "to a Tensor.")
    assert cluster_message(per_replica) == (
        "Attempt to convert a value (PerReplica:{...}) with an unsupported type "
        "(<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.")
    aborted = RuntimeError("{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/task:0}} Collective ops "
                           "is aborted by: The following tasks are unhealthy (stopped sending heartbeats):\n"
                           "/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert cluster_message(aborted) == ("Collective ops is aborted by: The following tasks are unhealthy (stopped "
                                        "sending heartbeats): /job:worker/replica:0/task:1")


def test_job_rounds_wait_for_the_slowest_worker():
    mine = TimedRounds(10, (1.0, 1.2), 2.2, (), {"status": "unavailable"})
    everyone = [{"worker": 0, "round_s": [1.0, 1.2], "wall_s": 2.2, "off_round_s": [], "units_per_round": 10,
                 "gpu_metrics": {}},
                {"worker": 1, "round_s": [1.1, 1.1], "wall_s": 2.25, "off_round_s": [], "units_per_round": 10,
                 "gpu_metrics": {}}]
    job = job_rounds(mine, everyone)
    assert (job.round_s, job.wall_s) == ((1.1, 1.2), 2.25)
    rows = per_worker_metrics(everyone, [{"worker": 0, "host": "a"}, {"worker": 1, "host": "b"}], 1000)
    assert [r["host"] for r in rows] == ["a", "b"] and rows[1]["samples_per_second"]["median"] == pytest.approx(500 / 1.1)


def record(case_id, workers, batch, median, status="ok", keras="keras3"):
    return {"suite": "train", "case_id": case_id, "status": status, "reason": None if status == "ok" else "why",
            "params": {"backend": "tensorflow", "gpus": 1, "global_batch": batch, "precision": "float32",
                       "jit_compile": "auto", "input": "tf_data_prefetch", "steps_per_execution": 1,
                       "workers": workers, "keras": keras},
            "metrics": {"samples_per_second": {"median": median}} if status == "ok" else {}}


def test_weak_and_strong_scaling_against_one_worker():
    cases = [record("w1-b64", 1, 64, 1000.0), record("w1-b128", 1, 128, 1500.0),
             record("w2-b128", 2, 128, 1800.0), record("w2-b256", 2, 256, 2000.0),
             record("k2-w1-b128", 1, 128, 900.0, keras="tf_keras"), record("w2-failed", 2, 128, 0, status="failed")]
    rows = {r["case_id"]: r for r in worker_scaling(cases)}
    assert list(rows) == ["w2-b128", "w2-b256", "w2-failed"]
    row = rows["w2-b128"]
    assert row["weak"]["reference_case_id"] == "w1-b64" and row["weak"]["efficiency"] == pytest.approx(0.9)
    assert row["strong"]["reference_case_id"] == "w1-b128" and row["strong"]["speedup"] == pytest.approx(1.2)
    assert row["strong"]["efficiency"] == pytest.approx(0.6)
    assert rows["w2-b256"]["weak"]["efficiency"] == pytest.approx(2000 / 3000)
    assert rows["w2-b256"]["strong"]["efficiency"] is None
    assert "no workers = 1 case with global batch 256" in rows["w2-b256"]["strong"]["why_missing"]
    assert rows["w2-failed"]["weak"]["why_missing"] == "this case is failed"


# --------------------------------------------------------------------------- the report's section


def test_report_section_for_multiworker_and_keras2_cases(tmp_path):
    from bench.analyze.stats import summarize
    from bench.report.load import load_runs
    from bench.report.page import build_page
    from tests.factories import make_run, write_run

    config = {"name": "mw", "suites": ["train"],
              "train": {"workers": [1, 2], "keras": ["keras3", "tf_keras"], "global_batch": [128, 256]}}
    document = make_run(config=config)
    by_id = {c["case_id"]: c for c in document["cases"]}
    keras3_two = by_id["train/tensorflow/gpus=1/batch=256/float32/jit=auto/input=device/spe=1/workers=2"]
    keras3_two.update(status="failed", metrics={}, reason="ValueError: Attempt to convert a value (PerReplica:{...}) "
                      "with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.")
    for case in document["cases"]:
        if case["params"]["workers"] == 2 and case["status"] == "ok":
            share = case["metrics"]["samples_per_round"] / 2
            case["metrics"]["per_worker"] = [{"worker": i, "samples_per_second": summarize([share / 0.5] * 3)}
                                             for i in (0, 1)]
            case["flags"]["local_cluster"] = True
    document["derived"] = {"worker_scaling": worker_scaling(document["cases"])}
    (run,) = load_runs([write_run(tmp_path, document)])
    assert set(run.train["workers"]) == {1} and set(run.train["keras"]) == {"keras3"}  # the charts' cases
    assert len(run.train_extra) == 6
    page = build_page([run], "2025-11-01T00:00:00Z")
    section = re.search(r'<section id="r1-multiworker">.*?</section>', page, re.S).group(0)
    text = html.unescape(re.sub(r"<[^>]+>", " ", section))
    assert "tensorflow · Keras 3, 2 workers × 1 device(s), global batch 256 (128 per worker): failed — ValueError" in text
    assert "keras-team/keras#20585" in text and 'data-note="local_cluster"' in section
    assert re.search(r"tf_keras \(Keras 2\), 2 workers .*weak scaling \d+ % against 1 worker at batch 128", text)
    assert "Keras 2 (tf_keras) vs Keras 3 on one machine" in text
    assert 'id="r1-multiworker-table"' in section and 'id="r1-keras2-table"' in section
    assert 'id="r1-train-extra-cases"' in page
    plain = build_page(load_runs([write_run(tmp_path / "plain", make_run())]), "2025-11-01T00:00:00Z")
    assert "Not measured in this run: no case with [train] workers &gt; 1" in plain


# --------------------------------------------------------------------------- the launcher's verdicts


class _FakeProc:
    def __init__(self, pid, returncode):
        self.pid, self.returncode = pid, returncode


def test_launcher_says_which_worker_died_how_and_why(tmp_path):
    from bench.run.launcher import _death, _no_cluster, _Worker

    log = tmp_path / "w1.log"
    log.write_text("I0000 noise\nE1201 add_port.cc:83] Failed to add port to server: No address added out of total 1 "
                   "resolved for '[::]:5001'\n    @     0x7f  frame\nF1201 client.h:80] Terminating process\n")
    chief = _Worker(0, "127.0.0.1:5000", _FakeProc(11, None), tmp_path / "p0", tmp_path / "w0.log", joining_at=1.0,
                    ready=True)
    peer = _Worker(1, "127.0.0.1:5001", _FakeProc(12, 1), tmp_path / "p1", log, joining_at=1.0)
    outcome = _death([peer], [chief, peer], None, 3.5)
    error_type, reason = outcome.failure
    assert error_type == "ClusterWorkerDied"
    assert reason.startswith("worker 1 (127.0.0.1:5001, pid 12) exited (exit code 1) while joining the cluster: "
                             "cannot listen on 127.0.0.1:5001: the port is in use (E1201 add_port.cc:83] Failed to add")
    assert reason.endswith(f"; stopped worker 0; log: {log}")
    assert outcome.detail["phase"] == "joining" and outcome.detail["exit"] == "exit code 1"
    killed = _Worker(1, None, _FakeProc(13, -9), tmp_path / "p1", tmp_path / "missing.log", ready=True)
    member = ClusterMember("SLURM", 1, 2)
    assert _death([killed], [killed], member, 1.0).failure[1].startswith(
        "worker 1 of 2 (SLURM; pid 13) died (SIGKILL, signal 9) during the case; log: ")
    waiting = _no_cluster([chief, _Worker(1, None, _FakeProc(14, None), tmp_path / "p", log)], None, 60, 61)
    assert waiting.failure == ("ClusterConnectTimeout", "the cluster did not form within 60 s ([cluster] "
                               "connect_timeout_s): worker(s) 1 never began to join")


def test_jax_numpy_feed_fits_each_process_on_its_own_shard_at_the_local_batch():
    """JAX ``numpy`` across processes (ShardFeed): a real Feed, its fit given this process's contiguous shard."""
    x = np.arange(1000 * 784, dtype=np.float32).reshape(1000, 784)
    y = np.arange(1000, dtype=np.int32)
    data = Mnist(x, y, x[:10], y[:10], DataSpec("npz", None, None, "test", 0))
    calls = []

    class Model:  # the boundary: Keras' fit
        def fit(self, x, y, **kwargs):
            calls.append((x, y, kwargs))
            return "history"

    feed = ShardFeed(data, global_batch=200, index=1, processes=2)  # 5 global batches, 500 samples a process
    assert feed.fit(Model(), epochs=2, steps=None, callbacks=["cb"]) == "history"
    (xs, ys, kwargs), = calls
    assert ys.tolist() == list(range(500, 1000)) and xs.shape == (500, 784)
    assert kwargs["batch_size"] == 100 and kwargs["epochs"] == 2 and kwargs["shuffle"] is True
    assert kwargs["callbacks"] == ["cb"]
    assert feed.fed.samples_per_pass == 1000 and feed.fed.steps_per_pass == 5 and feed.unit == "pass"

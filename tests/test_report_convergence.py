"""Time to accuracy: the table, trade-off sentences and reference rows derived from the per-epoch records of a
run document (bench.analyze.convergence, built here with known numbers), and the report's section and charts
drawn from that ``derived.convergence``."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analyze.convergence import case_table, derive_convergence, reference_rows, tradeoff, tradeoffs
from bench.report.convergence import accuracy_curves_chart, section, time_to_target_chart


def _derived(run):
    """The run as a finished document has it: ``derived.convergence`` beside the cases."""
    return {**run, "derived": {"convergence": derive_convergence(run)}}


def _epochs(accuracies, epoch_s):
    return [{"epoch": i + 1, "train_s": epoch_s, "cumulative_s": epoch_s * (i + 1), "eval_s": 0.2,
             "train_loss": 0.2, "train_accuracy": 0.95, "test_loss": 0.1, "test_accuracy": a}
            for i, a in enumerate(accuracies)]


def _case(batch, epoch_s, curves, precision="float32", status="ok", lr="none", reference=None, target=0.97):
    seeds = [{"seed": i, "epochs": _epochs(acc, epoch_s)} for i, acc in enumerate(curves)]
    metrics = {"target_accuracy": target, "max_epochs": 30, "learning_rate": 1e-3, "seeds": seeds,
               "reference_batch": 256,
               # Deliberately wrong summaries: the report must recompute from the epochs.
               "time_to_target_s": {"median": 999.0}, "epoch_train_s": {"median": 999.0}}
    if reference is not None:
        metrics.update(reference_accuracy=reference, reference_label="tutorial")
    params = {"backend": "jax", "gpus": 1, "global_batch": batch, "precision": precision, "jit_compile": True,
              "lr_scaling": lr}
    return {"suite": "converge", "case_id": f"converge/jax/gpus=1/batch={batch}/{precision}/jit=true/lr={lr}",
            "params": params, "status": status, "reason": None, "flags": {"simulated": False}, "metrics": metrics}


REACH_2 = [0.95, 0.975]
REACH_3 = [0.95, 0.96, 0.972]
REACH_5 = [0.9, 0.93, 0.95, 0.965, 0.971]


def _run():
    return {"run_id": "r", "cases": [
        _case(256, 3.1, [REACH_2, REACH_2, REACH_3]),  # median 2 epochs, 6.2 s
        _case(4096, 1.0, [REACH_5, REACH_5, REACH_5]),  # 3.1x faster per epoch, 2.5x the epochs, 5 s
        _case(16384, 0.5, [[0.5, 0.6, 0.7]] * 3, status="not_converged"),
        _case(256, 2.0, [REACH_2] * 3, precision="mixed_bfloat16"),
        {"suite": "train", "case_id": "train/x", "params": {}, "status": "ok", "metrics": {}},
        {"suite": "converge", "case_id": "converge/jax/gpus=2/batch=256/float32/jit=true/lr=none", "params": {},
         "status": "skipped", "reason": "asks for 2 GPU(s) but 1 visible", "metrics": {}},
    ]}


def test_table_is_recomputed_from_the_epochs():
    table = case_table(_run())
    assert list(table["global_batch"]) == [256, 4096, 16384, 256]
    first = table.iloc[0]
    assert first["epoch_s"] == pytest.approx(3.1) and first["epochs_to_target"] == 2
    assert first["seconds_to_target"] == pytest.approx(6.2) and first["converged"] == 3
    assert first["seconds_q1"] == pytest.approx(6.2) and first["seconds_q3"] == pytest.approx(7.75)
    assert first["final_accuracy"] == pytest.approx(0.975)
    assert table.iloc[2]["converged"] == 0 and pd.isna(table.iloc[2]["seconds_to_target"])


def test_tradeoff_sentence_from_the_stored_epochs():
    rows = case_table(_run()).to_dict("records")
    assert tradeoff(rows[0], rows[1]) == ("batch 4096 trains 3.1× faster per epoch than 256 but needs 2.5× "
                                          "the epochs: 1.2× faster to 97 %")
    assert tradeoff(rows[0], rows[2]) == ("batch 16384 trains 6.2× faster per epoch than 256 but reached 97 % "
                                          "in 0 of 3 seeds within 30 epochs (batch 256: 3 of 3)")
    sentences = tradeoffs(case_table(_run()))
    assert sentences[0].startswith("float32: batch 4096 trains 3.1× faster") and len(sentences) == 2


def test_slower_overall_and_fewer_epochs_are_worded_the_other_way():
    run = {"cases": [_case(256, 1.0, [REACH_3]), _case(1024, 2.0, [REACH_2])]}
    small, large = case_table(run).to_dict("records")
    assert tradeoff(small, large) == ("batch 1024 trains 2.0× slower per epoch than 256 but needs 0.7× the "
                                      "epochs: 1.3× slower to 97 %")


def test_a_scaled_rule_is_compared_with_the_reference_batch_of_another_rule():
    # At the reference batch (256) every lr_scaling is the same run, so configs exclude the duplicates.
    run = {"cases": [_case(256, 3.0, [REACH_2]), _case(4096, 1.0, [REACH_3], lr="sqrt"),
                     _case(4096, 1.0, [REACH_5])]}
    sentences = tradeoffs(case_table(run))
    assert sentences == [
        "lr none: batch 4096 trains 3.0× faster per epoch than 256 but needs 2.5× the epochs: 1.2× faster to 97 %.",
        "lr sqrt: batch 4096 trains 3.0× faster per epoch than 256 but needs 1.5× the epochs: 2.0× faster to 97 %.",
    ]
    assert "lr sqrt" in time_to_target_chart(case_table(run))


def test_reference_accuracy_is_shown_beside_ours():
    run = {"cases": [_case(128, 4.0, [[0.96, 0.975], [0.96, 0.979], [0.96, 0.977]], reference=0.9685,
                           target=0.9685)]}
    (row,) = reference_rows(case_table(run))
    assert row["reference_accuracy"] == 0.9685 and row["final_accuracy"] == pytest.approx(0.977)
    assert row["difference"] == pytest.approx(0.977 - 0.9685) and row["reference_label"] == "tutorial"
    assert reference_rows(case_table(_run())) == []


def test_charts_are_inline_svg_and_say_what_they_show():
    run = _run()
    time_svg = time_to_target_chart(case_table(run))
    assert time_svg.startswith("<svg") and 'aria-label="Time to 97 % test accuracy against global batch"' in time_svg
    assert "not converged" in time_svg and "mixed_bfloat16" in time_svg
    curves = accuracy_curves_chart(_derived(run))
    assert curves.startswith("<svg") and "cumulative train seconds" in curves
    assert 'id="converge-curves-' in curves


def test_section_and_nothing_to_show():
    part = section(_derived(_run()))
    assert len(part.table) == 4 and len(part.sentences) == 2 and part.time_chart and part.curves_chart
    assert part.not_trained == [{"case_id": "converge/jax/gpus=2/batch=256/float32/jit=true/lr=none",
                                 "status": "skipped", "reason": "asks for 2 GPU(s) but 1 visible"}]
    assert section(_derived({"cases": [{"suite": "train", "case_id": "t", "params": {}, "status": "ok"}]})) is None
    only_skipped = section(_derived({"cases": [_run()["cases"][-1]]}))
    assert only_skipped.table.empty and only_skipped.time_chart is None and only_skipped.curves_chart is None

"""Evaluation scores as evolution KPIs: an evolution run that names evaluations gets, for each, the mean
score recorded inside the run as the KPI after, and the mean score its agent got between its previous run
and this one as the KPI before."""

from __future__ import annotations

import threading
import tomllib
from typing import Any

import numpy
import pytest

import agent_otel
from agent_otel import ConfigurationError, semconv
from agent_otel._zerocode.config import parse_config
from tests.bridge.test_processor import foreign
from tests.support.telemetry import point, points

KPI = semconv.AGENT_KPI_CURRENT.name
IMPROVEMENT = semconv.EVOLUTION_PERFORMANCE_IMPROVEMENT.name


def evaluated_by_another_library(otel: Any, score: float) -> None:
    """An evaluator of another library: the standard event on its own GenAI span."""
    with foreign(otel).start_as_current_span(
            "chat judge", attributes={semconv.GEN_AI_OPERATION_NAME: "chat"}) as span:
        span.add_event(semconv.EVENT_EVALUATION_RESULT, {semconv.GEN_AI_EVALUATION_NAME: "relevance",
                                                         semconv.GEN_AI_EVALUATION_SCORE_VALUE: score})


def kpis_on(otel: Any, span_name: str) -> dict[str, float]:
    """The KPIs on the last span named ``span_name``."""
    attributes = dict([span for span in otel.spans() if span.name == span_name][-1].attributes or {})
    return {key: value for key, value in attributes.items() if key.startswith("evolution.kpi.")}


def test_the_mean_scores_inside_the_run_and_since_the_previous_one_are_the_kpi_after_and_before(otel: Any) -> None:
    @agent_otel.agent("writer")
    def serve(score: float) -> None:  # production traffic, scored online
        agent_otel.record_evaluation("relevance", score)
        agent_otel.record_evaluation("toxicity", 0.1)  # an evaluation the run does not name

    @agent_otel.evolution("writer", kpi="relevance", evaluations=["relevance", "faithfulness"])
    def evolve() -> dict[str, Any]:
        serve(0.8)  # the candidate, evaluated inside the run
        worker = threading.Thread(target=serve, args=(1.0,))  # a thread: the context goes with it
        worker.start()
        worker.join()
        evaluated_by_another_library(otel, 0.9)
        return {"iterations": 3}

    serve(0.5)
    serve(0.7)
    evolve()
    assert kpis_on(otel, "evolve writer") == pytest.approx({
        "evolution.kpi.before.relevance": 0.6, "evolution.kpi.after.relevance": 0.9,
        "evolution.kpi.delta.relevance": 0.3})  # faithfulness got no score: no KPI
    assert point(otel, IMPROVEMENT).value == pytest.approx(0.3)
    assert {p.attributes[semconv.AGENT_KPI_NAME]: p.value for p in points(otel, KPI)} == pytest.approx(
        {"relevance": 0.9})
    scores = {(p.attributes[semconv.GEN_AI_EVALUATION_NAME], p.attributes[semconv.GEN_AI_AGENT_NAME]): p.count
              for p in points(otel, semconv.AGENT_EVALUATION_SCORE.name)}
    # the histogram still has every score; the other library's judge, on a span of no agent inside the run, scores
    # the run's agent (it was "unknown", while record_evaluation() there took the run's)
    assert scores == {("relevance", "writer"): 5, ("toxicity", "writer"): 4}

    evolve()  # nothing scored since the last run started: no baseline, so no delta
    assert kpis_on(otel, "evolve writer") == pytest.approx({"evolution.kpi.after.relevance": 0.9})


def test_a_nested_run_passes_the_scores_it_does_not_ask_for_to_the_run_around_it(otel: Any) -> None:
    """An outer run asking for ``quality``, a nested run asking for ``relevance``: a ``quality`` score inside the
    nested run belonged to no window and went into the nested agent's baseline (a later run of it reported a
    ``before`` it was never scored for); it is the outer run's."""
    with agent_otel.evolution_run("fleet", evaluations=["quality"]):
        with agent_otel.evolution_run("writer", evaluations=["relevance"]):
            agent_otel.record_evaluation("relevance", 0.6)
            agent_otel.record_evaluation("quality", 0.9)
        agent_otel.record_evaluation("quality", 0.5)
    assert kpis_on(otel, "evolve fleet") == pytest.approx({"evolution.kpi.after.quality": 0.7})
    assert kpis_on(otel, "evolve writer") == pytest.approx({"evolution.kpi.after.relevance": 0.6})
    with agent_otel.evolution_run("writer", evaluations=["quality"]):
        pass
    assert kpis_on(otel, "evolve writer") == {}


def test_agents_past_the_cardinality_cap_get_no_baseline_rather_than_a_shared_one(otel: Any) -> None:
    """Past the cap every agent is "_OTHER": their scores went into one baseline, the first run took the mean of all
    of them as its "before" (bob's 0.1 and carol's 0.9 read 0.5), and the next got none."""
    agent_otel.set_policy(cardinality_limit=1)
    agent_otel.record_evaluation("quality", 0.5, agent="first")  # takes the one value the cap allows
    for agent, score in (("bob", 0.1), ("carol", 0.9)):
        agent_otel.record_evaluation("quality", score, agent=agent)
    for agent in ("bob", "carol"):
        with agent_otel.evolution_run(agent, evaluations=["quality"]):
            pass
        assert "evolution.kpi.before.quality" not in kpis_on(otel, "evolve _OTHER")


def test_what_the_run_reports_wins_and_the_baseline_is_the_agents_own(otel: Any) -> None:
    agent_otel.record_evaluation("relevance", 0.2, agent="other-agent")  # another agent's score: not a baseline
    with agent_otel.evolution_run("writer", evaluations="relevance") as run:
        agent_otel.record_evaluation("relevance", 0.4)
        run.set_outcome(kpis_before={"relevance": 0.5}, kpis_after={"accuracy": 0.7})
    assert kpis_on(otel, "evolve writer") == pytest.approx({
        "evolution.kpi.before.relevance": 0.5, "evolution.kpi.after.relevance": 0.4,
        "evolution.kpi.after.accuracy": 0.7, "evolution.kpi.delta.relevance": -0.1})


def test_a_failed_run_keeps_the_kpi_before(otel: Any) -> None:
    agent_otel.record_evaluation("relevance", 0.6, agent="writer")

    @agent_otel.evolution("writer", evaluations=["relevance"])
    def evolve() -> None:
        agent_otel.record_evaluation("relevance", 0.1)
        raise RuntimeError("candidate rejected")

    with pytest.raises(RuntimeError):
        evolve()
    assert point(otel, KPI).value == pytest.approx(0.6)  # agent.kpi.current: the before value


def test_a_config_entry_names_its_evaluations() -> None:
    entry = '[[evolution]]\ntarget = "app:evolve"\nagent = "writer"\nevaluations = ["relevance"]\n'
    [target] = parse_config(tomllib.loads(entry)).targets
    assert target.options["evaluations"] == ["relevance"]
    with pytest.raises(ConfigurationError, match=r"evolution\[0\]\.evaluations.*array of strings"):
        parse_config(tomllib.loads(entry.replace('["relevance"]', "3")))


def test_a_negative_score_is_left_off_the_histogram_counted_and_still_in_the_kpi(
        otel: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A reward model's negative scores: the SDK's histogram drops a negative value and says so on the program's
    stderr; before, the histogram silently had 1 of 3 scores while the KPI had all three. A bool is no score."""
    from tests.support.telemetry import error_count

    @agent_otel.evolution("rewarded", evaluations=["reward"])
    def evolve() -> dict[str, Any]:
        for score in (-0.5, 0.5, -0.2):
            agent_otel.record_evaluation("reward", score, agent="rewarded")
        agent_otel.record_evaluation("reward", True, agent="rewarded")  # type: ignore[arg-type]
        # numpy's bool (what `prediction == target` gives an eval over arrays) is none either
        agent_otel.record_evaluation("reward", numpy.bool_(True), agent="rewarded")  # type: ignore[arg-type]
        return {}

    evolve()
    scores = point(otel, semconv.AGENT_EVALUATION_SCORE.name)
    assert (scores.count, scores.sum) == (1, 0.5)
    assert error_count(otel, "evaluation.negative_score") == 2
    assert error_count(otel, "evaluation.score") == 2
    assert otel.span("evolve rewarded").attributes[semconv.EVOLUTION_KPI_AFTER_PREFIX + "reward"] == pytest.approx(
        -0.2 / 3)
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry")]


def test_a_score_that_is_no_finite_number_is_left_off_and_counted_from_the_api_and_other_libraries(
        otel: Any) -> None:
    """NaN and infinite scores vanished uncounted, a NaN one was still written on the span's event; a score
    another library reported as text or a bool was ignored without a count; ``record_evaluation`` of a score
    ``float()`` refused lost the label and the event with it."""
    from tests.support.telemetry import error_count

    for score in (0.5, float("nan"), float("inf"), float("-inf"), "abc"):
        agent_otel.record_evaluation("relevance", score, label="graded", agent="writer")  # type: ignore[arg-type]
    tracer = foreign(otel)
    for score in (float("nan"), "0.7", True, 0.25):
        with tracer.start_as_current_span("chat judge", attributes={semconv.GEN_AI_OPERATION_NAME: "chat"}) as span:
            span.add_event("gen_ai.evaluation.result", {semconv.GEN_AI_EVALUATION_NAME: "relevance",
                                                        semconv.GEN_AI_EVALUATION_SCORE_VALUE: score})
    scores = point(otel, semconv.AGENT_EVALUATION_SCORE.name, {semconv.GEN_AI_EVALUATION_SCORE_LABEL: "graded"})
    assert (scores.count, scores.sum) == (1, 0.5)
    assert sum(p.count for p in points(otel, semconv.AGENT_EVALUATION_SCORE.name)) == 2  # 0.5 and 0.25
    assert error_count(otel, "evaluation.score") == 7  # 4 from the API, 3 from the events


def test_a_full_baseline_table_drops_its_least_recently_scored_pair_not_the_new_one(otel: Any) -> None:
    """Past 4,096 (agent, evaluation) pairs scored outside any run, the table took no new pair: the next run of an
    agent scored since then lost its KPI before, its delta and its improvement, uncounted."""
    from agent_otel._calls.evaluation import _BASELINES_LIMIT

    for index in range(_BASELINES_LIMIT):  # per-request evaluation names, none of which a run asks for
        agent_otel.record_evaluation(f"check-{index}", 0.5, agent="reviewer")
    agent_otel.record_evaluation("relevance", 0.6, agent="writer")
    with agent_otel.evolution_run("writer", evaluations="relevance"):
        agent_otel.record_evaluation("relevance", 0.8)
    assert kpis_on(otel, "evolve writer") == pytest.approx({
        "evolution.kpi.before.relevance": 0.6, "evolution.kpi.after.relevance": 0.8,
        "evolution.kpi.delta.relevance": 0.2})
    assert sum(p.value for p in points(otel, semconv.INSTRUMENTATION_ERRORS.name)
               if p.attributes[semconv.INSTRUMENTATION_STAGE] == "evaluation.baseline") == 1


def test_a_score_recorded_after_its_run_ended_is_the_next_runs_before(otel: Any) -> None:
    """An online evaluation finishing after the run returned (a task the run started): it went into the finished
    run's window, which no one reads again, and was neither that run's "after" nor the next run's "before"."""
    late: list[threading.Thread] = []
    finish = threading.Event()

    @agent_otel.evolution("writer", kpi="relevance", evaluations=["relevance"], sample_resources=False)
    def evolve(score: float) -> dict[str, Any]:
        agent_otel.record_evaluation("relevance", score)
        if not late:
            def evaluate_later() -> None:
                finish.wait(10)
                agent_otel.record_evaluation("relevance", 0.9)

            late.append(threading.Thread(target=evaluate_later))  # started in the run: its context goes with it
            late[0].start()
        return {}

    evolve(0.5)
    finish.set()
    late[0].join()
    evolve(0.6)
    assert kpis_on(otel, "evolve writer") == pytest.approx({
        "evolution.kpi.before.relevance": 0.9, "evolution.kpi.after.relevance": 0.6,
        "evolution.kpi.delta.relevance": -0.3})

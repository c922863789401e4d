"""`medgen eval`: metrics against hand-computed values, baselines, the endpoint client, the CLI end to end."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from medgen.cli import app
from medgen.inference.config import InferenceConfig
from medgen.inference.endpoint import EndpointClient, chat_messages
from schemas.prompts import prompt_messages, question_text
from schemas.taxonomy import QUESTION_DIMENSIONS
from tests.training.eval_data import API_KEY, TEST_SOURCES, bad, sources_samples
from training.evaluation.baselines import (
    ANSWER_SETS,
    expected_random_dpa,
    human_predictions,
    majority_answers,
    random_predictions,
)
from training.evaluation.metrics import (
    ALL,
    Question,
    bootstrap_ci,
    questions_from_dataset,
    score_letters,
    score_predictions,
    score_text,
)
from training.evaluation.report import compare_runs, load_results

APPEARANCE, LIGHTING, PLACEMENT, EXTENSION, OVERALL = QUESTION_DIMENSIONS


def question(id: str, dimension: str, answer: str, source_id: str = "s1") -> Question:
    images = [Image.new("RGB", (32, 32), (40 * i, 80, 120)) for i in range(5)]
    return Question(id, source_id, dimension, answer, prompt_messages(question_text(dimension)), images)


# Metrics ------------------------------------------------------------------------------------------


def test_metrics_match_hand_computed_values() -> None:
    predictions = [
        score_text("m", question("q1", APPEARANCE, "A,C"), "<think>x</think><answer>A,C</answer>"),  # exact
        score_text(
            "m", question("q2", APPEARANCE, "A,C"), "<think>x</think><answer>A</answer>"
        ),  # 1/2 recall
        score_text("m", question("q3", LIGHTING, "B"), "<answer>B,D</answer>"),  # no <think>: 1 - 1/3
        score_text("m", question("q4", LIGHTING, "B"), "I think B"),  # unparseable
        score_text("m", question("q5", OVERALL, "A,B,C,D"), "<think>y</think><answer>a, b ,c,d</answer>"),
    ]
    assert [p.parsed for p in predictions] == ["A,C", "A", "B,D", None, "A,B,C,D"]
    scores = score_predictions(predictions, resamples=200, seed=0)

    appearance, lighting = scores[APPEARANCE], scores[LIGHTING]
    assert (appearance.n, appearance.accuracy, appearance.dpa, appearance.format_rate) == (2, 0.5, 0.75, 1.0)
    assert appearance.parse_failures == 0
    assert (lighting.n, lighting.accuracy, lighting.format_rate, lighting.parse_failures) == (2, 0.0, 0.0, 1)
    assert lighting.dpa == pytest.approx((2 / 3 + 0) / 2)
    assert (scores[OVERALL].n, scores[OVERALL].accuracy, scores[OVERALL].dpa) == (1, 1.0, 1.0)
    assert (
        scores[PLACEMENT].n == 0
        and scores[PLACEMENT].accuracy is None
        and scores[PLACEMENT].accuracy_ci95 is None
    )

    everything = scores[ALL]
    assert everything.n == 5
    assert everything.accuracy == pytest.approx(2 / 5)  # over all questions, not a mean of dimensions
    assert everything.dpa == pytest.approx((1 + 0.5 + 2 / 3 + 0 + 1) / 5)
    assert everything.format_rate == pytest.approx(3 / 5)
    assert everything.parse_failures == 1
    low, high = everything.accuracy_ci95
    assert 0.0 <= low <= 0.4 <= high <= 1.0
    assert scores[OVERALL].accuracy_ci95 == (1.0, 1.0)  # one correct answer: every resample is correct
    assert score_predictions(predictions, resamples=200, seed=0) == scores  # seeded


def test_bootstrap_interval_has_the_normal_width() -> None:
    values = np.array([1.0, 0.0] * 200)  # n = 400, p = 0.5: standard error 0.025
    low, high = bootstrap_ci(values, 2000, np.random.default_rng(1))
    assert low < 0.5 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.025, abs=0.012)
    assert bootstrap_ci(values, 0, np.random.default_rng(1)) is None


def test_bootstrap_resamples_whole_sources() -> None:
    # 40 sources x 5 questions; a source's questions are all right or all wrong (p = 0.5).
    values = np.repeat([1.0, 0.0] * 20, 5)
    sources = [f"s{i // 5}" for i in range(len(values))]
    low, high = bootstrap_ci(values, 4000, np.random.default_rng(2), groups=sources)
    assert high - low == pytest.approx(2 * 1.96 * (0.25 / 40) ** 0.5, abs=0.04)  # n = 40 sources, not 200
    naive_low, naive_high = bootstrap_ci(values, 4000, np.random.default_rng(2))
    assert high - low > 1.8 * (naive_high - naive_low)
    predictions = [
        score_letters("m", f"q{i}", APPEARANCE, "A", {"A"} if v else {"B"}, source_id=s)
        for i, (v, s) in enumerate(zip(values, sources, strict=True))
    ]
    cell = score_predictions(predictions, resamples=4000, seed=2)[ALL]
    assert cell.accuracy_ci95[1] - cell.accuracy_ci95[0] == pytest.approx(high - low, abs=0.04)


def test_letters_only_predictions_have_no_format_rate() -> None:
    prediction = score_letters("b", "q", APPEARANCE, "B,C", {"B"})
    assert (prediction.correct, prediction.dpa, prediction.format_ok, prediction.raw) == (
        False,
        0.5,
        None,
        None,
    )
    assert score_predictions([prediction], resamples=0)[ALL].format_rate is None


# Baselines ----------------------------------------------------------------------------------------


def test_random_baseline_is_uniform_over_the_15_answers_with_exact_expectations() -> None:
    assert len(ANSWER_SETS) == 15 and len(set(ANSWER_SETS)) == 15 and all(ANSWER_SETS)
    # gold {A}: {A} scores 1; {A}+1 other: 2/3 (x3); {A}+2 others: 1/3 (x3); the rest 0 -> 4/15
    assert expected_random_dpa("A") == pytest.approx(4 / 15)
    # gold = all four: no false positives; size 1: 1/4 (x4), size 2: 1/2 (x6), size 3: 3/4 (x4), exact 1 -> 8/15
    assert expected_random_dpa("A,B,C,D") == pytest.approx(8 / 15)

    questions = [question(f"q{i}", APPEARANCE, "A,C") for i in range(3000)]
    predictions = random_predictions(questions, seed=3)
    assert predictions == random_predictions(questions, seed=3)
    assert all(p.parsed for p in predictions)
    assert np.mean([p.correct for p in predictions]) == pytest.approx(1 / 15, abs=0.015)


def test_majority_answer_per_dimension_with_ties_and_unseen_dimensions() -> None:
    answers = [(APPEARANCE, "A"), (APPEARANCE, "A"), (APPEARANCE, "B"), (LIGHTING, "C"), (LIGHTING, "B")]
    table = majority_answers(answers)
    assert table[APPEARANCE] == "A"
    assert table[LIGHTING] == "B"  # tie between B and C: alphabetically first
    assert (
        table[PLACEMENT] == table[OVERALL] == "A"
    )  # unseen: the most frequent answer overall (A 2, B 2 -> A)


def test_leave_one_out_reference() -> None:
    from training.evaluation.baselines import leave_one_out_reference

    assert leave_one_out_reference(["A", "A"], "B") == "A"  # the others agree: the annotator's vote is out
    assert leave_one_out_reference(["A", "C"], "B") == "B"  # a tie: the exported answer
    assert leave_one_out_reference(["", ""], "B") == "B"  # 'none' is not a possible answer
    assert leave_one_out_reference([], "B") == "B"


def test_human_baseline_is_annotator_agreement_with_the_consensus() -> None:
    from schemas.models import CandidateLabel, answer_letters, format_answer

    ok = CandidateLabel(acceptable=True)
    votes = {
        "ann1": [bad("product_warped"), ok, bad("shadow_missing"), ok],
        "ann2": [bad("product_warped"), ok, ok, ok],
        "ann3": [bad("product_warped"), bad("floating"), bad("shadow_missing"), ok],
    }
    # Consensus (the exported answer): A warped, B ok (2 of 3), C shadow missing (2 of 3), D ok.

    def voted(id: str, dimension: str, answer: str) -> Question:
        q = question(id, dimension, answer)
        q.votes = [
            {"annotator": name, "answer": format_answer(answer_letters(labels, dimension))}
            for name, labels in votes.items()
        ]
        return q

    questions = [
        voted("a", APPEARANCE, "A"),
        voted("l", LIGHTING, "C"),
        voted("o", OVERALL, "B,D"),
        question("x", APPEARANCE, "B", source_id="s2"),  # s2 has no usable annotation: no votes exported
    ]
    predictions, details = human_predictions(questions)
    scores = score_predictions(predictions, resamples=0)
    # appearance 3/3; lighting: ann2 saw no shadow problem 2/3; publishable: only ann1 says exactly B,D 1/3
    assert (scores[APPEARANCE].n, scores[APPEARANCE].accuracy) == (3, 1.0)
    assert scores[LIGHTING].accuracy == pytest.approx(2 / 3)
    assert scores[OVERALL].accuracy == pytest.approx(1 / 3)
    assert scores[ALL].accuracy == pytest.approx(6 / 9)
    # ann2 on publishable: {B,C,D} vs {B,D}: 1 - 1/2; ann3: {D}: 1/2 recall
    assert scores[OVERALL].dpa == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert (
        details["annotators"] == 3 and details["questions_covered"] == 3 and details["questions_total"] == 4
    )


# The endpoint client ------------------------------------------------------------------------------


def test_endpoint_sends_the_five_images_and_the_question(chat_server) -> None:
    q = question("q1", LIGHTING, "B")
    client = EndpointClient(
        InferenceConfig(endpoint=chat_server.url, model="vlm-x", max_new_tokens=64), api_key=API_KEY
    )
    assert list(client.generate([q])) == [(q, "<think>a</think><answer>A</answer>")]

    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert (request["model"], request["max_tokens"], request["temperature"]) == ("vlm-x", 64, 0.0)
    (message,) = request["messages"]
    assert message["role"] == "user"
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image_url", "text"] * 5 + ["text"]  # each image between its labels, in order
    images = [part["image_url"]["url"] for part in message["content"] if part["type"] == "image_url"]
    for url, expected in zip(images, q.images, strict=True):
        header, data = url.split(",", 1)
        assert header == "data:image/png;base64"
        decoded = Image.open(io.BytesIO(base64.b64decode(data)))
        assert decoded.size == (32, 32) and decoded.getpixel((0, 0)) == expected.getpixel((0, 0))
    assert question_text(LIGHTING) in message["content"][-1]["text"]
    assert message["content"][0]["text"] == "Image 1 (original):"
    assert message["content"][5]["text"] == "(end of image A)\n"


def test_endpoint_retries_server_errors_and_runs_requests_concurrently(chat_server) -> None:
    import threading
    import time

    failures = {"left": 2}
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def flaky(body):
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            fail = failures["left"] > 0
            failures["left"] -= fail
        time.sleep(0.15)
        with lock:
            in_flight["now"] -= 1
        return (503, "overloaded") if fail else (200, "<answer>B</answer>")

    chat_server.reply = flaky
    questions = [question(f"q{i}", LIGHTING, "B") for i in range(6)]
    config = InferenceConfig(endpoint=chat_server.url, model="m", concurrency=3, max_retries=3)
    answers = {q.id: text for q, text in EndpointClient(config, api_key=API_KEY).generate(questions)}
    assert [answers[q.id] for q in questions] == ["<answer>B</answer>"] * 6
    assert in_flight["max"] == 3
    assert len(chat_server.requests) == 6 + 2


def test_endpoint_switches_to_max_completion_tokens_when_asked(chat_server) -> None:
    def newer_model(body):
        if "max_tokens" in body:
            return 400, "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."
        return 200, f"<answer>{body['max_completion_tokens']}</answer>"

    chat_server.reply = newer_model
    client = EndpointClient(
        InferenceConfig(endpoint=chat_server.url, model="m", max_new_tokens=77), api_key=API_KEY
    )
    q = question("q1", LIGHTING, "B")
    assert client.complete(q.prompt, q.images) == "<answer>77</answer>"
    assert client.complete(q.prompt, q.images) == "<answer>77</answer>"
    assert len(chat_server.requests) == 3  # one refusal, then the right parameter every time


def test_endpoint_errors_are_one_line_and_never_show_the_key(chat_server, closed_port_url) -> None:
    from medgen.errors import MedgenError

    q = question("q1", LIGHTING, "B")
    with pytest.raises(MedgenError, match="cannot reach .* is the server running") as down:
        list(
            EndpointClient(InferenceConfig(endpoint=closed_port_url, model="m", max_retries=0)).generate([q])
        )
    assert "\n" not in str(down.value)

    wrong_key = "sk-wrong-key-987654321"
    with pytest.raises(MedgenError, match="OPENAI_API_KEY") as unauthorized:
        list(
            EndpointClient(InferenceConfig(endpoint=chat_server.url, model="m"), api_key=wrong_key).generate(
                [q]
            )
        )
    assert wrong_key not in str(unauthorized.value) and "401" in str(unauthorized.value)

    with pytest.raises(MedgenError, match="404"):
        list(
            EndpointClient(
                InferenceConfig(endpoint=chat_server.url + "/v2", model="m"), api_key=API_KEY
            ).generate([q])
        )


def test_chat_messages_refuse_a_prompt_that_does_not_match_the_images() -> None:
    from medgen.errors import MedgenError

    q = question("q1", LIGHTING, "B")
    with pytest.raises(MedgenError, match="more images"):
        chat_messages(q.prompt, [*q.images, q.images[0]])
    with pytest.raises(MedgenError, match="more image placeholders"):
        chat_messages(q.prompt, q.images[:4])


# The command, end to end --------------------------------------------------------------------------


@pytest.mark.slow
def test_eval_scores_the_tiny_model_and_baselines_and_resumes(
    runner, tiny_model, eval_export, tmp_path
) -> None:
    out = tmp_path / "run"
    args = [
        "eval",
        str(eval_export),
        "--model",
        str(tiny_model),
        "--max-new-tokens",
        "6",
        "--batch-size",
        "3",
    ]
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output

    results = load_results(out / "results.json")
    n = 8  # t1: appearance, lighting, publishable; t2: placement, extension, publishable; t3: appearance, publishable
    assert results.num_questions == n
    assert results.questions_per_dimension == {
        APPEARANCE: 2,
        LIGHTING: 1,
        PLACEMENT: 1,
        EXTENSION: 1,
        OVERALL: 3,
    }
    assert [m.name for m in results.models] == ["model", "random", "majority"]
    model, random, majority = results.models
    assert model.kind == "checkpoint" and model.details["decoding"] == "greedy"
    assert model.scores[ALL].n == n and model.scores[ALL].format_rate is not None

    # Majority, learned from train (r1-r3): appearance A (2 of 2), lighting B (B/C tie), placement D,
    # extension unseen -> the most frequent train answer (A), publishable A,C (three-way tie).
    assert majority.details["learned_from"] == "train split"
    assert majority.details["answers"] == {
        APPEARANCE: "A",
        LIGHTING: "B",
        PLACEMENT: "D",
        EXTENSION: "A",
        OVERALL: "A,C",
    }
    # On test only t1 appearance (A) is exact; partial credit: t2 publishable {A,C} vs {C}: 1 - 1/3,
    # t3 publishable {A,C} vs {A,C,D}: 2/3; the rest 0.
    assert majority.scores[ALL].accuracy == pytest.approx(1 / 8)
    assert majority.scores[ALL].dpa == pytest.approx((1 + 2 / 3 + 2 / 3) / 8)
    assert (majority.scores[APPEARANCE].accuracy, majority.scores[OVERALL].accuracy) == (0.5, 0.0)
    assert random.scores[ALL].expected_accuracy == pytest.approx(1 / 15)

    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * n
    record = lines[0]
    assert set(record) >= {"model", "id", "dimension", "gold", "raw", "parsed", "correct", "dpa"}
    # results.json agrees with the per-sample predictions
    for row in results.models:
        mine = [line for line in lines if line["model"] == row.name]
        assert row.scores[ALL].accuracy == pytest.approx(np.mean([line["correct"] for line in mine]))
        assert row.scores[ALL].dpa == pytest.approx(np.mean([line["dpa"] for line in mine]))

    markdown = (out / "results.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| Model |"))
    for column in (
        "Appearance deformation",
        "Lighting and shadow",
        "Placement and layout",
        "Extension rationality",
        "Overall",
    ):
        assert column in header
    assert markdown.count("| model |") >= 1 and "| majority |" in markdown
    assert Image.open(out / "results.png").size[0] > 300
    assert (out / "eval_config.json").is_file()

    # A rerun reads the cached answers instead of generating again.
    (cache,) = (out / "raw").glob("*.jsonl")
    cache.write_text(cache.read_text().replace('"raw": "', '"raw": "<think>c</think><answer>A</answer>'))
    again = runner.invoke(app, [*args, "-o", str(out)])
    assert again.exit_code == 0, again.output
    rerun = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(
        line["raw"].startswith("<think>c</think><answer>A</answer>")
        for line in rerun
        if line["model"] == "model"
    )


def test_eval_scores_an_endpoint_and_compares_runs(
    runner, chat_server, eval_export, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    args = [
        "eval",
        str(eval_export),
        "--endpoint",
        chat_server.url,
        "--model",
        "gpt-test",
        "--concurrency",
        "2",
    ]
    result = runner.invoke(app, [*args, "--bootstrap", "100", "-o", str(run_a)])
    assert result.exit_code == 0, result.output
    assert API_KEY not in result.output and API_KEY not in (run_a / "results.json").read_text()

    endpoint = load_results(run_a / "results.json").models[0]
    assert endpoint.name == "gpt-test" and endpoint.kind == "endpoint"
    # The server always answers A: exact only on t1 appearance; partial credit on t1 appearance's twin
    # t3 publishable ({A} vs {A,C,D}: 1/3) and t2 placement ({A} vs {A,B}: 1/2).
    assert endpoint.scores[ALL].accuracy == pytest.approx(1 / 8)
    assert endpoint.scores[ALL].dpa == pytest.approx((1 + 1 / 3 + 1 / 2) / 8)
    assert endpoint.scores[ALL].format_rate == 1.0
    assert len(chat_server.requests) == 8
    assert all(
        sum(p["type"] == "image_url" for p in r["messages"][0]["content"]) == 5 for r in chat_server.requests
    )

    chat_server.reply = lambda body: (200, "<think>b</think><answer>B</answer>")
    result = runner.invoke(app, [*args, "--bootstrap", "100", "-o", str(run_b)])
    assert result.exit_code == 0, result.output

    out = tmp_path / "compare"
    result = runner.invoke(
        app, ["eval", "--compare", str(run_a / "results.json"), str(run_b / "results.json"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = (out / "comparison.md").read_text()
    # Same name, different answers: told apart by run folder. Identical baseline rows: shown once.
    assert "| gpt-test (a) |" in table and "| gpt-test (b) |" in table
    rows = [
        line.split("|")[1].strip() for line in table.split("\n\n")[2].splitlines()[2:]
    ]  # the accuracy table
    assert rows == ["gpt-test (a)", "random", "majority", "gpt-test (b)"]
    assert Image.open(out / "comparison.png").format == "PNG"
    assert len(compare_runs([run_a / "results.json", run_b / "results.json"], tmp_path / "c2")) == 4


def test_eval_errors_are_one_line(
    runner, chat_server, closed_port_url, eval_export, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-the-right-one-42")
    base = ["eval", str(eval_export), "--model", "m", "--max-retries", "0", "-o", str(tmp_path / "o")]
    unauthorized = runner.invoke(app, [*base, "--endpoint", chat_server.url])
    assert unauthorized.exit_code == 1
    assert "OPENAI_API_KEY" in unauthorized.output and "sk-not-the-right-one-42" not in unauthorized.output
    assert "Traceback" not in unauthorized.output

    down = runner.invoke(app, [*base, "--endpoint", closed_port_url])
    assert down.exit_code == 1 and "is the server running" in down.output
    assert [line for line in down.output.splitlines() if "error" in line] == [down.output.splitlines()[-1]]

    no_model = runner.invoke(
        app, ["eval", str(eval_export), "--endpoint", chat_server.url, "-o", str(tmp_path / "o")]
    )
    assert no_model.exit_code == 1 and "--model NAME" in no_model.output

    missing = runner.invoke(app, ["eval", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output

    single = runner.invoke(app, ["eval", "--compare", str(tmp_path / "x.json")])
    assert single.exit_code == 1 and "at least two" in single.output


def test_eval_human_baseline_from_the_exported_votes(runner, tmp_path) -> None:
    from tests.training.eval_data import OK, TRAIN_SOURCES, write_eval_export

    t1 = TEST_SOURCES["t1"]  # appearance A, lighting C, publishable B,D
    votes = {"ann1": t1, "ann2": t1, "ann3": [bad("product_warped"), OK, OK, OK]}
    export = write_eval_export(
        tmp_path / "voted", {"train": TRAIN_SOURCES, "test": TEST_SOURCES}, votes={"t1": votes}
    )
    out = tmp_path / "human"
    result = runner.invoke(app, ["eval", str(export), "--bootstrap", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    human = load_results(out / "results.json").models[-1]
    assert human.name == "human" and human.details["questions_covered"] == 3
    # ann3 misses the shadow (lighting) and calls C publishable: 7 of 9 annotator-question pairs agree.
    assert (human.scores[ALL].n, human.scores[ALL].accuracy) == (9, pytest.approx(7 / 9))
    assert human.scores[APPEARANCE].accuracy == 1.0


def test_questions_read_classlabel_dimensions() -> None:
    import datasets

    from medgen.errors import MedgenError

    rows = [
        {
            "id": s.id,
            "source_id": s.source_id,
            "dimension": s.dimension,
            "answer": s.answer,
            "prompt": s.prompt,
            "images": [],
        }
        for s, _ in sources_samples(TEST_SOURCES)
    ]
    as_strings = datasets.Dataset.from_list(rows)
    as_labels = as_strings.cast_column("dimension", datasets.ClassLabel(names=list(QUESTION_DIMENSIONS)))
    expected = [APPEARANCE, LIGHTING, OVERALL]
    assert [q.dimension for q in questions_from_dataset(as_strings, limit=3)] == expected
    assert [q.dimension for q in questions_from_dataset(as_labels, limit=3)] == expected
    with pytest.raises(MedgenError, match="lacks column"):
        questions_from_dataset(as_strings.remove_columns("prompt"))

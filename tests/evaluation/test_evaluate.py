"""The evaluation protocol (`POST /evaluate`, `medix-reward evaluate`): its pure parts, then the real app over
loopback HTTP against the scripted judge replying per round, then the resumable CLI."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest
from medix_reward_tools.scripted_judge import Fault, known_labels

from medix_reward import cli
from medix_reward.evaluation.rules import Unparseable, combine, options_of, parse_score, rule_score, strip_reasoning
from medix_reward_client.evaluation import Report, evaluate_file, report_of, wilson
from medix_reward_client.schema import EvaluateItem

MCQ = "Which drug reverses opioid overdose?\n\nChoices:\nA. Flumazenil\nB. Naloxone\nC. Atropine\nD. Glucagon"


def item(response: str, reference: str = "Naloxone", question: str = MCQ, task: str = "medqa", **extra) -> dict:
    return {"question": question, "reference": reference, "response": response, "task": task, **extra}


def sample(**fields) -> EvaluateItem:
    return EvaluateItem.model_validate(item(**fields))


# -- pure parts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("<think>B looks right</think> Naloxone", "Naloxone"),
        ("<thinking>long</thinking>\nB", "B"),
        ("<think>a</think><think>b</think> last", "last"),
        ("no reasoning at all", "no reasoning at all"),
    ],
)
def test_reasoning_is_dropped_up_to_the_last_closing_tag(text, kept):
    assert strip_reasoning(text) == kept


@pytest.mark.parametrize(
    ("reply", "kind", "score"),
    [
        ('{"score": 1}', "binary", 1.0),
        ('```json\n{"score": 0}\n```', "binary", 0.0),
        ('<think>maybe {"score": 0}</think>\n{"score": 1}', "binary", 1.0),
        ('{"score": 3.5, "reason": "misses the effusion"}', "graded", 3.5),
    ],
)
def test_a_reply_is_one_json_object_with_a_score(reply, kind, score):
    assert parse_score(reply, kind) == score


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("score: 1", "binary"),
        ('Sure! {"score": 1}', "binary"),  # prose around the object: the reference would take it, we do not
        ('{"score": "1"}', "binary"),
        ('{"score": true}', "binary"),
        ('{"score": 2}', "binary"),
        ('{"score": 6}', "graded"),
        ('{"verdict": 1}', "binary"),
        ("<think>thinking only, cut off", "binary"),
    ],
)
def test_anything_else_is_unparseable(reply, kind):
    with pytest.raises(Unparseable):
        parse_score(reply, kind)


def test_rounds_combine_by_majority_or_mean_by_default():
    assert combine([1, 0, 0], "binary") == 0.0
    assert combine([1, 1, 0], "binary") == 1.0
    assert combine([1, 0], "binary") == 0.0  # a tie is not a majority
    assert combine([3, 4, 5], "graded") == 4.0
    assert combine([1, 0, 0], "binary", "mean") == pytest.approx(1 / 3)
    assert combine([1, 0, 1], "binary", "last") == 1.0
    assert combine([2, 4, 5], "graded", "majority") == 4.0  # graded majority: the median


def test_options_come_from_the_question_or_the_choices_field():
    assert options_of(sample(response="B")) == {"A": "Flumazenil", "B": "Naloxone", "C": "Atropine", "D": "Glucagon"}
    assert options_of(sample(response="B", question="Antidote?", choices=["Atropine", "Naloxone"])) == {
        "A": "Atropine", "B": "Naloxone",
    }  # fmt: skip
    assert options_of(sample(response="B", question="What reverses opioid overdose?")) == {}


@pytest.mark.parametrize(
    ("response", "score"),
    [
        ("B", 1.0),
        ("(b)", 1.0),
        ("Option B.", 1.0),
        ("The answer is B", 1.0),
        ("**Naloxone**", 1.0),
        ("B. Naloxone", 1.0),
        ("<answer>B</answer>", 1.0),
        ("C", 0.0),
        ("Atropine", 0.0),
        ("E", None),  # no such option
        ("B. Atropine", None),  # the letter and the text disagree
        ("Naloxone, an opioid antagonist", None),  # free text: the judge decides
        ("A or B", None),
    ],
)
def test_multiple_choice_by_rule(response, score):
    assert rule_score(sample(response=response), strip_reasoning(response)) == score


def test_the_rule_reads_a_reference_given_as_a_letter_and_gives_up_on_one_it_cannot_read():
    assert rule_score(sample(response="Naloxone", reference="B"), "Naloxone") == 1.0
    assert rule_score(sample(response="B", reference="an opioid antagonist"), "B") is None


def test_wilson_interval_stays_inside_0_1():
    low, high = wilson(5, 5)
    assert 0.5 < low < 1.0 and high == 1.0
    low, high = wilson(0, 5)
    assert low == 0.0 and 0.0 < high < 0.5


# -- the served protocol, over loopback HTTP ----------------------------------------------------------------


def sample_calls(judge) -> list:
    """The judge's calls about samples, past the calibration items' (calibration runs before a kind's samples)."""
    known = known_labels()
    return [call for call in judge.calls if (call.truth, call.answer) not in known]


def evaluate(service, items: list[dict], **options) -> httpx.Response:
    body: dict = {"items": items}
    if options:
        body["options"] = options
    return httpx.post(f"{service.url}/evaluate", json=body, timeout=30)


def test_a_judge_changing_its_mind_is_outvoted_in_one_conversation(service, judge):
    judge.evaluation_replies["Narcan, which reverses it"] = ['{"score": 1}', '{"score": 0}', '{"score": 0}']
    reply = evaluate(service, [item("<think>opioids…</think>Narcan, which reverses it")])
    assert reply.status_code == 200, reply.text
    result = reply.json()["results"][0]
    assert result["method"] == "judge" and result["score"] == 0.0 and result["error"] is None
    assert [r["score"] for r in result["rounds"]] == [1.0, 0.0, 0.0]
    # One conversation: each call carries the judge's previous replies; the response reached it without reasoning.
    assert [call.turn for call in sample_calls(judge)] == [0, 1, 2]
    assert {call.answer for call in sample_calls(judge)} == {"Narcan, which reverses it"}


def test_rounds_and_combination_are_options(service, judge):
    judge.evaluation_replies["Narcan"] = ['{"score": 1}', '{"score": 0}', '{"score": 0}']
    result = evaluate(service, [item("Narcan")], rounds=3, combine="last").json()["results"][0]
    assert result["score"] == 0.0
    judge.reset()
    judge.evaluation_replies["Narcan!"] = ['{"score": 1}', '{"score": 0}', '{"score": 0}']
    result = evaluate(service, [item("Narcan!")], rounds=1).json()["results"][0]
    assert result["score"] == 1.0 and len(sample_calls(judge)) == 1


def test_an_unparseable_round_is_asked_once_more(service, judge):
    judge.evaluation_replies["naloxone it is"] = ["I think it is correct.", '{"score": 1}']
    result = evaluate(service, [item("naloxone it is")]).json()["results"][0]
    assert result["score"] == 1.0 and result["error"] is None
    assert [r["score"] for r in result["rounds"]] == [None, 1.0, 1.0, 1.0]
    assert result["rounds"][0]["error"] == "not a JSON object"
    assert [call.turn for call in sample_calls(judge)] == [0, 1, 2, 3]


def test_twice_unparseable_fails_the_sample_with_the_reason_never_zero(service, judge):
    judge.evaluation_replies["it is naloxone"] = ['{"score": 1}', "Yes, correct.", "```\nscore=1\n```"]
    reply = evaluate(service, [item("it is naloxone"), item("Naloxone, given IV")])
    assert reply.status_code == 200
    failed, scored = reply.json()["results"]
    assert failed["score"] is None and failed["error"]["code"] == "judge_unparseable"
    assert "round 2" in failed["error"]["message"]
    assert [r["score"] for r in failed["rounds"]] == [1.0, None, None]
    assert scored["score"] == 1.0  # the other sample is unaffected
    assert reply.json()["usage"]["failed"] == 1


def test_a_thinking_block_in_the_judge_reply_is_skipped(service, judge):
    judge.evaluation_replies["naloxone"] = ['<think>It says naloxone. {"score": 0}?</think>\n{"score": 1}'] * 3
    result = evaluate(service, [item("naloxone", question="What reverses opioid overdose?")]).json()["results"][0]
    assert result["score"] == 1.0 and result["rounds"][0]["reply"].startswith("<think>")


def test_multiple_choice_answers_by_rule_save_the_judge_calls(service, judge):
    items = [item("<think>B is the antagonist</think> B"), item("C"), item("Naloxone, an antagonist")]
    body = evaluate(service, items).json()
    assert [r["method"] for r in body["results"]] == ["rule", "rule", "judge"]
    assert [r["score"] for r in body["results"]] == [1.0, 0.0, 1.0]
    usage = body["usage"]
    assert (usage["rule_decided"], usage["judged"], usage["judge_calls_saved"], usage["judge_calls"]) == (2, 1, 6, 3)
    assert len(sample_calls(judge)) == 3
    judge.reset()
    body = evaluate(service, items[:2], rule=False).json()  # the rule off: the judge sees them
    assert [r["method"] for r in body["results"]] == ["judge", "judge"] and len(sample_calls(judge)) == 6


def test_graded_tasks_average_the_rounds(service, judge):
    report = "Small left pleural effusion. No pneumothorax."
    judge.evaluation_replies["effusion"] = ['{"score": 3}', '{"score": 4}', '{"score": 4}']
    items = [
        item("effusion", reference=report, question="Write the findings.", task="mimic_cxr_report_generation"),
        item(report, reference=report, question="Summarise.", task="my_reports", kind="graded"),
    ]
    body = evaluate(service, items).json()
    first, second = body["results"]
    assert first["kind"] == "graded" and first["score"] == pytest.approx(11 / 3)
    assert second["score"] == 5.0  # the scripted judge grades by word overlap: the reference itself gets 5


def test_the_verdict_cache_is_keyed_by_the_whole_conversation(service, judge):
    items = [item("Naloxone, an antagonist"), item("Atropine, an antagonist")]
    first = evaluate(service, items).json()
    again = evaluate(service, items).json()
    assert first["usage"]["judge_calls"] == 6 and again["usage"]["judge_calls"] == 0
    assert again["usage"]["judge_cache_hits"] == 6 and all(r["cached"] for r in again["results"][0]["rounds"])
    assert [r["score"] for r in again["results"]] == [r["score"] for r in first["results"]] == [1.0, 0.0]


def test_a_judge_failing_on_one_sample_fails_that_sample(service, judge):
    judge.failing_answers["Naloxone, an antagonist"] = Fault(status=400)
    body = evaluate(service, [item("Naloxone, an antagonist"), item("Atropine, an antagonist")]).json()
    failed, scored = body["results"]
    assert failed["score"] is None and failed["error"]["code"] == "judge_rejected_input"
    assert scored["score"] == 0.0


def test_a_judge_that_is_down_fails_the_request(live_service, judge):
    service = live_service(judge={"max_retries": 0})
    judge.down = Fault(status=503)  # every call and every probe
    reply = evaluate(service, [item("Naloxone, an antagonist")])
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "judge_http_error"


def test_a_one_sample_request_whose_sample_fails_is_200_while_the_judge_is_healthy(live_service, judge):
    # As /reward: every call of a one-sample request failing is what one bad sample looks like; the judge answers
    # its probes, so the sample is null with its reason, and the request is not a 502 that clients retry.
    service = live_service(judge={"max_retries": 0})
    judge.failing_answers["Naloxone, an antagonist"] = Fault(status=500)
    reply = evaluate(service, [item("Naloxone, an antagonist")])
    assert reply.status_code == 200, reply.text
    (result,) = reply.json()["results"]
    assert result["score"] is None and result["error"]["code"] == "judge_http_error"
    assert reply.json()["usage"]["failed"] == 1


def test_an_unknown_task_without_a_kind_is_the_callers_error(service):
    reply = evaluate(service, [item("B"), item("x", task="my_benchmark")])
    assert reply.status_code == 422
    assert reply.json()["error"]["param"] == "items[1].kind" and reply.json()["error"]["code"] == "unknown_task"


def test_admission_limits_apply(live_service):
    service = live_service(limits={"max_response_chars": 10})
    reply = evaluate(service, [item("B" * 11)])
    assert reply.status_code == 422
    assert reply.json()["error"] | {"message": ""} == {
        "type": "invalid_request", "message": "", "param": "items[0].response", "code": "too_long",
    }  # fmt: skip


def test_a_task_table_file_extends_the_kinds(tmp_path, live_service):
    from medix_reward.settings import EvaluateSettings

    table = tmp_path / "tasks.json"
    table.write_text(json.dumps({"my_reports": "graded"}))
    reply = evaluate(live_service(evaluate={"tasks_file": table}), [item("x y", reference="x y z", task="my_reports")])
    assert reply.json()["results"][0]["kind"] == "graded"
    table.write_text(json.dumps({"my_reports": "ordinal"}))
    with pytest.raises(ValueError, match=r"binary\|graded"):
        EvaluateSettings(tasks_file=table)


# -- the resumable CLI --------------------------------------------------------------------------------------


def write_samples(path, samples: list[dict]) -> None:
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))


def test_evaluate_file_resumes_and_asks_failed_samples_again(service, judge, tmp_path):
    samples = [item("B"), item("C"), item("Naloxone, an antagonist"), item("Atropine, maybe"),
               item("Small effusion.", reference="Small effusion.", question="Findings?",
                    task="mimic_cxr_report_generation")]  # fmt: skip
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_samples(source, samples)
    # Refused, not cached: an unparseable reply would be cached like any reply (a greedy judge repeats it).
    judge.failing_answers["Atropine, maybe"] = Fault(status=400)
    progress = io.StringIO()
    run = asyncio.run(evaluate_file(source, out, url=service.url, chunk_size=2, progress=progress))
    assert (run.total, run.skipped, run.evaluated, run.failed, run.rule_decided) == (5, 0, 5, 1, 2)
    assert "5/5 samples" in progress.getvalue() and "samples/s, ETA" in progress.getvalue()
    report = report_of(out)
    assert report.failed == 1 and report.samples == 5
    judge.reset()  # the judge behaves now: only the failed sample is asked again
    run = asyncio.run(evaluate_file(source, out, url=service.url, chunk_size=2, progress=io.StringIO()))
    assert (run.skipped, run.evaluated, run.failed) == (4, 1, 0)
    assert {call.answer for call in sample_calls(judge)} == {"Atropine, maybe"}
    report = report_of(out)
    medqa, mimic = report.tasks
    assert (medqa.task, medqa.n, medqa.failed, medqa.score, medqa.by_rule) == ("medqa", 4, 0, 0.5, 2)
    assert (mimic.task, mimic.kind, mimic.score) == ("mimic_cxr_report_generation", "graded", 5.0)
    assert report.macro == pytest.approx((0.5 + 1.0) / 2) and report.benchmarks_present == 2


def test_the_cli_writes_table_csv_json_plot_and_exits_1_on_failure(service, judge, tmp_path, capsys):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_samples(source, [item("B"), item("Naloxone, an antagonist"), item("Atropine, maybe")])
    judge.failing_answers["Atropine, maybe"] = Fault(status=400)
    paths = {name: tmp_path / f"table.{name}" for name in ("md", "csv", "json", "png")}
    argv = ["evaluate", str(source), "-o", str(out), "--url", service.url, "--markdown", str(paths["md"]),
            "--csv", str(paths["csv"]), "--json", str(paths["json"]), "--plot", str(paths["png"])]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 1
    printed = capsys.readouterr().out
    assert "| medqa | binary | 2 | 1 | 1 | 100.0 % |" in printed and "1 scored by the multiple-choice rule" in printed
    assert json.loads(paths["json"].read_text())["failed"] == 1
    assert paths["csv"].read_text().splitlines()[1].startswith("medqa,binary,2,1,1,1.0")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    judge.reset()
    cli.main(argv)  # the failed sample again, now judged: no failure left, exit 0
    assert json.loads(paths["json"].read_text())["failed"] == 0


def test_report_of_an_empty_file_has_no_macro():
    assert Report.from_rows([]).macro is None


def test_the_sdk_evaluates_too(service):
    from medix_reward_client import RewardClient

    with RewardClient(service.url) as client:
        response = client.evaluate([item("B"), item("Naloxone, an antagonist")], {"rounds": 1})
    assert [r.method for r in response.results] == ["rule", "judge"] and response.usage.judge_calls == 1
    assert response.protocol_version == "medix-eval-v2"

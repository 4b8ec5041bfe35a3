"""An evaluation table must measure the answers, not the judge: reply instructions that prime no label,
calibration on items of known label before the samples (refused below the thresholds unless forced), user
templates sent exactly as rendered, and the same fitness check for the reward judge (`judge check`)."""

from __future__ import annotations

import hashlib
import json
import re

import httpx
import pytest
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge, known_labels

from medix_reward import cli
from medix_reward.evaluation.calibration import ITEMS, summarise
from medix_reward.evaluation.check import judge_check
from medix_reward.evaluation.evaluate import draw_order
from medix_reward.evaluation.templates import BUILTIN, check, reply_format
from medix_reward.settings import EvaluateSettings
from medix_reward_client.schema import EvaluateItem
from tests.helpers import make_settings

OPEN = {"question": "Is there a pneumothorax?", "reference": "No", "response": "No pneumothorax", "task": "rad_vqa"}
# What {reply_format} must render to, written out here rather than taken from the code under test.
BINARY_FORMATS = [
    'Reply with only a JSON object with one key, "score", whose value is 0 or 1; nothing before or after it.',
    'Reply with only a JSON object with one key, "score", whose value is 1 or 0; nothing before or after it.',
]


def evaluate(service, items: list[dict], **options) -> httpx.Response:
    body: dict = {"items": items} | ({"options": options} if options else {})
    return httpx.post(f"{service.url}/evaluate", json=body, timeout=60)


# -- reply instructions and calibration, pure ---------------------------------------------------------------


def test_reply_instructions_list_no_literal_objects_and_have_two_orders():
    for kind in ("binary", "graded"):
        first, flipped = reply_format(kind, False), reply_format(kind, True)
        assert first != flipped and '{"score": 0}' not in first + flipped
        prompt = BUILTIN.prompt(kind).render(kind=kind, flipped=False, question="q", reference="r", response="a")
        assert prompt.endswith(first) and not re.search(r'\{"score": \d\}.*\{"score": \d\}', prompt, re.DOTALL)
    assert [reply_format("binary", flipped) for flipped in (False, True)] == BINARY_FORMATS


def test_the_order_is_drawn_per_sample_stably_and_both_orders_occur():
    samples = [EvaluateItem(question=f"q{i}", reference="r", response="a", task="t") for i in range(40)]
    orders = [draw_order(s, s.response) for s in samples]
    assert orders == [draw_order(s, s.response) for s in samples] and 10 < sum(orders) < 30


def test_the_known_items_are_balanced_and_span_the_categories():
    binary, graded = ITEMS["binary"], ITEMS["graded"]
    assert 20 <= len(binary) <= 40 and 20 <= len(graded) <= 40
    assert sum(i.label for i in binary) * 2 == len(binary) and sum(i.label for i in graded) * 2 == len(graded)
    assert {i.category for i in binary} == {"paraphrase", "units and numbers", "yes/no", "laterality", "clearly wrong"}


def test_a_constant_judge_and_a_first_listed_judge_fail_a_correct_one_passes():
    items = ITEMS["binary"]
    labels = [float(i.label) for i in items]
    good = summarise("binary", items, labels, labels, 0.8, 0.2)
    assert good.passed and good.agreement == 1.0 and good.order_flips == 0.0
    constant = summarise("binary", items, [0.0] * len(items), [0.0] * len(items), 0.8, 0.2)
    assert not constant.passed and constant.agreement == 0.5 and constant.order_flips == 0.0
    assert "judge calibration" in (constant.problem or "")
    copier = summarise("binary", items, [0.0] * len(items), [1.0] * len(items), 0.8, 0.2)
    assert copier.order_flips == 1.0 and "order bias" in (copier.problem or "")
    unreadable = summarise("binary", items, [None] * len(items), None, 0.8, 0.2)  # one order: flips unmeasured
    assert unreadable.unreadable == len(items) and unreadable.agreement == 0.0 and unreadable.order_flips is None


# -- templates: checked at start ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "text", "message"),
    [
        ("binary", "Q {question} A {response} R {reference} {answer}", r"unknown placeholder \{answer\}"),
        ("binary", "Q {question} A {response}", r"missing placeholder \{reference\}"),
        ("binary", "{} {question} {reference} {response}", "not a plain name"),
        ("binary", "{question!r} {reference} {response}", "conversion or format spec"),
        ("binary", '{question} {reference} {response} {"score": 1}', "not a plain name"),
        ("binary", "{question} {reference} {response} }", "Single '}'"),
        ("recheck", "Again: {response}", r"unknown placeholder \{response\}"),
        ("binary", '{question} {reference} {response} Reply {{"score": 0}} or {{"score": 1}}', "fixed order"),
    ],
)
def test_a_template_that_is_not_fit_is_refused_with_its_reason(role, text, message):
    with pytest.raises(ValueError, match=message):
        check(role, text, "my.txt")


def test_a_bad_template_file_refuses_to_start(tmp_path):
    path = tmp_path / "binary.txt"
    path.write_text("Question {question}, truth {truth}, answer {response}")
    with pytest.raises(ValueError, match=r"binary.txt: unknown placeholder \{truth\}"):
        make_settings(["http://127.0.0.1:9/v1"], evaluate={"binary_template": path})


def test_the_reference_prompt_example_is_a_valid_template():
    from pathlib import Path

    examples = Path(__file__).parents[2] / "examples" / "evaluate"
    settings = EvaluateSettings(binary_template=examples / "medix-r1-binary.txt",
                                graded_template=examples / "medix-r1-graded.txt",
                                recheck_template=examples / "medix-r1-recheck.txt")  # fmt: skip
    templates = settings.templates()
    text = templates.binary.render(kind="binary", flipped=False, question="Q?", reference="B", response="C")
    assert text.startswith("You are a medical expert.\n\n") and '```json\n{\n"score": <score>\n}\n``` /no_think' in text
    assert templates.recheck.render(kind="binary", flipped=False) == (
        "Please reevaluate and make sure your judgment is correct."
    )


# -- the served protocol ------------------------------------------------------------------------------------


def test_a_judge_copying_the_first_listed_value_is_refused_naming_order_bias(live_service, judge):
    judge.evaluation_mode = "first-listed"
    service = live_service()
    reply = evaluate(service, [OPEN])
    assert reply.status_code == 424, reply.text
    error = reply.json()["error"]
    assert error["type"] == "judge_uncalibrated" and error["code"] == "judge_order_bias"
    assert "order bias" in error["message"] and "judge calibration: binary agreement" in error["message"]
    forced = evaluate(service, [OPEN], force=True)
    assert forced.status_code == 200
    (calibration,) = forced.json()["calibration"]
    assert calibration["passed"] is False and calibration["forced"] is True and calibration["order_flips"] == 1.0


def test_a_judge_grading_correctly_passes_calibration_and_the_response_says_so(service, judge):
    body = evaluate(service, [OPEN, {**OPEN, "task": "mimic_cxr_report_generation", "response": "No"}]).json()
    assert [(c["kind"], c["passed"], c["agreement"], c["order_flips"]) for c in body["calibration"]] == [
        ("binary", True, 1.0, 0.0), ("graded", True, 1.0, 0.0),
    ]  # fmt: skip
    assert body["usage"]["calibration_calls"] == 3 * 2 * (len(ITEMS["binary"]) + len(ITEMS["graded"]))
    again = evaluate(service, [OPEN]).json()  # calibrated once per judge and settings
    assert again["usage"]["calibration_calls"] == 0 and again["calibration"][0]["passed"]
    assert body["templates_id"] == BUILTIN.id and body["results"][0]["templates"] == BUILTIN.id


def test_a_judge_down_during_calibration_fails_the_request_and_is_calibrated_again(live_service, judge):
    service = live_service(judge={"max_retries": 0})
    judge.failing_truths["Naloxone"] = Fault(status=503)  # a calibration item's reference
    reply = evaluate(service, [OPEN])
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "judge_http_error"
    assert "calibration could not finish" in reply.json()["error"]["message"]
    judge.reset()
    body = evaluate(service, [OPEN]).json()
    assert body["calibration"][0]["passed"] and body["usage"]["calibration_calls"] > 0


def test_samples_scored_by_rule_need_no_calibration(service, judge):
    mcq = {"question": "Antidote?\n\nChoices:\nA. Atropine\nB. Naloxone", "reference": "Naloxone", "response": "B",
           "task": "medqa"}  # fmt: skip
    body = evaluate(service, [mcq]).json()
    assert body["calibration"] == [] and judge.calls == []


def test_the_cli_exits_non_zero_naming_calibration_and_writes_no_table(live_service, judge, tmp_path, capsys):
    judge.evaluation_mode = "first-listed"
    service = live_service()
    source, out, table = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "table.md"
    source.write_text(json.dumps(OPEN) + "\n")
    argv = ["evaluate", str(source), "-o", str(out), "--url", service.url, "--markdown", str(table)]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "judge calibration" in capsys.readouterr().err and not table.exists()
    cli.main([*argv, "--force"])
    text = table.read_text()
    assert text.startswith("**FORCED: the judge failed calibration") and "binary agreement 50%" in text


def test_the_cli_table_names_its_judge_templates_and_calibration(service, judge, tmp_path):
    source, out, table = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "table.json"
    source.write_text(json.dumps({**OPEN, "label": 1}) + "\n" + json.dumps({**OPEN, "response": "Yes", "label": 1}))
    cli.main(["evaluate", str(source), "-o", str(out), "--url", service.url, "--json", str(table)])
    body = json.loads(table.read_text())
    assert body["run"]["templates_id"] == BUILTIN.id and body["templates"] == [BUILTIN.id]
    assert body["run"]["templates"]["binary"].startswith("built-in medix-eval-v2 sha256:")
    assert body["run"]["calibration"][0]["passed"] and body["run"]["forced"] is False
    assert (body["judged_labelled"], body["judged_agree"]) == (2, 1)  # "Yes" against "No" is scored 0, labelled 1


# -- user templates: exactly what is sent -------------------------------------------------------------------

BINARY_TEMPLATE = "Q={question}\nREF={reference}\nANS={response}\n{reply_format} /no_think"
GRADED_TEMPLATE = 'Grade from 0 to 5.\nI={question}|R={reference}|G={response}|\nAnswer ```{{"score": <score>}}```'
RECHECK_TEMPLATE = "Look again. {reply_format}"
_TEST_LAYOUT = re.compile(r"\AQ=(.*)\nREF=(.*)\nANS=(.*)\n|\AGrade.*\nI=(.*)\|R=(.*)\|G=(.*)\|\n", re.DOTALL)


def read_test_layout(messages: list[dict[str, str]]) -> tuple[str, str, str] | None:
    match = _TEST_LAYOUT.match(messages[0]["content"]) if messages else None
    if match is None:
        return None
    groups = [g for g in match.groups() if g is not None]
    return groups[0], groups[1], groups[2]


@pytest.fixture
def template_files(tmp_path):
    files = {"binary": BINARY_TEMPLATE, "graded": GRADED_TEMPLATE, "recheck": RECHECK_TEMPLATE}
    for role, text in files.items():
        (tmp_path / f"{role}.txt").write_text(text)
    return {f"{role}_template": tmp_path / f"{role}.txt" for role in files}


def test_user_templates_are_sent_exactly_as_rendered_and_named(live_service, judge, template_files):
    judge.read_evaluation = read_test_layout
    service = live_service(evaluate=template_files)
    question, reference = "Is there a {fracture}?", 'yes "quoted" <<<x>>>'
    answer = "Yes, a\nfracture {0}"
    graded = {"question": "Summarise.", "reference": "Small effusion.", "response": "Small effusion.",
              "task": "mimic_cxr_report_generation"}  # fmt: skip
    reply = evaluate(service, [{"question": question, "reference": reference, "response": answer,
                                "task": "rad_vqa"}, graded], rounds=2)  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    sent = [b["messages"] for b in judge.bodies if answer in b["messages"][0]["content"]]
    first = f"Q={question}\nREF={reference}\nANS={answer}\n"
    assert len(sent) == 2 and sent[0][0]["content"] in [first + f + " /no_think" for f in BINARY_FORMATS]
    order = next(f for f in BINARY_FORMATS if sent[0][0]["content"].endswith(f + " /no_think"))
    assert sent[1] == [sent[0][0], {"role": "assistant", "content": '{"score": 0}'},
                       {"role": "user", "content": f"Look again. {order}"}]  # fmt: skip
    (graded_first,) = {b["messages"][0]["content"] for b in judge.bodies if "G=Small effusion." in
                       b["messages"][0]["content"]}  # fmt: skip
    assert graded_first == ('Grade from 0 to 5.\nI=Summarise.|R=Small effusion.|G=Small effusion.|\n'
                            'Answer ```{"score": <score>}```')  # fmt: skip
    assert [r["score"] for r in body["results"]] == [0.0, 5.0]  # same_meaning: no containment
    sha = {role: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for role, path in template_files.items()}
    assert body["templates"] == {role: f"{role}.txt sha256:{sha[f'{role}_template']}" for role in
                                 ("binary", "graded", "recheck")}  # fmt: skip
    binary, graded_calibration = body["calibration"]
    assert binary["order_flips"] == 0.0 and graded_calibration["order_flips"] is None  # no {reply_format}
    assert graded_calibration["passed"]
    # Calibration items went through the same templates.
    known = [b for b in judge.bodies if b["messages"][0]["content"].startswith("Q=How many kidneys are seen?")]
    assert known and all(b["messages"][0]["content"].endswith(" /no_think") for b in known)


def test_an_unreadable_reply_under_a_user_template_fails_the_sample_never_zero(live_service, judge, template_files):
    judge.read_evaluation = read_test_layout
    judge.evaluation_replies["Maybe"] = ["I would say it is right", "score = 1"]
    result = evaluate(live_service(evaluate=template_files), [{**OPEN, "response": "Maybe"}]).json()["results"][0]
    assert result["score"] is None and result["error"]["code"] == "judge_unparseable"


# -- the reward judge's check -------------------------------------------------------------------------------


def test_judge_check_pure():
    labels = [1, 0] * 10
    assert judge_check(labels, [bool(x) for x in labels], [bool(x) for x in labels]).passed
    yes_man = judge_check(labels, [True] * 20, [True] * 20)
    assert not yes_man.passed and yes_man.yes_share == 1.0 and any("YES to 100%" in p for p in yes_man.problems)
    one_sided = judge_check(labels, [bool(x) for x in labels], [not x for x in labels])
    assert one_sided.swap_changes == 1.0 and not one_sided.passed


@pytest.mark.parametrize("fit", [True, False])
def test_judge_check_cli_on_a_scripted_reward_judge(fit, capsys):
    labels = known_labels()

    def correct(answer: str, truth: str) -> bool:
        return bool(labels.get((truth, answer), labels.get((answer, truth), 0)))

    with ScriptedJudge(decide=correct if fit else (lambda answer, truth: True)) as judge:
        argv = ["judge", "check", "--judge-url", judge.url, "--judge-model", "scripted-judge"]
        if fit:
            cli.main(argv)
        else:
            with pytest.raises(SystemExit) as exit_:
                cli.main(argv)
            assert exit_.value.code == 1
        assert len(judge.calls) == 2 * len(ITEMS["binary"])
    printed = capsys.readouterr().out
    assert ("passed" in printed) is fit and ("share of YES: 100%" in printed) is not fit

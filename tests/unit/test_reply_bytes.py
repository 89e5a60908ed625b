"""api.reply_bytes writes exactly the bytes protobuf's SerializeToString writes for the
same answers, over every shape an answer takes."""

from __future__ import annotations

import itertools
import json

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from assignsvc.api.assignment_servicer import fill_result
from assignsvc.api.reply_bytes import MAX_SHARED, AssignmentWriter, field_one, varint
from assignsvc.app.assign import AssignmentResult
from assignsvc.core.model import Arm, AssignmentReason
from assignsvc.errors import NotFoundError
from assignsvc.v1 import assignment_service_pb2 as apb

ARMS = [
    Arm("control", "", 0.5),
    Arm("treatment", "Treatment \u00e9", 0.5, value='{"color": "blue", "sizes": [1, 2.5]}'),
    Arm("numeric", "n", 0.5, value="42"),
    Arm("flag", "", 0.5, value="false"),
    # a protobuf map: its entries' order differs between equal messages unless deterministic
    Arm("wide", "", 0.5, value=json.dumps({f"key{i}": [i, {"x": i}] for i in range(20)})),
]
PARTICIPANTS = ["u1", "", "\u00e9\u4e2d\U0001f600", "p" * 127, "p" * 128, "p" * 20_000]
FIRST_SEEN = [0, 999, 1000, 1_733_000_000_000, 1_733_000_000_123, 2**40 + 7]


def _answers() -> list[AssignmentResult]:
    answers = []
    for arm_index, arm in enumerate(ARMS):
        for reason in (AssignmentReason.NEW_ASSIGNMENT, AssignmentReason.STICKY, AssignmentReason.RELEASED):
            for participant, first_seen, version, persisted in itertools.product(
                PARTICIPANTS[:4], FIRST_SEEN, (0, 1, 300), (False, True)
            ):
                answers.append(
                    AssignmentResult("exp", participant, reason, version, arm, arm_index, first_seen, persisted)
                )
    for reason in (AssignmentReason.EXCLUDED_BY_COVERAGE, AssignmentReason.BLOCKED_BY_MIN_BUCKET_VERSION):
        answers.append(AssignmentResult("exp", "u2", reason, 2, persisted=True))
    answers += [AssignmentResult("exp", p, AssignmentReason.STICKY, 1, ARMS[0], 0, 5000, True) for p in PARTICIPANTS]
    return answers


def _expected(answer: AssignmentResult, local_id: str) -> apb.Assignment:
    message = apb.AssignResult()
    fill_result(message, answer)
    message.assignment.experiment_id = local_id
    return message.assignment


@pytest.mark.parametrize("local_id", ["exp", "\u00e9-" + "x" * 200])
def test_each_answer_is_the_bytes_protobuf_writes(local_id: str) -> None:
    writer = AssignmentWriter()
    for answer in _answers() * 2:  # the second pass is answered from the shared parts
        assert writer.assignment(answer, local_id) == _expected(answer, local_id).SerializeToString(
            deterministic=True
        ), answer


def test_a_changed_arm_is_not_answered_from_the_parts_of_the_old_one() -> None:
    writer = AssignmentWriter()
    before = AssignmentResult("exp", "u", AssignmentReason.STICKY, 1, Arm("a", "", 1.0, value="1"), 0, 1, True)
    after = before._replace(arm=Arm("a", "", 1.0, value="2"))
    writer.assignment(before, "exp")
    assert writer.assignment(after, "exp") == _expected(after, "exp").SerializeToString(deterministic=True)


def test_the_shared_parts_are_bounded() -> None:
    writer = AssignmentWriter()
    answers = [
        AssignmentResult(f"e{i}", "u", AssignmentReason.STICKY, 1, ARMS[0], 0, 1, True) for i in range(MAX_SHARED + 10)
    ]
    for answer in answers:
        assert writer.assignment(answer, answer.experiment_id) == _expected(
            answer, answer.experiment_id
        ).SerializeToString(deterministic=True)
    assert len(writer._shared) <= MAX_SHARED


def test_the_messages_around_an_assignment_are_the_bytes_protobuf_writes() -> None:
    """AssignResponse, BatchAssignResponse (with an error item) and StreamAssignResponse."""
    writer = AssignmentWriter()
    answers = _answers()
    failed = apb.AssignResult()
    fill_result(failed, NotFoundError("experiment", "gone"))
    assignments = [writer.assignment(answer, "exp") for answer in answers]
    expected = [_expected(answer, "exp") for answer in answers]
    batch = b"".join(
        [field_one(field_one(a)) for a in assignments] + [field_one(failed.SerializeToString(deterministic=True))]
    )
    results = [apb.AssignResult(assignment=e) for e in expected]
    assert batch == apb.BatchAssignResponse(results=[*results, failed]).SerializeToString(deterministic=True)
    for assignment, want, result in zip(assignments, expected, results, strict=True):
        assert field_one(assignment) == apb.AssignResponse(assignment=want).SerializeToString(deterministic=True)
        assert field_one(field_one(assignment)) == apb.StreamAssignResponse(result=result).SerializeToString(
            deterministic=True
        )


@pytest.mark.parametrize("value", [1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varint_as_protobuf(value: int) -> None:
    assert b"\x08" + varint(value) == Timestamp(seconds=value).SerializeToString()
    assert varint(0) == b"\x00"

import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AssignmentReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSIGNMENT_REASON_UNSPECIFIED: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_NEW_ASSIGNMENT: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_STICKY: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_EXCLUDED_BY_NAMESPACE: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_NOT_PREASSIGNED: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_FORCED: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_EXPERIMENT_NOT_STARTED: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_EXPERIMENT_ENDED: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_NOT_ELIGIBLE: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_MISSING_HASH_ATTRIBUTE: _ClassVar[AssignmentReason]
    ASSIGNMENT_REASON_RELEASED: _ClassVar[AssignmentReason]
ASSIGNMENT_REASON_UNSPECIFIED: AssignmentReason
ASSIGNMENT_REASON_NEW_ASSIGNMENT: AssignmentReason
ASSIGNMENT_REASON_STICKY: AssignmentReason
ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE: AssignmentReason
ASSIGNMENT_REASON_EXCLUDED_BY_NAMESPACE: AssignmentReason
ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING: AssignmentReason
ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION: AssignmentReason
ASSIGNMENT_REASON_NOT_PREASSIGNED: AssignmentReason
ASSIGNMENT_REASON_FORCED: AssignmentReason
ASSIGNMENT_REASON_EXPERIMENT_NOT_STARTED: AssignmentReason
ASSIGNMENT_REASON_EXPERIMENT_ENDED: AssignmentReason
ASSIGNMENT_REASON_NOT_ELIGIBLE: AssignmentReason
ASSIGNMENT_REASON_MISSING_HASH_ATTRIBUTE: AssignmentReason
ASSIGNMENT_REASON_RELEASED: AssignmentReason

class AssignedArm(_message.Message):
    __slots__ = ("id", "name", "index", "value")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    index: int
    value: _struct_pb2.Value
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., index: _Optional[int] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("experiment_id", "participant_id", "in_experiment", "arm", "reason", "first_seen_time", "bucket_version", "persisted")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    IN_EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    PERSISTED_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    participant_id: str
    in_experiment: bool
    arm: AssignedArm
    reason: AssignmentReason
    first_seen_time: _timestamp_pb2.Timestamp
    bucket_version: int
    persisted: bool
    def __init__(self, experiment_id: _Optional[str] = ..., participant_id: _Optional[str] = ..., in_experiment: _Optional[bool] = ..., arm: _Optional[_Union[AssignedArm, _Mapping]] = ..., reason: _Optional[_Union[AssignmentReason, str]] = ..., first_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket_version: _Optional[int] = ..., persisted: _Optional[bool] = ...) -> None: ...

class AssignRequest(_message.Message):
    __slots__ = ("experiment_id", "participant_id", "attributes")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    participant_id: str
    attributes: _struct_pb2.Struct
    def __init__(self, experiment_id: _Optional[str] = ..., participant_id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AssignResponse(_message.Message):
    __slots__ = ("assignment",)
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ...) -> None: ...

class GetAssignmentRequest(_message.Message):
    __slots__ = ("experiment_id", "participant_id", "attributes")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    participant_id: str
    attributes: _struct_pb2.Struct
    def __init__(self, experiment_id: _Optional[str] = ..., participant_id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetAssignmentResponse(_message.Message):
    __slots__ = ("assignment",)
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ...) -> None: ...

class BatchAssignRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[AssignRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[AssignRequest, _Mapping]]] = ...) -> None: ...

class AssignResult(_message.Message):
    __slots__ = ("assignment", "error")
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    error: _status_pb2.Status
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class BatchAssignResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AssignResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AssignResult, _Mapping]]] = ...) -> None: ...

class StreamAssignRequest(_message.Message):
    __slots__ = ("experiment_id", "participant_id", "attributes")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    participant_id: str
    attributes: _struct_pb2.Struct
    def __init__(self, experiment_id: _Optional[str] = ..., participant_id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StreamAssignResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: AssignResult
    def __init__(self, result: _Optional[_Union[AssignResult, _Mapping]] = ...) -> None: ...

import datetime

from assignsvc.v1 import experiment_service_pb2 as _experiment_service_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportAssignmentsRequest(_message.Message):
    __slots__ = ("experiment_id", "arm_id", "bucket_version", "first_seen_since", "first_seen_until", "resume_token", "chunk_size")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_SINCE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    arm_id: str
    bucket_version: int
    first_seen_since: _timestamp_pb2.Timestamp
    first_seen_until: _timestamp_pb2.Timestamp
    resume_token: str
    chunk_size: int
    def __init__(self, experiment_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., bucket_version: _Optional[int] = ..., first_seen_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_seen_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resume_token: _Optional[str] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class ExportedAssignment(_message.Message):
    __slots__ = ("participant_id", "arm_id", "bucket_version", "first_seen_time", "strata")
    class StrataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARTICIPANT_ID_FIELD_NUMBER: _ClassVar[int]
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    STRATA_FIELD_NUMBER: _ClassVar[int]
    participant_id: str
    arm_id: str
    bucket_version: int
    first_seen_time: _timestamp_pb2.Timestamp
    strata: _containers.ScalarMap[str, str]
    def __init__(self, participant_id: _Optional[str] = ..., arm_id: _Optional[str] = ..., bucket_version: _Optional[int] = ..., first_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., strata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExportAssignmentsResponse(_message.Message):
    __slots__ = ("assignments", "resume_token")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[ExportedAssignment]
    resume_token: str
    def __init__(self, assignments: _Optional[_Iterable[_Union[ExportedAssignment, _Mapping]]] = ..., resume_token: _Optional[str] = ...) -> None: ...

class PreassignParticipantsRequest(_message.Message):
    __slots__ = ("experiment_id", "groups")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    groups: _containers.RepeatedCompositeFieldContainer[ParticipantGroup]
    def __init__(self, experiment_id: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[ParticipantGroup, _Mapping]]] = ...) -> None: ...

class ParticipantGroup(_message.Message):
    __slots__ = ("strata", "participant_ids")
    class StrataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STRATA_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_IDS_FIELD_NUMBER: _ClassVar[int]
    strata: _containers.ScalarMap[str, str]
    participant_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, strata: _Optional[_Mapping[str, str]] = ..., participant_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PreassignParticipantsResponse(_message.Message):
    __slots__ = ("experiment_id", "bucket_version", "received_count", "created_count", "already_assigned_count", "strata")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ASSIGNED_COUNT_FIELD_NUMBER: _ClassVar[int]
    STRATA_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    bucket_version: int
    received_count: int
    created_count: int
    already_assigned_count: int
    strata: _containers.RepeatedCompositeFieldContainer[_experiment_service_pb2.StratumStats]
    def __init__(self, experiment_id: _Optional[str] = ..., bucket_version: _Optional[int] = ..., received_count: _Optional[int] = ..., created_count: _Optional[int] = ..., already_assigned_count: _Optional[int] = ..., strata: _Optional[_Iterable[_Union[_experiment_service_pb2.StratumStats, _Mapping]]] = ...) -> None: ...

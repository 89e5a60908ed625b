import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HashAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HASH_ALGORITHM_UNSPECIFIED: _ClassVar[HashAlgorithm]
    HASH_ALGORITHM_MURMUR3: _ClassVar[HashAlgorithm]
    HASH_ALGORITHM_GROWTHBOOK_V1: _ClassVar[HashAlgorithm]
    HASH_ALGORITHM_GROWTHBOOK_V2: _ClassVar[HashAlgorithm]

class ExperimentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_STATUS_UNSPECIFIED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_DRAFT: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_RUNNING: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_PAUSED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_STOPPED: _ClassVar[ExperimentStatus]

class ExperimentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_TYPE_UNSPECIFIED: _ClassVar[ExperimentType]
    EXPERIMENT_TYPE_ONLINE: _ClassVar[ExperimentType]
    EXPERIMENT_TYPE_PREASSIGNED: _ClassVar[ExperimentType]

class RedisFailurePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDIS_FAILURE_POLICY_UNSPECIFIED: _ClassVar[RedisFailurePolicy]
    REDIS_FAILURE_POLICY_FAIL_CLOSED: _ClassVar[RedisFailurePolicy]
    REDIS_FAILURE_POLICY_FAIL_OPEN: _ClassVar[RedisFailurePolicy]
HASH_ALGORITHM_UNSPECIFIED: HashAlgorithm
HASH_ALGORITHM_MURMUR3: HashAlgorithm
HASH_ALGORITHM_GROWTHBOOK_V1: HashAlgorithm
HASH_ALGORITHM_GROWTHBOOK_V2: HashAlgorithm
EXPERIMENT_STATUS_UNSPECIFIED: ExperimentStatus
EXPERIMENT_STATUS_DRAFT: ExperimentStatus
EXPERIMENT_STATUS_RUNNING: ExperimentStatus
EXPERIMENT_STATUS_PAUSED: ExperimentStatus
EXPERIMENT_STATUS_STOPPED: ExperimentStatus
EXPERIMENT_TYPE_UNSPECIFIED: ExperimentType
EXPERIMENT_TYPE_ONLINE: ExperimentType
EXPERIMENT_TYPE_PREASSIGNED: ExperimentType
REDIS_FAILURE_POLICY_UNSPECIFIED: RedisFailurePolicy
REDIS_FAILURE_POLICY_FAIL_CLOSED: RedisFailurePolicy
REDIS_FAILURE_POLICY_FAIL_OPEN: RedisFailurePolicy

class Arm(_message.Message):
    __slots__ = ("id", "name", "weight", "value")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    weight: float
    value: _struct_pb2.Value
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., weight: _Optional[float] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class Namespace(_message.Message):
    __slots__ = ("id", "range_start", "range_end")
    ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_START_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    id: str
    range_start: float
    range_end: float
    def __init__(self, id: _Optional[str] = ..., range_start: _Optional[float] = ..., range_end: _Optional[float] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("id", "name", "arms", "coverage", "namespace", "seed", "hash_algorithm", "bucket_version", "min_bucket_version", "status", "type", "start_time", "end_time", "create_time", "update_time", "forced_arms", "etag", "condition", "hash_attribute", "fallback_attribute", "redis_failure_policy", "phase", "phases", "released_arm_id")
    class ForcedArmsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    HASH_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FORCED_ARMS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    HASH_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    REDIS_FAILURE_POLICY_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    RELEASED_ARM_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arms: _containers.RepeatedCompositeFieldContainer[Arm]
    coverage: float
    namespace: Namespace
    seed: str
    hash_algorithm: HashAlgorithm
    bucket_version: int
    min_bucket_version: int
    status: ExperimentStatus
    type: ExperimentType
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    forced_arms: _containers.ScalarMap[str, str]
    etag: str
    condition: str
    hash_attribute: str
    fallback_attribute: str
    redis_failure_policy: RedisFailurePolicy
    phase: int
    phases: _containers.RepeatedCompositeFieldContainer[Phase]
    released_arm_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[Arm, _Mapping]]] = ..., coverage: _Optional[float] = ..., namespace: _Optional[_Union[Namespace, _Mapping]] = ..., seed: _Optional[str] = ..., hash_algorithm: _Optional[_Union[HashAlgorithm, str]] = ..., bucket_version: _Optional[int] = ..., min_bucket_version: _Optional[int] = ..., status: _Optional[_Union[ExperimentStatus, str]] = ..., type: _Optional[_Union[ExperimentType, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., forced_arms: _Optional[_Mapping[str, str]] = ..., etag: _Optional[str] = ..., condition: _Optional[str] = ..., hash_attribute: _Optional[str] = ..., fallback_attribute: _Optional[str] = ..., redis_failure_policy: _Optional[_Union[RedisFailurePolicy, str]] = ..., phase: _Optional[int] = ..., phases: _Optional[_Iterable[_Union[Phase, _Mapping]]] = ..., released_arm_id: _Optional[str] = ...) -> None: ...

class Phase(_message.Message):
    __slots__ = ("phase", "start_time", "weights", "coverage", "namespace")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    phase: int
    start_time: _timestamp_pb2.Timestamp
    weights: _containers.RepeatedScalarFieldContainer[float]
    coverage: float
    namespace: Namespace
    def __init__(self, phase: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., weights: _Optional[_Iterable[float]] = ..., coverage: _Optional[float] = ..., namespace: _Optional[_Union[Namespace, _Mapping]] = ...) -> None: ...

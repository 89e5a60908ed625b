import datetime

from assignsvc.v1 import experiment_pb2 as _experiment_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPLY_ACTION_UNSPECIFIED: _ClassVar[ApplyAction]
    APPLY_ACTION_CREATED: _ClassVar[ApplyAction]
    APPLY_ACTION_UPDATED: _ClassVar[ApplyAction]
    APPLY_ACTION_UNCHANGED: _ClassVar[ApplyAction]
APPLY_ACTION_UNSPECIFIED: ApplyAction
APPLY_ACTION_CREATED: ApplyAction
APPLY_ACTION_UPDATED: ApplyAction
APPLY_ACTION_UNCHANGED: ApplyAction

class CreateExperimentRequest(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class CreateExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class GetExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments", "next_page_token")
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[_experiment_pb2.Experiment]
    next_page_token: str
    def __init__(self, experiments: _Optional[_Iterable[_Union[_experiment_pb2.Experiment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateExperimentRequest(_message.Message):
    __slots__ = ("experiment", "update_mask")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class DeleteExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "etag")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    etag: str
    def __init__(self, experiment_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteExperimentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "etag")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    etag: str
    def __init__(self, experiment_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class StartExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class PauseExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "etag")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    etag: str
    def __init__(self, experiment_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class PauseExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class ResumeExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "etag")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    etag: str
    def __init__(self, experiment_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ResumeExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class StopExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "etag", "released_arm_id")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    RELEASED_ARM_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    etag: str
    released_arm_id: str
    def __init__(self, experiment_id: _Optional[str] = ..., etag: _Optional[str] = ..., released_arm_id: _Optional[str] = ...) -> None: ...

class StopExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class RerandomizeExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "etag", "seed", "block_previous_participants")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BLOCK_PREVIOUS_PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    etag: str
    seed: str
    block_previous_participants: bool
    def __init__(self, experiment_id: _Optional[str] = ..., etag: _Optional[str] = ..., seed: _Optional[str] = ..., block_previous_participants: _Optional[bool] = ...) -> None: ...

class RerandomizeExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class GetExperimentStatsRequest(_message.Message):
    __slots__ = ("experiment_id", "bucket_version")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    bucket_version: int
    def __init__(self, experiment_id: _Optional[str] = ..., bucket_version: _Optional[int] = ...) -> None: ...

class ArmStats(_message.Message):
    __slots__ = ("arm_id", "assignments", "weight", "observed_fraction")
    ARM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    arm_id: str
    assignments: int
    weight: float
    observed_fraction: float
    def __init__(self, arm_id: _Optional[str] = ..., assignments: _Optional[int] = ..., weight: _Optional[float] = ..., observed_fraction: _Optional[float] = ...) -> None: ...

class GetExperimentStatsResponse(_message.Message):
    __slots__ = ("experiment_id", "bucket_version", "arms", "total_assignments", "srm_p_value", "srm_warning", "strata", "phases")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    SRM_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SRM_WARNING_FIELD_NUMBER: _ClassVar[int]
    STRATA_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    bucket_version: int
    arms: _containers.RepeatedCompositeFieldContainer[ArmStats]
    total_assignments: int
    srm_p_value: float
    srm_warning: bool
    strata: _containers.RepeatedCompositeFieldContainer[StratumStats]
    phases: _containers.RepeatedCompositeFieldContainer[PhaseStats]
    def __init__(self, experiment_id: _Optional[str] = ..., bucket_version: _Optional[int] = ..., arms: _Optional[_Iterable[_Union[ArmStats, _Mapping]]] = ..., total_assignments: _Optional[int] = ..., srm_p_value: _Optional[float] = ..., srm_warning: _Optional[bool] = ..., strata: _Optional[_Iterable[_Union[StratumStats, _Mapping]]] = ..., phases: _Optional[_Iterable[_Union[PhaseStats, _Mapping]]] = ...) -> None: ...

class PhaseStats(_message.Message):
    __slots__ = ("phase", "start_time", "arms", "total_assignments", "srm_p_value", "srm_warning")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    SRM_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SRM_WARNING_FIELD_NUMBER: _ClassVar[int]
    phase: int
    start_time: _timestamp_pb2.Timestamp
    arms: _containers.RepeatedCompositeFieldContainer[ArmStats]
    total_assignments: int
    srm_p_value: float
    srm_warning: bool
    def __init__(self, phase: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., arms: _Optional[_Iterable[_Union[ArmStats, _Mapping]]] = ..., total_assignments: _Optional[int] = ..., srm_p_value: _Optional[float] = ..., srm_warning: _Optional[bool] = ...) -> None: ...

class StratumStats(_message.Message):
    __slots__ = ("attributes", "arms", "total_assignments")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.ScalarMap[str, str]
    arms: _containers.RepeatedCompositeFieldContainer[ArmStats]
    total_assignments: int
    def __init__(self, attributes: _Optional[_Mapping[str, str]] = ..., arms: _Optional[_Iterable[_Union[ArmStats, _Mapping]]] = ..., total_assignments: _Optional[int] = ...) -> None: ...

class ApplyExperimentsRequest(_message.Message):
    __slots__ = ("experiments", "dry_run")
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[_experiment_pb2.Experiment]
    dry_run: bool
    def __init__(self, experiments: _Optional[_Iterable[_Union[_experiment_pb2.Experiment, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class FieldChange(_message.Message):
    __slots__ = ("field", "old_value", "new_value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    old_value: str
    new_value: str
    def __init__(self, field: _Optional[str] = ..., old_value: _Optional[str] = ..., new_value: _Optional[str] = ...) -> None: ...

class ApplyResult(_message.Message):
    __slots__ = ("experiment_id", "action", "changes", "experiment")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    action: ApplyAction
    changes: _containers.RepeatedCompositeFieldContainer[FieldChange]
    experiment: _experiment_pb2.Experiment
    def __init__(self, experiment_id: _Optional[str] = ..., action: _Optional[_Union[ApplyAction, str]] = ..., changes: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ..., experiment: _Optional[_Union[_experiment_pb2.Experiment, _Mapping]] = ...) -> None: ...

class ApplyExperimentsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ApplyResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ApplyResult, _Mapping]]] = ...) -> None: ...

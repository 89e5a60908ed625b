import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_MODE_UNSPECIFIED: _ClassVar[UploadMode]
    UPLOAD_MODE_REPLACE: _ClassVar[UploadMode]
    UPLOAD_MODE_ADD: _ClassVar[UploadMode]
UPLOAD_MODE_UNSPECIFIED: UploadMode
UPLOAD_MODE_REPLACE: UploadMode
UPLOAD_MODE_ADD: UploadMode

class SavedGroup(_message.Message):
    __slots__ = ("id", "name", "size", "create_time", "update_time", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    size: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., size: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class CreateSavedGroupRequest(_message.Message):
    __slots__ = ("saved_group", "ids")
    SAVED_GROUP_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    saved_group: SavedGroup
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, saved_group: _Optional[_Union[SavedGroup, _Mapping]] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateSavedGroupResponse(_message.Message):
    __slots__ = ("saved_group",)
    SAVED_GROUP_FIELD_NUMBER: _ClassVar[int]
    saved_group: SavedGroup
    def __init__(self, saved_group: _Optional[_Union[SavedGroup, _Mapping]] = ...) -> None: ...

class GetSavedGroupRequest(_message.Message):
    __slots__ = ("saved_group_id",)
    SAVED_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    saved_group_id: str
    def __init__(self, saved_group_id: _Optional[str] = ...) -> None: ...

class GetSavedGroupResponse(_message.Message):
    __slots__ = ("saved_group",)
    SAVED_GROUP_FIELD_NUMBER: _ClassVar[int]
    saved_group: SavedGroup
    def __init__(self, saved_group: _Optional[_Union[SavedGroup, _Mapping]] = ...) -> None: ...

class ListSavedGroupsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSavedGroupsResponse(_message.Message):
    __slots__ = ("saved_groups", "next_page_token")
    SAVED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    saved_groups: _containers.RepeatedCompositeFieldContainer[SavedGroup]
    next_page_token: str
    def __init__(self, saved_groups: _Optional[_Iterable[_Union[SavedGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSavedGroupRequest(_message.Message):
    __slots__ = ("saved_group_id", "etag", "name", "add_ids", "remove_ids")
    SAVED_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADD_IDS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_IDS_FIELD_NUMBER: _ClassVar[int]
    saved_group_id: str
    etag: str
    name: str
    add_ids: _containers.RepeatedScalarFieldContainer[str]
    remove_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, saved_group_id: _Optional[str] = ..., etag: _Optional[str] = ..., name: _Optional[str] = ..., add_ids: _Optional[_Iterable[str]] = ..., remove_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateSavedGroupResponse(_message.Message):
    __slots__ = ("saved_group",)
    SAVED_GROUP_FIELD_NUMBER: _ClassVar[int]
    saved_group: SavedGroup
    def __init__(self, saved_group: _Optional[_Union[SavedGroup, _Mapping]] = ...) -> None: ...

class UploadSavedGroupIdsRequest(_message.Message):
    __slots__ = ("saved_group_id", "mode", "etag", "ids")
    SAVED_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    saved_group_id: str
    mode: UploadMode
    etag: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, saved_group_id: _Optional[str] = ..., mode: _Optional[_Union[UploadMode, str]] = ..., etag: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadSavedGroupIdsResponse(_message.Message):
    __slots__ = ("saved_group", "received_ids")
    SAVED_GROUP_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_IDS_FIELD_NUMBER: _ClassVar[int]
    saved_group: SavedGroup
    received_ids: int
    def __init__(self, saved_group: _Optional[_Union[SavedGroup, _Mapping]] = ..., received_ids: _Optional[int] = ...) -> None: ...

class DeleteSavedGroupRequest(_message.Message):
    __slots__ = ("saved_group_id", "etag")
    SAVED_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    saved_group_id: str
    etag: str
    def __init__(self, saved_group_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteSavedGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

"""Servicers registered with bytes in and bytes out: the one place requests are decoded.

grpc.aio would decode each request with the generated FromString before any project code
runs, before authentication too, and answer a body that does not decode with UNKNOWN and
a logged traceback. Here every method's handler takes the raw bytes: the interceptor
authenticates from metadata first, then the handler decodes once (FromString, as grpc.aio
did; protobuf's own depth limit applies) and a body that does not decode (corrupt wire
format, bad UTF-8, nesting past the limit) becomes MalformedRequestError: INVALID_ARGUMENT,
reason MALFORMED_REQUEST, a BadRequest naming the field where one is found, and one INFO
line per call. Streams: a client stream's undecodable message ends the call with that
error naming the message (`messages[i]`); in a bidirectional stream (StreamAssign) the
error takes the message's place in the stream, for the servicer to answer as that item's
own result. Each handler is built once per method at startup: a call pays one extra
function call, never a closure.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from importlib import import_module
from typing import Any, NoReturn, TypeAlias

import grpc
from google.protobuf import descriptor, message_factory
from google.protobuf.message import DecodeError, Message

from assignsvc.api.status import abort_with
from assignsvc.errors import MalformedRequestError

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Parse: TypeAlias = Callable[[bytes], Message]
FD = descriptor.FieldDescriptor
MAX_LOCATE_FIELDS = 100_000  # a huge garbage body is not walked to its end for a field name
_LENGTH_DELIMITED = 2


def add_services(
    server: grpc.aio.Server,
    *servicers: object,
    wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler] | None = None,
) -> dict[str, grpc.RpcMethodHandler]:
    """Register each servicer's methods, taking and giving bytes, under its proto service;
    each handler passed through `wrap(full method name, handler)` when given (the
    interceptor's per-call work, done inside the handler: api.interceptors). The handlers
    registered, by full method name (the HTTP edge calls the unary ones in process)."""
    registered: dict[str, grpc.RpcMethodHandler] = {}
    for servicer in servicers:
        service = service_of(type(servicer))
        handlers = {
            method.name: method_handler(method, getattr(servicer, method.name))
            for method in service.methods
            if _implemented(servicer, method.name)
        }
        if wrap is not None:
            handlers = {name: wrap(f"/{service.full_name}/{name}", handler) for name, handler in handlers.items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
        server.add_registered_method_handlers(service.full_name, handlers)
        registered.update((f"/{service.full_name}/{name}", handler) for name, handler in handlers.items())
    return registered


def service_of(servicer_type: type) -> descriptor.ServiceDescriptor:
    """The proto service a servicer class implements (its generated base class names it)."""
    for cls in servicer_type.__mro__:
        module, name = cls.__module__, cls.__name__
        if module.endswith("_pb2_grpc") and name.endswith("Servicer"):
            pb2 = import_module(module.removesuffix("_grpc"))
            service: descriptor.ServiceDescriptor = pb2.DESCRIPTOR.services_by_name[name.removesuffix("Servicer")]
            return service
    raise TypeError(f"{servicer_type.__name__} derives from no generated servicer")


def _implemented(servicer: object, name: str) -> bool:
    """Whether the servicer has its own (async) method: the generated stub only answers UNIMPLEMENTED."""
    behavior = getattr(servicer, name, None)
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


def method_handler(method: descriptor.MethodDescriptor, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """The handler of one method: raw request bytes decoded inside, the response serialized."""
    parse: Parse = message_factory.GetMessageClass(method.input_type).FromString
    serialize = _passing_bytes(message_factory.GetMessageClass(method.output_type).SerializeToString)
    name, message = method.name, method.input_type
    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(_bidi(behavior, parse, message, name), None, serialize)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(_client_stream(behavior, parse, message, name), None, serialize)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(_server_stream(behavior, parse, message, name), None, serialize)
    return grpc.unary_unary_rpc_method_handler(_unary(behavior, parse, message, name), None, serialize)


def _passing_bytes(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """A method's serializer: a message is serialized, bytes (a reply written serialized, as
    the Assign methods' in api.reply_bytes) are sent as they are."""

    def serialized(response: Any) -> bytes:
        return response if response.__class__ is bytes else serialize(response)

    return serialized


def _unary(behavior: Callable[..., Any], parse: Parse, message: descriptor.Descriptor, name: str) -> Any:
    async def decoded(raw: bytes, context: Context) -> Any:
        try:
            request = parse(raw)
        except DecodeError as error:
            await _refuse(context, name, malformed(message, raw, error))
        return await behavior(request, context)

    return decoded


def _server_stream(behavior: Callable[..., Any], parse: Parse, message: descriptor.Descriptor, name: str) -> Any:
    async def decoded(raw: bytes, context: Context) -> AsyncIterator[Any]:
        try:
            request = parse(raw)
        except DecodeError as error:
            await _refuse(context, name, malformed(message, raw, error))
        stream = behavior(request, context)
        try:
            async for response in stream:
                yield response
        finally:  # a cancelled call closes this wrapper: close the method's stream now, not at GC
            await stream.aclose()

    return decoded


def _client_stream(behavior: Callable[..., Any], parse: Parse, message: descriptor.Descriptor, name: str) -> Any:
    async def decoded(raw_messages: AsyncIterator[bytes], context: Context) -> Any:
        return await behavior(_messages(raw_messages, parse, message, name), context)

    return decoded


def _bidi(behavior: Callable[..., Any], parse: Parse, message: descriptor.Descriptor, name: str) -> Any:
    async def decoded(raw_messages: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        stream = behavior(_items(raw_messages, parse, message, name), context)
        try:
            async for response in stream:
                yield response
        finally:  # as in _server_stream
            await stream.aclose()

    return decoded


async def _messages(
    raw_messages: AsyncIterator[bytes], parse: Parse, message: descriptor.Descriptor, name: str
) -> AsyncIterator[Message]:
    """A client stream's messages; MalformedRequestError naming the first that does not decode
    (it ends the call: the servicers write nothing of an upload that fails)."""
    index = 0
    async for raw in raw_messages:
        try:
            yield parse(raw)
        except DecodeError as error:
            refused = malformed(message, raw, error, f"messages[{index}]")
            log.info("%s: %s", name, refused.message)
            raise refused from None
        index += 1


async def _items(
    raw_messages: AsyncIterator[bytes], parse: Parse, message: descriptor.Descriptor, name: str
) -> AsyncIterator[Message | MalformedRequestError]:
    """A bidirectional stream's items, a MalformedRequestError in the place of each one that
    does not decode (logged once per call: the stream goes on)."""
    logged = False
    async for raw in raw_messages:
        try:
            item: Message | MalformedRequestError = parse(raw)
        except DecodeError as error:
            item = malformed(message, raw, error)
            if not logged:
                logged = True
                log.info("%s: %s (the first undecodable item of this stream)", name, item.message)
        yield item


async def _refuse(context: Context, name: str, error: MalformedRequestError) -> NoReturn:
    log.info("%s: %s", name, error.message)
    await abort_with(context, error)
    raise AssertionError("abort_with returned")  # pragma: no cover - context.abort raises


def malformed(
    message: descriptor.Descriptor, raw: bytes, error: DecodeError, prefix: str = ""
) -> MalformedRequestError:
    """The error for bytes that did not decode as message, naming the field found at fault."""
    why = str(error).rsplit(": ", 1)[-1]  # "Error parsing message with type 'X': <why>"
    field = locate(message, raw)
    path = f"{prefix}.{field}" if prefix and field else prefix or field
    return MalformedRequestError(f"{_WHY.get(why, why)} (does not decode as {message.full_name})", path)


_WHY = {  # upb's reasons, in the caller's terms
    "Wire format was corrupt": "is not valid protobuf wire format",
    "String field had bad UTF-8": "is not valid UTF-8",
    "Exceeded upb_DecodeOptions_MaxDepth": "nests messages deeper than protobuf's limit of 100",
}


def locate(message: descriptor.Descriptor, raw: bytes) -> str:
    """The path of the first field of message whose bytes do not decode on their own ('' if
    none does: the fault is in the framing between fields). Walks the wire format, on the
    error path only; maps and well-known types (Struct, Timestamp) are named, not entered."""
    try:
        return _locate(message, raw, [0])
    except (IndexError, ValueError):
        return ""


def _locate(message: descriptor.Descriptor, raw: bytes, walked: list[int]) -> str:
    seen: dict[int, int] = {}
    position, end = 0, len(raw)
    while position < end:
        walked[0] += 1
        if walked[0] > MAX_LOCATE_FIELDS:
            return ""
        tag, position = _varint(raw, position)
        number, wire_type = tag >> 3, tag & 7
        field = message.fields_by_number.get(number)
        index = seen[number] = seen.get(number, -1) + 1
        if wire_type == 0:
            _, position = _varint(raw, position)
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(raw, position)
            chunk, position = raw[position : position + length], position + length
            if field is not None and position <= end and not _decodes(field, chunk):
                path = f"{field.name}[{index}]" if _is_list(field) else field.name
                inner_type = field.message_type
                if inner_type is None or _named_only(inner_type):
                    return path
                inner = _locate(inner_type, chunk, walked)
                return f"{path}.{inner}" if inner else path
        else:
            return ""  # groups (never in proto3) or no wire type at all: the framing is broken
        if position > end:
            return field.name if field is not None else ""
    return ""


def _decodes(field: descriptor.FieldDescriptor, chunk: bytes) -> bool:
    try:
        if field.type == FD.TYPE_STRING:
            chunk.decode()
        elif field.message_type is not None:
            message_factory.GetMessageClass(field.message_type).FromString(chunk)
    except (UnicodeDecodeError, DecodeError):
        return False
    return True


def _named_only(message: descriptor.Descriptor) -> bool:
    """A map's entry or a well-known type (Struct, Timestamp): its field is named, not entered."""
    return bool(message.GetOptions().map_entry) or message.full_name.startswith("google.protobuf.")


def _is_list(field: descriptor.FieldDescriptor) -> bool:
    """A repeated field other than a map (a map's entries are named by the map alone)."""
    entry = field.message_type
    return bool(field.is_repeated) and not (entry is not None and entry.GetOptions().map_entry)


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    """A base-128 varint at position: (value, the position after it); IndexError if cut off."""
    value = shift = 0
    while True:
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")

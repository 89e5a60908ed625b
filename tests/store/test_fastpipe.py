"""The thin pipelining client against real servers: TCP, unix socket, AUTH, TLS (through a
real TLS-terminating proxy), NOSCRIPT after a script flush, reconnects, timeouts, order."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import hiredis
import pytest
import redis
import trustme

from assignsvc.errors import StoreUnavailableError
from assignsvc.store.fastpipe import Arg, FastScriptPipe, encode_command
from assignsvc.store.redis_server import RedisServerProcess, find_server_binary
from tests.support import free_port

# Echo the key and the argument back, and count calls, so order and effect are both visible.
SCRIPT = "redis.call('INCR', KEYS[1]); return {KEYS[1], ARGV[1]}"


async def evalsha(pipe: FastScriptPipe, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]]) -> list[object]:
    """EVALSHA of the pipe's script for each (keys, args), in one write; the replies in order."""
    commands = [encode_command(b"EVALSHA", pipe.script_sha, len(keys), *keys, *args) for keys, args in calls]
    return await pipe.execute_loading_script(commands)


def run_many(url: str, calls: list[tuple[list[str], list[str | int]]], timeout_s: float = 2.0) -> list[object]:
    async def main() -> list[object]:
        pipe = FastScriptPipe(url, SCRIPT, timeout_s)
        try:
            return await evalsha(pipe, calls)
        finally:
            await pipe.close()

    return asyncio.run(main())


def test_encode_command() -> None:
    assert encode_command("SET", "k", 12, b"\x00v") == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\x00v\r\n"
    assert encode_command("ECHO", "é") == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"


class TestTransports:
    def test_tcp_many_calls_in_order(self, redis_url: str) -> None:
        calls: list[tuple[list[str], list[str | int]]] = [([f"k{i % 7}"], [i]) for i in range(2000)]
        replies = run_many(redis_url, calls)
        assert replies == [[f"k{i % 7}".encode(), str(i).encode()] for i in range(2000)]
        counts = redis.Redis.from_url(redis_url)
        assert sum(int(counts.get(f"k{i}") or 0) for i in range(7)) == 2000
        counts.close()

    def test_unix_socket_and_db(self, tmp_path: Path) -> None:
        server = RedisServerProcess(tmp_path / "r", unix_socket=tmp_path / "r.sock", appendonly=False)
        server.start()
        try:
            url = f"unix://{tmp_path / 'r.sock'}?db=3"
            assert run_many(url, [(["k"], ["v"])]) == [[b"k", b"v"]]
            check = redis.Redis(unix_socket_path=str(tmp_path / "r.sock"), db=3)
            assert check.get("k") == b"1"
            check.close()
        finally:
            server.stop()

    def test_concurrent_batches_share_one_connection(self, redis_url: str) -> None:
        async def main() -> tuple[list[list[object]], int]:
            pipe = FastScriptPipe(redis_url, SCRIPT, 2.0, name="one-connection-test")
            try:
                batches = [[([f"c{b}"], [f"{b}-{i}"]) for i in range(50)] for b in range(40)]
                results = await asyncio.gather(*(evalsha(pipe, batch) for batch in batches))
                checker = redis.Redis.from_url(redis_url)
                clients = [c for c in checker.client_list() if c.get("name") == "one-connection-test"]
                checker.close()
                return list(results), len(clients)
            finally:
                await pipe.close()

        results, clients = asyncio.run(main())
        for b, replies in enumerate(results):
            assert replies == [[f"c{b}".encode(), f"{b}-{i}".encode()] for i in range(50)]
        assert clients == 1  # 40 concurrent batches, one connection


@contextlib.contextmanager
def password_server(tmp_path: Path, *extra: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(find_server_binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, password="s3cret", username="default")
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            asyncio.run(asyncio.sleep(0.02))
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class TestAuth:
    def test_password_and_acl_user(self, tmp_path: Path) -> None:
        with password_server(tmp_path, "--requirepass", "s3cret") as port:
            assert run_many(f"redis://:s3cret@127.0.0.1:{port}", [(["k"], [1])]) == [[b"k", b"1"]]
            assert run_many(f"redis://default:s3cret@127.0.0.1:{port}", [(["k"], [2])]) == [[b"k", b"2"]]
            with pytest.raises(StoreUnavailableError, match="handshake refused"):
                run_many(f"redis://:wrong@127.0.0.1:{port}", [(["k"], [3])])
            with pytest.raises(StoreUnavailableError, match="NOAUTH"):
                run_many(f"redis://127.0.0.1:{port}", [(["k"], [3])])


@contextlib.asynccontextmanager
async def tls_proxy(target_port: int, cert_dir: Path) -> AsyncIterator[tuple[int, Path]]:
    """A real TLS endpoint forwarding to the plain Redis: what a TLS Redis looks like to a client."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_path = cert_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pump(client_r, redis_w), pump(redis_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    try:
        yield server.sockets[0].getsockname()[1], ca_path
    finally:
        server.close()


class TestTls:
    def test_rediss_verifies_the_certificate(self, redis_process: RedisServerProcess, tmp_path: Path) -> None:
        async def main() -> tuple[list[object], BaseException | None]:
            assert redis_process.port is not None
            async with tls_proxy(redis_process.port, tmp_path) as (port, ca_path):
                trusted = FastScriptPipe(f"rediss://127.0.0.1:{port}?ssl_ca_certs={ca_path}", SCRIPT, 2.0)
                untrusted = FastScriptPipe(f"rediss://127.0.0.1:{port}", SCRIPT, 2.0)  # system CAs only
                try:
                    replies = await evalsha(trusted, [(["tls"], ["ok"])])
                    refused: BaseException | None = None
                    try:
                        await evalsha(untrusted, [(["tls"], ["no"])])
                    except StoreUnavailableError as error:
                        refused = error
                    return replies, refused
                finally:
                    await trusted.close()
                    await untrusted.close()

        replies, refused = asyncio.run(main())
        assert replies == [[b"tls", b"ok"]]
        assert refused is not None and "CERTIFICATE_VERIFY_FAILED" in str(refused)


class TestFailures:
    def test_noscript_after_a_script_flush_is_retried(self, redis_url: str) -> None:
        async def main() -> list[object]:
            pipe = FastScriptPipe(redis_url, SCRIPT, 2.0)
            try:
                await evalsha(pipe, [(["a"], [1])])
                redis.Redis.from_url(redis_url).script_flush()
                return await evalsha(pipe, [(["a"], [2])])
            finally:
                await pipe.close()

        assert asyncio.run(main()) == [[b"a", b"2"]]

    def test_error_replies_are_returned_not_raised(self, redis_url: str) -> None:
        async def main() -> list[object]:
            pipe = FastScriptPipe(redis_url, "return redis.call('INCR', KEYS[1])", 2.0)
            try:
                redis.Redis.from_url(redis_url).set("text", "abc")
                return await evalsha(pipe, [(["text"], []), (["n"], [])])
            finally:
                await pipe.close()

        bad, good = asyncio.run(main())
        assert isinstance(bad, Exception) and "not an integer" in str(bad)
        assert good == 1

    def test_reconnects_after_a_restart(self, tmp_path: Path) -> None:
        server = RedisServerProcess(tmp_path / "r", port=free_port(), appendonly=False)
        server.start()

        async def main() -> tuple[object, BaseException | None, object]:
            pipe = FastScriptPipe(server.url, SCRIPT, 0.5)
            try:
                before = await evalsha(pipe, [(["k"], [1])])
                server.stop()
                down: BaseException | None = None
                try:
                    await evalsha(pipe, [(["k"], [2])])
                except StoreUnavailableError as error:
                    down = error
                server.start()
                after = await evalsha(pipe, [(["k"], [3])])
                return before, down, after
            finally:
                await pipe.close()

        try:
            before, down, after = asyncio.run(main())
        finally:
            server.stop()
        assert before == [[b"k", b"1"]] and after == [[b"k", b"3"]]
        assert isinstance(down, StoreUnavailableError)

    def test_a_server_that_never_answers_times_out(self) -> None:
        async def main() -> float:
            accepted: list[asyncio.StreamWriter] = []

            async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                accepted.append(writer)  # read, answer nothing

            server = await asyncio.start_server(silent, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            pipe = FastScriptPipe(f"redis://127.0.0.1:{port}", SCRIPT, 0.3)
            started = asyncio.get_running_loop().time()
            try:
                with pytest.raises(StoreUnavailableError):
                    await evalsha(pipe, [(["k"], [1])])
                return asyncio.get_running_loop().time() - started
            finally:
                await pipe.close()
                for writer in accepted:
                    writer.close()
                server.close()
                await server.wait_closed()

        assert asyncio.run(main()) < 2.0


class TestStalls:
    """A Redis that answers errors or stops reading: the call fails within the timeout."""

    def test_loading_is_unavailable_at_once(self) -> None:
        async def main() -> tuple[float, str]:
            accepted: list[asyncio.StreamWriter] = []

            async def loading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                accepted.append(writer)
                parser = hiredis.Reader()  # a request is a RESP array: the reply parser reads it
                while data := await reader.read(65536):
                    parser.feed(data)
                    while parser.gets() is not False:
                        writer.write(b"-LOADING Redis is loading the dataset in memory\r\n")

            server = await asyncio.start_server(loading, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            pipe = FastScriptPipe(f"redis://127.0.0.1:{port}", SCRIPT, 2.0)
            started = asyncio.get_running_loop().time()
            try:
                with pytest.raises(StoreUnavailableError) as caught:
                    await evalsha(pipe, [(["k"], [1])])
                return asyncio.get_running_loop().time() - started, str(caught.value)
            finally:
                await pipe.close()
                for writer in accepted:
                    writer.close()
                server.close()
                await server.wait_closed()

        elapsed, message = asyncio.run(main())
        assert elapsed < 0.5 and "LOADING" in message

    def test_a_stopped_reader_cannot_hold_a_big_write(self) -> None:
        """SIGSTOP stops reading: drain() of a write larger than the socket buffers is bounded too."""

        async def main() -> float:
            blocked = asyncio.Event()
            accepted: list[asyncio.StreamWriter] = []

            async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                accepted.append(writer)
                await reader.read(65536)
                writer.write(b"+OK\r\n" * 2)  # CLIENT SETNAME and SCRIPT LOAD
                await blocked.wait()  # then reads nothing more

            server = await asyncio.start_server(stall, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            pipe = FastScriptPipe(f"redis://127.0.0.1:{port}", SCRIPT, 0.3)
            started = asyncio.get_running_loop().time()
            try:
                with pytest.raises(StoreUnavailableError):
                    await evalsha(pipe, [(["k"], ["x" * 1_000_000])] * 64)
                return asyncio.get_running_loop().time() - started
            finally:
                blocked.set()
                await pipe.close()
                for writer in accepted:
                    writer.close()
                server.close()
                await server.wait_closed()

        assert asyncio.run(main()) < 1.0


class TestSubmit:
    """submit(): the batch written at once, its replies in a future, one timer per batch."""

    def test_needs_an_open_connection_then_answers_as_execute(self, redis_url: str) -> None:
        async def main() -> tuple[object, list[object], list[object]]:
            pipe = FastScriptPipe(redis_url, SCRIPT, 2.0)
            commands = [encode_command(b"EVALSHA", pipe.script_sha, 1, "s", i) for i in range(3)]
            try:
                before = pipe.submit(commands)  # nothing connected yet: the caller uses execute()
                executed = await pipe.execute_loading_script(commands)
                submitted = pipe.submit(commands)
                assert submitted is not None
                return before, executed, await submitted
            finally:
                await pipe.close()

        before, executed, submitted = asyncio.run(main())
        assert before is None
        assert executed == submitted == [[b"s", str(i).encode()] for i in range(3)]

    def test_a_batch_without_answer_fails_and_drops_the_connection(self) -> None:
        async def main() -> tuple[BaseException | None, object]:
            silent = asyncio.Event()
            accepted: list[asyncio.StreamWriter] = []

            async def answer_then_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                accepted.append(writer)
                parser, answered = hiredis.Reader(), 0
                while answered < 3 and (data := await reader.read(65536)):  # the handshake's 2, one PING
                    parser.feed(data)
                    while parser.gets() is not False:
                        writer.write(b"+OK\r\n")
                        answered += 1
                await silent.wait()

            server = await asyncio.start_server(answer_then_stall, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            pipe = FastScriptPipe(f"redis://127.0.0.1:{port}", SCRIPT, 0.2)
            failure: BaseException | None = None
            try:
                await pipe.execute([encode_command("PING")])
                submitted = pipe.submit([encode_command("PING")])
                assert submitted is not None
                try:
                    await submitted
                except StoreUnavailableError as error:
                    failure = error
                return failure, pipe.submit([encode_command("PING")])  # dropped: None until reconnected
            finally:
                silent.set()
                await pipe.close()
                for writer in accepted:
                    writer.close()
                server.close()
                await server.wait_closed()

        failure, after = asyncio.run(main())
        assert isinstance(failure, StoreUnavailableError) and "within 0.2s" in failure.message
        assert after is None

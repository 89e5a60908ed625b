"""Deployment: the production mode that refuses an embedded Redis, and the deployment
files (Dockerfile, Kubernetes manifests, docs/operations.md) checked against the code
they configure, so that a new flag, variable or port cannot drift away from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assignsvc.config import ConfigError, ServerConfig

ROOT = Path(__file__).resolve().parent.parent


class TestRequireExternalRedis:
    """ASSIGNSVC_REQUIRE_EXTERNAL_REDIS / --require-external-redis: no Redis URL, no start."""

    def test_off_by_default_so_the_embedded_redis_stays_the_default(self) -> None:
        config = ServerConfig.load({})
        assert config.require_external_redis is False and config.redis_url is None

    @pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
    def test_set_without_a_redis_url_fails_at_start(self, value: str) -> None:
        with pytest.raises(ConfigError, match=r"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS.*--redis-url"):
            ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": value})

    def test_set_with_a_redis_url_starts(self) -> None:
        env = {"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "1", "ASSIGNSVC_REDIS_URL": "redis://redis:6379/0"}
        config = ServerConfig.load(env)
        assert config.require_external_redis is True and config.redis_url == "redis://redis:6379/0"

    def test_the_flag_wins_over_the_environment(self) -> None:
        with pytest.raises(ConfigError, match="ASSIGNSVC_REQUIRE_EXTERNAL_REDIS"):
            ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "0"}, require_external_redis=True)
        assert ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "false"}).require_external_redis is False

    def test_a_value_that_is_not_a_boolean_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="ASSIGNSVC_REQUIRE_EXTERNAL_REDIS must be one of"):
            ServerConfig.load({"ASSIGNSVC_REQUIRE_EXTERNAL_REDIS": "maybe", "ASSIGNSVC_REDIS_URL": "redis://r"})

    def test_serve_exits_2_and_starts_no_redis(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        result = subprocess.run(
            [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--require-external-redis",
             "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "ASSIGNSVC_REQUIRE_EXTERNAL_REDIS is set" in result.stderr
        assert not data_dir.exists()  # the embedded Redis never started (it creates its data dir)

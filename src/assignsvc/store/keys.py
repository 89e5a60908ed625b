"""Every Redis key and channel name, in one place.

Assignment rows live in many small hashes per (experiment, bucket version), sharded
by a hash of the participant id, so Redis keeps them as compact listpacks and a
Redis Cluster spreads one experiment over many slots. The hash tag `{experiment:shard}`
puts every bucket version of a shard (and its counters) in one slot, so one Lua
script can check older versions atomically.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keyspace:
    """Key names under one prefix (one deployment may share a Redis with others)."""

    prefix: str = "as"

    @property
    def experiments(self) -> str:
        """Hash: experiment id -> JSON definition."""
        return f"{self.prefix}:{{meta}}:experiments"

    @property
    def archived_experiments(self) -> str:
        """Hash: experiment id -> JSON definition of a deleted experiment (id never reused)."""
        return f"{self.prefix}:{{meta}}:archived"

    @property
    def experiments_revision(self) -> str:
        """Integer bumped by every experiment change."""
        return f"{self.prefix}:{{meta}}:revision"

    @property
    def experiment_changes(self) -> str:
        """Pub/sub channel carrying the id of each changed experiment."""
        return f"{self.prefix}:{{meta}}:changes"

    @property
    def events(self) -> str:
        """Stream: one entry per experiment event, read by the webhook dispatcher's consumer group."""
        return f"{self.prefix}:{{meta}}:events"

    @property
    def webhook_index(self) -> str:
        """Sorted set (all scores 0, so by id): every webhook id."""
        return f"{self.prefix}:{{meta}}:webhooks"

    def webhook(self, webhook_id: str) -> str:
        """Hash: config (JSON), enabled, disabled_reason, failed_events of one webhook."""
        return f"{self.prefix}:{{meta}}:wh:{webhook_id}"

    def webhook_log(self, webhook_id: str) -> str:
        """Sorted set (scores 0, ids sort by time): the deliveries of one webhook."""
        return f"{self.prefix}:{{meta}}:wh:{webhook_id}:log"

    def delivery(self, delivery_id: str) -> str:
        """Hash: one event for one webhook: payload, state, attempts, next try, lease."""
        return f"{self.prefix}:{{meta}}:d:{delivery_id}"

    @property
    def deliveries_due(self) -> str:
        """Sorted set: pending delivery id -> when (ms) it may next be tried (or its lease ends)."""
        return f"{self.prefix}:{{meta}}:due"

    @property
    def delivery_prefix(self) -> str:
        """What delivery(id) puts before the id (for scripts that build the name)."""
        return f"{self.prefix}:{{meta}}:d:"

    def turn(self, name: str) -> str:
        """String with a TTL: some replica did the periodic job `name` this period."""
        return f"{self.prefix}:{{meta}}:turn:{name}"

    def srm_marker(self, experiment_id: str, bucket_version: int, phase: int = 0) -> str:
        """String set once the SRM warning for this experiment, bucket version and phase was
        raised (phase 0's is the key of before phases, so a warning raised then stays raised)."""
        key = f"{self.prefix}:{{meta}}:srm:{experiment_id}:{bucket_version}"
        return f"{key}:{phase}" if phase else key

    @property
    def saved_groups(self) -> str:
        """Hash: saved group id -> JSON description (name, size, revision, times)."""
        return f"{self.prefix}:{{meta}}:groups"

    def saved_group_ids(self, group_id: str) -> str:
        """Set: the ids of one saved group (same slot as the description: one atomic script)."""
        return f"{self.prefix}:{{meta}}:group:{group_id}"

    def saved_group_upload(self, token: str) -> str:
        """Set: ids of an upload in progress, swapped in by its last step (expires if abandoned)."""
        return f"{self.prefix}:{{meta}}:upload:{token}"

    def assignments(self, experiment_id: str, shard: int | str, bucket_version: int) -> str:
        """Hash: participant id -> packed (first_seen_ms, arm index). (A str shard: a template.)"""
        return f"{self.prefix}:a:{{{experiment_id}:{shard}}}:{bucket_version}"

    def arm_counts(self, experiment_id: str, shard: int | str, bucket_version: int) -> str:
        """Hash: arm index -> number of assignments stored in that shard. (A str shard: a template.)"""
        return f"{self.prefix}:n:{{{experiment_id}:{shard}}}:{bucket_version}"

    def participant_strata(self, experiment_id: str, shard: int, bucket_version: int) -> str:
        """Hash: participant id -> stratum id (PREASSIGNED experiments with strata only)."""
        return f"{self.prefix}:sp:{{{experiment_id}:{shard}}}:{bucket_version}"

    def stratum_counts(self, experiment_id: str, shard: int, bucket_version: int) -> str:
        """Hash: "stratum id:arm index" -> assignments stored in that shard (PREASSIGNED)."""
        return f"{self.prefix}:sn:{{{experiment_id}:{shard}}}:{bucket_version}"

    def strata(self, experiment_id: str) -> str:
        """Hash: stratum id -> the stratum's attributes as canonical JSON."""
        return f"{self.prefix}:sd:{{{experiment_id}}}"

    @property
    def datasources(self) -> str:
        """Hash: datasource id -> JSON description."""
        return f"{self.prefix}:{{meta}}:datasources"

    @property
    def api_keys(self) -> str:
        """Hash: API key id -> JSON record (the key's SHA-256 digest, never the key)."""
        return f"{self.prefix}:{{meta}}:api-keys"

    @property
    def api_keys_used(self) -> str:
        """Hash: API key id -> when (ms) some replica last saw it used (written at most once a minute)."""
        return f"{self.prefix}:{{meta}}:api-keys-used"

    @property
    def export_token_key(self) -> str:
        """String: the HMAC key that signs export resume tokens, shared by every replica."""
        return f"{self.prefix}:{{meta}}:export-token-key"

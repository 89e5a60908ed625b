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
    def saved_groups(self) -> str:
        """Hash: saved group id -> JSON description (name, size, revision, times)."""
        return f"{self.prefix}:{{meta}}:groups"

    def saved_group_ids(self, group_id: str) -> str:
        """Set: the ids of one saved group (same slot as the description: one atomic script)."""
        return f"{self.prefix}:{{meta}}:group:{group_id}"

    def saved_group_upload(self, token: str) -> str:
        """Set: ids of an upload in progress, swapped in by its last step (expires if abandoned)."""
        return f"{self.prefix}:{{meta}}:upload:{token}"

    def assignments(self, experiment_id: str, shard: int, bucket_version: int) -> str:
        """Hash: participant id -> packed (first_seen_ms, arm index)."""
        return f"{self.prefix}:a:{{{experiment_id}:{shard}}}:{bucket_version}"

    def arm_counts(self, experiment_id: str, shard: int, bucket_version: int) -> str:
        """Hash: arm index -> number of assignments stored in that shard."""
        return f"{self.prefix}:n:{{{experiment_id}:{shard}}}:{bucket_version}"

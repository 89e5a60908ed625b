"""Datasources as id scopes: every experiment and saved group id is qualified by its datasource.

Inside the service an object's id is `DATASOURCE/ID`; the gRPC edge qualifies what a
caller names with the caller's datasource and shows callers only the local part. So
every Redis key, every in-memory map and every metric is scoped by datasource with no
second lookup table, and two datasources may use the same id without a clash.

The default datasource keeps bare ids (`ID`): data written before datasources existed
stays where it is, and its arms do not move. An id holding the separator is qualified
even in the default datasource (`default/A/B`), and no stored id has two separators
(ids are validated on their local part), so a caller can never name another
datasource's object by writing its qualified id.
"""

from __future__ import annotations

import re

DEFAULT_DATASOURCE = "default"
SEPARATOR = "/"
DATASOURCE_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DATASOURCE_ID_DOC = "1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit"


def qualify(datasource: str, local_id: str) -> str:
    """The internal id of `local_id` as named by a caller of `datasource`."""
    if datasource == DEFAULT_DATASOURCE and SEPARATOR not in local_id:
        return local_id
    return f"{datasource}{SEPARATOR}{local_id}"


def local_part(qualified_id: str) -> str:
    """The id a caller of the object's datasource knows it by."""
    head, sep, tail = qualified_id.partition(SEPARATOR)
    return tail if sep else head


def datasource_of(qualified_id: str) -> str:
    """The datasource that owns an internal id."""
    head, sep, _ = qualified_id.partition(SEPARATOR)
    return head if sep else DEFAULT_DATASOURCE


def datasource_id_valid(datasource: str) -> bool:
    """A datasource id: lowercase, no separator, safe in keys, metadata and file names."""
    return DATASOURCE_ID_PATTERN.fullmatch(datasource) is not None

"""Row ids sort by creation time, which cursor paging relies on."""

import uuid

from control_plane.db.values import new_id


def test_ids_are_uuid7_and_sort_by_creation() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(value) for value in ids]
    assert {p.version for p in parsed} == {7}
    millis = [p.int >> 80 for p in parsed]
    assert millis == sorted(millis)

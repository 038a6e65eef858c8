"""Pairing codes are eight characters a person can type without confusing look-alikes."""

from __future__ import annotations

from control_plane.channels import codes


def test_codes_use_no_look_alikes_and_have_eight_characters() -> None:
    assert not set("0O1I") & set(codes.ALPHABET)
    assert len(set(codes.ALPHABET)) == 32
    made = {codes.new_code() for _ in range(200)}
    assert len(made) == 200
    assert all(len(code) == 8 and set(code) <= set(codes.ALPHABET) for code in made)


def test_typed_codes_are_forgiven_case_spaces_and_dashes() -> None:
    assert codes.normalize(" abcd-2345 ") == "ABCD2345"
    assert codes.normalize("ABCD 2345") == "ABCD2345"


def test_what_cannot_be_a_code_is_refused() -> None:
    assert codes.normalize("ABCD234") is None
    assert codes.normalize("ABCD23456") is None
    assert codes.normalize("ABCD0123") is None
    assert codes.normalize("") is None

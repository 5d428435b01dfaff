"""Hadoop's auth_to_local rules in the embedded servers: principals to short names, cross-realm."""

from __future__ import annotations

import pytest

from tandem_dev.embedded.auth_to_local import AuthToLocal, NoMatchingRule

CROSS_REALM = r"""
RULE:[1:$1@$0](.*@PRIMARY\.TEST)s/@.*//
RULE:[2:$1@$0](hdfs@PRIMARY\.TEST)s/.*/hdfs/
DEFAULT
"""


@pytest.mark.parametrize(
    ("principal", "user"),
    [
        ("tandem@STANDBY.TEST", "tandem"),  # DEFAULT: the server's own realm
        ("nn/host.standby@STANDBY.TEST", "nn"),
        ("tandem@PRIMARY.TEST", "tandem"),  # the trusted realm's users, by the first rule
        ("hdfs/nn1.primary@PRIMARY.TEST", "hdfs"),
    ],
)
def test_rules_map_both_realms(principal: str, user: str) -> None:
    assert AuthToLocal(CROSS_REALM, "STANDBY.TEST").short_name(principal) == user


@pytest.mark.parametrize("principal", ["bob@OTHER.TEST", "nn/host@PRIMARY.TEST", "tandem@PRIMARY.TEST.EVIL"])
def test_a_principal_no_rule_maps_is_refused(principal: str) -> None:
    with pytest.raises(NoMatchingRule, match="No rules applied"):
        AuthToLocal(CROSS_REALM, "STANDBY.TEST").short_name(principal)


def test_default_alone_knows_only_its_realm() -> None:
    rules = AuthToLocal("DEFAULT", "STANDBY.TEST")
    assert rules.short_name("alice@STANDBY.TEST") == "alice"
    with pytest.raises(NoMatchingRule):
        rules.short_name("alice@PRIMARY.TEST")


def test_a_rule_leaving_a_realm_in_the_name_is_refused() -> None:
    with pytest.raises(NoMatchingRule, match="Non-simple"):
        AuthToLocal(r"RULE:[1:$1@$0](.*)", "STANDBY.TEST").short_name("tandem@PRIMARY.TEST")


def test_global_substitution_and_java_group_references() -> None:
    rules = AuthToLocal(r"RULE:[2:$2-$1](.*)s/(\w+)\.(\w+)-/$2_$1_/g", "R")
    assert rules.short_name("svc/a.b@R") == "b_a_svc"


def test_invalid_rules_are_reported() -> None:
    with pytest.raises(ValueError, match="invalid auth_to_local rule"):
        AuthToLocal("RULE:[x:$1]", "R")

"""Business policies and the cluster topology: parsed once, validated with reasons.

A package by concern: :mod:`.types` (scalar types), :mod:`.models` (the models and their
cross-field checks), :mod:`.loader` (files, errors, cross-file warnings), :mod:`.validate` (the
command).

A policy file (``include/policies/<business>.yaml``) says which datasets of one business must
agree at every restore point, how often, how they are copied and how long points are kept.
The topology (``include/clusters.yaml``) names the clusters and the pairs that back each other up.

Loading never stops at the first problem: every error of a file is reported with the file, the
field as a dotted path (``protection_group[2].hive``) and a reason, and one bad file never stops
the other businesses from loading (:func:`load_policies` isolates files).

The only I/O here is reading those YAML files; everything else is pure.
"""

from __future__ import annotations

from tandem.policy.loader import (
    ConfigWarning,
    InvalidConfig,
    PolicySet,
    check_policy_file,
    check_topology_file,
    load_policies,
    load_policy,
    load_topology,
    policy_files,
    policy_warnings,
)
from tandem.policy.models import (
    COMPONENTS,
    ClusterConfig,
    Component,
    Consistency,
    CopyOptions,
    DatasetEntry,
    PairConfig,
    Policy,
    Retention,
    Schedule,
    Topology,
)
from tandem.policy.types import (
    FILE_FIELD,
    MIN_QUIET_PERIOD,
    ConnId,
    Duration,
    HdfsPath,
    Name,
    Rate,
    Size,
    TableName,
    UtcInstant,
    format_duration,
    format_rate,
    normalise_hdfs_path,
    parse_duration,
    parse_rate,
    parse_size,
)
from tandem.policy.validate import ValidationReport, clusters_file_for, run_policy, validate_directory

__all__ = [
    "COMPONENTS",
    "FILE_FIELD",
    "MIN_QUIET_PERIOD",
    "ClusterConfig",
    "Component",
    "ConfigWarning",
    "ConnId",
    "Consistency",
    "CopyOptions",
    "DatasetEntry",
    "Duration",
    "HdfsPath",
    "InvalidConfig",
    "Name",
    "PairConfig",
    "Policy",
    "PolicySet",
    "Rate",
    "Retention",
    "Schedule",
    "Size",
    "TableName",
    "Topology",
    "UtcInstant",
    "ValidationReport",
    "check_policy_file",
    "check_topology_file",
    "clusters_file_for",
    "format_duration",
    "format_rate",
    "load_policies",
    "load_policy",
    "load_topology",
    "normalise_hdfs_path",
    "parse_duration",
    "parse_rate",
    "parse_size",
    "policy_files",
    "policy_warnings",
    "run_policy",
    "validate_directory",
]

import pytest

from tandem.copy.distcp import DistCpJob, build_command, check_diff_preconditions
from tandem.errors import CopyError

SRC, DST = "hdfs://primary/data/billing", "hdfs://standby/data/billing"


def test_full_copy_reads_the_snapshot_and_mirrors_deletes():
    cmd = build_command(DistCpJob(SRC, DST, "tandem-billing-20261120T130000Z", bandwidth_mb=50, maps=20))
    assert cmd == [
        "hadoop",
        "distcp",
        "-update",
        "-pugpaxt",
        "-bandwidth",
        "50",
        "-m",
        "20",
        "-delete",
        f"{SRC}/.snapshot/tandem-billing-20261120T130000Z",
        DST,
    ]


def test_incremental_uses_the_snapshot_diff():
    job = DistCpJob(SRC, DST, "s2", base_snapshot="s1")
    assert build_command(job) == ["hadoop", "distcp", "-update", "-pugpaxt", "-diff", "s1", "s2", SRC, DST]


@pytest.mark.parametrize(
    ("src_snaps", "dst_snaps", "changed", "reason"),
    [
        ({"s2"}, {"s1"}, False, "source .* lacks snapshot"),
        ({"s1", "s2"}, set(), False, "target .* lacks base snapshot s1"),
        ({"s1", "s2"}, {"s1"}, True, "changed since s1"),
    ],
)
def test_diff_preconditions_name_the_reason(src_snaps, dst_snaps, changed, reason):
    with pytest.raises(CopyError, match=reason):
        check_diff_preconditions(DistCpJob(SRC, DST, "s2", "s1"), src_snaps, dst_snaps, changed)


def test_diff_preconditions_pass_when_met():
    check_diff_preconditions(DistCpJob(SRC, DST, "s2", "s1"), {"s1", "s2"}, {"s1"}, False)


def test_the_driving_cluster_configuration_comes_first():
    job = DistCpJob(SRC, DST, "s2", base_snapshot="s1", config_dir="/etc/hadoop/standby")
    assert build_command(job)[:4] == ["hadoop", "--config", "/etc/hadoop/standby", "distcp"]


def test_without_a_hadoop_command_the_engine_says_what_to_do():
    from tandem.copy.distcp import run

    with pytest.raises(CopyError, match="needs a `hadoop` command on this worker; use engine: webhdfs"):
        run(DistCpJob(SRC, DST, "s2"), hadoop="tandem-test-no-such-hadoop")

"""Sector's configuration directory: the text format and the typed settings built on it."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from sector.config import (
    ClientSettings,
    ConfigError,
    LogSettings,
    MasterSettings,
    ReplicaRules,
    SlaveSettings,
    TopologyRule,
    load,
    parse,
    parse_address,
    parse_size,
    quote,
    read_acl,
    read_run_file,
    read_topology,
    read_users,
    sector_home,
)

# --- the format ---------------------------------------------------------------------


def test_a_key_line_then_tab_indented_values() -> None:
    conf = parse("SECTOR_PORT\n\t6000\nREPLICA_NUM\n\t2\n")
    assert conf.values("SECTOR_PORT") == ["6000"]
    assert conf.integer("SECTOR_PORT", 0) == 6000
    assert conf.integer("REPLICA_NUM", 1) == 2


def test_a_key_may_hold_several_values_indented_by_tabs_or_spaces() -> None:
    conf = parse("READ_PERMISSION\n\t/a\n    /b\n\t\t/c d\n")
    assert conf.values("READ_PERMISSION") == ["/a", "/b", "/c d"]
    assert conf.first("READ_PERMISSION") == "/a"


def test_hash_starts_a_comment_at_a_line_start_or_after_a_blank() -> None:
    text = "# heading\nSECTOR_PORT # the port\n\t6000\t# default\n  # indented comment\n\n"
    conf = parse(text)
    assert conf.values("SECTOR_PORT") == ["6000"]
    assert list(conf.entries) == ["SECTOR_PORT"]


def test_a_hash_inside_a_value_is_kept() -> None:
    """Issue 9: ``PASSWORD abc#def`` was read as ``abc``."""
    conf = parse("PASSWORD\n\tabc#def\nREAD_PERMISSION\n\t/data/#tmp # a comment\n")
    assert conf.values("PASSWORD") == ["abc#def"]
    assert conf.values("READ_PERMISSION") == ["/data/#tmp"]


@pytest.mark.parametrize(
    "value",
    ["two words # and a hash", "#starts with one", "  spaced  ", 'has "quotes"', "back\\slash", ""],
)
def test_a_quoted_value_is_taken_as_written_and_quote_writes_it(value: str) -> None:
    written = quote(value)
    conf = parse(f"PASSWORD\n\t{written}   # a comment after it\n")
    assert conf.values("PASSWORD") == [value]
    assert quote("plain#word") == "plain#word"  # quoted only when it must be


def test_an_unfinished_quote_is_an_error_at_its_line() -> None:
    with pytest.raises(ConfigError, match=r":2: a quoted value must end with"):
        parse('PASSWORD\n\t"abc\n')


def test_a_key_without_values_is_present_but_empty() -> None:
    conf = parse("ALLOW_USER_WITHOUT_CERT\nLOG_LEVEL\n\t3\n")
    assert "ALLOW_USER_WITHOUT_CERT" in conf
    assert conf.values("ALLOW_USER_WITHOUT_CERT") == []
    assert conf.first("ALLOW_USER_WITHOUT_CERT", "dflt") == "dflt"


def test_missing_keys_read_as_their_defaults() -> None:
    conf = parse("")
    assert conf.values("X") == []
    assert conf.first("X") is None
    assert conf.integer("X", 7) == 7
    assert conf.number("X", 1.5) == 1.5
    assert conf.boolean("X", True) is True
    assert conf.address("X") is None


def test_each_key_remembers_the_line_it_was_written_on() -> None:
    conf = parse("# c\n\nA\n\t1\nB\n\t2\n")
    assert conf.entries["A"].line == 3
    assert conf.entries["B"].line == 5


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        pytest.param("\t6000\nSECTOR_PORT\n", 1, "before any KEY", id="value-before-key"),
        pytest.param("# c\nA\n\t1\nA\n\t2\n", 4, "given twice", id="duplicated-key"),
        pytest.param("SECTOR PORT\n\t6000\n", 1, "not a KEY", id="key-with-space"),
        pytest.param("SECTOR_PORT 6000\n", 1, "not a KEY", id="value-on-key-line"),
        pytest.param("SECTOR_PORT\t6000\n", 1, "not a KEY", id="tab-inside-key-line"),
    ],
)
def test_format_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        parse(text, "/etc/sector/master.conf")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"/etc/sector/master.conf:{line}: ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("SECTOR_PORT\n\tsix\n", "must be a number", id="not-a-number"),
        pytest.param("SECTOR_PORT\n\t60.5\n", "must be a number", id="float-for-int"),
        pytest.param("SECTOR_PORT\n\t1\n\t2\n", "exactly one value", id="two-values"),
        pytest.param("SECTOR_PORT\n", "exactly one value", id="no-value"),
        pytest.param("SECTOR_PORT\n\t-1\n", "at least 0", id="below-minimum"),
    ],
)
def test_bad_numbers_are_reported_at_their_key_line(text: str, fragment: str) -> None:
    conf = parse("# first\n" + text, "master.conf")
    with pytest.raises(ConfigError, match=fragment) as caught:
        conf.integer("SECTOR_PORT", 6000, minimum=0)
    assert str(caught.value).startswith("master.conf:2: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("TRUE", True), ("yes", True), ("1", True), ("on", True), ("FALSE", False), ("no", False)],
)
def test_booleans_accept_the_usual_spellings(value: str, expected: bool) -> None:
    assert parse(f"FLAG\n\t{value}\n").boolean("FLAG", not expected) is expected


def test_a_bad_boolean_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TRUE or FALSE"):
        parse("FLAG\n\tmaybe\n").boolean("FLAG", False)


def test_a_bad_address_is_a_config_error_at_its_line() -> None:
    with pytest.raises(ConfigError, match="MASTER_ADDRESS") as caught:
        parse("MASTER_ADDRESS\n\tlocalhost\n", "slave.conf").address("MASTER_ADDRESS")
    assert caught.value.line == 1


def test_load_reads_a_missing_optional_file_as_empty(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.conf").entries == {}


def test_load_reports_a_missing_required_file_by_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as caught:
        load(tmp_path / "master.conf", required=True)
    assert caught.value.path == str(tmp_path / "master.conf")
    assert caught.value.line is None


def test_load_reports_an_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "master.conf"
    path.write_bytes(b"SECTOR_PORT\n\t\xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load(path)


# --- addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:6000", ("127.0.0.1", 6000)),
        ("localhost:1", ("localhost", 1)),
        (" example.org:65535 ", ("example.org", 65535)),
        ("[::1]:6000", ("::1", 6000)),
        (":7000", ("127.0.0.1", 7000)),
    ],
)
def test_parse_address_splits_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("localhost", ("localhost", 6000)), ("[::1]", ("::1", 6000)), ("::1", ("::1", 6000))],
)
def test_parse_address_uses_the_default_port_when_none_is_given(
    text: str, expected: tuple[str, int]
) -> None:
    assert parse_address(text, default_port=6000) == expected


@pytest.mark.parametrize("text", ["localhost", "host:abc", "host:70000", "host:-1"])
def test_parse_address_refuses_missing_or_bad_ports(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


# --- settings from a conf directory --------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_master_settings_read_every_known_key(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write(
        conf / "master.conf",
        "SECTOR_PORT\n\t6100\nBIND_ADDRESS\n\t0.0.0.0\nDATA_DIRECTORY\n\t"
        f"{tmp_path / 'meta'}\nREPLICA_NUM\n\t3\nSLAVE_TIMEOUT\n\t12.5\n"
        "HEARTBEAT_INTERVAL\n\t0.5\nLOST_SLAVE_RETRY_TIME\n\t60\nCLIENT_TIMEOUT\n\t300\n"
        "SLAVE_MIN_DISK_SPACE\n\t10\nLOG_LEVEL\n\t5\nALLOW_USER_WITHOUT_CERT\n\tFALSE\n"
        "LOG_MAX_SIZE\n\t500K\nLOG_BACKUPS\n\t2\n"
        "HTTP_PORT\n\t6080\nHTTP_TLS\n\tTRUE\nMETRICS_AUTH\n\tyes\n",
    )
    write(conf / "slave_acl.conf", "# slaves\n10.0.0.0/8\n192.168.1.7\n")
    settings = MasterSettings.load(conf)
    assert settings.port == 6100
    assert settings.host == "0.0.0.0"
    assert settings.home == tmp_path / "meta"
    assert settings.replica_num == 3
    assert settings.slave_timeout == 12.5
    assert settings.heartbeat_interval == 0.5
    assert settings.lost_slave_retry_time == 60
    assert settings.client_timeout == 300
    assert settings.slave_min_disk_space == 10 * 1024 * 1024
    assert settings.log == LogSettings(level=5, max_size=500 * 1024, backups=2)
    assert settings.allow_user_without_cert is False
    assert (settings.http_port, settings.http_tls, settings.metrics_auth) == (6080, True, True)
    assert settings.cert == conf / "master_node.cert"
    assert settings.key == conf / "master_node.key"
    assert settings.slave_acl == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
    ]


def test_master_settings_defaults_and_explicit_home(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write(conf / "master.conf", "# nothing set\n")
    settings = MasterSettings.load(conf, home=tmp_path / "elsewhere")
    assert settings.home == tmp_path / "elsewhere"
    assert (settings.port, settings.replica_num, settings.host) == (6000, 1, "127.0.0.1")
    assert MasterSettings.load(conf).home == tmp_path / "master"
    # the dashboard is off unless HTTP_PORT is given; /metrics is open
    assert (settings.http_port, settings.http_tls, settings.metrics_auth) == (None, False, False)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("HTTP_PORT\n\t70000\n", "master.conf:1: HTTP_PORT must be a port number, at most 65535"),
        ("HTTP_PORT\n\tweb\n", "master.conf:1: HTTP_PORT must be a number, not 'web'"),
        ("HTTP_PORT\n", "master.conf:1: HTTP_PORT takes exactly one value"),
    ],
)
def test_master_settings_refuse_a_bad_http_port(tmp_path: Path, text: str, error: str) -> None:
    write(tmp_path / "master.conf", text)
    with pytest.raises(ConfigError, match=error):
        MasterSettings.load(tmp_path)


def test_master_settings_need_master_conf(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="master.conf: file not found"):
        MasterSettings.load(tmp_path)


def test_master_settings_refuse_replica_num_below_one(tmp_path: Path) -> None:
    write(tmp_path / "master.conf", "REPLICA_NUM\n\t0\n")
    with pytest.raises(ConfigError, match=r"master.conf:1: REPLICA_NUM must be at least 1"):
        MasterSettings.load(tmp_path)


def test_slave_settings_read_every_known_key(tmp_path: Path) -> None:
    write(
        tmp_path / "slave.conf",
        "MASTER_ADDRESS\n\t10.0.0.1:6001\nBIND_ADDRESS\n\t10.0.0.2\nSLAVE_PORT\n\t7000\n"
        "DATA_DIRECTORY\n\t/data/sector\nMAX_DATA_SIZE\n\t100\nLOG_LEVEL\n\t2\n",
    )
    settings = SlaveSettings.load(tmp_path)
    assert settings.master == ("10.0.0.1", 6001)
    assert (settings.host, settings.port) == ("10.0.0.2", 7000)
    assert settings.data_dir == Path("/data/sector")
    assert settings.max_data_size == 100 * 1024 * 1024
    assert settings.log == LogSettings(level=2, max_size=64 * 1024 * 1024, backups=5)
    assert settings.cert == tmp_path / "master_node.cert"


def test_slave_settings_data_dir_argument_wins_over_the_file(tmp_path: Path) -> None:
    write(tmp_path / "slave.conf", "DATA_DIRECTORY\n\t/data/sector\n")
    assert SlaveSettings.load(tmp_path, tmp_path / "d1").data_dir == tmp_path / "d1"


def test_slave_settings_require_a_data_directory(tmp_path: Path) -> None:
    write(tmp_path / "slave.conf", "MASTER_ADDRESS\n\t127.0.0.1:6000\n")
    with pytest.raises(ConfigError, match="DATA_DIRECTORY is required"):
        SlaveSettings.load(tmp_path)


def test_client_settings_read_client_conf(tmp_path: Path) -> None:
    write(
        tmp_path / "client.conf",
        "MASTER_ADDRESS\n\tmaster.example:6000\nUSERNAME\n\ttest\nPASSWORD\n\txxx\n"
        "CERTIFICATE\n\t/opt/sector/conf/master_node.cert\n",
    )
    settings = ClientSettings.load(tmp_path)
    assert settings.master == ("master.example", 6000)
    assert (settings.user, settings.password) == ("test", "xxx")
    assert settings.cert == Path("/opt/sector/conf/master_node.cert")


def test_client_settings_default_to_sector_home_and_may_be_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECTOR_HOME", str(tmp_path))
    assert sector_home() == tmp_path
    write(tmp_path / "conf" / "client.conf", "USERNAME\n\talice\n")
    assert ClientSettings.load().user == "alice"
    assert ClientSettings.load(tmp_path / "nowhere") == ClientSettings()


def test_client_settings_read_a_master_timeout_of_at_least_two_seconds(tmp_path: Path) -> None:
    assert ClientSettings.load(tmp_path).timeout is None  # the client's default then
    write(tmp_path / "client.conf", "MASTER_TIMEOUT\n\t7.5\n")
    assert ClientSettings.load(tmp_path).timeout == 7.5
    write(tmp_path / "client.conf", "MASTER_TIMEOUT\n\t1\n")
    with pytest.raises(ConfigError, match="MASTER_TIMEOUT must be at least 2"):
        ClientSettings.load(tmp_path)


def test_sector_home_defaults_to_dot_sector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECTOR_HOME", raising=False)
    assert sector_home() == Path.home() / ".sector"


def test_read_run_file_returns_the_state_or_none(tmp_path: Path) -> None:
    assert read_run_file(tmp_path) is None
    (tmp_path / "cluster.json").write_text('{"master": "127.0.0.1:6000"}')
    assert read_run_file(tmp_path) == {"master": "127.0.0.1:6000"}
    (tmp_path / "cluster.json").write_text("[1, 2]")
    assert read_run_file(tmp_path) is None
    (tmp_path / "cluster.json").write_text("{not json")
    assert read_run_file(tmp_path) is None


# --- users and ACLs ------------------------------------------------------------------


def test_read_users_reads_one_file_per_user(tmp_path: Path) -> None:
    users = tmp_path / "users"
    write(
        users / "test",
        "PASSWORD\n\txxx\nREAD_PERMISSION\n\t/\n\t/data//x/\nWRITE_PERMISSION\n\t/tmp\n"
        "EXEC_PERMISSION\n\t/bin\nACL\n\t127.0.0.1\n\t10.1.0.0/16\nQUOTA\n\t1000\n",
    )
    write(users / "root", "PASSWORD\n\tsecret\nADMIN\n\tTRUE\n")
    write(users / ".hidden", "garbage without a key\n")
    (users / "subdir").mkdir()
    found = read_users(users)
    assert sorted(found) == ["root", "test"]
    test = found["test"]
    assert test.password == "xxx"
    assert test.read == ["/", "/data/x"]
    assert test.write == ["/tmp"]
    assert test.exec == ["/bin"]
    assert test.acl == [ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("10.1.0.0/16")]
    assert test.quota == 1000
    assert test.admin is False
    assert found["root"].read == []
    assert found["root"].admin is True


def test_read_users_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert read_users(tmp_path / "users") == {}


def test_a_user_without_password_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "users" / "bob", "READ_PERMISSION\n\t/\n")
    with pytest.raises(ConfigError, match="PASSWORD is required") as caught:
        read_users(tmp_path / "users")
    assert caught.value.path == str(path)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("PASSWORD\n\tx\nREAD_PERMISSION\n\t/a\n\t/..\n", 5, "READ_PERMISSION"),
        ("PASSWORD\n\tx\nACL\n\tnot-an-ip\n", 4, "not an IP address"),
        ("PASSWORD\n\tx\nQUOTA\n\tlots\n", 3, "must be a number"),
    ],
)
def test_bad_user_entries_are_reported_at_the_line_of_the_bad_value(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path / "users" / "bob", text)
    with pytest.raises(ConfigError, match=fragment) as caught:
        read_users(tmp_path / "users")
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_read_acl_reads_bare_addresses_and_ranges(tmp_path: Path) -> None:
    path = write(tmp_path / "master_acl.conf", "# who may connect\n127.0.0.1\n\n10.0.0.0/8 # lab\n")
    assert read_acl(path) == [ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("10.0.0.0/8")]


def test_read_acl_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_acl(tmp_path / "absent.conf") == []


def test_read_acl_reports_a_bad_line_by_number(tmp_path: Path) -> None:
    path = write(tmp_path / "slave_acl.conf", "127.0.0.1\n# fine\n300.1.1.1\n")
    with pytest.raises(ConfigError) as caught:
        read_acl(path)
    assert caught.value.line == 3


# --- sizes, relative paths, topology and replica rules ------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64", 64 * 1024**2),  # a bare number is in the key's unit: MB, as Sector's sizes
        ("500K", 500 * 1024),
        ("1.5G", int(1.5 * 1024**3)),
        ("2TiB", 2 * 1024**4),
        ("100B", 100),
        ("0", 0),
    ],
)
def test_sizes_take_a_unit_or_default_to_megabytes(text: str, expected: int) -> None:
    assert parse(f"LOG_MAX_SIZE\n\t{text}\n").size("LOG_MAX_SIZE", 1) == expected
    assert parse_size(text, 1024**2) == expected


def test_a_bad_size_is_reported_at_its_line() -> None:
    with pytest.raises(ConfigError, match=r"<string>:2: MAX_DATA_SIZE: 'lots' is not a size"):
        parse("# c\nMAX_DATA_SIZE\n\tlots\n").size("MAX_DATA_SIZE", 0)


def test_relative_certificate_paths_are_taken_from_the_conf_directory(tmp_path: Path) -> None:
    write(tmp_path / "slave.conf", "DATA_DIRECTORY\n\t/d\nCERTIFICATE\n\tcerts/m.pem\n")
    write(tmp_path / "client.conf", "CERTIFICATE\n\tm.pem\n")
    assert SlaveSettings.load(tmp_path).cert == tmp_path / "certs" / "m.pem"
    assert ClientSettings.load(tmp_path).cert == tmp_path / "m.pem"


def test_topology_lines_map_address_ranges_to_locations(tmp_path: Path) -> None:
    path = write(
        tmp_path / "topology.conf", "# racks\n10.0.1.0/24\t/dc1/rack1\n10.0.2.7 /dc1/rack2\n"
    )
    assert read_topology(path) == [
        TopologyRule(ipaddress.ip_network("10.0.1.0/24"), "/dc1/rack1"),
        TopologyRule(ipaddress.ip_network("10.0.2.7/32"), "/dc1/rack2"),
    ]
    assert read_topology(tmp_path / "absent.conf") == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.0.0/8\n", "expected an IP or CIDR, then a /L1/L2 path"),
        ("10.0.0.0/33\t/r1\n", "is not an IP address or CIDR"),
        ("10.0.0.0/8\t/r1/../..\n", "'/r1/../..'"),
    ],
)
def test_a_bad_topology_line_is_reported_by_number(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = write(tmp_path / "topology.conf", "# racks\n" + text)
    with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
        read_topology(path)
    assert caught.value.line == 2


def test_replica_rules_pair_path_patterns_with_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "replica.conf",
        "REPLICATION_NUMBER\n\t/important/*\t3\n\t/tmp/*\t1\n"
        "REPLICATION_DISTANCE\n\t/\t1\nREPLICATION_LOCATION\n\t/eu/*\t/dc2\n",
    )
    rules = ReplicaRules.load(path)
    assert rules.number == [("/important/*", 3), ("/tmp/*", 1)]
    assert rules.distance == [("/", 1)]
    assert rules.location == [("/eu/*", "/dc2")]
    assert ReplicaRules.load(tmp_path / "absent.conf") == ReplicaRules()


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("REPLICATION_NUMBER\n\t/a\t2\n\t/b\tmany\n", 3, "'many' is not a whole number >= 1"),
        ("REPLICATION_NUMBER\n\t/a\t0\n", 2, "'0' is not a whole number >= 1"),
        ("REPLICATION_DISTANCE\n\tnot-a-path 1\n", 2, "is not 'PATH-PATTERN VALUE'"),
        ("REPLICATION_LOCATION\n\t/a\n", 2, "is not 'PATH-PATTERN VALUE'"),
    ],
)
def test_a_bad_replica_rule_is_reported_at_its_own_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path / "replica.conf", text)
    with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
        ReplicaRules.load(path)
    assert (caught.value.path, caught.value.line) == (str(path), line)


def test_master_settings_carry_topology_and_replica_rules(tmp_path: Path) -> None:
    write(tmp_path / "master.conf", "")
    write(tmp_path / "topology.conf", "127.0.0.0/8 /local\n")
    write(tmp_path / "replica.conf", "REPLICATION_NUMBER\n\t/x/*\t2\n")
    settings = MasterSettings.load(tmp_path)
    assert [rule.location for rule in settings.topology] == ["/local"]
    assert settings.replica_rules.number == [("/x/*", 2)]

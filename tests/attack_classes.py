"""Issue 9's closing table: every attack class tried, with how many cases of each.

``python -m tests.attack_classes`` runs the tests of each class once (real
clusters, a few minutes) with Hypothesis' statistics on, and prints a Markdown
table: the tests, the Hypothesis examples that ran (the fuzzing properties
that run inside one test are counted from their settings, for the default
run and for ``-m slow``), and the attacker's actions a single test repeats
(wrong passwords, connections, users x operations x paths), taken from the
tests' own constants.

The classes are named here, each by the tests that try it; a pattern that no
longer matches a test stops the script, so the table cannot quietly drift.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.integration import test_logins, test_permissions, test_robustness
from tests.master.web import test_guard

ROOT = Path(__file__).resolve().parents[1]

#: class -> the tests that try it: (file under tests/, a regex on the test's name)
CLASSES: dict[str, list[tuple[str, str]]] = {
    "posing as a slave: register/join without a member's certificate or a join token, "
    "another cluster's certificate, another member's id, a member's id with another key": [
        ("integration/test_membership.py", r"register|join|certificate|no_member|refused"),
        ("test_certs.py", r"join_token|request|no_certificate|asks_again"),
    ],
    "posing as the master or a slave to a client (a member's certificate, a foreign one)": [
        ("integration/test_membership.py", r"client_does_not_take"),
        ("integration/test_encryption.py", r"only_a_slave|checks_its_issuer"),
    ],
    "forged, tampered and misused tokens (signature, another slave's key, purpose, expiry)": [
        ("integration/test_security.py", r"TestSlaveTokens"),
        ("integration/test_membership.py", r"key_of_its_own"),
        ("protocol/test_tokens.py", r"."),
    ],
    "replayed tokens, receipts and orders (a write token twice, a receipt of another lease, "
    "an order again or altered)": [
        ("integration/test_single_use.py", r"."),
        ("master/test_files.py", r"receipt|aborted_lease|never_reused"),
    ],
    "password guessing and user enumeration (Sector logins and the dashboard's form)": [
        ("integration/test_logins.py", r"."),
        ("master/test_throttle.py", r"."),
        ("master/web/test_app.py", r"wrong_password"),
        ("integration/test_security.py", r"master_acl|password_hashes"),
    ],
    "exhausting memory, descriptors or patience (huge headers, 2,000 idle connections "
    "under a low fd limit, silent, half-sent and surplus connections, dashboard included)": [
        ("integration/test_exhaustion.py", r"."),
        ("master/web/test_guard.py", r"."),
        ("protocol/test_framing.py", r"limit|oversize|max_frame|wrong_size"),
    ],
    "reaching beyond one's rights (users x operations x paths, write roots)": [
        ("integration/test_permissions.py", r"."),
    ],
    "hostile paths and names (.., NUL, over-long, deep, control characters)": [
        ("protocol/test_paths.py", r"refuse|invalid|too_long|max_name|normalize"),
        ("integration/test_security.py", r"deepest_path"),
        ("cli/test_files.py", r"control_characters"),
    ],
    "owning more than the quota": [
        ("integration/test_quotas.py", r"."),
    ],
    "reading file bytes on the wire (SECURE, DATA_ENCRYPTION)": [
        ("integration/test_encryption.py", r"secure|data_encryption"),
    ],
    "malformed and arbitrary frames to live servers and to the decoders (fuzzing)": [
        ("integration/test_robustness.py", r"."),
        ("integration/test_security.py", r"TestMisbehavingClients|TestProtocolVersions"),
        ("protocol/test_messages.py", r"arbitrary|broken|corrupted"),
        ("protocol/test_framing.py", r"fuzz|random_splits"),
        ("protocol/test_data.py", r"any_bytes"),
    ],
    "dashboard sessions and forms (CSRF, open redirects, cookies, what users may see)": [
        (
            "master/web/test_app.py",
            r"form_from_elsewhere|only_a_path|session_cookie|logout|"
            r"asks_for_a_login|without_their_addresses|recent_warnings|tls_and_metrics",
        ),
        ("master/web/test_auth.py", r"."),
    ],
    "configuration values and what sysinfo tells whom (# in values, slave addresses)": [
        ("test_config.py", r"hash|quoted"),
        ("cli/test_admin.py", r"administrators_only"),
    ],
}

#: Fuzzing properties run inside one test: (class, property, examples by default, -m slow).
_quick, _slow = test_robustness.QUICK, test_robustness.THOROUGH
INNER_PROPERTIES = [
    ("a client session's frames to the master", _quick, _slow),
    ("greetings of an unidentified peer", max(10, _quick // 6), max(10, _slow // 6)),
    ("a registered member's reports", max(10, _quick // 2), max(10, _slow // 2)),
    ("a member's registrations", max(10, _quick // 4), max(10, _slow // 4)),
    ("a data connection's frames to a slave", _quick, _slow),
]

#: Attacker actions a single test repeats: (test name, what, how many).
REPEATED = [
    ("test_200_wrong_passwords", "wrong passwords at once", test_logins.ATTACKS),
    ("test_the_dashboard_shares", "guesses, half through the form", 40),
    ("test_a_slave_at_its_descriptor_limit", "idle connections (1,024 fds)", 2000),
    ("test_a_master_at_its_descriptor_limit", "idle connections (256 fds)", 2000),
    ("test_headers_announcing_64_mib", "64 MiB headers", 30),
    (
        "test_silent_and_surplus_connections",
        "dashboard connections",
        test_guard.MAX_CONNECTIONS + 10,
    ),
    (
        "test_every_user_operation_and_path",
        "user x operation x path cases",
        (len(test_permissions.USERS) + 1)
        * len(test_permissions.OPERATIONS)
        * len(test_permissions.PATHS),
    ),
]


def selected() -> dict[str, list[str]]:
    """class -> the node ids of its tests (collected by pytest, parametrizations apart)."""
    files = sorted({file for tests in CLASSES.values() for file, _ in tests})
    listing = _pytest("--collect-only", "-q", *(f"tests/{file}" for file in files))
    ids = [line.strip() for line in listing.splitlines() if "::" in line]
    chosen: dict[str, list[str]] = {}
    for name, tests in CLASSES.items():
        chosen[name] = []
        for file, pattern in tests:
            found = [i for i in ids if i.startswith(f"tests/{file}::") and re.search(pattern, i)]
            if not found:
                raise SystemExit(f"no test in tests/{file} matches {pattern!r}: update CLASSES")
            chosen[name] += found
    return chosen


def examples_run(ids: list[str]) -> dict[str, int]:
    """Run the tests once; node id -> the Hypothesis examples that passed in it."""
    output = _pytest("-q", "--hypothesis-show-statistics", *sorted(set(ids)))
    examples: dict[str, int] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("tests/") and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1]
        found = re.search(r"(\d+) passing", line)
        if found and current is not None:
            examples[current] = examples.get(current, 0) + int(found[1])
    if not re.search(r"\d+ passed", output) or re.search(r"\d+ failed", output):
        raise SystemExit(output[-3000:])
    return examples


def _pytest(*args: str) -> str:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return done.stdout + done.stderr


def table() -> str:
    chosen = selected()
    examples = examples_run([i for ids in chosen.values() for i in ids])
    lines = [
        "| attack class | tests | Hypothesis examples (default run) | repeated in one test |",
        "|---|---|---|---|",
    ]
    for name, ids in chosen.items():
        fuzzed = sum(examples.get(i, 0) for i in ids)
        inner = ""
        if any("test_robustness" in i for i in ids):
            fuzzed += sum(quick for _, quick, _ in INNER_PROPERTIES)
            inner = f" (+ properties inside tests, {_slow}-example runs with `-m slow`)"
        repeated = "; ".join(
            f"{count:,} {what}" for test, what, count in REPEATED if any(test in i for i in ids)
        )
        lines.append(f"| {name} | {len(ids)} | {fuzzed:,}{inner} | {repeated or '-'} |")
    lines.append("")
    lines.append("Fuzzing properties inside tests (examples by default / with `-m slow`):")
    lines += [f"- {what}: {quick} / {slow}" for what, quick, slow in INNER_PROPERTIES]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())

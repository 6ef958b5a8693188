"""A private Postfix instance for end-to-end tests: Debian's ``postfix`` package (installed
by ``make test``), started from its own configuration directory with its own queue under
the test's tmp folder, listening on a random loopback port, with DNS off and every
destination routed by ``transport_maps`` to the test's local servers. Parallel runs do
not meet: each has its own ports, queue, pid and lock files. Stopped (and, failing that,
killed) when the context ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"

#: The services this instance needs; chroot off (column 5), so nothing is copied into the queue.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not Path(POSTFIX).exists():
        return f"{POSTFIX} is missing (make test installs Debian's postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its daemons switch to the postfix user)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostfixInstance:
    config_dir: Path
    queue_dir: Path
    port: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text("utf-8", "replace") if self.log_file.exists() else ""

    def flush(self) -> None:
        """Ask the queue manager to try every deferred message now."""
        subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-f"], check=False, capture_output=True, timeout=30)

    def queue_empty(self) -> bool:
        out = subprocess.run(
            [POSTQUEUE, "-c", str(self.config_dir), "-j"], check=False, capture_output=True, text=True, timeout=30
        )
        return out.returncode == 0 and not out.stdout.strip()

    def master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None


def _main_cf(root: Path, port: int, transports: Mapping[str, str], hostname: str) -> str:
    table = ", ".join(f"{{ {domain} = {nexthop} }}" for domain, nexthop in transports.items())
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(root / "queue"),
        "data_directory": str(root / "data"),
        "daemon_directory": "/usr/lib/postfix/sbin",
        "command_directory": "/usr/sbin",
        "shlib_directory": "/usr/lib/postfix",
        "meta_directory": "/etc/postfix",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": str(root),
        "myhostname": hostname,
        "mydomain": hostname.split(".", 1)[1],
        "myorigin": "$myhostname",
        "mydestination": "",
        "local_transport": "error:5.1.1 no local delivery here",
        "alias_maps": "",
        "alias_database": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "relay_domains": "",
        "smtp_dns_support_level": "disabled",
        "smtp_host_lookup": "native",
        "lmtp_host_lookup": "native",
        "transport_maps": f"inline:{{ {table} }}",
        "smtpd_tls_security_level": "none",
        "smtp_tls_security_level": "none",
        "biff": "no",
        "append_dot_mydomain": "no",
        # Quick retries: a test waits seconds, not minutes.
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "delay_warning_time": "0h",
        "smtp_connect_timeout": "5s",
        "lmtp_connect_timeout": "5s",
        "default_process_limit": "10",
        "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C",
    }
    return "".join(f"{key} = {value}\n" for key, value in settings.items())


@contextmanager
def private_postfix(
    transports: Mapping[str, str], *, hostname: str = "relay.mailer-test.example.com"
) -> Iterator[PostfixInstance]:
    """Start Postfix (``postfix start-fg``, a child of this process) in a fresh folder
    under the system's tmp (its config, queue and data; traversable by the postfix user,
    which pytest's 0700 tmp folders are not) on a free loopback port, routing each domain
    of ``transports`` to its nexthop (``smtp:[127.0.0.1]:2525``, ``lmtp:[127.0.0.1]:2526``).
    At the end it is stopped (killed if it does not stop) and its folder removed."""
    root = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
    root.chmod(0o755)
    port = free_port()
    config_dir, queue_dir = root / "conf", root / "queue"
    for folder in (config_dir, queue_dir, root / "data"):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.chown(root / "data", "postfix")
    (config_dir / "main.cf").write_text(_main_cf(root, port, transports, hostname), "utf-8")
    (config_dir / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"), "utf-8")
    instance = PostfixInstance(config_dir, queue_dir, port, root / "maillog")
    env = {**os.environ, "MAIL_CONFIG": str(config_dir)}
    output = (root / "postfix.out").open("wb")
    proc = subprocess.Popen(
        [POSTFIX, "-c", str(config_dir), "start-fg"], stdout=output, stderr=subprocess.STDOUT, env=env
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"postfix did not start on port {port}: {(root / 'postfix.out').read_text('utf-8', 'replace')}"
                    f"\n{instance.log()}"
                )
            time.sleep(0.1)
        yield instance
    finally:
        subprocess.run([POSTFIX, "-c", str(config_dir), "stop"], capture_output=True, timeout=60, env=env, check=False)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pid = instance.master_pid()
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait(timeout=10)
        output.close()
        shutil.rmtree(root, ignore_errors=True)

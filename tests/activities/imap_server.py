"""A real IMAP server for the tests and the benchmark: Debian's dovecot, configured in a temporary folder
(its own dovecot.conf, passwd-file users, Maildir under the folder), listening on loopback, started as a
subprocess and stopped at the end. Messages are delivered with IMAP APPEND. Without dovecot installed
(``make dovecot``), the tests that need it are skipped."""

import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Dovecot:
    folder: Path
    port: int
    process: subprocess.Popen
    users: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    def connect(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port, timeout=30)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver ``messages`` to ``user``'s folder (IMAP APPEND, as a mail client files a copy)."""
        client = self.connect(user)
        try:
            for raw in messages:
                status, detail = client.append(folder, None, None, raw)
                assert status == "OK", detail
        finally:
            client.logout()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    @property
    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _accounts() -> tuple[str, str, str]:
    """The system users dovecot runs its internal and login processes as, and owns the mail as."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, me
    internal = "dovecot" if _exists("dovecot") else "nobody"
    login = "dovenull" if _exists("dovenull") else internal
    return internal, login, internal


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def dovecot_start(folder: Path, users: dict[str, str], port: int | None = None) -> Dovecot:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (make dovecot, or apt-get install dovecot-imapd)")
    folder.mkdir(parents=True, exist_ok=True)
    internal, login, mail_user = _accounts()
    account = pwd.getpwnam(mail_user)
    port = port or free_port()
    for sub in ("run", "state", "mail"):
        (folder / sub).mkdir(exist_ok=True)
    (folder / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items()))
    config = f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {account.pw_uid}
first_valid_gid = {account.pw_gid}
mail_location = maildir:{folder}/mail/%u
mail_fsync = never
maildir_very_dirty_syncs = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={account.pw_uid} gid={account.pw_gid} home={folder}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    (folder / "dovecot.conf").write_text(config)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(folder, 0o755)
    os.chmod(folder / "passwd", 0o644)
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(folder / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115 - kept open for the server's life
        start_new_session=True,
    )
    server = Dovecot(folder=folder, port=port, process=process, users=dict(users))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dovecot exited: {(folder / 'stderr.log').read_text(errors='replace')}\n{server.log}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"dovecot did not listen on {port}: {server.log}")

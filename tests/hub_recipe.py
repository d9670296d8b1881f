"""The JupyterHub recipe of docs/instructors.md, exactly as tests/test_jupyterhub.py runs it.

``RECIPE`` is the ``jupyterhub_config.py`` an instructor copies; the test runs it with a few
lines after it (``local_settings``: free ports, a temporary folder, the test's Jupyter folders).
``tests/test_jupyterhub.py`` checks that docs/instructors.md shows ``RECIPE`` unchanged, and
``python tools/hub_recipe.py`` writes it there.
"""

from __future__ import annotations

RECIPE = """\
# jupyterhub_config.py: the workshop on one machine for a room (tests/test_jupyterhub.py runs it)
import shutil
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub defines it)

WORKSHOP = "/srv/asyncio-chatbot"  # a clone of the repository, its requirements installed
HOMES = "/srv/workshop-homes"  # one copy of the workshop per user
INSTRUCTOR = "instructor"  # runs notebook 09 for the room: keep nothing else on this account

# Not port 8000: that is where notebook 09 starts the chatbot, on this same machine.
c.JupyterHub.bind_url = "http://:8080/"

# Learners pick a name and type the room's password; the instructor logs in with their own.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = "change-me-room-password"
# the instructor's password: 32 characters at least
c.SharedPasswordAuthenticator.admin_password = "change-me-instructor-password-32-characters-long"
c.Authenticator.admin_users = {INSTRUCTOR}
c.Authenticator.allow_all = True

# Each user's JupyterLab is a local process (no system accounts), in their own copy.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = HOMES + "/{username}"
c.Spawner.default_url = "/lab/tree/notebooks"


def copy_the_workshop(spawner):
    home = Path(spawner.home_dir)
    if not home.exists():
        ignored = shutil.ignore_patterns(".git", ".venv", "*.sqlite3*", "build", "*.egg-info")
        shutil.copytree(WORKSHOP, home, ignore=ignored)


c.Spawner.pre_spawn_hook = copy_the_workshop

# The room's chat: every user may open the instructor's server, where notebook 09 runs the
# chatbot: /user/instructor/proxy/8000/?room=workshop (the port notebook 09 prints).
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", f"access:servers!user={INSTRUCTOR}"]},
]
"""

ROOM_PASSWORD = "change-me-room-password"
INSTRUCTOR_PASSWORD = "change-me-instructor-password-32-characters-long"


def local_settings(
    *,
    workshop: str,
    homes: str,
    folder: str,
    hub_port: int,
    api_port: int,
    proxy_api_port: int,
    environment: dict[str, str],
    args: list[str],
) -> str:
    """The lines the test adds after ``RECIPE``: where things are, and loopback ports only."""
    return f"""
# ---- the test's own settings (not part of the recipe) ----
WORKSHOP = {workshop!r}
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.JupyterHub.bind_url = "http://127.0.0.1:{hub_port}/"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{api_port}/"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {folder!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {folder!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {folder!r} + "/cookie_secret"
c.Spawner.environment = {environment!r}
c.Spawner.args = {args!r}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
"""

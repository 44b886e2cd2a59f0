"""Ray cluster conventions shared by the Ray Tune backend and job submission: ports, environment.

Ray layer (imports nothing from Ray itself). On the machines bortnas targets, Redis holds port
6379, Ray's default head port, so bortnas's scripts start heads on 6380. Ray's usage reporting
would try to reach an outside host, so bortnas turns it off. Ray 2.60 authenticates with a
token (`~/.ray/auth_token` or `$RAY_AUTH_TOKEN_PATH`): `ray.init()` starting a local Ray creates
one, `jobs/start_head.sh` too; a client that names an address must run with
`RAY_AUTH_MODE=token`, which bortnas sets for clients unless the user chose another mode.
"""

from __future__ import annotations

import importlib.util
import os

from bortnas.core.errors import MissingDependencyError

DASHBOARD_PORT = 8265
ENV_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0"}
CLIENT_ENV_DEFAULTS = {"RAY_AUTH_MODE": "token"}


def configure_ray_env(client: bool = True) -> dict[str, str]:
    """Set bortnas's Ray environment defaults in this process (the user's values win); return them.

    `client`: this process joins a cluster by address (token mode); False when it starts a
    local Ray itself, which sets its own mode (a forced token mode without a token file would
    stop the local head from starting). Child processes (Ray workers, job drivers) inherit them.
    """
    defaults = {**ENV_DEFAULTS, **(CLIENT_ENV_DEFAULTS if client else {})}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in defaults}


def require_ray(feature: str, module: str = "ray.tune") -> None:
    """Raise a clear error when Ray (or the part `module` of it) is not installed.

    Raises:
        MissingDependencyError: naming the pip command that installs it.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise MissingDependencyError(f"{feature} needs Ray ({module} is not installed): pip install 'bortnas[ray]'.")

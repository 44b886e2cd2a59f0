"""Ray cluster conventions shared by the Ray Tune backend and job submission: ports, environment.

Ray layer (imports nothing from Ray itself). On the machines bortnas targets, Redis holds port
6379, Ray's default head port, so bortnas's scripts start heads on 6380. Ray's usage reporting
would try to reach an outside host, so bortnas turns it off. Ray 2.60 authenticates clients
with a token (`~/.ray/auth_token`, created by the head); a client that names an address must
run with `RAY_AUTH_MODE=token`, which bortnas sets unless the user chose another mode.
"""

from __future__ import annotations

import importlib.util
import os

from bortnas.errors import MissingDependencyError

HEAD_PORT = 6380
DASHBOARD_PORT = 8265
ENV_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def configure_ray_env() -> dict[str, str]:
    """Set bortnas's Ray environment defaults in this process (the user's values win); return them.

    Child processes (Ray workers, job drivers) inherit them.
    """
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in ENV_DEFAULTS}


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

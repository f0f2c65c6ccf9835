"""Globs as regexes (valid for Python and GNU find alike), config types and watch plans."""

from __future__ import annotations

import pytest

from services.watcher.paths import glob_regex, watch_spec


@pytest.mark.parametrize("glob, path, matches", [
    ("/etc/nginx/**", "/etc/nginx/nginx.conf", True),
    ("/etc/nginx/**", "/etc/nginx/sites-enabled/a b.conf", True),
    ("/etc/nginx/**", "/etc/nginx", False),
    ("/opt/*/docker-compose.yml", "/opt/app/docker-compose.yml", True),
    ("/opt/*/docker-compose.yml", "/opt/a/b/docker-compose.yml", False),
    ("/opt/*/docker-compose.yml", "/opt/app/docker-compose.ymlx", False),
    ("/x/**/y.conf", "/x/y.conf", True),
    ("/x/**/y.conf", "/x/a/b/y.conf", True),
    ("/a/[!x]b?/*.c(onf)", "/a/yb1/q.c(onf)", True),
    ("/a/[!x]b?/*.c(onf)", "/a/xb1/q.c(onf)", False),
    ("/srv/$HOME/*.ini", "/srv/$HOME/a.ini", True),
])
def test_glob_regex(glob: str, path: str, matches: bool) -> None:
    import re

    assert bool(re.fullmatch(glob_regex(glob), path)) is matches


def test_config_types_with_root_prefix_and_device_globs() -> None:
    spec = watch_spec({"app": ["/srv/app/*.ini"], "proxy_configs": ["/srv/caddy/*.conf"]}, "/r",
                      ignore=r"(^|/)[^/]*~$")
    assert spec.config_type("/r/etc/nginx/conf.d/a.conf") == "proxy_configs"
    assert spec.config_type("/r/etc/nginx/conf.d/a.conf~") is None
    assert spec.config_type("/etc/nginx/nginx.conf") is None, "defaults live under the root prefix"
    assert spec.config_type("/srv/caddy/x.conf") == "proxy_configs"
    assert spec.config_type("/srv/app/x.ini") == "app"
    assert spec.config_type("/r/compose/media/compose.yaml") == "docker_compose"
    assert spec.config_type("/r/etc/systemd/system/backup.timer") == "systemd_units"
    assert spec.config_type("/r/etc/systemd/system/multi-user.target.wants/x.service") is None


def test_plan_watches_directories_recursively_only_for_double_star() -> None:
    spec = watch_spec({}, "/r")
    plan = spec.plan({"/", "/r", "/r/etc", "/r/etc/nginx", "/r/opt", "/r/opt/app", "/r/etc/systemd"})
    assert plan.recursive == {"/r/etc/nginx"}
    # compose dirs that exist, /r for /r/docker-compose.yml, and the nearest existing ancestors of missing bases
    assert plan.flat == {"/r", "/r/opt", "/r/opt/app", "/r/etc/systemd"}

"""The test registry itself (tools/verdaccio.py): a real Verdaccio that the real npm client publishes to and
installs from, that refuses anybody but its htpasswd users, logs JSON lines and notifies each publish."""

import time
import urllib.error
import urllib.request

import pytest

from tests.integration.npm_packages import install, notify_receiver, publish, write_package
from tools.broker import default_cache_dir
from tools.verdaccio import LocalVerdaccio, VerdaccioError

pytestmark = pytest.mark.integration

USERS = {"publisher-bot": "publisher-secret-1", "ci-bot": "ci-secret-2"}


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_publish_install_log_and_notify(tmp_path):
    with notify_receiver() as (url, notified), LocalVerdaccio(default_cache_dir(), USERS, url) as registry:
        pkg = write_package(tmp_path / "pkg", "gate-clean", "1.0.0")
        publish(registry, "publisher-bot", pkg, tmp_path / "home-pub")
        lock = install(registry, "ci-bot", tmp_path / "app", tmp_path / "home-ci", "gate-clean@^1")

        assert lock["packages"]["node_modules/gate-clean"]["version"] == "1.0.0"
        assert _wait_for(lambda: notified), "no publish notification arrived"
        assert notified == [
            {"event": "publish", "name": "gate-clean", "package": "gate-clean@1.0.0", "user": "publisher-bot"}
        ]
        lines = registry.log_lines()
        requests = {
            (x.get("user"), x["request"]["method"], x["request"]["url"], x.get("status"))
            for x in lines
            if isinstance(x.get("request"), dict)
        }
        assert ("publisher-bot", "PUT", "/gate-clean", 201) in requests
        assert ("ci-bot", "GET", "/gate-clean/-/gate-clean-1.0.0.tgz", 200) in requests


def test_only_its_users_get_in(tmp_path):
    with LocalVerdaccio(default_cache_dir(), USERS) as registry:
        pkg = write_package(tmp_path / "pkg", "gate-private", "1.0.0")
        publish(registry, "publisher-bot", pkg, tmp_path / "home-pub")
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(registry.url + "gate-private", timeout=30)
        assert anonymous.value.code in (401, 403)
        assert registry.request("GET", "gate-private", user="ci-bot")["name"] == "gate-private"
        # Registration is off: a login as somebody the htpasswd file does not hold is refused.
        with pytest.raises(VerdaccioError, match="HTTP 4"):
            registry.login("stranger", "stranger-secret")
        with pytest.raises(VerdaccioError, match="HTTP 4"):
            registry.login("ci-bot", "not-its-password")

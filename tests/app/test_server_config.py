"""The packaged server stays quiet: no file watcher walking .venv and the runs while jobs write."""
from pathlib import Path

import pytest
from streamlit import config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo_config(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(REPO)  # streamlit reads ./.streamlit/config.toml, as `./run.sh` starts it
    config.get_config_options(force_reparse=True)
    yield config
    config.get_config_options(force_reparse=True)


def test_the_file_watcher_is_off(repo_config) -> None:
    assert repo_config.get_option("server.fileWatcherType") == "none"
    assert repo_config.get_option("server.runOnSave") is False


def test_the_environment_and_runs_are_never_watched(repo_config) -> None:
    assert {".venv", "runs"} <= set(repo_config.get_option("server.folderWatchBlacklist"))
    assert repo_config.get_option("browser.gatherUsageStats") is False


def test_no_full_garbage_collection_after_every_poll(repo_config) -> None:
    # a gc.collect(2) after each run of the jobs panel's fragment was most of the server's CPU
    assert repo_config.get_option("runner.postScriptGC") is False


def test_the_toolbar_offers_viewers_no_developer_menu(repo_config) -> None:
    # "Deploy", "Rerun" and "Clear cache" are for whoever develops the app, not for its users
    assert repo_config.get_option("client.toolbarMode") == "viewer"

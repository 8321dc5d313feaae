"""The household runtime: parts open on first use and close together; metadata work never loads a model."""

from __future__ import annotations

import pytest

from edge_rap.household import Household


@pytest.fixture
def remembered(settings, tmp_path):
    from PIL import Image as PILImage

    from edge_rap.calibrate import sample_photo_bank

    bank = sample_photo_bank()
    with Household(settings) as home:
        for name, sample in (("chelsea", "chelsea"), ("rocket", "rocket")):
            PILImage.fromarray(bank[sample]).save(tmp_path / f"{name}.png")
            home.memory.remember(name, [tmp_path / f"{name}.png"], f"the {name}", "thing")
    return settings


def test_metadata_commands_never_load_a_model(remembered, run, monkeypatch):
    import edge_rap.app

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(edge_rap.app, "open_embedder", no_model)
    monkeypatch.setattr(edge_rap.app, "face_loader", lambda settings: no_model)
    for argv in (["concepts"], ["edit", "chelsea", "--description", "our cat"], ["rename", "chelsea", "tabby"],
                 ["forget", "rocket"], ["events"]):
        rc, _, err = run(*argv)
        assert rc == 0, (argv, err)
    rc, out, _ = run("concepts", "--json")
    assert '"tabby"' in out and "our cat" in out and "rocket" not in out


def test_closing_releases_what_was_opened_and_only_that(remembered):
    home = Household(remembered)
    assert home.concepts()  # the store alone
    assert "memory" not in home.__dict__ and "retriever" not in home.__dict__
    home.close()
    assert not {"store", "memory", "events"} & set(home.__dict__)
    with Household(remembered) as home:
        assert len(home.retriever.view) > 0  # opens memory and embedder on first use
    assert "memory" not in home.__dict__

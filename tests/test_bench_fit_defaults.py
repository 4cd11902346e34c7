"""bench/fit_defaults.py: a section measured at other fit defaults is flagged, and a resumed
benchmark never mixes cells fitted at two defaults."""

from __future__ import annotations

import sys

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import assemble  # noqa: E402
import fit_defaults  # noqa: E402


def test_a_section_stamped_with_todays_defaults_gets_no_banner():
    md = fit_defaults.stamped("## Section\n\nnumbers\n", fit_defaults.current())
    assert fit_defaults.stamp_of(md) == fit_defaults.current()
    assert assemble.with_banner("matrix", md) == md
    restamped = fit_defaults.stamped(md, fit_defaults.current())
    assert restamped.count("<!-- fit defaults:") == 1  # a re-stamp replaces the old stamp


def test_a_section_fitted_at_other_defaults_names_each_changed_knob_under_its_heading():
    then = {**fit_defaults.current(), "lr": 123.0}
    md = fit_defaults.stamped("## Section\n\nnumbers\n", then)
    out = assemble.with_banner("matrix", md)
    heading, blank, note = out.splitlines()[:3]
    assert heading == "## Section" and blank == ""
    assert note.startswith("> **Measured at earlier fit defaults**") and f"lr 123.0 (today {fit_defaults.current()['lr']})" in note
    assert assemble.with_banner("io_memory", md) == md  # no heads fitted at the defaults there


def test_a_section_without_a_stamp_was_measured_at_the_defaults_before_stamps():
    assert fit_defaults.stamp_of("## Old\n") == fit_defaults.before_stamps()
    assert set(fit_defaults.changed(fit_defaults.before_stamps())) == {
        k for k, v in fit_defaults.BEFORE_STAMPS.items() if fit_defaults.current()[k] != v}


def test_saved_cells_of_other_defaults_are_dropped_and_current_ones_kept(capsys):
    now = fit_defaults.current()
    kept = fit_defaults.fresh_if_changed({"cells": {"a": 1}, "fit_defaults": now, "machine": "m"}, "bench")
    assert kept == {"cells": {"a": 1}, "fit_defaults": now, "machine": "m"}
    dropped = fit_defaults.fresh_if_changed({"cells": {"a": 1}, "fit_defaults": {**now, "lr": 9.0}}, "bench")
    assert dropped == {"cells": {}, "fit_defaults": now}
    assert "starting afresh" in capsys.readouterr().out
    assert fit_defaults.fresh_if_changed({"narrow": {}}, "bench", "narrow") == {"narrow": {}, "fit_defaults": now}
    assert fit_defaults.tag() == fit_defaults.tag() and len(fit_defaults.tag()) == 8


def test_every_named_cell_key_is_dropped_together():
    now = fit_defaults.current()
    old = {"narrow": {"a": 1}, "wide": {"b": 2}, "fit_defaults": {**now, "lr": 9.0}}
    assert fit_defaults.fresh_if_changed(old, "bench", ("narrow", "wide")) == {"narrow": {}, "wide": {}, "fit_defaults": now}
    only_wide = {"narrow": {}, "wide": {"b": 2}, "fit_defaults": {**now, "lr": 9.0}}
    assert fit_defaults.fresh_if_changed(only_wide, "bench", ("narrow", "wide"))["wide"] == {}

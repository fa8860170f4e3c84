"""Stop strings over a growing visible text: what streams, where the text ends."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine_worker.stop_strings import StopScan


def stream(pieces: list[str], stops: list[str], include: bool = False) -> tuple[list[str], str, bool]:
    """Feeds the text piece by piece as the session does: (what each step shows, final text, matched)."""
    scan, text, shown, shows = StopScan(stops, include), "", 0, []
    for piece in pieces:
        text += piece
        upto = scan.release(text)
        shows.append(text[shown:upto])
        shown = max(shown, upto)
        if scan.end is not None:
            break
    return shows, scan.final(text), scan.end is not None


@pytest.mark.parametrize("pieces,stops,include,shows,final", [
    # Across token boundaries: "Observation:" arrives in three pieces and is never shown.
    (["Thought: add", " Obs", "ervat", "ion: 4"], ["Observation:"], False, ["Thought: add", " ", "", ""],
     "Thought: add "),
    # A held-back start that turns out not to be one is shown with the next piece.
    (["a O", "k then"], ["Observation:"], False, ["a ", "Ok then"], "a Ok then"),
    (["line one", "\nline two"], ["\n"], False, ["line one", ""], "line one"),
    (["line one", "\nline two"], ["\n"], True, ["line one", "\n"], "line one\n"),
    # include_stop_str_in_output holds nothing back.
    (["x Obs", "ervation: y"], ["Observation:"], True, ["x Obs", "ervation:"], "x Observation:"),
    # The earliest match wins; at one place, the longest stop string.
    (["abcd"], ["cd", "b"], False, ["a"], "a"),
    (["abcd"], ["bc", "bcd"], True, ["abcd"], "abcd"),
    # No stop strings: everything at once.
    (["abc", "def"], [], False, ["abc", "def"], "abcdef"),
])
def test_release_and_final(pieces, stops, include, shows, final):
    got_shows, got_final, _ = stream(pieces, stops, include)
    assert got_shows == shows and got_final == final


def test_the_end_never_moves_once_matched():
    scan = StopScan(["STOP"])
    assert scan.release("go STOP more") == 3 and scan.end == 3
    assert scan.release("go STOP more STOP and more") == 3
    assert scan.final("go STOP more STOP and more") == "go "


@given(st.lists(st.text(alphabet="abO:\n", max_size=6), max_size=12),
       st.lists(st.text(alphabet="abO:\n", min_size=1, max_size=4), min_size=1, max_size=3), st.booleans())
def test_streamed_text_is_the_final_text_cut_at_the_first_match(pieces, stops, include):
    """Whatever the piece boundaries: the streamed text is a prefix of the final text, which is
    the whole text cut where a stop string first ends matching (vLLM's result on the same text).
    Stops of which one contains another are left out: there which one matches first depends on
    where the pieces break, in vLLM too (hypothesis found "b" before "b\n" arrived)."""
    assume(not any(a != b and a in b for a in stops for b in stops))
    shows, final, matched = stream(pieces, stops, include)
    whole = "".join(pieces)
    assert final.startswith("".join(shows))
    if not matched:
        assert final == whole and not any(s in whole for s in stops)
        return
    # The reference: scan the whole text once.
    firsts = [(whole.find(s), -len(s), s) for s in stops if s in whole]
    at, _, stop = min(firsts)
    assert final == (whole[: at + len(stop)] if include else whole[:at])

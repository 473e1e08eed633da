"""`make seed`: its data generators, progress bar and summary; and a real idempotent run."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from stack_harness import Stack, running_stack

from devstack import seed
from devstack.demo_people import age_on, mrn, namespace_uuid, patient_spec
from devstack.ports import free_port
from devstack.progress import ProgressBar
from devstack.services import present_services
from devstack.soap_notes import MAX_NOTES, MIN_NOTES, notes_for, notes_until

DEMO = namespace_uuid("demo")
UNTIL = notes_until(datetime(2026, 3, 1, tzinfo=UTC))
SOAP_HEADINGS = ("Subjective:\n", "Objective:\n", "Assessment:\n", "Plan:\n")


def test_a_patient_is_the_same_for_the_same_index() -> None:
    assert patient_spec(DEMO, 42, "MS") == patient_spec(DEMO, 42, "MS")
    assert patient_spec(DEMO, 42, "MS") != patient_spec(DEMO, 43, "MS")
    assert notes_for(DEMO, patient_spec(DEMO, 42, "MS"), UNTIL) == notes_for(
        DEMO, patient_spec(DEMO, 42, "MS"), UNTIL
    )


def test_namespaces_give_different_request_ids() -> None:
    demo, bench = patient_spec(DEMO, 7, "MS"), patient_spec(namespace_uuid("bench"), 7, "BN")
    assert demo.request_id != bench.request_id


def test_no_two_mrns_are_equal() -> None:
    mrns = [patient_spec(DEMO, index, "MS").mrn for index in range(20_000)]
    assert len(set(mrns)) == len(mrns)
    assert all(len(value) <= 64 and value.startswith("MS") for value in mrns)


def test_mrns_do_not_look_like_a_counter() -> None:
    assert mrn(1, "MS")[2:] != "00000001"
    assert abs(int(mrn(1, "MS")[2:]) - int(mrn(2, "MS")[2:])) > 1000


def test_patients_are_plausible() -> None:
    patients = [patient_spec(DEMO, index, "MS") for index in range(2_000)]
    assert {p.sex for p in patients} == {"female", "male", "other", "unknown"}
    assert all(date(1930, 1, 1) <= p.date_of_birth < date(2024, 7, 1) for p in patients)
    assert all(1 <= len(p.name) <= 200 and " " in p.name for p in patients)
    # Names repeat in a practice, but a seed of 10 000 must not be a handful of people.
    assert len({p.name for p in patients}) > 1_500


def test_every_note_has_the_four_soap_sections_in_order() -> None:
    for index in range(300):
        for note in notes_for(DEMO, patient_spec(DEMO, index, "MS"), UNTIL):
            positions = [note.content.index(heading) for heading in SOAP_HEADINGS]
            assert positions == sorted(positions), note.content
            assert 200 < len(note.content) < 100_000


def test_patients_have_one_to_five_notes_in_time_order_after_birth() -> None:
    counts = set()
    for index in range(300):
        patient = patient_spec(DEMO, index, "MS")
        notes = notes_for(DEMO, patient, UNTIL)
        counts.add(len(notes))
        times = [note.note_time for note in notes]
        assert times == sorted(times)
        assert all(patient.date_of_birth < t.date() and t < UNTIL for t in times)
    assert counts == set(range(MIN_NOTES, MAX_NOTES + 1))


def test_notes_name_the_patients_age_and_conditions() -> None:
    patient = patient_spec(DEMO, 5, "MS")
    note = notes_for(DEMO, patient, UNTIL)[0]
    age = age_on(patient.date_of_birth, note.note_time.date())
    assert note.content.startswith(f"Subjective:\n{age}-year-old")
    assert "BP " in note.content
    assert "Follow up in" in note.content


def test_note_request_ids_are_distinct_across_patients() -> None:
    ids = [
        note.request_id
        for index in range(200)
        for note in notes_for(DEMO, patient_spec(DEMO, index, "MS"), UNTIL)
    ]
    assert len(set(ids)) == len(ids)


def test_notes_stop_at_the_clock_when_it_is_early() -> None:
    early = datetime(2024, 8, 1, tzinfo=UTC)
    assert notes_until(early) == early


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_shows_count_rate_and_eta() -> None:
    clock = FakeClock()
    bar = ProgressBar("patients", 1000, io.StringIO(), clock)
    clock.now += 10
    bar.advance(250)
    line = bar.line()
    assert "250/1000" in line
    assert "25.0%" in line
    assert "25.0/s" in line
    assert "ETA 00:30" in line


def test_progress_bar_in_a_log_writes_whole_lines_not_carriage_returns() -> None:
    clock, stream = FakeClock(), io.StringIO()
    bar = ProgressBar("patients", 10, stream, clock)
    for _ in range(10):
        clock.now += 1
        bar.advance()
    bar.close()
    assert "\r" not in stream.getvalue()
    # Drawn at the first advance, every 5 s after, and at the end.
    assert stream.getvalue().count("\n") == 3
    assert stream.getvalue().splitlines()[-1].startswith("patients [####")


def test_summary_counts_created_and_present() -> None:
    tally = seed.SeedTally(patient_ids=["a", "b"], patients_created=1, patients_present=1)
    tally.notes_created, tally.notes_present = 3, 2
    text = seed.summary(tally, 12.34)
    assert "patients: 2 (1 created, 1 already present)" in text
    assert "notes:    5 (3 created, 2 already present)" in text
    assert seed.DEMO_EMAIL in text


def test_many_failures_stop_the_seed() -> None:
    tally = seed.SeedTally(patient_ids=[])
    for number in range(25):
        tally.fail(f"patient {number}: UNAVAILABLE")
    with pytest.raises(seed.SeedAbortedError, match="26 creates failed"):
        tally.fail("patient 25: UNAVAILABLE")


def _seed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "devstack", "seed", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_seed_without_a_stack_says_to_start_one() -> None:
    result = _seed(
        "--gateway", f"http://127.0.0.1:{free_port()}",
        "--user-addr", f"127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert result.returncode == 1
    assert "make run" in result.stderr
    assert "Traceback" not in result.stderr


# --- against a real stack --------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[3]
PATIENT_SERVICE_PRESENT = any(s.key == "patient-record" for s in present_services(REPO_ROOT))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("seed-stack")) as running:
        yield running


@pytest.mark.skipif(not PATIENT_SERVICE_PRESENT, reason="services/patient_record is not here yet")
@pytest.mark.timeout(300)
def test_seeding_twice_creates_everything_once(stack: Stack) -> None:
    addresses = (
        "--gateway", stack.gateway_url,
        "--user-addr", stack.services["user"].address,
        "--patient-addr", stack.services["patient-record"].address,
        "--patients", "6",
    )  # fmt: skip
    first = _seed(*addresses)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "patients: 6 (6 created, 0 already present)" in first.stdout
    assert "patients [########################] 6/6" in first.stderr

    second = _seed(*addresses)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "patients: 6 (0 created, 6 already present)" in second.stdout
    assert " (0 created, " in second.stdout.splitlines()[1]  # the notes line

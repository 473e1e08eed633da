from __future__ import annotations

from medstation_llm.offline_chat import OfflineLanguageModel
from medstation_llm.registry import OFFLINE, OFFLINE_MODEL
from medstation_llm.types import ChatRequest, ChatTurn, Completion, PatientChart, TextDelta


def ask(question: str, patient: PatientChart | None = None) -> ChatRequest:
    return ChatRequest(
        model=OFFLINE_MODEL,
        messages=(ChatTurn("user", question),),
        timeout_seconds=5,
        patient=patient,
    )


async def test_medication_question_gets_the_dated_medicines_and_plans(
    pneumonia_chart: PatientChart,
) -> None:
    reply = await OfflineLanguageModel().complete(
        ask("What medications is she on?", pneumonia_chart)
    )

    assert reply.text.startswith("From the chart of this 67-year-old female")
    assert "Medication list (2024-11-05): lisinopril 10 mg daily" in reply.text
    assert "2024-11-05: Amoxicillin 1 g TID x 5 days" in reply.text
    assert "Latest objective findings" not in reply.text


async def test_allergy_question_gets_the_allergy_line(pneumonia_chart: PatientChart) -> None:
    reply = await OfflineLanguageModel().complete(ask("Any allergies?", pneumonia_chart))

    assert "Allergies: penicillin (rash) (noted 2024-11-05)." in reply.text
    assert "Timeline" not in reply.text


async def test_vitals_question_gets_the_latest_objective_section(
    pneumonia_chart: PatientChart,
) -> None:
    reply = await OfflineLanguageModel().complete(ask("Latest vitals?", pneumonia_chart))

    assert "Latest objective findings (2024-11-12):\n- T 36.8 °C, HR 82" in reply.text


async def test_specific_question_quotes_the_matching_note_lines(
    pneumonia_chart: PatientChart,
) -> None:
    reply = await OfflineLanguageModel().complete(ask("What did the x-ray show?", pneumonia_chart))

    assert "2024-11-05 (Objective): CXR: right lower lobe consolidation." in reply.text


async def test_open_question_gets_a_chart_overview(pneumonia_chart: PatientChart) -> None:
    reply = await OfflineLanguageModel().complete(ask("How is she doing?", pneumonia_chart))

    assert "Active problems / assessments" in reply.text
    assert "- 2024-11-12 — Community-acquired pneumonia, improving" in reply.text


async def test_without_a_patient_it_says_what_it_is_and_recaps_the_conversation() -> None:
    request = ChatRequest(
        model=OFFLINE_MODEL,
        messages=(
            ChatTurn("user", "What is the amoxicillin dose for pneumonia?"),
            ChatTurn("assistant", "I cannot say."),
            ChatTurn("user", "And with a penicillin allergy?"),
        ),
        timeout_seconds=5,
    )

    reply = await OfflineLanguageModel().complete(request)

    assert "MedStation offline model" in reply.text
    assert 'You asked: "And with a penicillin allergy?"' in reply.text
    assert "Key terms in this conversation: amoxicillin, dose, pneumonia, penicillin" in reply.text
    assert "Earlier questions: What is the amoxicillin dose for pneumonia?" in reply.text
    assert (reply.provider, reply.model, reply.finish_reason) == (OFFLINE, OFFLINE_MODEL, "stop")
    assert reply.input_tokens > 0
    assert reply.output_tokens > 0


async def test_stream_is_word_groups_then_the_same_completion(
    pneumonia_chart: PatientChart,
) -> None:
    model = OfflineLanguageModel()
    request = ask("Summarize the chart", pneumonia_chart)

    events = [event async for event in model.stream(request)]

    *deltas, last = events
    assert len(deltas) > 3
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert isinstance(last, Completion)
    assert "".join(delta.text for delta in deltas if isinstance(delta, TextDelta)) == last.text
    assert last.text == (await model.complete(request)).text

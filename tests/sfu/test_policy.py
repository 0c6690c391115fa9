from __future__ import annotations

from sfu.policy import ClassPolicy, Kind, Member, Role, SpeechDetector, forwards, may_publish

TUTOR = Member("t", Role.TUTOR)
ANN = Member("ann", Role.STUDENT)
BOB = Member("bob", Role.STUDENT)
OBS = Member("o", Role.OBSERVER)


def test_tutor_goes_to_everyone() -> None:
    p = ClassPolicy()
    for sub in (ANN, BOB, OBS):
        for kind in Kind:
            assert forwards(p, TUTOR, kind, sub, speaking=False)


def test_student_video_reaches_tutors_and_others_only_when_spotlighted() -> None:
    p = ClassPolicy()
    assert forwards(p, ANN, Kind.VIDEO, TUTOR, speaking=False)
    assert not forwards(p, ANN, Kind.VIDEO, BOB, speaking=False)
    assert not forwards(p, ANN, Kind.VIDEO, OBS, speaking=False)
    spot = ClassPolicy(spotlight="ann")
    assert forwards(spot, ANN, Kind.VIDEO, BOB, speaking=False)
    assert not forwards(spot, BOB, Kind.VIDEO, ANN, speaking=False)
    off = ClassPolicy(student_video=False, spotlight="ann")
    assert not forwards(off, ANN, Kind.VIDEO, TUTOR, speaking=False)
    assert not may_publish(ANN, Kind.VIDEO, off)
    assert may_publish(TUTOR, Kind.VIDEO, off)


def test_student_audio_while_speaking_or_holding_the_floor_never_when_muted() -> None:
    p = ClassPolicy()
    assert not forwards(p, ANN, Kind.AUDIO, BOB, speaking=False)
    assert forwards(p, ANN, Kind.AUDIO, BOB, speaking=True)
    assert forwards(p, ANN, Kind.AUDIO, TUTOR, speaking=True)
    floor = ClassPolicy(floor=frozenset({"ann"}))
    assert forwards(floor, ANN, Kind.AUDIO, BOB, speaking=False)
    muted = ClassPolicy(muted=frozenset({"ann"}), floor=frozenset({"ann"}))
    assert not forwards(muted, ANN, Kind.AUDIO, TUTOR, speaking=True)


def test_nobody_gets_their_own_media_and_observers_never_publish() -> None:
    assert not forwards(ClassPolicy(), TUTOR, Kind.AUDIO, TUTOR, speaking=True)
    assert not may_publish(OBS, Kind.AUDIO, ClassPolicy())
    assert not forwards(ClassPolicy(), OBS, Kind.AUDIO, TUTOR, speaking=True)


def test_speech_detector_hangover() -> None:
    d = SpeechDetector(threshold=50, hangover=1.0)
    assert not d.add(127, 0.0)  # silence
    assert d.add(20, 0.1)  # loud
    assert d.add(127, 0.9)
    assert not d.speaking(1.2)
    assert d.add(None, 2.0)  # no level extension: treated as speech


def test_policy_wire_form() -> None:
    p = ClassPolicy(muted=frozenset({"b", "a"}), spotlight="c", student_video=False)
    assert p.to_wire() == {
        "muted": ["a", "b"],
        "floor": [],
        "spotlight": "c",
        "studentVideo": False,
    }

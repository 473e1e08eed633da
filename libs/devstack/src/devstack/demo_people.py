"""Made-up patients for demo and benchmark data: names, dates of birth, sex, MRNs.

Everything is derived from (namespace, index) alone, so the n-th patient is the same on
every run and machine: that is what makes seeding idempotent (the request_id is a uuid5
of the same pair) and lets tests pin the output. No data is downloaded.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

_FEMALE_FIRST = (
    "Olivia", "Emma", "Ava", "Sophia", "Isabella", "Mia", "Amelia", "Harper", "Evelyn",
    "Abigail", "Emily", "Elizabeth", "Sofia", "Avery", "Ella", "Scarlett", "Grace", "Chloe",
    "Victoria", "Riley", "Aria", "Lily", "Aurora", "Zoey", "Nora", "Hannah", "Layla",
    "Eleanor", "Hazel", "Ellie", "Maria", "Fatima", "Aisha", "Priya", "Ananya", "Mei",
    "Yuki", "Sakura", "Ji-woo", "Lucia", "Camila", "Valentina", "Ximena", "Ingrid", "Astrid",
    "Freya", "Siobhan", "Niamh", "Margaret", "Dorothy", "Ruth", "Shirley", "Patricia",
    "Linda", "Barbara", "Susan", "Karen", "Nancy", "Deborah", "Sandra", "Joan", "Agnes",
    "Amara", "Chiamaka", "Zainab", "Leila", "Noor", "Rosa", "Teresa", "Ewa", "Katarzyna",
)  # fmt: skip
_MALE_FIRST = (
    "Liam", "Noah", "Oliver", "James", "Elijah", "William", "Henry", "Lucas", "Benjamin",
    "Theodore", "Mateo", "Levi", "Sebastian", "Daniel", "Jack", "Michael", "Alexander",
    "Owen", "Asher", "Samuel", "Ethan", "Leo", "Jackson", "Mason", "Ezra", "John", "Hudson",
    "Luca", "Aiden", "Joseph", "David", "Mohammed", "Omar", "Yusuf", "Arjun", "Rohan",
    "Wei", "Hiroshi", "Kenji", "Min-jun", "Diego", "Santiago", "Javier", "Lars", "Erik",
    "Sean", "Ciaran", "Robert", "Richard", "Thomas", "Charles", "George", "Donald",
    "Kenneth", "Paul", "Gerald", "Walter", "Harold", "Arthur", "Chinedu", "Kwame", "Tariq",
    "Karim", "Piotr", "Tomasz", "Giovanni", "Marco", "Andrei", "Dmitri", "Nikos",
)  # fmt: skip
_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Patel", "Shah", "Singh", "Kumar", "Chen", "Wang", "Li", "Zhang", "Liu", "Kim", "Park",
    "Choi", "Tanaka", "Suzuki", "Sato", "Okafor", "Adeyemi", "Mensah", "Diallo", "Haddad",
    "Khan", "Hussain", "Ahmed", "Ali", "Cohen", "Levi", "Schmidt", "Muller", "Weber",
    "Fischer", "Rossi", "Russo", "Bianchi", "Kowalski", "Nowak", "Novak", "Ivanov",
    "Petrov", "Johansson", "Larsen", "Nielsen", "O'Brien", "Murphy", "Kelly", "Walsh",
    "McCarthy", "Dubois", "Moreau", "Laurent", "Silva", "Santos", "Oliveira", "Costa",
    "Papadopoulos", "Yilmaz", "Kaya", "Smithers", "Fitzgerald", "Abernathy", "Whitfield",
)  # fmt: skip

# (sex, cumulative weight out of 1000): roughly what a general practice records.
_SEX_WEIGHTS = (("female", 495), ("male", 985), ("other", 992), ("unknown", 1000))
# Oldest and youngest birth dates: ages up to ~95, nobody born "today" (never in the future).
_BORN_FROM = date(1930, 1, 1)
_BORN_UNTIL = date(2024, 6, 30)
# An MRN is index * multiplier + offset modulo 10^8: a bijection on 0..10^8-1 because the
# multiplier is coprime to 10^8 (odd, not a multiple of 5), so MRNs never collide yet
# look like hospital numbers rather than a counter.
_MRN_MODULUS = 100_000_000
_MRN_MULTIPLIER = 48_271_373
_MRN_OFFSET = 10_457_291
MAX_PATIENTS = _MRN_MODULUS


@dataclass(frozen=True)
class PatientSpec:
    """What CreatePatient is sent for the index-th patient of a namespace."""

    index: int
    request_id: str
    name: str
    date_of_birth: date
    sex: str
    mrn: str


def namespace_uuid(name: str) -> uuid.UUID:
    """The uuid5 namespace a data set's request ids hang off ("demo", "bench", ...)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://medstation.local/seed/{name}")


def request_id(namespace: uuid.UUID, key: str) -> str:
    return str(uuid.uuid5(namespace, key))


def rng_for(namespace: uuid.UUID, key: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across runs and versions.
    return random.Random(f"{namespace}/{key}")  # noqa: S311  # demo data, not secrets


def patient_spec(namespace: uuid.UUID, index: int, mrn_prefix: str) -> PatientSpec:
    """The index-th patient of `namespace`; MRNs are unique per prefix for every index."""
    if not 0 <= index < MAX_PATIENTS:
        raise ValueError(f"patient index {index} outside 0..{MAX_PATIENTS - 1}")
    rng = rng_for(namespace, f"patient/{index}")
    sex = _pick_sex(rng)
    return PatientSpec(
        index=index,
        request_id=request_id(namespace, f"patient/{index}"),
        name=_name(rng, sex),
        date_of_birth=_date_of_birth(rng),
        sex=sex,
        mrn=mrn(index, mrn_prefix),
    )


def mrn(index: int, prefix: str) -> str:
    scrambled = (index * _MRN_MULTIPLIER + _MRN_OFFSET) % _MRN_MODULUS
    return f"{prefix}{scrambled:08d}"


def _pick_sex(rng: random.Random) -> str:
    roll = rng.randrange(1000)
    return next(sex for sex, bound in _SEX_WEIGHTS if roll < bound)


def _name(rng: random.Random, sex: str) -> str:
    firsts = {"female": _FEMALE_FIRST, "male": _MALE_FIRST}.get(sex)
    first = rng.choice(firsts or (_FEMALE_FIRST + _MALE_FIRST))
    last = rng.choice(_LAST)
    if rng.random() < 0.08:  # some double-barrelled surnames
        last = f"{last}-{rng.choice(_LAST)}"
    middle = f" {rng.choice('ABCDEFGHJKLMNPRSTW')}." if rng.random() < 0.3 else ""
    return f"{first}{middle} {last}"


def _date_of_birth(rng: random.Random) -> date:
    span = (_BORN_UNTIL - _BORN_FROM).days
    # The larger of two draws skews towards younger patients, as a practice's list does.
    offset = max(rng.randrange(span), rng.randrange(span))
    return _BORN_FROM + timedelta(days=offset)


def age_on(born: date, day: date) -> int:
    before_birthday = (day.month, day.day) < (born.month, born.day)
    return day.year - born.year - before_birthday

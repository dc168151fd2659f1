"""Synthetic extraction cases whose gold is exact by construction: templates x typed vocabularies.

Texts combine relationship sentences (single or listed targets), negated and hypothetical statements
(entities mentioned, no relationship), distractor mentions and filler sentences, across five domains.
The names are invented or rare so the texts stay clear of the bundled eval sets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

from benchsel.normalize import normalize_text

if TYPE_CHECKING:
    from benchsel.evalset import Case

MAX_RELATIONSHIPS = 6


@dataclass(frozen=True)
class RelationSpec:
    relation: str
    source_type: str
    target_type: str
    patterns: tuple[str, ...]
    negations: tuple[str, ...]
    list_pattern: str | None = None


@dataclass(frozen=True)
class Domain:
    name: str
    entities: dict[str, tuple[str, ...]]
    relations: tuple[RelationSpec, ...]
    fillers: tuple[str, ...]
    # types whose names read with a definite article in running text
    articled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SyntheticCase:
    """A generated case with what the gold leaves out on purpose: the negated (source, target) pairs."""

    case: Case
    domain: str
    negated: tuple[tuple[str, str], ...]


def _names(heads: Sequence[str], tails: Sequence[str], sep: str = " ") -> tuple[str, ...]:
    return tuple(f"{h}{sep}{t}" for h, t in product(heads, tails))


def _spec(rel: str, src: str, tgt: str, pos: str, neg: str, listed: str | None = None) -> RelationSpec:
    return RelationSpec(rel, src, tgt, tuple(pos.split(" | ")), tuple(neg.split(" | ")), listed)


_PEOPLE = _names(
    ("Ilse", "Tomasz", "Amara", "Keoni", "Saoirse", "Dmitra", "Yusuf", "Linnea", "Oren", "Priyanka",
     "Mateus", "Ines", "Farrukh", "Wenona", "Caius", "Thandiwe", "Bjarke", "Marisol"),
    ("Halvorsen", "Quintero", "Lindqvist", "Achterberg", "Nakashima", "Ferreira", "Osei", "Brannock",
     "Vukovic", "Ellery", "Szabo", "Mwangi"),
)  # fmt: skip

INFRASTRUCTURE = Domain(
    "infrastructure",
    {
        "software": ("Corvex", "Tallowdb", "Brindle", "Quorra", "Halyard", "Pellucid", "Marlinspike",
                     "Gantry", "Weftmq", "Sorrel", "Kestrelcache", "Duskview", "Fennelproxy", "Larchlog"),
        "service": _names(("invoicing", "shipment", "loyalty", "catalog", "rebate", "courier", "quota",
                           "voucher", "tariff", "dispatch", "refund", "warranty"), ("service", "API")),
        "infrastructure": _names(("amber", "cobalt", "granite", "juniper", "saffron", "teal", "umber"),
                                 ("node pool", "edge cluster", "storage array", "VM fleet")),
        "team": _names(("ingest", "edge networking", "fraud tooling", "build tooling", "capacity",
                        "release engineering", "storage"), ("team", "group")),
    },
    (
        _spec("RUNS_ON", "service", "infrastructure",
              "The {s} runs on the {t}. | The {t} hosts the {s}. | The {s} was moved onto the {t} last week.",
              "The {s} no longer runs on the {t}. | The {s} was never deployed to the {t}.",
              "The {s} is spread across the {ts}."),
        _spec("DEPENDS_ON", "service", "software",
              "The {s} depends on {t}. | The {s} cannot start without {t}.",
              "The {s} does not depend on {t} anymore. | The {s} might depend on {t} next year.",
              "The {s} depends on {ts}."),
        _spec("MANAGES", "team", "infrastructure",
              "The {s} manages the {t}. | The {t} is managed by the {s}.",
              "The {s} stopped managing the {t} in March. | The {s} does not manage the {t}."),
        _spec("OWNS", "team", "service",
              "The {s} owns the {t}. | The {t} is owned by the {s}.",
              "The {s} handed over the {t} and no longer owns it.",
              "The {s} owns the {ts}."),
        _spec("STORES_DATA_IN", "service", "software",
              "The {s} stores its data in {t}. | The {s} keeps every record in {t}.",
              "The {s} never stored data in {t}."),
        _spec("SENDS_EVENTS_TO", "service", "service",
              "The {s} sends events to the {t}. | The {s} publishes events that the {t} consumes.",
              "The {s} has stopped sending events to the {t}."),
    ),
    ("The rollout finished ahead of schedule.", "Latency stayed under the agreed budget.",
     "An incident review is planned for next sprint.", "Nobody was paged during the change.",
     "The migration plan was approved on Tuesday.", "Error rates returned to normal within an hour."),
    frozenset({"service", "infrastructure", "team"}),
)  # fmt: skip

BUSINESS = Domain(
    "business",
    {
        "organization": _names(("Brightwater", "Calderon", "Dunmore", "Ashgrove", "Pellham", "Vantrell",
                                "Oakhurst", "Merriweather", "Quillon", "Sablewood"),
                               ("Holdings", "Logistics", "Foods", "Analytics", "Textiles")),
        "person": _PEOPLE,
        "product": ("Lumeo kettles", "Drift 2 earbuds", "Porta desks", "Velvina shampoo",
                    "Harrow bikes", "Spindle sneakers", "Ossa headphones", "Brae lamps"),
        "location": ("Tampere", "Trieste", "Hobart", "Arequipa", "Mombasa", "Ipoh", "Cuenca", "Kazan",
                     "Gdańsk", "Valparaíso"),
    },
    (
        _spec("ACQUIRED", "organization", "organization",
              "{s} acquired {t}. | {s} completed its purchase of {t}. | {t} was bought by {s}.",
              "{s} abandoned its bid for {t}. | {s} may acquire {t} if regulators agree.",
              "{s} acquired {ts}."),
        _spec("CEO_OF", "person", "organization",
              "{s} is the chief executive of {t}. | {t} named {s} as its CEO.",
              "{s} stepped down as chief executive of {t}. | {s} is not the CEO of {t}."),
        _spec("HEADQUARTERED_IN", "organization", "location",
              "{s} is headquartered in {t}. | {s} keeps its head office in {t}.",
              "{s} moved its head office out of {t}."),
        _spec("PRODUCES", "organization", "product",
              "{s} makes {t}. | {t} is produced by {s}.",
              "{s} discontinued {t} years ago.",
              "{s} makes {ts}."),
        _spec("PARTNERS_WITH", "organization", "organization",
              "{s} signed a partnership with {t}. | {s} partners with {t} on distribution.",
              "{s} ended its partnership with {t}."),
        _spec("SUPPLIES", "organization", "organization",
              "{s} supplies {t}. | {t} buys its packaging from {s}.",
              "{s} no longer supplies {t}.",
              "{s} supplies {ts}."),
    ),
    ("Shares rose slightly after the announcement.", "The terms were not disclosed.",
     "Analysts expect a stronger second half.", "The deal is subject to the usual approvals.",
     "Quarterly revenue came in above forecasts.", "A press call followed in the afternoon."),
)  # fmt: skip

SCIENCE = Domain(
    "science",
    {
        "person": _PEOPLE,
        "organization": _names(("Halden", "Moravec", "Kittering", "Ostwald", "Penhallow", "Rusk"),
                               ("Institute", "Observatory", "Laboratory"), " Research "),
        "chemical": ("cobalt ferrite", "lithium niobate", "barium stannate", "tin selenide",
                     "bismuth vanadate", "copper iodide", "zinc germanate", "gallium oxide"),
        "species": ("Daphnia magna", "Hydractinia symbiolongicarpus", "Nematostella vectensis",
                    "Oikopleura dioica", "Schmidtea mediterranea", "Platynereis dumerilii"),
        "instrument": ("Orla spectrometer", "Tern microscope", "Keld interferometer",
                       "Wren calorimeter"),
    },
    (
        _spec("WORKS_AT", "person", "organization",
              "{s} works at the {t}. | {s} is a researcher at the {t}.",
              "{s} left the {t} in 2019. | {s} never worked at the {t}."),
        _spec("STUDIES", "person", "species",
              "{s} studies {t}. | {s} has spent a decade studying {t}.",
              "{s} stopped studying {t}.",
              "{s} studies {ts}."),
        _spec("SYNTHESIZED", "person", "chemical",
              "{s} synthesized {t}. | The compound {t} was first synthesized by {s}.",
              "{s} failed to synthesize {t}. | {s} hopes to synthesize {t} soon."),
        _spec("COLLABORATES_WITH", "person", "person",
              "{s} collaborates with {t}. | {s} co-authored the paper with {t}.",
              "{s} has not collaborated with {t} since 2015."),
        _spec("MEASURED_WITH", "chemical", "instrument",
              "The group measured {s} with the {t}. | Samples of {s} were characterised using the {t}.",
              "The group could not measure {s} with the {t}."),
    ),
    ("The results were published in the spring issue.", "Funding came from a national grant.",
     "The samples were stored at four degrees.", "Further experiments are scheduled for autumn.",
     "The dataset is available on request.", "Reviewers asked for an additional control group."),
    frozenset({"organization", "instrument"}),
)  # fmt: skip

NEWS = Domain(
    "news",
    {
        "person": _PEOPLE,
        "organization": _names(("Northbay", "Greywater", "Silverfen", "Coldharbour", "Redmere"),
                               ("Council", "Union", "Foundation", "Party")),
        "location": ("Tampere", "Trieste", "Hobart", "Arequipa", "Mombasa", "Ipoh", "Cuenca", "Kazan",
                     "Gdańsk", "Valparaíso", "Bulawayo", "Trondheim"),
        "event": _names(("Harbour", "Lantern", "Meridian", "Copperline", "Windward"),
                        ("Summit", "Festival", "Trade Fair", "Forum")),
    },
    (
        _spec("VISITED", "person", "location",
              "{s} visited {t} on Thursday. | {s} arrived in {t} for a two-day visit.",
              "{s} cancelled a planned visit to {t}. | {s} denied having visited {t}.",
              "{s} visited {ts}."),
        _spec("MET_WITH", "person", "person",
              "{s} met with {t}. | {s} held talks with {t}.",
              "{s} refused to meet {t}."),
        _spec("LEADS", "person", "organization",
              "{s} leads the {t}. | The {t} is led by {s}.",
              "{s} no longer leads the {t}. | {s} might run for the leadership of the {t}."),
        _spec("ORGANIZED", "organization", "event",
              "The {s} organized the {t}. | The {t} was organised by the {s}.",
              "The {s} withdrew from organizing the {t}."),
        _spec("BASED_IN", "organization", "location",
              "The {s} is based in {t}. | The {s} has its offices in {t}.",
              "The {s} is not based in {t}."),
    ),
    ("Crowds gathered outside despite the rain.", "A statement is expected later this week.",
     "The talks lasted nearly three hours.", "Local media covered the day live.",
     "Security was tighter than usual.", "Turnout was higher than in previous years."),
    frozenset({"organization", "event"}),
)  # fmt: skip

MEDICINE = Domain(
    "medicine",
    {
        "drug": ("Lorvastine", "Praxomab", "Dexarilone", "Cetronavir", "Fumoxetil", "Halobrine",
                 "Nivastatol", "Orcipramine", "Tezulinat", "Brevafen"),
        "disease": ("plaque psoriasis", "gout", "vestibular migraine", "sarcoidosis", "Lyme carditis",
                    "pemphigus vulgaris", "cluster headache", "Meniere's disease"),
        "symptom": ("joint swelling", "night sweats", "tinnitus", "persistent cough", "blurred vision",
                    "dry mouth"),
        "person": tuple(f"Dr. {p}" for p in _PEOPLE),
        "organization": _names(("Elmstead", "Farrow", "Hollins", "Wexcombe", "Ravensworth"),
                               ("General Hospital", "Clinic", "Medical Centre")),
    },
    (
        _spec("TREATS", "drug", "disease",
              "{s} treats {t}. | {s} is approved for {t}. | Patients with {t} respond well to {s}.",
              "{s} does not treat {t}. | {s} failed to improve {t} in the trial.",
              "{s} treats {ts}."),
        _spec("CAUSES", "disease", "symptom",
              "In most patients, {s} causes {t}. | Doctors see {t} as a common sign of {s}.",
              "In most patients, {s} does not cause {t}."),
        _spec("SIDE_EFFECT", "drug", "symptom",
              "{s} can cause {t} as a side effect. | Some patients reported {t} as a side effect of {s}.",
              "The trial did not link {t} to {s}."),
        _spec("PRESCRIBED", "person", "drug",
              "{s} prescribed {t}. | {t} was prescribed by {s}.",
              "{s} decided against prescribing {t}."),
        _spec("WORKS_AT", "person", "organization",
              "{s} works at {t}. | {s} joined {t} as a consultant.",
              "{s} no longer works at {t}."),
    ),
    ("The patient was discharged after three days.", "Follow-up visits are planned monthly.",
     "Blood tests came back normal.", "The trial enrolled adults only.",
     "Dosage was adjusted after a week.", "No serious adverse events were recorded."),
)  # fmt: skip

DOMAINS: tuple[Domain, ...] = (INFRASTRUCTURE, BUSINESS, SCIENCE, NEWS, MEDICINE)

MENTIONS = (
    "The announcement also mentioned {x}.",
    "The report cited {x} only in passing.",
    "A separate note referred to {x}.",
    "Nobody commented on {x}.",
    "An earlier draft mentioned {x}.",
    "Questions about {x} were left for later.",
)


@dataclass
class _Draft:
    domain: Domain
    rng: random.Random
    types: dict[str, str]
    sentences: list[tuple[str, list[tuple[str, str, str]]]]
    negated: list[tuple[str, str]]
    tags: set[str]

    def entity(self, etype: str, *, reuse: float = 0.3, avoid: Sequence[str] = ()) -> str | None:
        same = [n for n, t in self.types.items() if t == etype and n not in avoid]
        if same and self.rng.random() < reuse:
            return self.rng.choice(same)
        fresh = [n for n in self.domain.entities[etype] if n not in self.types and n not in avoid]
        if not fresh:
            return None
        name = self.rng.choice(fresh)
        self.types[name] = etype
        return name

    def related(self, a: str, b: str) -> bool:
        return any({a, b} == {s, t} for _, rels in self.sentences for s, _, t in rels)


def _join(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1]


def _add_relationships(draft: _Draft, wanted: int) -> None:
    for _ in range(wanted * 8):
        have = sum(len(rels) for _, rels in draft.sentences)
        if have >= wanted:
            return
        spec = draft.rng.choice(draft.domain.relations)
        source = draft.entity(spec.source_type)
        if source is None:
            continue
        room = wanted - have
        listed = spec.list_pattern and room >= 2 and draft.rng.random() < 0.35
        count = draft.rng.randint(2, min(3, room)) if listed else 1
        targets: list[str] = []
        for _ in range(count):
            target = draft.entity(spec.target_type, reuse=0.2, avoid=[source, *targets])
            if target is not None and not draft.related(source, target):
                targets.append(target)
        if not targets:
            continue
        if len(targets) > 1 and spec.list_pattern:
            text = spec.list_pattern.format(s=source, ts=_join(targets))
            draft.tags.add("list")
        else:
            targets = targets[:1]
            text = draft.rng.choice(spec.patterns).format(s=source, t=targets[0])
        draft.sentences.append((text, [(source, spec.relation, t) for t in targets]))


def _add_negations(draft: _Draft, count: int) -> None:
    for _ in range(count):
        spec = draft.rng.choice(draft.domain.relations)
        source = draft.entity(spec.source_type)
        target = draft.entity(spec.target_type, avoid=[source] if source else ())
        if source is None or target is None or draft.related(source, target):
            continue
        draft.sentences.append((draft.rng.choice(spec.negations).format(s=source, t=target), []))
        draft.negated.append((source, target))
        draft.tags.add("negation")


def _add_mentions(draft: _Draft, count: int) -> None:
    for _ in range(count):
        etype = draft.rng.choice(sorted(draft.domain.entities))
        name = draft.entity(etype, reuse=0.0)
        if name is None:
            continue
        shown = f"the {name}" if etype in draft.domain.articled else name
        draft.sentences.append((draft.rng.choice(MENTIONS).format(x=shown), []))
        draft.tags.add("distractor")


def _add_fillers(draft: _Draft, count: int) -> None:
    fillers = list(draft.domain.fillers)
    draft.rng.shuffle(fillers)
    draft.sentences.extend((f, []) for f in fillers[:count])
    if count >= 3:
        draft.tags.add("long")


def _difficulty(relationships: int, tags: set[str]) -> str:
    if "negation" in tags:
        return "adversarial"
    if relationships >= 4 or "long" in tags:
        return "complex"
    return "medium" if relationships >= 2 or "distractor" in tags else "simple"


def _draft_case(rng: random.Random, case_id: str) -> SyntheticCase:
    from benchsel.evalset import Case

    domain = rng.choice(DOMAINS)
    draft = _Draft(domain, rng, {}, [], [], {domain.name})
    _add_relationships(draft, rng.randint(0, MAX_RELATIONSHIPS))
    _add_negations(draft, rng.choice((0, 0, 0, 0, 1, 1, 2)))
    _add_mentions(draft, rng.choice((0, 0, 1, 1, 2, 3)))
    _add_fillers(draft, rng.randint(3, 6) if rng.random() < 0.25 else rng.randint(0, 2))
    if not draft.sentences:
        _add_mentions(draft, 1)
    rng.shuffle(draft.sentences)
    separator = "\n\n" if "long" in draft.tags and rng.random() < 0.5 else " "
    text = separator.join(s for s, _ in draft.sentences)
    relationships = [rel for _, rels in draft.sentences for rel in rels]
    sources = {s for s, _, _ in relationships}
    names = sorted(draft.types, key=lambda n: (text.find(n), n))
    gold = {
        "entities": [
            {"name": n, "type": draft.types[n], "role": "subject" if n in sources else "object"}
            for n in names
        ],
        "relationships": [{"source": s, "relation": r, "target": t} for s, r, t in relationships],
    }
    tags = sorted(draft.tags) + [f"relationships-{len(relationships)}"]
    difficulty = _difficulty(len(relationships), draft.tags)
    case = Case.model_validate(
        {"id": case_id, "text": text, "gold": gold, "difficulty": difficulty, "tags": tags}
    )
    return SyntheticCase(case, domain.name, tuple(draft.negated))


def generate_synthetic(n: int, seed: int = 0) -> list[SyntheticCase]:
    """``n`` cases with distinct texts, the same for the same seed (one ``random.Random(seed)``)."""
    rng = random.Random(seed)
    out: list[SyntheticCase] = []
    seen: set[str] = set()
    for _ in range(n * 20):
        if len(out) >= n:
            break
        drafted = _draft_case(rng, f"synth-{seed}-{len(out):05d}")
        key = normalize_text(drafted.case.text)
        if key not in seen:
            seen.add(key)
            out.append(drafted)
    return out


def generate_cases(n: int, seed: int = 0) -> list[Case]:
    return [s.case for s in generate_synthetic(n, seed)]

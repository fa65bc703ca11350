"""Captions for the procedural shape set, made from each shape's recorded parameters.

A shape's parameters (:attr:`shapegen.data.procedural.ProceduralShape.params`) are first reduced
to a few attributes that can be said in words (:func:`attributes`): a small typed table per class
(:data:`ATTRIBUTES`, attribute name -> the value words it can take), e.g. a chair's ``back`` is
one of ``none, solid, slatted, railed, framed`` and its ``support`` one of ``four legs, three
legs, pedestal, sled``. An attribute that does not apply (a stool's arms) is ``""``.

Captions are then written from the attributes through templates and synonyms
(:func:`captions`): a sentence ("a round table on a single pedestal"), a noun and a list of
tags ("pedestal table, round top") or a short phrase ("a slatted bench"); the class name alone is
always a caption too. The same shape and seed always give the same captions.

:func:`vocabulary` lists every word a caption can use (class names and their synonyms, attribute
phrases), for a model card or a prompt parser.

Example:
    >>> from shapegen.data.procedural import generate
    >>> shape = generate("table", 3, seed=0)
    >>> attributes("table", shape.params)  # doctest: +SKIP
    {'top': 'round', 'support': 'pedestal', 'height': 'tall', 'legs': '', 'shelf': 'no'}
    >>> captions("table", shape.params, n=3, seed=shape.seed)  # doctest: +SKIP
    ['a tall round table on a single pedestal', 'table, pedestal base, round top', 'table']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shapegen.errors import ShapegenError

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
"""Number words, by value."""


@dataclass(frozen=True)
class Phrase:
    """How one attribute value is said: each field lists synonyms (empty: not said that way).

    Attributes:
        pre: adjectives placed before the noun ("round", "four-legged").
        post: phrases after the noun, starting with a preposition ("with arms", "on a pedestal").
        tag: short noun phrases for comma-separated captions ("arms", "pedestal base").
    """

    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()

    @property
    def words(self) -> tuple[str, ...]:
        """Every phrase of this value."""
        return self.pre + self.post + self.tag


def _p(pre: str | Sequence[str] = (), post: str | Sequence[str] = (), tag: str | Sequence[str] = ()) -> Phrase:
    def tup(x: str | Sequence[str]) -> tuple[str, ...]:
        return (x,) if isinstance(x, str) else tuple(x)

    return Phrase(tup(pre), tup(post), tup(tag))


SILENT = Phrase()
"""A value that captions do not mention (no lower shelf, no footboard)."""


# ------------------------------------------------------------------ attributes from parameters
def _third(v: float, lo: float, hi: float, words: tuple[str, str, str]) -> str:
    """``words[0]`` below ``lo``, ``words[2]`` from ``hi`` up, ``words[1]`` in between."""
    return words[0] if v < lo else words[2] if v >= hi else words[1]


def _chair(p: Mapping[str, Any]) -> dict[str, str]:
    back = p["back"]
    support = p["support"]
    if support == "legs":
        support = f"{NUMBERS[p.get('legs', 4)]} legs"
    return {
        "seat": p["seat_shape"],
        "back": {"solid": "solid", "slats": "slatted", "rails": "railed", "frame": "framed"}[p["back_style"]] if back else "none",
        "arms": ("yes" if p["arms"] else "no") if back else "",
        "support": support,
        "wheels": ("yes" if p["casters"] else "no") if p["support"] == "pedestal" else "",
        "height": _third(p["seat_height"], 0.55, 0.65, ("low", "medium", "bar")) if not back else "",
    }


def _table(p: Mapping[str, Any]) -> dict[str, str]:
    support = p["support"]
    if support == "legs":
        support = f"{NUMBERS[p.get('legs', 4)]} legs"
    return {
        "top": {"rect": "rectangular", "square": "square", "round": "round"}[p["top_shape"]],
        "support": support,
        "height": _third(p["height"], 0.55, 0.68, ("low", "medium", "tall")),
        "legs": p["leg_style"] if p["support"] == "legs" else "",
        "shelf": "yes" if p.get("lower_shelf") else "no",
    }


def _shelf(p: Mapping[str, Any]) -> dict[str, str]:
    cabinet = p["style"] == "cabinet"
    return {
        "sides": "closed" if cabinet else "open",
        "shelves": NUMBERS[p["shelves"] + 1],  # levels: the boards between top and bottom, plus one
        "back": ("yes" if p["back_panel"] else "no") if cabinet else "",
        "height": _third(p["height"], 0.8, 1.3, ("low", "medium", "tall")),
        "base": p["base"] if cabinet else "",
    }


def _lamp(p: Mapping[str, Any]) -> dict[str, str]:
    body = ""
    if p["kind"] != "desk" and p["base"] != "tripod":
        body = "vase" if p.get("body") == "vase" else "stem"
    return {
        "kind": p["kind"],
        "shade": p["shade"],
        "base": {"disk": "round", "square": "square", "dome": "domed", "tripod": "tripod"}[p["base"]],
        "body": body,
    }


def _mug(p: Mapping[str, Any]) -> dict[str, str]:
    return {
        "body": {"cylinder": "straight", "tapered": "tapered", "rounded": "rounded"}[p["body"]],
        "handle": p["handle"],
        "foot": "yes" if p["foot"] else "no",
        "rim": "yes" if p["rim_lip"] else "no",
        "height": _third(p["height"], 0.08, 0.105, ("short", "medium", "tall")),
    }


def _sofa(p: Mapping[str, Any]) -> dict[str, str]:
    return {
        "seats": NUMBERS[p["seats"]],
        "arms": p["arms"],
        "back": p["back"],
        "cushions": "yes" if p["back_cushions"] else "no",
        "support": p["support"],
        "chaise": "yes" if p["chaise"] else "no",
    }


def _bed(p: Mapping[str, Any]) -> dict[str, str]:
    return {
        "size": p["size"],
        "headboard": {"none": "none", "panel": "panel", "slats": "slatted", "upholstered": "upholstered"}[p["headboard"]],
        "footboard": "yes" if p["footboard"] else "no",
        "base": p["base"],
        "pillows": NUMBERS[p["pillows"]],
    }


def _bench(p: Mapping[str, Any]) -> dict[str, str]:
    return {
        "length": "short" if p["length"] < 1.4 else "long",
        "seat": p["seat"],
        "support": p["support"],
        "back": "yes" if p["backrest"] else "no",
        "shelf": "yes" if p.get("lower_shelf") else "no",
    }


def _vase(p: Mapping[str, Any]) -> dict[str, str]:
    return {
        "profile": {"cylinder": "cylindrical", "round": "round", "tapered": "tapered", "flared": "flared"}[p["profile"]],
        "neck": "narrow" if p.get("neck") else "wide",
        "handles": "two" if p["handles"] else "none",
        "foot": "yes" if p["foot"] else "no",
        # Height over width: the radius parameter is the widest radius over the height.
        "height": _third(-p["radius"], -0.32, -0.26, ("short", "medium", "tall")),
    }


def _bowl(p: Mapping[str, Any]) -> dict[str, str]:
    return {
        "depth": _third(p["depth"], 0.45, 0.6, ("shallow", "medium", "deep")),
        "profile": p["profile"],
        "foot": p["foot"],
        "rim": "yes" if p["rim"] else "no",
    }


def _desk(p: Mapping[str, Any]) -> dict[str, str]:
    drawers = p["drawers"]
    count = p.get("drawer_count", 0) * (2 if drawers == "both" else 1)
    return {
        "drawers": drawers,
        "count": NUMBERS[count] if count else "",
        "support": p["support"] if drawers != "both" else "",
        "panel": "yes" if p["modesty_panel"] else "no",
        "width": _third(p["width"], 1.2, 1.4, ("compact", "medium", "wide")),
    }


_ATTRIBUTE_FNS: dict[str, Callable[[Mapping[str, Any]], dict[str, str]]] = {
    "chair": _chair, "table": _table, "shelf": _shelf, "lamp": _lamp, "mug": _mug,
    "sofa": _sofa, "bed": _bed, "bench": _bench, "vase": _vase, "bowl": _bowl, "desk": _desk,
}

_YES, _NO = "yes", "no"

#: Per class, attribute -> value word -> how it is said (the typed table of attribute values).
PHRASES: dict[str, dict[str, dict[str, Phrase]]] = {
    "chair": {
        "seat": {"round": _p("round", "with a round seat", "round seat"), "square": _p("square", "with a square seat", "square seat")},
        "back": {
            "none": _p("backless", "without a back", "no back"),
            "solid": _p((), ("with a solid back", "with a plain back"), ("solid back", "plain back")),
            "slatted": _p("slat-back", ("with a slatted back", "with slats in the back"), ("slatted back", "slat back")),
            "railed": _p("ladder-back", ("with a ladder back", "with rails across the back"), ("ladder back", "rail back")),
            "framed": _p((), ("with a framed back panel", "with a padded back panel"), ("framed back", "panel back")),
        },
        "arms": {_YES: _p((), ("with arms", "with armrests"), ("arms", "armrests")), _NO: _p("armless", "without arms", "no arms")},
        "support": {
            "four legs": _p("four-legged", ("on four legs", "with four legs"), "four legs"),
            "three legs": _p("three-legged", ("on three legs", "with three legs"), "three legs"),
            "pedestal": _p("swivel", ("on a pedestal base", "on a swivel base"), ("pedestal base", "swivel base")),
            "sled": _p((), ("on a sled base", "on tubular runners"), ("sled base", "runners")),
        },
        "wheels": {_YES: _p((), ("on casters", "on wheels"), ("casters", "wheels")), _NO: SILENT},
        "height": {"low": _p("low", (), "low"), "medium": SILENT, "bar": _p(("bar", "tall"), (), "bar height")},
    },
    "table": {
        "top": {
            "rectangular": _p(("rectangular", "oblong"), "with a rectangular top", "rectangular top"),
            "square": _p("square", "with a square top", "square top"),
            "round": _p(("round", "circular"), "with a round top", "round top"),
        },
        "support": {
            "four legs": _p("four-legged", ("on four legs", "with four legs"), "four legs"),
            "three legs": _p("three-legged", ("on three legs", "with three legs"), "three legs"),
            "pedestal": _p("pedestal", ("on a single pedestal", "on a pedestal base"), ("pedestal base", "single pedestal")),
            "trestle": _p("trestle", ("on trestle ends", "with trestle legs"), ("trestle base", "trestle ends")),
        },
        "height": {"low": _p("low", (), "low"), "medium": SILENT, "tall": _p(("tall", "high"), (), "tall")},
        "legs": {
            "round": _p((), "with round legs", "round legs"),
            "square": _p((), "with square legs", "square legs"),
            "tapered": _p((), "with tapered legs", "tapered legs"),
            "turned": _p((), ("with turned legs", "with lathe-turned legs"), "turned legs"),
        },
        "shelf": {_YES: _p((), ("with a lower shelf", "with a shelf underneath"), "lower shelf"), _NO: SILENT},
    },
    "shelf": {
        "sides": {
            "closed": _p((), "with solid sides", ("solid sides", "closed sides")),
            "open": _p(("open", "open-frame"), ("on four corner posts", "with an open frame"), ("open frame", "corner posts")),
        },
        "shelves": {w: _p((), (f"with {w} tiers", f"with {w} levels"), (f"{w} tiers", f"{w} levels")) for w in NUMBERS[2:8]},
        "back": {_YES: _p((), "with a back panel", ("back panel", "closed back")), _NO: _p((), "with an open back", "open back")},
        "height": {"low": _p("low", (), "low"), "medium": SILENT, "tall": _p("tall", (), "tall")},
        "base": {"plinth": _p((), "on a plinth", "plinth"), "feet": _p((), "on short feet", "short feet"), "none": SILENT},
    },
    "lamp": {
        "kind": {
            "table": _p("table", (), "table lamp"),
            "floor": _p(("floor", "standing"), (), "floor lamp"),
            "desk": _p("desk", "with an articulated arm", ("desk lamp", "articulated arm")),
        },
        "shade": {
            "cone": _p((), ("with a conical shade", "with a tapered shade"), ("conical shade", "cone shade")),
            "drum": _p((), ("with a drum shade", "with a cylindrical shade"), "drum shade"),
            "dome": _p((), ("with a dome shade", "with a bowl-shaped shade"), "dome shade"),
        },
        "base": {
            "round": _p((), ("on a round base", "on a disc base"), "round base"),
            "square": _p((), "on a square base", "square base"),
            "domed": _p((), "on a domed base", "domed base"),
            "tripod": _p("tripod", "on three legs", ("tripod", "three legs")),
        },
        "body": {"vase": _p((), "with a vase-shaped body", "vase body"), "stem": _p((), ("with a slim stem", "with a thin pole"), "slim stem")},
    },
    "mug": {
        "body": {
            "straight": _p(("straight-sided", "cylindrical"), (), "straight sides"),
            "tapered": _p("tapered", (), "tapered body"),
            "rounded": _p("round-bottomed", (), "rounded bottom"),
        },
        "handle": {
            "ring": _p((), ("with a round handle", "with a ring handle"), ("round handle", "ring handle")),
            "D": _p((), "with a D-shaped handle", "D-shaped handle"),
            "square": _p((), ("with a square handle", "with an angular handle"), "square handle"),
            "ear": _p((), ("with a small ear handle", "with a small handle"), ("ear handle", "small handle")),
            "c": _p((), ("with an open C handle", "with a curved handle"), ("C handle", "curved handle")),
            "twin": _p("two-handled", ("with two handles", "with a handle on each side"), ("two handles", "twin handles")),
            "none": _p("handleless", ("without a handle", "with no handle"), ("no handle", "handleless")),
        },
        "foot": {_YES: _p("footed", ("on a foot ring", "with a foot"), "foot ring"), _NO: SILENT},
        "rim": {_YES: _p((), ("with a rolled rim", "with a lip"), "rolled rim"), _NO: SILENT},
        "height": {"short": _p(("short", "squat"), (), "short"), "medium": SILENT, "tall": _p("tall", (), "tall")},
    },
    "sofa": {
        "seats": {
            "two": _p(("two-seater", "two-seat"), "with two seats", "two seats"),
            "three": _p(("three-seater", "three-seat"), "with three seats", "three seats"),
        },
        "arms": {
            "none": _p("armless", "without arms", "no arms"),
            "square": _p((), ("with square arms", "with boxy arms"), ("square arms", "track arms")),
            "rolled": _p((), ("with rolled arms", "with scroll arms"), ("rolled arms", "scroll arms")),
        },
        "back": {"low": _p("low-back", "with a low back", "low back"), "high": _p("high-back", "with a high back", "high back")},
        "cushions": {_YES: _p((), "with back cushions", "back cushions"), _NO: _p((), "with a tight back", "tight back")},
        "support": {
            "legs": _p((), ("on short legs", "on legs"), "short legs"),
            "plinth": _p((), ("on a plinth base", "with a skirted base"), ("plinth base", "no legs")),
        },
        "chaise": {_YES: _p("L-shaped", ("with a chaise", "with a chaise longue"), "chaise"), _NO: SILENT},
    },
    "bed": {
        "size": {
            "single": _p(("single", "twin"), (), "single size"),
            "double": _p("double", (), "double size"),
            "king": _p(("king-size", "large"), (), "king size"),
        },
        "headboard": {
            "none": _p((), "without a headboard", "no headboard"),
            "panel": _p((), ("with a panel headboard", "with a flat headboard"), "panel headboard"),
            "slatted": _p((), ("with a slatted headboard", "with a spindle headboard"), "slatted headboard"),
            "upholstered": _p((), ("with an upholstered headboard", "with a padded headboard"), "upholstered headboard"),
        },
        "footboard": {_YES: _p((), "with a footboard", "footboard"), _NO: SILENT},
        "base": {"legs": _p((), ("on legs", "on a frame with legs"), "legs"), "platform": _p("platform", "on a platform base", "platform base")},
        "pillows": {"zero": SILENT, "one": _p((), ("with a pillow", "with one pillow"), "one pillow"), "two": _p((), "with two pillows", "two pillows")},
    },
    "bench": {
        "length": {"short": _p("short", (), "short"), "long": _p("long", (), "long")},
        "seat": {
            "solid": _p((), ("with a solid seat", "with a plain board seat"), "solid seat"),
            "slatted": _p("slatted", "with a slatted seat", "slatted seat"),
            "padded": _p(("padded", "upholstered"), ("with a padded seat", "with a cushioned top"), "padded seat"),
        },
        "support": {
            "legs": _p("four-legged", ("on four legs", "with four legs"), "four legs"),
            "panels": _p((), ("on slab ends", "with solid panel ends"), ("slab ends", "panel ends")),
            "frame": _p((), ("on metal frame legs", "on tubular frames"), ("metal frame", "tubular frame")),
        },
        "back": {_YES: _p((), "with a backrest", "backrest"), _NO: _p("backless", "without a backrest", "no backrest")},
        "shelf": {_YES: _p((), ("with a lower shelf", "with a shelf underneath"), "lower shelf"), _NO: SILENT},
    },
    "vase": {
        "profile": {
            "cylindrical": _p(("cylindrical", "straight"), (), "cylindrical body"),
            "round": _p(("round", "bulbous"), (), "round body"),
            "tapered": _p("tapered", (), "tapered body"),
            "flared": _p(("flared", "trumpet-shaped"), (), "flared body"),
        },
        "neck": {
            "narrow": _p((), ("with a narrow neck", "with a slender neck"), "narrow neck"),
            "wide": _p((), ("with a wide mouth", "with a wide opening"), "wide mouth"),
        },
        "handles": {"two": _p("two-handled", ("with two handles", "with a pair of handles"), "two handles"), "none": SILENT},
        "foot": {_YES: _p("footed", ("on a foot", "on a small base"), "foot"), _NO: SILENT},
        "height": {"short": _p(("short", "squat"), (), "short"), "medium": SILENT, "tall": _p(("tall", "slender"), (), "tall")},
    },
    "bowl": {
        "depth": {"shallow": _p("shallow", (), "shallow"), "medium": SILENT, "deep": _p("deep", (), "deep")},
        "profile": {
            "round": _p(("round", "rounded"), (), "round sides"),
            "conical": _p(("conical", "V-shaped"), (), "conical sides"),
            "straight": _p("straight-sided", (), "straight sides"),
        },
        "foot": {
            "none": SILENT,
            "ring": _p((), ("on a foot ring", "with a ring foot"), "foot ring"),
            "pedestal": _p(("footed", "pedestal"), ("on a pedestal stem", "on a stem"), ("pedestal foot", "stem")),
        },
        "rim": {_YES: _p((), ("with a rolled rim", "with a thick rim"), "rolled rim"), _NO: SILENT},
    },
    "desk": {
        # Sides as seen from the front (+Z): the right is +X.
        "drawers": {
            "none": _p((), "without drawers", "no drawers"),
            "left": _p((), ("with drawers on the left", "with a drawer pedestal on the left"), ("drawers on the left", "left pedestal")),
            "right": _p((), ("with drawers on the right", "with a drawer pedestal on the right"), ("drawers on the right", "right pedestal")),
            "both": _p("double-pedestal", "with drawers on both sides", ("drawers on both sides", "two pedestals")),
        },
        "count": {w: _p((), f"with {w} drawers", f"{w} drawers") for w in NUMBERS[2:9]},
        "support": {
            "legs": _p((), ("on slim legs", "on legs"), "legs"),
            "panels": _p((), ("with panel sides", "on solid side panels"), ("panel sides", "side panels")),
        },
        "panel": {_YES: _p((), ("with a modesty panel", "with a back panel"), "modesty panel"), _NO: SILENT},
        "width": {"compact": _p(("compact", "small"), (), "compact"), "medium": SILENT, "wide": _p(("wide", "large"), (), "wide")},
    },
}

ATTRIBUTES: dict[str, dict[str, tuple[str, ...]]] = {cls: {a: tuple(v) for a, v in table.items()} for cls, table in PHRASES.items()}
"""Per class, attribute name -> the value words it can take (``""`` also: does not apply)."""

CLASS_NOUNS: dict[str, tuple[str, ...]] = {
    "chair": ("chair",),
    "table": ("table",),
    "shelf": ("shelf", "shelving unit", "bookshelf"),
    "lamp": ("lamp", "light"),
    "mug": ("mug", "cup", "coffee mug"),
    "sofa": ("sofa", "couch", "settee"),
    "bed": ("bed",),
    "bench": ("bench",),
    "vase": ("vase",),
    "bowl": ("bowl",),
    "desk": ("desk",),
}
"""Per class, nouns any shape of it may be called (the class name first)."""

#: Nouns for some attribute values, with the attributes they already say (not repeated).
_SPECIAL_NOUNS: dict[str, list[tuple[dict[str, str], str, tuple[str, ...]]]] = {
    "chair": [
        ({"back": "none", "height": "bar"}, "bar stool", ("back", "height")),
        ({"back": "none"}, "stool", ("back",)),
        ({"arms": "yes"}, "armchair", ("arms",)),
        ({"wheels": "yes"}, "office chair", ("wheels",)),
    ],
    "table": [({"height": "low"}, "coffee table", ("height",)), ({"height": "tall", "top": "rectangular"}, "dining table", ("height",))],
    "shelf": [({"sides": "closed", "height": "tall"}, "bookcase", ("height",))],
    "lamp": [({"kind": "table"}, "table lamp", ("kind",)), ({"kind": "floor"}, "floor lamp", ("kind",)), ({"kind": "desk"}, "desk lamp", ("kind",))],
    "sofa": [({"seats": "two"}, "loveseat", ("seats",)), ({"chaise": "yes"}, "sectional sofa", ("chaise",))],
    "bowl": [({"depth": "shallow"}, "dish", ("depth",))],
    "desk": [({"drawers": "both"}, "pedestal desk", ("drawers",)), ({"drawers": "none", "support": "legs"}, "writing desk", ())],
}

CLASS_SYNONYMS: dict[str, tuple[str, ...]] = {
    cls: nouns + tuple(dict.fromkeys(w for _, w, _ in _SPECIAL_NOUNS.get(cls, []))) for cls, nouns in CLASS_NOUNS.items()
}
"""Per class, every noun a caption may use for it (the class name first)."""


# ------------------------------------------------------------------------------- public API
def _check(cls: str) -> None:
    if cls not in _ATTRIBUTE_FNS:
        raise ShapegenError(f"no captions for class '{cls}'; captioned classes: {', '.join(_ATTRIBUTE_FNS)}")


def attributes(cls: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The attribute values of one shape, in :data:`ATTRIBUTES` order (``""``: does not apply).

    Args:
        cls: the shape's class.
        params: its recorded parameters (``ProceduralShape.params`` or ``index.csv``'s JSON).

    Raises:
        ShapegenError: for an unknown class or parameters of another class.
    """
    _check(cls)
    try:
        values = _ATTRIBUTE_FNS[cls](params)
    except KeyError as exc:
        raise ShapegenError(f"the parameters do not describe a {cls}: '{exc.args[0]}' is missing") from exc
    return {a: values[a] for a in ATTRIBUTES[cls]}


def _nouns(cls: str, attrs: Mapping[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """Nouns for this shape, each with the attributes it already says."""
    out: list[tuple[str, tuple[str, ...]]] = [(n, ()) for n in CLASS_NOUNS[cls]]
    for cond, noun, covers in _SPECIAL_NOUNS.get(cls, []):
        if all(attrs.get(k) == v for k, v in cond.items()) and noun not in (n for n, _ in out):
            out.append((noun, covers))
    if attrs.get("back") == "none" and cls == "chair":  # a backless chair is only ever a stool
        out = [(n, c) for n, c in out if "stool" in n]
    return out


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _join_and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _posts(phrases: Sequence[str]) -> str:
    """``with`` phrases merged ("with arms and a slatted back"), then the others."""
    groups: dict[str, list[str]] = {}
    for ph in phrases:
        head, _, rest = ph.partition(" ")
        groups.setdefault(head, []).append(rest)
    order = sorted(groups, key=lambda h: {"with": 0, "without": 1}.get(h, 2))
    return " ".join(f"{h} {_join_and(groups[h])}" for h in order)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


#: Attributes a caption says at most one of ("a table on four legs with round legs" repeats itself).
_EXCLUSIVE: dict[str, tuple[frozenset[str], ...]] = {"table": (frozenset({"support", "legs"}),)}


def _sayable(cls: str, attrs: Mapping[str, str], covered: Sequence[str]) -> list[tuple[str, Phrase]]:
    table = PHRASES[cls]
    return [(a, table[a][v]) for a, v in attrs.items() if v and a not in covered and table[a][v] != SILENT]


def _choose(cls: str, say: Sequence[tuple[str, Phrase]], k: int, rng: np.random.Generator) -> list[int]:
    """Indices of ``k`` random attributes of ``say`` (in table order), minus repetitions."""
    idx = sorted(rng.choice(len(say), size=min(k, len(say)), replace=False).tolist()) if say else []
    out: list[int] = []
    for i in idx:
        if not any(say[i][0] in group and any(say[j][0] in group for j in out) for group in _EXCLUSIVE.get(cls, ())):
            out.append(i)
    return out


def _sentence(cls: str, attrs: Mapping[str, str], rng: np.random.Generator, k: int | None = None) -> str:
    noun, covered = _nouns(cls, attrs)[int(rng.integers(len(_nouns(cls, attrs))))]
    say = _sayable(cls, attrs, covered)
    if k is None:
        k = int(rng.integers(1, min(3, len(say)) + 1)) if say else 0
    chosen = _choose(cls, say, k, rng)
    pre, post = [], []
    for i in chosen:
        ph = say[i][1]
        if ph.pre and (not ph.post or rng.random() < 0.5):
            pre.append(_pick(rng, ph.pre))
        elif ph.post:
            post.append(_pick(rng, ph.post))
        else:
            pre.append(_pick(rng, ph.tag))
    text = _article(" ".join([*pre, noun]))
    return f"{text} {_posts(post)}" if post else text


def _tags(cls: str, attrs: Mapping[str, str], rng: np.random.Generator) -> str:
    nouns = _nouns(cls, attrs)
    noun, covered = nouns[int(rng.integers(len(nouns)))]
    say = [(a, ph) for a, ph in _sayable(cls, attrs, covered) if ph.tag]
    if not say:
        return noun
    chosen = _choose(cls, say, int(rng.integers(1, min(4, len(say)) + 1)), rng)
    return ", ".join([noun, *(_pick(rng, say[i][1].tag) for i in chosen)])


def describe(cls: str, params: Mapping[str, Any]) -> str:
    """One caption that says every attribute with words (the class name, then every tag)."""
    attrs = attributes(cls, params)
    tags = [ph.tag[0] for _, ph in _sayable(cls, attrs, ()) if ph.tag]
    return ", ".join([cls, *tags])


def captions(cls: str, params: Mapping[str, Any], n: int = 4, seed: int = 0) -> list[str]:
    """``n`` different captions of one shape (fewer if it has fewer), deterministic for ``seed``.

    The first is a sentence ("a chair with arms and a slatted back"), the next alternate between
    tag lists ("armchair, slat back, four legs") and sentences, and the last (for ``n >= 2``) is
    the class name alone.

    Args:
        cls: the shape's class.
        params: its recorded parameters.
        n: how many captions (>= 1).
        seed: seed of the choices of words (e.g. the shape's own seed).

    Raises:
        ShapegenError: for an unknown class, foreign parameters or ``n < 1``.
    """
    if n < 1:
        raise ShapegenError(f"captions per shape must be at least 1, got {n}")
    attrs = attributes(cls, params)
    rng = np.random.default_rng(int(seed))
    out: list[str] = []
    want = n - 1 if n >= 2 else 1
    for _ in range(8 * want):
        if len(out) == want:
            break
        make = _sentence if len(out) % 2 == 0 else _tags
        text = make(cls, attrs, rng)
        if text not in out and text != cls:
            out.append(text)
    if n >= 2:
        out.append(cls)
    return out


def vocabulary(classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Every word the captions use: per class its nouns, and attribute -> value -> phrases.

    Returns:
        ``{"classes": {cls: [nouns]}, "attributes": {cls: {attribute: {value: [phrases]}}}}``,
        JSON-serialisable.
    """
    names = list(classes) if classes is not None else list(PHRASES)
    for c in names:
        _check(c)
    return {
        "classes": {c: list(CLASS_SYNONYMS[c]) for c in names},
        "attributes": {c: {a: {v: list(ph.words) for v, ph in vals.items()} for a, vals in PHRASES[c].items()} for c in names},
    }


__all__ = ["ATTRIBUTES", "CLASS_NOUNS", "CLASS_SYNONYMS", "NUMBERS", "PHRASES", "Phrase", "attributes", "captions", "describe", "vocabulary"]

"""IAB Global Privacy Platform: the ``__gpp`` string and the ``__gpp_sid`` applicable sections.

Decoded as the IAB Tech Lab "Global Privacy Platform String" specification lays it out:
``header~section~section…``. The header is base64url bits: Type 6 (always 3), Version 6 (1),
then the section ids as a Fibonacci range list (NumEntries 12; per entry IsARange 1, the offset
from the previous id, Fibonacci-coded, and for a range its length, Fibonacci-coded). The header
must list exactly as many ids as there are sections after it.

Sections read:

- 2 ``tcfeuv2``: a TC string, decided exactly as the ``euconsent-v2`` cookie is (``tcf.py``).
- 6 ``uspv1``: the legacy four-character US Privacy string; ``Y`` in its third place (OptOutSale)
  makes the visitor anonymous.
- 7 ``usnat`` and the state sections 8 ``usca`` … 23 ``usmn``: a core subsection of 2-bit fields
  after Version 6. Any of SaleOptOut, SharingOptOut or TargetedAdvertisingOptOut (where the
  section has it) equal to 1 ("opted out") makes the visitor anonymous; 2 ("did not opt out") and
  0 ("not applicable") give no answer. The layouts below are the sections' technical
  specifications, checked against IAB Tech Lab's reference encoder (``@iabgpp/cmpapi``).

Not read (no answer): the Canadian TCF section 5, and the state sections 24 ``usmd`` … 27
``usri``, whose published specifications and the reference encoder disagree on the field layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from ._base import Answer, Malformed
from ._bits import BitReader
from .tcf import consent_in, decode_tc_string

HEADER_TYPE = 3
HEADER_VERSION = 1
TCFEUV2 = 2
USPV1 = 6


@dataclass(frozen=True, slots=True)
class UsSection:
    """Where a US section's opt-outs are in its core subsection.

    ``core_bits`` maps each known Version to the length of the core subsection in bits (all
    fields after Version are 2 bits wide, or lists of 2-bit values); ``opt_outs`` are the bit
    offsets of the sale / sharing / targeted advertising opt-out fields.
    """

    name: str
    core_bits: dict[int, int]
    opt_outs: tuple[int, ...]


# Offsets count from the section's first bit (Version is bits 0-5). In usnat, Version 2 grew
# SensitiveDataProcessing from 12 to 16 entries and KnownChildSensitiveDataConsents from 2 to 3,
# after the opt-outs, so both versions share the offsets.
US_SECTIONS: dict[int, UsSection] = {
    7: UsSection("usnat", {1: 60, 2: 70}, (18, 20, 22)),  # Sale, Sharing, TargetedAdvertising
    8: UsSection("usca", {1: 46}, (12, 14)),  # Sale, Sharing
    9: UsSection("usva", {1: 40}, (12, 14)),  # Sale, TargetedAdvertising (as all below)
    10: UsSection("usco", {1: 38}, (12, 14)),
    11: UsSection("usut", {1: 42}, (14, 16)),
    12: UsSection("usct", {1: 44}, (12, 14)),
    13: UsSection("usfl", {1: 46}, (12, 14)),
    14: UsSection("usmt", {1: 46}, (12, 14)),
    15: UsSection("usor", {1: 52}, (12, 14)),
    16: UsSection("ustx", {1: 42}, (12, 14)),
    17: UsSection("usde", {1: 52}, (12, 14)),
    18: UsSection("usia", {1: 42}, (14, 16)),
    19: UsSection("usne", {1: 42}, (12, 14)),
    20: UsSection("usnh", {1: 46}, (12, 14)),
    21: UsSection("usnj", {1: 54}, (12, 14)),
    22: UsSection("ustn", {1: 42}, (12, 14)),
    23: UsSection("usmn", {1: 42}, (12, 14)),
}
_OPTED_OUT = 1
_GPC_SUBSECTION = 1
_USP_STRING = re.compile(r"1[YN-]{3}")
_SID_TOKEN = re.compile(r"-?\d{1,4}")
_SID_SEPARATORS = re.compile(r"[,_]")


def decode_header(header: str, *, max_sections: int) -> tuple[int, ...]:
    """The section ids a GPP header lists, in order. Raises ``Malformed``.

    ``max_sections`` bounds the expansion of id ranges (a hostile range could name millions).
    """
    reader = BitReader(header)
    if reader.read_int(6) != HEADER_TYPE or reader.read_int(6) != HEADER_VERSION:
        raise Malformed("not a GPP v1 header")
    ids: list[int] = []
    last = 0
    for _ in range(reader.read_int(12)):
        is_range = reader.read_bool()
        start = last + reader.read_fibonacci()  # Fibonacci codes are >= 1: ids ascend
        end = start + reader.read_fibonacci() if is_range else start
        if len(ids) + end - start + 1 > max_sections:
            raise Malformed("more section ids than sections")
        ids.extend(range(start, end + 1))
        last = end
    return tuple(ids)


def gpp_answer(
    gpp: str, sid: str | None, *, purposes: tuple[int, ...], vendor_id: int | None
) -> Answer:
    """The answer of the applicable sections of a GPP string.

    ``sid`` is the raw ``__gpp_sid`` cookie: section ids separated by commas or underscores,
    percent-decoded first. Absent (or ``0``, "not determined yet") means every section of the
    string applies; ``-1`` means none does (no answer). An id the string lacks is malformed.

    Several applicable sections combine to the strictest answer: anonymous if any says so, else
    identified if any (a tcfeuv2 section) says so, else no answer. Every section is decoded, so a
    malformed section anywhere, or a malformed ``sid``, makes the visitor anonymous.
    """
    try:
        sections = _sections(unquote(gpp))
        applicable = _applicable(sid, {section_id for section_id, _ in sections})
        answers = [
            answer
            for section_id, text in sections
            if (answer := _section_answer(section_id, text, purposes, vendor_id)) is not None
            and (applicable is None or section_id in applicable)
        ]
    except Malformed:
        return "anonymous"
    if "anonymous" in answers:
        return "anonymous"
    return "identified" if answers else None


def _sections(gpp: str) -> list[tuple[int, str]]:
    header, *texts = gpp.split("~")
    ids = decode_header(header, max_sections=len(texts))
    if len(ids) != len(texts) or not all(texts):
        raise Malformed("header and sections disagree")
    return list(zip(ids, texts, strict=True))


def _applicable(sid: str | None, present: set[int]) -> frozenset[int] | None:
    """The applicable section ids, or None for "all of them"."""
    if sid is None or not (text := unquote(sid)):
        return None
    tokens = _SID_SEPARATORS.split(text)
    if not all(_SID_TOKEN.fullmatch(token) for token in tokens):
        raise Malformed("bad __gpp_sid")
    ids = {int(token) for token in tokens}
    if -1 in ids:
        if len(ids) > 1:
            raise Malformed("__gpp_sid says none applies and names sections")
        return frozenset()
    ids.discard(0)
    if not ids:
        return None
    if not ids <= present:
        raise Malformed("__gpp_sid names a section the string lacks")
    return frozenset(ids)


def _section_answer(
    section_id: int, text: str, purposes: tuple[int, ...], vendor_id: int | None
) -> Answer:
    if section_id == TCFEUV2:
        return consent_in(decode_tc_string(text), purposes=purposes, vendor_id=vendor_id)
    if section_id == USPV1:
        if not _USP_STRING.fullmatch(text):
            raise Malformed("bad uspv1 section")
        return "anonymous" if text[2] == "Y" else None
    layout = US_SECTIONS.get(section_id)
    if layout is None:
        return None  # a section we do not read says nothing about us
    return _us_answer(layout, text)


def _us_answer(layout: UsSection, text: str) -> Answer:
    core, *subsections = text.split(".")
    for subsection in subsections:
        # The only other subsection defined is GPC (SubsectionType 2 bits = 1, Gpc 1 bit). Its
        # signal is the browser's Sec-GPC header, which the decision reads itself.
        reader = BitReader(subsection)
        if reader.read_int(2) != _GPC_SUBSECTION:
            raise Malformed("unknown US subsection")
        reader.read_bool()
    reader = BitReader(core)
    core_bits = layout.core_bits.get(reader.read_int(6))
    if core_bits is None:
        raise Malformed(f"unknown {layout.name} version")
    # Every field after Version is 2 bits (or a list of them) whose values are 0, 1 or 2; a 3
    # anywhere, or too few bits, is not a section a CMP wrote.
    fields = {offset: reader.read_int(2) for offset in range(6, core_bits, 2)}
    if 3 in fields.values():
        raise Malformed(f"bad {layout.name} field value")
    if any(fields[offset] == _OPTED_OUT for offset in layout.opt_outs):
        return "anonymous"
    return None

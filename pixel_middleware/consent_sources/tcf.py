"""IAB Europe TCF v2.2: the TC string in the ``euconsent-v2`` cookie.

Decoded as the IAB Tech Lab "Consent string and vendor list formats v2" specification lays it out:
``core[.segment]...``, each segment base64url without padding. The core segment's fields, in bits:
Version 6, Created 36, LastUpdated 36, CmpId 12, CmpVersion 12, ConsentScreen 6, ConsentLanguage
12, VendorListVersion 12, TcfPolicyVersion 6, IsServiceSpecific 1, UseNonStandardTexts 1,
SpecialFeatureOptIns 12, PurposesConsent 24, PurposesLITransparency 24, PurposeOneTreatment 1,
PublisherCC 12, then the vendor consent section, the vendor legitimate interest section (each
MaxVendorId 16, IsRangeEncoding 1, then a bit field or NumEntries 12 of IsARange 1,
StartOrOnlyVendorId 16, EndVendorId 16) and the publisher restrictions (NumPubRestrictions 12 of
PurposeId 6, RestrictionType 2 and a range list). The core is read to its end, so a truncated
string is malformed, not "no consent yet".

Segments after the core (disclosed vendors, allowed vendors, publisher TC) carry no consent for
vendors or purposes; they are checked for their form (base64url, a known 3-bit SegmentType) and
otherwise ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from ._base import Answer, Malformed
from ._bits import BitReader

TC_STRING_VERSION = 2
_PURPOSE_BITS = 24
_SPECIAL_FEATURE_BITS = 12
# Segment types of the segments after the core: 1 disclosed vendors, 2 allowed vendors (no longer
# written since TCF 2.2, still defined), 3 publisher TC.
_SEGMENT_TYPES = frozenset({1, 2, 3})
# Publisher restriction types: 0 not allowed, 1 require consent, 2 require legitimate interest,
# 3 undefined. Only "require consent" leaves a consent-based use in place.
_REQUIRE_CONSENT = 1


@dataclass(frozen=True, slots=True)
class VendorSet:
    """A vendor section: a bit field for vendors 1..max_vendor_id, or a list of id ranges."""

    max_vendor_id: int
    is_range_encoded: bool
    bit_field: str = ""  # "1" at index i: vendor i + 1 is in the set
    ranges: tuple[tuple[int, int], ...] = ()  # inclusive (start, end) pairs

    def __contains__(self, vendor_id: object) -> bool:
        if not isinstance(vendor_id, int):
            return False
        if self.is_range_encoded:
            return any(start <= vendor_id <= end for start, end in self.ranges)
        return 1 <= vendor_id <= len(self.bit_field) and self.bit_field[vendor_id - 1] == "1"


@dataclass(frozen=True, slots=True)
class PublisherRestriction:
    """One publisher restriction entry: a purpose, a restriction type and the vendors it covers."""

    purpose_id: int
    restriction_type: int
    vendors: tuple[tuple[int, int], ...]

    def covers(self, vendor_id: int) -> bool:
        return any(start <= vendor_id <= end for start, end in self.vendors)


@dataclass(frozen=True, slots=True)
class TCString:
    """The decoded core segment of a TC string (the fields a consent decision can use)."""

    version: int
    created: int  # deciseconds since the epoch (day precision since TCF 2.2)
    last_updated: int
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_country_code: str
    vendor_consents: VendorSet
    vendor_legitimate_interests: VendorSet
    publisher_restrictions: tuple[PublisherRestriction, ...]


def decode_tc_string(tc_string: str) -> TCString:
    """Decode a TC string's core segment and check the form of the segments after it.

    Raises ``Malformed`` for anything that is not a complete version 2 TC string.
    """
    core, *others = tc_string.split(".")
    for segment in others:
        if BitReader(segment).read_int(3) not in _SEGMENT_TYPES:
            raise Malformed("unknown TC string segment type")
    reader = BitReader(core)
    version = reader.read_int(6)
    if version != TC_STRING_VERSION:  # v1 strings start with "B"; GPP strings with "D"
        raise Malformed(f"TC string version {version}, not 2")
    return TCString(
        version=version,
        created=reader.read_int(36),
        last_updated=reader.read_int(36),
        cmp_id=reader.read_int(12),
        cmp_version=reader.read_int(12),
        consent_screen=reader.read_int(6),
        consent_language=_letters(reader),
        vendor_list_version=reader.read_int(12),
        policy_version=reader.read_int(6),
        is_service_specific=reader.read_bool(),
        use_non_standard_texts=reader.read_bool(),
        special_feature_opt_ins=_bit_set(reader.read_bits(_SPECIAL_FEATURE_BITS)),
        purpose_consents=_bit_set(reader.read_bits(_PURPOSE_BITS)),
        purpose_legitimate_interests=_bit_set(reader.read_bits(_PURPOSE_BITS)),
        purpose_one_treatment=reader.read_bool(),
        publisher_country_code=_letters(reader),
        vendor_consents=_vendor_set(reader),
        vendor_legitimate_interests=_vendor_set(reader),
        publisher_restrictions=_publisher_restrictions(reader),
    )


def tcf_answer(tc_string: str, *, purposes: tuple[int, ...], vendor_id: int | None) -> Answer:
    """Identified only if the TC string gives consent to every purpose in ``purposes`` and, when
    ``vendor_id`` is set, to that vendor too; anonymous otherwise, malformed strings included.

    The value is percent-decoded once first (a TC string needs no encoding, so this only forgives
    a CMP or proxy that encoded it anyway).
    """
    try:
        decoded = decode_tc_string(unquote(tc_string))
    except Malformed:
        return "anonymous"
    return consent_in(decoded, purposes=purposes, vendor_id=vendor_id)


def consent_in(tc: TCString, *, purposes: tuple[int, ...], vendor_id: int | None) -> Answer:
    """The decision for a decoded TC string (shared with GPP's tcfeuv2 section)."""
    # The spec: "When a Vendor encounters a TC String with IsServiceSpecific=0 then it is
    # considered invalid." Global-scope strings are no longer allowed.
    if not tc.is_service_specific:
        return "anonymous"
    for purpose in purposes:
        if purpose not in tc.purpose_consents:
            return "anonymous"
        # PurposeOneTreatment=1: purpose 1 was not disclosed, so its bit records no consent.
        if purpose == 1 and tc.purpose_one_treatment:
            return "anonymous"
    if vendor_id is not None:
        if vendor_id not in tc.vendor_consents:
            return "anonymous"
        for restriction in tc.publisher_restrictions:
            # The publisher may forbid a purpose, or demand legitimate interest instead of
            # consent, for some vendors: then this vendor's consent does not count for it.
            if (
                restriction.purpose_id in purposes
                and restriction.restriction_type != _REQUIRE_CONSENT
                and restriction.covers(vendor_id)
            ):
                return "anonymous"
    return "identified"


def _bit_set(bits: str) -> frozenset[int]:
    """Ids whose bit is set; the leftmost bit is id 1."""
    return frozenset(index + 1 for index, bit in enumerate(bits) if bit == "1")


def _letters(reader: BitReader) -> str:
    """Two letters, six bits each, a=0 … z=25 (language and country codes)."""
    letters = []
    for _ in range(2):
        value = reader.read_int(6)
        if value > 25:
            raise Malformed("not a letter")
        letters.append(chr(ord("A") + value))
    return "".join(letters)


def _ranges(reader: BitReader, *, max_id: int | None) -> tuple[tuple[int, int], ...]:
    """NumEntries 12, then per entry IsARange 1, StartOrOnlyVendorId 16, [EndVendorId 16]."""
    ranges = []
    for _ in range(reader.read_int(12)):
        is_range = reader.read_bool()
        start = reader.read_int(16)
        end = reader.read_int(16) if is_range else start
        # Vendor ids start at 1; a range runs upwards and, in a vendor section, stays within
        # MaxVendorId. Anything else is not a string a CMP wrote.
        if start < 1 or end < start or (max_id is not None and end > max_id):
            raise Malformed("bad vendor range")
        ranges.append((start, end))
    return tuple(ranges)


def _vendor_set(reader: BitReader) -> VendorSet:
    max_id = reader.read_int(16)
    if reader.read_bool():
        return VendorSet(max_id, True, ranges=_ranges(reader, max_id=max_id))
    return VendorSet(max_id, False, bit_field=reader.read_bits(max_id))


def _publisher_restrictions(reader: BitReader) -> tuple[PublisherRestriction, ...]:
    restrictions = []
    for _ in range(reader.read_int(12)):
        purpose_id = reader.read_int(6)
        restriction_type = reader.read_int(2)
        # Publisher restriction ranges may span gaps in the vendor list, so no MaxVendorId bound.
        vendors = _ranges(reader, max_id=None)
        restrictions.append(PublisherRestriction(purpose_id, restriction_type, vendors))
    return tuple(restrictions)

"""Consent sources (issue #12): CMP cookies in, identified / anonymous / no answer out.

TC strings and GPP strings come from IAB Tech Lab's own reference encoders (tests/iab.py runs
them in node, once per session, for every spec in ``TCF`` and ``GPP``); those tests are marked
``server`` like the other tests that start programs. The IAB specifications' own examples and
the CMP cookie values their documentation shows need no node. Hypothesis feeds every parser
garbage, truncations, mutations and oversized values: a present but broken value is anonymous,
and nothing ever raises.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import pixel_middleware.consent_sources as consent_sources
from pixel_middleware.consent_sources import (
    SOURCE_COOKIES,
    SOURCE_NAMES,
    Answer,
    SourceSettings,
    consent_answer,
    cookie_names,
    cookiebot_answer,
    gpp_answer,
    klaro_answer,
    onetrust_answer,
    tcf_answer,
    validate_sources,
)
from pixel_middleware.consent_sources.gpp import US_SECTIONS, decode_header
from pixel_middleware.consent_sources.tcf import decode_tc_string

from . import iab

ANSWERS: tuple[Answer, ...] = ("identified", "anonymous", None)
# 2025-01-15T00:00:00Z, the day encode.js stamps, in the TC string's deciseconds.
DAY_DECISECONDS = 1_736_899_200_000 // 100
ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def b64(bits: str, *, multiple: int = 6) -> str:
    """Bits to base64url text, padded with zero bits to ``multiple`` (iabtcf pads to 24)."""
    bits += "0" * (-len(bits) % multiple)
    return "".join(ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


def hand_built_tc(
    purposes: Iterable[int] = (1,), vendors: Iterable[int] = (), *, service_specific: bool = True
) -> str:
    """A TC string core written field by field from the spec's table, for tests without node.

    The same field values as encode.js, so it must equal the reference encoder's core.
    """
    consented, vendor_ids = set(purposes), set(vendors)
    fields = [
        (2, 6),  # Version
        (DAY_DECISECONDS, 36),  # Created
        (DAY_DECISECONDS, 36),  # LastUpdated
        (10, 12),  # CmpId
        (2, 12),  # CmpVersion
        (1, 6),  # ConsentScreen
        (4 * 64 + 13, 12),  # ConsentLanguage "EN": E=4, N=13
        (120, 12),  # VendorListVersion
        (5, 6),  # TcfPolicyVersion
        (int(service_specific), 1),  # IsServiceSpecific
        (0, 1),  # UseNonStandardTexts
        (0, 12),  # SpecialFeatureOptIns
    ]
    bits = "".join(format(value, f"0{width}b") for value, width in fields)
    bits += "".join("1" if p in consented else "0" for p in range(1, 25))  # PurposesConsent
    bits += "0" * 24 + "0"  # PurposesLITransparency, PurposeOneTreatment
    bits += format(3 * 64 + 4, "012b")  # PublisherCC "DE": D=3, E=4
    top = max(vendor_ids, default=0)  # vendor consents: MaxVendorId, IsRangeEncoding 0, BitField
    bits += format(top, "016b") + "0"
    bits += "".join("1" if v in vendor_ids else "0" for v in range(1, top + 1))
    bits += "0" * 16 + "0"  # vendor legitimate interests: MaxVendorId 0, bit field
    bits += "0" * 12  # NumPubRestrictions
    return b64(bits, multiple=24)


# --- strings from the IAB reference encoders -------------------------------------------------

TCF: dict[str, dict[str, Any]] = {
    "p1": {"purposes": [1]},
    "p1_7_8_bitfield": {"purposes": [1, 7, 8], "vendors": [1, 2, 3, 10, 42]},
    "range_large_ids": {"purposes": [1, 7], "vendors": [755, 30000, 30001, 30002, 45000]},
    "refused": {"purposes": [], "vendors": []},
    "p7_not_p1": {"purposes": [7, 8], "vendors": [755]},
    "vendor_missing": {"purposes": [1, 7], "vendors": [10]},
    "global_scope": {"purposes": [1], "vendors": [755], "serviceSpecific": False},
    "purpose_one_treatment": {"purposes": [1], "vendors": [755], "purposeOneTreatment": True},
    "not_allowed_p1": {
        "purposes": [1, 7],
        "vendors": [755, 756],
        "restrictions": [{"purpose": 1, "type": 0, "vendor": 755}],
    },
    "require_li_p7": {
        "purposes": [1, 7],
        "vendors": [755],
        "restrictions": [{"purpose": 7, "type": 2, "vendor": 755}],
    },
    "core_only": {"purposes": [1], "vendors": [755], "segments": ["core"]},
    "publisher_tc": {"purposes": [1], "vendors": [755], "publisherPurposes": [1, 7]},
    "li_only": {"purposes": [], "vendors": [], "vendorsLI": [755]},
}

_NOTICE_GIVEN = {"SaleOptOutNotice": 1}  # the visitor was told they may opt out of sale


def _us(section: str, **fields: int) -> list[Any]:
    return [section, {**_NOTICE_GIVEN, **fields}]


def _tcf_section(name: str) -> list[Any]:
    return ["tcfeuv2", {"$tcf": {"kind": "tcf", **TCF[name]}}]


_SECOND_OPT_OUT = {"usnat": "SharingOptOut", "usca": "SharingOptOut"}

GPP: dict[str, dict[str, Any]] = {
    "usnat_sale_opt_out": {"sections": [_us("usnat", SaleOptOut=1)]},
    "usnat_sharing_opt_out": {"sections": [_us("usnat", SharingOptOut=1)]},
    "usnat_targeting_opt_out": {"sections": [_us("usnat", TargetedAdvertisingOptOut=1)]},
    "usnat_no_opt_out": {
        "sections": [
            _us("usnat", SaleOptOut=2, SharingOptOut=2, TargetedAdvertisingOptOut=2),
        ]
    },
    "usnat_v1_opt_out": {"sections": [_us("usnat", Version=1, SaleOptOut=1)]},
    "usnat_v1_no_opt_out": {"sections": [_us("usnat", Version=1, SaleOptOut=2)]},
    "usnat_no_gpc_subsection": {"sections": [_us("usnat", SaleOptOut=1, GpcSegmentIncluded=False)]},
    "usnat_gpc_set_no_opt_out": {"sections": [_us("usnat", SaleOptOut=2, Gpc=True)]},
    "tcfeuv2_consent": {"sections": [_tcf_section("range_large_ids")]},
    "tcfeuv2_refused": {"sections": [_tcf_section("refused")]},
    "tcfeuv2_fields": {
        "sections": [
            [
                "tcfeuv2",
                {
                    "PurposeConsents": [True, False, False, False, False, False, True],
                    "VendorConsents": [755, 30000],
                    "IsServiceSpecific": True,
                },
            ]
        ]
    },
    "tcfeuv2_and_usnat_opt_out": {
        "sections": [_tcf_section("range_large_ids"), _us("usnat", SaleOptOut=1)]
    },
    "uspv1_opted_out": {
        "sections": [["uspv1", {"Notice": "Y", "OptOutSale": "Y", "LspaCovered": "N"}]]
    },
    "uspv1_not_opted_out": {
        "sections": [["uspv1", {"Notice": "Y", "OptOutSale": "N", "LspaCovered": "N"}]]
    },
    "tcfcav1_only": {"sections": [["tcfcav1", {"CmpId": 10}]]},
}
for _section in US_SECTIONS.values():
    _second = _SECOND_OPT_OUT.get(_section.name, "TargetedAdvertisingOptOut")
    GPP[f"{_section.name}_opted_out_sale"] = {"sections": [_us(_section.name, SaleOptOut=1)]}
    GPP[f"{_section.name}_opted_out_second"] = {
        "sections": [_us(_section.name, SaleOptOut=2, **{_second: 1})]
    }
    GPP[f"{_section.name}_did_not_opt_out"] = {
        "sections": [_us(_section.name, SaleOptOut=2, **{_second: 2})]
    }


@pytest.fixture(scope="session")
def encoded() -> dict[str, str]:
    """Every spec above, encoded by the reference libraries: "tcf:<name>" and "gpp:<name>"."""
    reason = iab.missing_tools()
    if reason:
        pytest.skip(reason)
    specs = [{"kind": "tcf", **spec} for spec in TCF.values()]
    specs += [{"kind": "gpp", **spec} for spec in GPP.values()]
    names = [f"tcf:{name}" for name in TCF] + [f"gpp:{name}" for name in GPP]
    return dict(zip(names, iab.encode(specs), strict=True))


reference = pytest.mark.server  # runs node (and npm once), like the other program-driving tests


# --- TCF ---------------------------------------------------------------------------------------


@reference
def test_tc_string_fields_decode_at_the_spec_offsets(encoded: dict[str, str]) -> None:
    tc = decode_tc_string(encoded["tcf:p1_7_8_bitfield"])
    # encode.js sets these; each sits at its own offset, so a shifted field shows here.
    assert (tc.version, tc.cmp_id, tc.cmp_version, tc.consent_screen) == (2, 10, 2, 1)
    assert (tc.created, tc.last_updated) == (DAY_DECISECONDS, DAY_DECISECONDS)
    assert (tc.consent_language, tc.publisher_country_code) == ("EN", "DE")
    assert (tc.vendor_list_version, tc.policy_version) == (120, 5)
    assert tc.is_service_specific and not tc.purpose_one_treatment
    assert tc.purpose_consents == {1, 7, 8}
    assert not tc.vendor_consents.is_range_encoded
    assert [v for v in range(1, 50) if v in tc.vendor_consents] == [1, 2, 3, 10, 42]


@reference
def test_hand_built_core_equals_the_reference_encoders(encoded: dict[str, str]) -> None:
    core = encoded["tcf:p1_7_8_bitfield"].split(".")[0]
    assert hand_built_tc((1, 7, 8), (1, 2, 3, 10, 42)) == core


@reference
def test_large_sparse_vendor_ids_are_range_encoded(encoded: dict[str, str]) -> None:
    tc = decode_tc_string(encoded["tcf:range_large_ids"])
    assert tc.vendor_consents.is_range_encoded
    assert tc.vendor_consents.max_vendor_id == 45000
    assert tc.vendor_consents.ranges == ((755, 755), (30000, 30002), (45000, 45000))


@reference
@pytest.mark.parametrize(
    ("case", "purposes", "vendor_id", "expected"),
    [
        ("p1", (1,), None, "identified"),
        ("p1", (1, 7), None, "anonymous"),  # purpose 7 not consented
        ("p1", (1,), 755, "anonymous"),  # no vendor consent at all
        ("p1_7_8_bitfield", (1, 7, 8), 42, "identified"),
        ("p1_7_8_bitfield", (1, 7, 8), 43, "anonymous"),
        ("p1_7_8_bitfield", (1, 9), None, "anonymous"),
        ("range_large_ids", (1, 7), 30001, "identified"),
        ("range_large_ids", (1, 7), 45000, "identified"),
        ("range_large_ids", (1, 7), 29999, "anonymous"),
        ("range_large_ids", (1, 7), 45001, "anonymous"),
        ("refused", (1,), None, "anonymous"),
        ("p7_not_p1", (1,), 755, "anonymous"),
        ("vendor_missing", (1, 7), 755, "anonymous"),
        ("vendor_missing", (1, 7), 10, "identified"),
        ("global_scope", (1,), 755, "anonymous"),  # IsServiceSpecific=0 is invalid in TCF 2.2
        ("purpose_one_treatment", (1,), 755, "anonymous"),  # purpose 1 was not disclosed
        ("not_allowed_p1", (1,), 755, "anonymous"),  # the publisher forbids purpose 1 to 755
        ("not_allowed_p1", (1,), 756, "identified"),
        ("not_allowed_p1", (1,), None, "identified"),  # no vendor asked: purposes only
        ("require_li_p7", (1, 7), 755, "anonymous"),  # consent does not count for purpose 7
        ("require_li_p7", (1,), 755, "identified"),
        ("core_only", (1,), 755, "identified"),
        ("publisher_tc", (1,), 755, "identified"),
        ("li_only", (1,), 755, "anonymous"),  # legitimate interest is not consent
    ],
)
def test_tcf_answer_with_reference_strings(
    encoded: dict[str, str],
    case: str,
    purposes: tuple[int, ...],
    vendor_id: int | None,
    expected: Answer,
) -> None:
    assert tcf_answer(encoded[f"tcf:{case}"], purposes=purposes, vendor_id=vendor_id) == expected


@reference
def test_segments_after_the_core_are_there_and_ignored(encoded: dict[str, str]) -> None:
    full = encoded["tcf:publisher_tc"]
    core, disclosed, publisher = full.split(".")
    # SegmentType is the first 3 bits: 1 disclosed vendors, 3 publisher TC.
    assert [ALPHABET.index(segment[0]) >> 3 for segment in (disclosed, publisher)] == [1, 3]
    assert "." not in encoded["tcf:core_only"]
    for value in (full, core, f"{core}.{publisher}", f"{core}.{disclosed}"):
        assert tcf_answer(value, purposes=(1,), vendor_id=755) == "identified"


@reference
def test_truncated_reference_tc_strings_never_identify(encoded: dict[str, str]) -> None:
    for name in TCF:
        value = encoded[f"tcf:{name}"]
        core = value.split(".")[0]
        # The fields before the vendor section alone take 213 bits, 36 characters.
        for cut in range(36):
            assert tcf_answer(core[:cut], purposes=(1,), vendor_id=None) == "anonymous"
        assert tcf_answer(value + ".", purposes=(1,), vendor_id=None) == "anonymous"
        assert tcf_answer(value + ".A", purposes=(1,), vendor_id=None) == "anonymous"


@reference
@hsettings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cut_or_mutated_tc_strings_never_raise_nor_gain_consent(
    encoded: dict[str, str], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(TCF)))
    value = encoded[f"tcf:{name}"]
    vendor = data.draw(st.sampled_from([None, 755, 30001]))
    full = tcf_answer(value, purposes=(1,), vendor_id=vendor)
    cut = data.draw(st.integers(0, len(value) - 1))
    # A prefix either still holds every field (the cut fell in padding or a later segment) or
    # is anonymous; it never turns a refusal into consent.
    assert tcf_answer(value[:cut], purposes=(1,), vendor_id=vendor) in (full, "anonymous")
    at = data.draw(st.integers(0, len(value) - 1))
    char = data.draw(st.sampled_from(ALPHABET + ".~%=!"))
    mutated = value[:at] + char + value[at + 1 :]
    assert tcf_answer(mutated, purposes=(1,), vendor_id=vendor) in ("identified", "anonymous")


# --- TCF and GPP: the specifications' own examples (no node needed) ----------------------------

TCF_SPEC_EXAMPLE = (  # "IAB Tech Lab - Consent string and vendor list formats v2", TC String Format
    "CQSbk4AQSbk4ANwAAAENAwCgAAAAAAAAAAYgACPAAAAA.IDKQA4AAgAKAGQAygAAA.YAAAAAAAAAAA"
)
GPP_SPEC_TC = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"


def test_the_tcf_specification_example() -> None:
    tc = decode_tc_string(TCF_SPEC_EXAMPLE)
    assert (tc.version, tc.cmp_id, tc.consent_language, tc.publisher_country_code) == (
        2,
        880,
        "EN",
        "DE",
    )
    assert tc.is_service_specific and tc.purpose_consents == frozenset()
    assert tcf_answer(TCF_SPEC_EXAMPLE, purposes=(1,), vendor_id=None) == "anonymous"


@pytest.mark.parametrize(
    ("header", "ids"),
    [
        ("DBABM", (2,)),  # the GPP spec's header example 1: EU TCF v2
        ("DBACNY", (2, 6)),  # example 2: EU TCF v2 and US Privacy, offsets 2 then 4
        ("DBABjw", (5, 6)),  # example 3: a range, Canadian TCF to US Privacy
        ("DBAA", ()),  # no sections
    ],
)
def test_gpp_specification_headers(header: str, ids: tuple[int, ...]) -> None:
    assert decode_header(header, max_sections=5) == ids


def test_gpp_specification_strings() -> None:
    purposes = (1,)
    one = f"DBABM~{GPP_SPEC_TC}"
    assert gpp_answer(one, None, purposes=purposes, vendor_id=None) == "anonymous"  # no consent
    # Example 3: Canadian TCF (not read) and US Privacy "1YNN" (did not opt out): no answer.
    three = f"DBABjw~{GPP_SPEC_TC}~1YNN"
    assert gpp_answer(three, None, purposes=purposes, vendor_id=None) is None
    assert gpp_answer(three.replace("1YNN", "1YYN"), None, purposes=purposes, vendor_id=None) == (
        "anonymous"
    )


@pytest.mark.parametrize(
    "value",
    [
        "",  # nothing
        "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA",  # a TCF v1 string
        "DBABM~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA",  # a GPP string
        "CPXxRfAPXxRfAAfKABENB-Cg",  # cut inside the core
        "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA==",  # base64 padding
        "CPXxRfAPXxRfAAfKABENB+CgAAAAAAAAAAYgAAAAAAAA",  # base64, not base64url
        "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA.AAAA",  # segment type 0
        " CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA",
    ],
)
def test_malformed_tc_strings_are_anonymous(value: str) -> None:
    assert tcf_answer(value, purposes=(1,), vendor_id=None) == "anonymous"


def test_hand_built_tc_strings() -> None:
    granted = hand_built_tc((1, 7), (3, 755))
    tc = decode_tc_string(granted)
    assert (tc.cmp_id, tc.consent_language, tc.publisher_country_code) == (10, "EN", "DE")
    assert tc.purpose_consents == {1, 7} and tc.vendor_consents.max_vendor_id == 755
    assert tcf_answer(granted, purposes=(1, 7), vendor_id=755) == "identified"
    assert tcf_answer(granted, purposes=(1, 7), vendor_id=754) == "anonymous"
    assert tcf_answer(granted, purposes=(1, 7, 8), vendor_id=None) == "anonymous"
    global_scope = hand_built_tc((1,), service_specific=False)
    assert tcf_answer(global_scope, purposes=(1,), vendor_id=None) == "anonymous"
    # A TC string needs no percent-encoding; one that got it anyway still reads.
    for encoded_once in (f"{granted}%2EIAAA", granted.replace("A", "%41")):
        assert tcf_answer(encoded_once, purposes=(1,), vendor_id=3) == "identified"


def test_every_cut_of_a_hand_built_core_is_anonymous() -> None:
    value = hand_built_tc((1,), (755,))
    # Every field is needed (the last, NumPubRestrictions, ends within the last 4 characters).
    for cut in range(len(value) - 4):
        assert tcf_answer(value[:cut], purposes=(1,), vendor_id=None) == "anonymous", cut


# --- GPP ---------------------------------------------------------------------------------------


@reference
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("usnat_sale_opt_out", "anonymous"),
        ("usnat_sharing_opt_out", "anonymous"),
        ("usnat_targeting_opt_out", "anonymous"),
        ("usnat_no_opt_out", None),
        ("usnat_v1_opt_out", "anonymous"),
        ("usnat_v1_no_opt_out", None),
        ("usnat_no_gpc_subsection", "anonymous"),
        ("usnat_gpc_set_no_opt_out", None),  # the browser's Sec-GPC is the decision's to apply
        ("tcfeuv2_consent", "identified"),
        ("tcfeuv2_refused", "anonymous"),
        ("tcfeuv2_fields", "identified"),
        ("tcfeuv2_and_usnat_opt_out", "anonymous"),  # every section applies: the strictest wins
        ("uspv1_opted_out", "anonymous"),
        ("uspv1_not_opted_out", None),
        ("tcfcav1_only", None),
    ],
)
def test_gpp_answer_with_reference_strings(
    encoded: dict[str, str], case: str, expected: Answer
) -> None:
    assert gpp_answer(encoded[f"gpp:{case}"], None, purposes=(1, 7), vendor_id=755) == expected


@reference
@pytest.mark.parametrize("section", [s.name for s in US_SECTIONS.values()])
def test_every_us_section_layout_matches_the_reference_encoder(
    encoded: dict[str, str], section: str
) -> None:
    def answer(case: str) -> Answer:
        return gpp_answer(encoded[f"gpp:{section}_{case}"], None, purposes=(1,), vendor_id=None)

    assert answer("opted_out_sale") == "anonymous"
    assert answer("opted_out_second") == "anonymous"
    assert answer("did_not_opt_out") is None


@reference
@pytest.mark.parametrize(
    ("sid", "expected"),
    [
        (None, "anonymous"),
        ("", "anonymous"),  # an empty cookie is no sid
        ("2", "identified"),
        ("7", "anonymous"),
        ("2_7", "anonymous"),
        ("2,7", "anonymous"),
        ("2%2C7", "anonymous"),
        ("0", "anonymous"),  # "not determined yet": every section applies
        ("-1", None),  # no section applies
        ("9", "anonymous"),  # names a section the string lacks: inconsistent
        ("-1,2", "anonymous"),
        ("two", "anonymous"),
        ("2;7", "anonymous"),
    ],
)
def test_gpp_sid_selects_the_applicable_sections(
    encoded: dict[str, str], sid: str | None, expected: Answer
) -> None:
    gpp = encoded["gpp:tcfeuv2_and_usnat_opt_out"]
    assert gpp_answer(gpp, sid, purposes=(1, 7), vendor_id=755) == expected


@reference
def test_broken_gpp_strings_are_anonymous(encoded: dict[str, str]) -> None:
    gpp = encoded["gpp:tcfeuv2_and_usnat_opt_out"]
    header, tc, usnat = gpp.split("~")
    for broken in (
        f"{header}~{tc}",  # a section missing
        f"{header}~{tc}~{usnat}~1YNN",  # a section too many
        f"{header}~~{usnat}",  # an empty section
        f"{header}~{tc[:20]}~{usnat}",  # the TC string cut
        f"{header}~{tc}~{usnat[:8]}",  # usnat cut before its end
        f"{header}~{tc}~{usnat}.",  # an empty subsection
        f"{header}~{tc}~{usnat.split('.')[0]}.AA",  # subsection type 0 after the core
        f"{header}~{tc}~_{usnat[1:]}",  # usnat Version 63
        f"{header}~{tc}~{usnat[:1]}____{usnat[5:]}",  # field values of 3
        f"{header[:3]}~{tc}~{usnat}",  # the header cut
        f"A{header[1:]}~{tc}~{usnat}",  # not a GPP header (Type 0)
        f"{header}!~{tc}~{usnat}",
        tc,  # a bare TC string is not a GPP string
    ):
        assert gpp_answer(broken, "2", purposes=(1, 7), vendor_id=755) == "anonymous", broken


def test_a_hostile_gpp_header_range_is_refused_quickly() -> None:
    head = "000011" + "000001" + "000000000001"  # Type 3, Version 1, one entry
    huge = "1" + "11" + "0" * 38 + "11"  # a range from 1, of length F(40) - 1 = 102,334,155
    assert gpp_answer(b64(head + huge) + "~1YNN", None, purposes=(1,), vendor_id=None) == (
        "anonymous"
    )
    too_long = "0" + "0" * 60 + "11"  # a Fibonacci code longer than any id needs
    assert gpp_answer(b64(head + too_long) + "~1YNN", None, purposes=(1,), vendor_id=None) == (
        "anonymous"
    )
    unterminated = "0" + "0" * 30
    assert gpp_answer(b64(head + unterminated) + "~1YNN", None, purposes=(1,), vendor_id=None) == (
        "anonymous"
    )


@reference
@hsettings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cut_or_mutated_gpp_strings_never_raise_nor_lose_an_opt_out(
    encoded: dict[str, str], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(GPP)))
    value = encoded[f"gpp:{name}"]
    full = gpp_answer(value, None, purposes=(1,), vendor_id=None)
    cut = data.draw(st.integers(0, len(value) - 1))
    assert gpp_answer(value[:cut], None, purposes=(1,), vendor_id=None) in (full, "anonymous")
    at = data.draw(st.integers(0, len(value) - 1))
    char = data.draw(st.sampled_from(ALPHABET + ".~%=!,"))
    mutated = value[:at] + char + value[at + 1 :]
    assert gpp_answer(mutated, None, purposes=(1,), vendor_id=None) in ANSWERS


# --- OneTrust, Cookiebot, Klaro: the values their documentation shows --------------------------

ONETRUST = (
    "isGpcEnabled=0&datestamp=Tue+Nov+25+2025+14%3A22%3A00+GMT%2B0100+(Central+European+Standard"
    "+Time)&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=7f3cf16d-b3e1-"
    "4781-8db1-61482d0a9dff&interactionCount=1&isAnonUser=1&landingPath=NotLandingPage&groups="
    "C0001%3A1%2CC0002%3A{c2}%2CC0003%3A1%2CC0004%3A0&geolocation=DE%3BBE&AwaitingReconsent=false"
)
COOKIEBOT = (
    "{{stamp:%27Xt8G6Xn2mVEFqJ7cvX3b0xw0GpNA8hWwZq3d+Q6y1k4dY2MZ0wJ6UA==%27%2Cnecessary:true"
    "%2Cpreferences:false%2Cstatistics:{stats}%2Cmarketing:false%2Cmethod:%27explicit%27"
    "%2Cver:1%2Cutc:1732540920000%2Cregion:%27de%27}}"
)
KLARO = "%7B%22pixel_middleware%22%3A{state}%2C%22matomo%22%3Afalse%7D"


@pytest.mark.parametrize(
    ("value", "group", "expected"),
    [
        (ONETRUST.format(c2="1"), "C0002", "identified"),
        (ONETRUST.format(c2="0"), "C0002", "anonymous"),
        (ONETRUST.format(c2="1"), "C0004", "anonymous"),
        (ONETRUST.format(c2="1"), "C0005", None),  # the site's OneTrust has no such group
        ("isGpcEnabled=0&groups=&version=1", "C0002", None),
        ("groups=C0002%3A1", "C0002", "identified"),
        ("groups=C0002%3A1%2CC0002%3A0", "C0002", "anonymous"),  # contradicting itself
        ("isGpcEnabled=0&version=202409.1.0", "C0002", "anonymous"),  # no groups at all
        ("groups=C0002%3Ayes", "C0002", "anonymous"),
        ("groups=C0002", "C0002", "anonymous"),
        ("groups=C0001%3A1%2C%2CC0002%3A1", "C0002", "anonymous"),
        ("%7B%7D", "C0002", "anonymous"),
    ],
)
def test_onetrust(value: str, group: str, expected: Answer) -> None:
    assert onetrust_answer(value, group=group) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (COOKIEBOT.format(stats="true"), "identified"),
        (COOKIEBOT.format(stats="false"), "anonymous"),
        (
            "{stamp:'x',necessary:true,preferences:true,statistics:true,marketing:true,ver:1}",
            "identified",
        ),
        ("0", "anonymous"),  # Cookiebot: "the user has not accepted cookies"
        ("-1", None),  # Cookiebot: "not within a region that requires consent"
        (COOKIEBOT.format(stats="maybe"), "anonymous"),
        (COOKIEBOT.format(stats="true").replace("statistics", "stats"), "anonymous"),
        ("{statistics:true,statistics:false}", "anonymous"),
        ("statistics:true", "anonymous"),
        ("%7B", "anonymous"),
    ],
)
def test_cookiebot(value: str, expected: Answer) -> None:
    assert cookiebot_answer(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (KLARO.format(state="true"), "identified"),
        (KLARO.format(state="false"), "anonymous"),
        ('{"pixel_middleware":true}', "identified"),  # Klaro before 0.7 did not encode
        ("%7B%22matomo%22%3Atrue%7D", None),  # the site's Klaro has no such service
        (KLARO.format(state="%22yes%22"), "anonymous"),
        (KLARO.format(state="1"), "anonymous"),
        ("%5Btrue%5D", "anonymous"),
        ("%7B%22pixel_middleware%22%3Atrue", "anonymous"),
        ("[" * 100_000, "anonymous"),  # nested too deep for the JSON parser
        ("not json", "anonymous"),
    ],
)
def test_klaro(value: str, expected: Answer) -> None:
    assert klaro_answer(value, service="pixel_middleware") == expected


# --- consent_answer: precedence, presence, size ------------------------------------------------

TC_REFUSED = GPP_SPEC_TC  # service-specific, no purpose consented


def _answer(cookies: Mapping[str, str], *sources: str, **kw: Any) -> tuple[Answer, str | None]:
    return consent_answer(SourceSettings(sources=sources, **kw), cookies)


def test_the_first_source_that_answers_wins() -> None:
    cookies = {"euconsent-v2": TC_REFUSED, "OptanonConsent": ONETRUST.format(c2="1")}
    assert _answer(cookies, "onetrust", "tcf") == ("identified", "onetrust")
    assert _answer(cookies, "tcf", "onetrust") == ("anonymous", "tcf")


def test_sources_without_an_answer_fall_through() -> None:
    cookies = {
        "OptanonConsent": ONETRUST.format(c2="1"),  # has no C0009
        "__gpp_sid": "7",  # without __gpp
        "euconsent-v2": "",  # empty: absent
        "CookieConsent": "-1",
        "klaro": KLARO.format(state="true"),
    }
    order = ("tcf", "gpp", "cookiebot", "onetrust", "klaro")
    assert _answer(cookies, *order, onetrust_group="C0009") == ("identified", "klaro")
    assert _answer(cookies, *order[:-1], onetrust_group="C0009") == (None, None)
    assert _answer({}, *SOURCE_NAMES) == (None, None)
    assert _answer(cookies) == (None, None)  # no sources configured


def test_sources_not_configured_are_not_read() -> None:
    assert _answer({"euconsent-v2": "garbage"}, "onetrust") == (None, None)


def test_klaro_cookie_and_service_are_settings() -> None:
    cookies = {"cc": "%7B%22stats%22%3Atrue%7D", "klaro": KLARO.format(state="false")}
    assert _answer(cookies, "klaro", klaro_cookie="cc", klaro_service="stats") == (
        "identified",
        "klaro",
    )


def test_gpp_cookies_together() -> None:
    gpp = f"DBABjw~{GPP_SPEC_TC}~1YYN"  # US Privacy: opted out of sale
    assert _answer({"__gpp": gpp}, "gpp") == ("anonymous", "gpp")
    assert _answer({"__gpp": gpp, "__gpp_sid": "-1"}, "gpp") == (None, None)
    assert _answer({"__gpp": gpp, "__gpp_sid": "5"}, "gpp") == (None, None)
    assert _answer({"__gpp": gpp, "__gpp_sid": ""}, "gpp") == ("anonymous", "gpp")
    # Some encoders escape "~" (Java's URLEncoder does): percent-decoded once, it reads the same.
    assert _answer({"__gpp": gpp.replace("~", "%7E"), "__gpp_sid": "6"}, "gpp") == (
        "anonymous",
        "gpp",
    )


@pytest.mark.parametrize(
    ("source", "value", "answer"),
    [
        ("tcf", hand_built_tc(), "identified"),
        ("gpp", f"DBABjw~{GPP_SPEC_TC}~1YNN", None),
        ("onetrust", ONETRUST.format(c2="1"), "identified"),
        ("cookiebot", COOKIEBOT.format(stats="true"), "identified"),
        ("klaro", KLARO.format(state="true"), "identified"),
    ],
)
def test_oversized_values_are_refused(source: str, value: str, answer: Answer) -> None:
    cookies = {SOURCE_COOKIES[source][0]: value}
    limit = len(value)
    expected = (answer, source if answer else None)
    assert _answer(cookies, source, max_cookie_chars=limit) == expected
    assert _answer(cookies, source, max_cookie_chars=limit - 1) == ("anonymous", source)
    assert _answer({SOURCE_COOKIES[source][0]: value + "x" * 10_000}, source) == (
        "anonymous",
        source,
    )


def test_an_oversized_gpp_sid_is_refused() -> None:
    gpp = f"DBABjw~{GPP_SPEC_TC}~1YNN"
    assert _answer({"__gpp": gpp, "__gpp_sid": "5"}, "gpp") == (None, None)
    assert _answer({"__gpp": gpp, "__gpp_sid": "5" + "_5" * 5000}, "gpp") == ("anonymous", "gpp")


def test_a_parser_that_fails_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> Answer:
        raise RuntimeError("a bug")

    monkeypatch.setattr(consent_sources, "onetrust_answer", broken)
    cookies = {"OptanonConsent": ONETRUST.format(c2="1"), "klaro": KLARO.format(state="true")}
    assert _answer(cookies, "onetrust", "klaro") == ("anonymous", "onetrust")


# --- settings ----------------------------------------------------------------------------------


def test_source_cookies_and_cookie_names() -> None:
    assert tuple(SOURCE_COOKIES) == SOURCE_NAMES
    s = SourceSettings(sources=("klaro", "gpp", "tcf"), klaro_cookie="consent")
    assert cookie_names(s) == ("consent", "__gpp", "__gpp_sid", "euconsent-v2")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["tcf", "onetrst"], "'onetrust'"),
        (["TCF"], "did you mean 'tcf'?"),
        (["cookiebott"], "did you mean 'cookiebot'?"),
        (["usercentrics"], "valid: tcf, gpp, onetrust, cookiebot, klaro"),
        (["gpp", "gpp"], "listed twice"),
        ("tcf", "not the string"),
    ],
)
def test_validate_sources_names_the_closest_source(names: list[str] | str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_sources(names)


def test_validate_sources_accepts_every_source() -> None:
    validate_sources(SOURCE_NAMES)
    validate_sources([])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sources": ("tfc",)}, "did you mean 'tcf'?"),
        ({"tcf_purposes": (7, 8)}, "must include purpose 1"),
        ({"tcf_purposes": ()}, "must include purpose 1"),
        ({"tcf_purposes": (1, 25)}, "1-24"),
        ({"tcf_purposes": (1, True)}, "1-24"),
        ({"tcf_vendor_id": 0}, "1-65535"),
        ({"tcf_vendor_id": 65536}, "1-65535"),
        ({"onetrust_group": "C0002:1"}, "OneTrust group id"),
        ({"klaro_service": ""}, "klaro_service"),
        ({"klaro_cookie": "my cookie"}, "cookie name"),
        ({"max_cookie_chars": 0}, "positive"),
    ],
)
def test_source_settings_refuse_what_cannot_work(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"sources": ("tcf",), **overrides}
    with pytest.raises(ValueError, match=re.escape(message)):
        SourceSettings(**values)


def test_source_settings_store_tuples() -> None:
    s = SourceSettings(sources=["gpp", "tcf"], tcf_purposes=[1, 7], tcf_vendor_id=755)  # type: ignore[arg-type]
    assert s.sources == ("gpp", "tcf") and s.tcf_purposes == (1, 7)
    assert hash(s) == hash(
        SourceSettings(sources=("gpp", "tcf"), tcf_purposes=(1, 7), tcf_vendor_id=755)
    )


# --- garbage: never raises, present-but-broken is anonymous ------------------------------------

cookie_text = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=300
)  # what a Cookie header, read as latin-1, can carry
anything = st.one_of(
    cookie_text,
    st.text(max_size=200),
    st.text(ALPHABET + ".~%_,:{}\"'", max_size=200),
    st.text(ALPHABET, min_size=1, max_size=200).map(lambda s: "C" + s),
    st.text(ALPHABET, min_size=1, max_size=200).map(lambda s: "DBA" + s),
)


@given(value=anything, sid=st.one_of(st.none(), anything))
def test_no_parser_ever_raises(value: str, sid: str | None) -> None:
    assert tcf_answer(value, purposes=(1,), vendor_id=755) in ("identified", "anonymous")
    assert gpp_answer(value, sid, purposes=(1,), vendor_id=None) in ANSWERS
    assert onetrust_answer(value, group="C0002") in ANSWERS
    assert cookiebot_answer(value) in ANSWERS
    assert klaro_answer(value, service="pixel_middleware") in ANSWERS


@given(
    value=st.text(string.printable, min_size=1, max_size=100).filter(lambda v: "groups=" not in v)
)
def test_onetrust_garbage_is_anonymous(value: str) -> None:
    assert onetrust_answer(value, group="C0002") == "anonymous"


@given(
    value=st.text(min_size=1, max_size=100).filter(
        lambda v: "{" not in unquote(v) and unquote(v).strip() != "-1"
    )
)
def test_cookiebot_garbage_is_anonymous(value: str) -> None:
    assert cookiebot_answer(value) == "anonymous"


@given(value=st.text(min_size=1, max_size=100).filter(lambda v: "{" not in unquote(v)))
def test_klaro_garbage_is_anonymous(value: str) -> None:
    assert klaro_answer(value, service="pixel_middleware") == "anonymous"


ALL_COOKIES = [*itertools.chain.from_iterable(SOURCE_COOKIES.values()), "other"]


@given(cookies=st.dictionaries(st.sampled_from(ALL_COOKIES), anything))
def test_consent_answer_never_raises(cookies: dict[str, str]) -> None:
    answer, source = consent_answer(SourceSettings(sources=SOURCE_NAMES), cookies)
    assert answer in ANSWERS
    assert (answer is None) == (source is None)
    if source is not None:
        assert any(cookies.get(name) for name in SOURCE_COOKIES[source])


@given(
    source=st.sampled_from(SOURCE_NAMES),
    extra=st.integers(1, 20_000),
    char=st.sampled_from("A%{,"),
)
def test_oversized_garbage_is_anonymous(source: str, extra: int, char: str) -> None:
    value = char * (8192 + extra)
    cookies = {SOURCE_COOKIES[source][0]: value}
    assert consent_answer(SourceSettings(sources=(source,)), cookies) == ("anonymous", source)

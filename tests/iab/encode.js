// Encodes TC strings and GPP strings with IAB Tech Lab's reference libraries, for the tests of
// pixel_middleware/consent_sources. Reads {"cases": [spec, ...]} on stdin and prints a JSON array
// with one encoded string per case. tests/iab.py installs the pinned packages and sets NODE_PATH.
//
// A TCF spec: {"kind": "tcf", "purposes": [1, 7], "vendors": [755], "vendorsLI": [],
//   "purposeOneTreatment": false, "serviceSpecific": true,
//   "restrictions": [{"purpose": 1, "type": 0, "vendor": 755}],
//   "publisherPurposes": [1], "segments": ["core", "vendorsDisclosed", "publisherTC"]}
// Every vendor named anywhere is put in a small vendor list (declaring purposes 1-10 for consent,
// 2 and 7-10 as flexible), because the encoder drops consent for vendors its list does not have.
//
// A GPP spec: {"kind": "gpp", "sections": [["usnat", {"SaleOptOut": 1}], ["tcfeuv2", {"$tcf":
//   <TCF spec>}], ["tcfeuv2", {"PurposeConsents": [true], "IsServiceSpecific": true}], ...]}
// Fields are the reference library's own field names; "$tcf" decodes a TC string that
// @iabtechlabtcf/core encoded into the section instead.
'use strict';

const { GVL, PurposeRestriction, TCModel, TCString } = require('@iabtechlabtcf/core');
const { GppModel } = require('@iabgpp/cmpapi');

const DAY = new Date(Date.UTC(2025, 0, 15));

function vendorList(ids) {
  const purposes = {};
  for (let id = 1; id <= 11; id++) {
    purposes[id] = { id, name: `Purpose ${id}`, description: '', illustrations: [] };
  }
  const vendors = {};
  for (const id of ids) {
    vendors[id] = {
      id,
      name: `Vendor ${id}`,
      purposes: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      legIntPurposes: [],
      flexiblePurposes: [2, 7, 8, 9, 10],
      specialPurposes: [],
      features: [],
      specialFeatures: [],
      cookieMaxAgeSeconds: 31536000,
      usesCookies: true,
      usesNonCookieAccess: false,
      dataRetention: {},
      urls: [],
      dataDeclaration: [],
    };
  }
  return new GVL({
    gvlSpecificationVersion: 3,
    vendorListVersion: 120,
    tcfPolicyVersion: 5,
    lastUpdated: DAY.toISOString(),
    purposes,
    specialPurposes: {},
    features: {},
    specialFeatures: {},
    stacks: {},
    dataCategories: {},
    vendors,
  });
}

function encodeTcf(spec) {
  const restrictions = spec.restrictions || [];
  const ids = new Set([...(spec.vendors || []), ...(spec.vendorsLI || [])]);
  restrictions.forEach((r) => ids.add(r.vendor));
  const model = new TCModel(vendorList([...ids]));
  model.cmpId = 10;
  model.cmpVersion = 2;
  model.consentScreen = 1;
  model.publisherCountryCode = 'DE';
  model.isServiceSpecific = spec.serviceSpecific !== false;
  model.purposeOneTreatment = spec.purposeOneTreatment === true;
  model.created = DAY;
  model.lastUpdated = DAY;
  model.purposeConsents.set(spec.purposes || []);
  model.vendorConsents.set(spec.vendors || []);
  model.vendorLegitimateInterests.set(spec.vendorsLI || []);
  model.vendorsDisclosed.set([...ids]);
  model.publisherConsents.set(spec.publisherPurposes || []);
  for (const r of restrictions) {
    model.publisherRestrictions.add(r.vendor, new PurposeRestriction(r.purpose, r.type));
  }
  const options = spec.segments ? { segments: spec.segments } : undefined;
  return TCString.encode(model, options);
}

function encodeGpp(spec) {
  const model = new GppModel();
  for (const [section, fields] of spec.sections) {
    if (fields.$tcf) {
      model.decodeSection(section, encodeTcf(fields.$tcf));
      continue;
    }
    for (const [field, value] of Object.entries(fields)) {
      model.setFieldValue(section, field, value);
    }
  }
  return model.encode();
}

const ENCODERS = { tcf: encodeTcf, gpp: encodeGpp };

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const { cases } = JSON.parse(input);
  const out = cases.map((spec, index) => {
    const encode = ENCODERS[spec.kind];
    if (!encode) throw new Error(`case ${index}: unknown kind ${JSON.stringify(spec.kind)}`);
    return encode(spec);
  });
  process.stdout.write(JSON.stringify(out));
});

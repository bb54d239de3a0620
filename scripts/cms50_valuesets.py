#!/usr/bin/env python3
"""Extracts the CMS50 value sets (name, system, code) from the measure's official ValueSet bundle
into crates/domain/data/cms50-valuesets.tsv, which refloop ships and reads at start.

Usage: scripts/cms50_valuesets.py PATH/TO/valuesets-CMS50FHIRCRLReceiptofSpecialistReport-bundle.json
"""
import json
import sys

bundle = json.load(open(sys.argv[1]))
rows = set()
for entry in bundle["entry"]:
    vs = entry["resource"]
    for c in vs.get("expansion", {}).get("contains", []):
        rows.add((vs["name"], c["system"], c["code"]))
    for inc in vs.get("compose", {}).get("include", []):
        for c in inc.get("concept", []):
            rows.add((vs["name"], inc["system"], c["code"]))
out = open("crates/domain/data/cms50-valuesets.tsv", "w")
out.write("# CMS50FHIR 0.4.000 value sets (VSAC expansions from the measure's ValueSet bundle, madie.cms.gov).\n")
out.write("# value set name\tcode system\tcode\n")
for r in sorted(rows):
    out.write("\t".join(r) + "\n")

#!/usr/bin/env python3
"""Validates FHIR R4 (4.0.1) JSON files with fhir.resources 6.4.0, an independent model.

Usage: validate_fhir.py FILE...  Prints one line per file; exits 1 if any is invalid.
"""
import json
import sys

from fhir.resources import construct_fhir_element

failed = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        construct_fhir_element(data["resourceType"], data)
        print(f"valid   {path}")
    except Exception as e:  # pydantic.ValidationError and friends
        failed += 1
        print(f"INVALID {path}: {e}")
sys.exit(1 if failed else 0)
